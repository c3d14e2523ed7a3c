"""Config files of the ``kerasbrain`` commands: reading, schemas, checks, the docs table.

    config = kerasbrain.config.load("train.yaml", "train")   # ConfigError names key paths
"""

import json
import os

from kerasbrain.config.kinds import SCHEMAS, register
from kerasbrain.config.schema import (
    ConfigError,
    Key,
    check,
    check_arguments,
    fill_defaults,
    table,
)

__all__ = ["SCHEMAS", "ConfigError", "Key", "check", "check_arguments", "check_backbone",
           "fill_defaults", "load", "markdown", "read", "register", "table", "validate"]


def read(path):
    """Load a YAML or JSON file into a dict (errors name the file)."""
    import yaml

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such config file.")
    with open(path) as handle:
        text = handle.read()
    is_json = path.endswith(".json")
    try:
        config = json.loads(text) if is_json else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: not valid {'JSON' if is_json else 'YAML'}: {error}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: the config must be a mapping of keys to values.")
    return config


def validate(config, kind, source="config"):
    """Check ``config`` against the schema of ``kind``; returns it with defaults filled."""
    if kind not in SCHEMAS:
        raise ValueError(f"no config schema {kind!r}; known: {sorted(SCHEMAS)}.")
    check(config, SCHEMAS[kind], source)
    return fill_defaults(config, SCHEMAS[kind])


def check_backbone(name, arguments, source, name_key, arguments_key):
    """``name`` (at key ``name_key``) is a ``kerasbrain.applications`` constructor taking
    ``arguments`` (at ``arguments_key``)."""
    from kerasbrain import applications

    try:
        constructor = applications.get(name)
    except ValueError as error:
        raise ConfigError(f"{source}: {name_key}: {error}") from None
    check_arguments(constructor, arguments, source, arguments_key)


def load(path, kind):
    """`read` then `validate`: the config of ``kind`` in ``path``, defaults filled."""
    return validate(read(path), kind, os.fspath(path))


def markdown():
    """The text of ``docs/configs.md``: every key of every config kind."""
    parts = [
        "# Config files\n\n",
        "Every key the `kerasbrain` commands accept, per config kind (generated from\n"
        "`kerasbrain/config/kinds.py` by `python -m kerasbrain.config docs/configs.md`).\n"
        "An unknown key, a wrong type or a value out of range is an error that names the\n"
        "file, the key path and the closest valid key, before anything runs. Nested keys\n"
        "are written as paths: `optimizer.learning_rate` is `learning_rate` inside\n"
        "`optimizer`; `tasks[].name` is a key of each list item; `tasks[type=binary].positive`\n"
        "applies to tasks of that type.\n",
    ]
    seen = {}
    for kind, schema in SCHEMAS.items():
        same = next((k for k, s in seen.items() if s is schema), None)
        if same:
            parts.append(f"\n## `kerasbrain {kind}`\n\nThe same keys as `kerasbrain {same}`.\n")
            continue
        seen[kind] = schema
        parts.append(f"\n## `kerasbrain {kind}`\n\n{table(schema)}")
    return "".join(parts)
