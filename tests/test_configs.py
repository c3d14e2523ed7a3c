"""Config schemas: the docs table is generated from them; checks at every level."""

import os

import pytest

from kerasbrain import config

DOCS = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "configs.md")


@pytest.mark.backend_independent
def test_docs_match_the_schemas():
    with open(DOCS) as handle:
        assert handle.read() == config.markdown(), "run: python -m kerasbrain.config docs/configs.md"
    for kind, schema in config.SCHEMAS.items():
        for key in schema:
            assert f"`{key}`" in config.markdown(), (kind, key)


@pytest.mark.backend_independent
def test_documented_examples_are_valid():
    import yaml

    from kerasbrain import training
    from kerasbrain.commands import tune

    config.check(yaml.safe_load(tune.EXAMPLE), config.SCHEMAS["tune"], "tune.EXAMPLE")
    example = training.__doc__.split("::")[1].split("\n\n")[1]
    config.check(yaml.safe_load(example), config.SCHEMAS["train"], "training.__doc__")


@pytest.mark.backend_independent
def test_check_walks_every_level_and_registers_kinds():
    schema = {"outer": config.Key((dict,), "a mapping", keys={
        "items": config.Key((list,), "a list", items=config.Key((dict,), "an item", keys={
            "rate": config.Key((float,), "a rate", low=0, high=1, high_open=True)}))})}
    config.register("example", schema)
    try:
        assert config.validate({"outer": {"items": [{"rate": 0.5}]}}, "example") == {
            "outer": {"items": [{"rate": 0.5}]}}
        with pytest.raises(config.ConfigError, match=r"f.yaml: outer\.items\[1\]\.rat: unknown "
                                                      r"key; did you mean rate\?"):
            config.validate({"outer": {"items": [{"rate": 0.5}, {"rat": 1}]}}, "example", "f.yaml")
        with pytest.raises(config.ConfigError, match=r"outer\.items\[0\]\.rate: 1 is out of range; "
                                                      r"expected a value in \[0, 1\)"):
            config.validate({"outer": {"items": [{"rate": 1}]}}, "example")
        with pytest.raises(config.ConfigError, match=r"outer: expected a mapping, got True"):
            config.validate({"outer": True}, "example")
        assert "`outer.items[].rate`" in config.table(schema)
    finally:
        config.SCHEMAS.pop("example")
