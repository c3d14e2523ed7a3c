"""Declarative config schemas: every key of a config file, its type, range and meaning.

A schema is a mapping ``{key: Key(...)}``; `check` walks a loaded config against it at
every level and raises `ConfigError` naming the file, the key path and, for an unknown
key, the closest valid one::

    config.yaml: optimizer.learnin_rate: unknown key; did you mean learning_rate?

`table` renders a schema as the Markdown key table of ``docs/configs.md``.
"""

import dataclasses
import difflib
import json
import numbers

_REQUIRED = object()


class ConfigError(ValueError):
    """A config that does not match its schema (the message names file and key path)."""


@dataclasses.dataclass
class Key:
    """One config key.

    Args:
        types: accepted Python types (``int`` accepts integers only, ``float`` any number).
        doc: one line for the docs.
        default: the value used when the key is absent (``_REQUIRED``: must be given).
        choices: accepted values (strings compared as given).
        low, high: inclusive bounds of a number (``low_open``/``high_open``: exclusive).
        keys: schema of a mapping value (unknown keys are errors).
        items: `Key` of each list item.
        variants: for a mapping whose keys depend on its ``type`` entry:
            ``{type: schema}``.
        prefixed: ``{prefix: Key}`` of a mapping's keys named ``<prefix><anything>``.
    """

    types: tuple
    doc: str = ""
    default: object = None
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    keys: dict | None = None
    items: "Key | None" = None
    variants: dict | None = None
    prefixed: dict | None = None

    @property
    def required(self):
        return self.default is _REQUIRED


def required(types, doc, **kwargs):
    return Key(types, doc, default=_REQUIRED, **kwargs)


def rate(doc, default=None):
    """A number in the open interval (0, 1)."""
    return Key((float,), doc, default, low=0, high=1, low_open=True, high_open=True)


def positive(types, doc, default=None, **kwargs):
    return Key(types, doc, default, low=0, low_open=True, **kwargs)


def check(config, schema, source="config"):
    """Raise `ConfigError` unless ``config`` matches ``schema`` at every level.

    Args:
        config: the loaded mapping.
        schema: ``{key: Key}``.
        source: the file name the message starts with.
    """
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: the config must be a mapping of keys to values, "
                          f"got {type(config).__name__}.")
    _check_mapping(config, schema, source, "")


def check_arguments(function, arguments, source, where):
    """Raise `ConfigError` unless ``function`` takes every key of ``arguments`` (a config
    mapping passed on as keyword arguments, e.g. ``backbone.kwargs``)."""
    import inspect

    parameters = inspect.signature(function).parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    for name in arguments or {}:
        if name not in parameters:
            title = getattr(function, "__name__", "the function")
            raise ConfigError(f"{source}: {where}.{name}: not an argument of {title}"
                              f"{_suggest(name, list(parameters), 'argument')}")


def fill_defaults(config, schema):
    """A copy of ``config`` with every absent top-level key set to its default."""
    return {**{name: (None if key.required else key.default) for name, key in schema.items()},
            **config}


def _check_mapping(value, schema, source, path, prefixed=None):
    for name in value:
        prefix = next((p for p in prefixed or () if str(name).startswith(p)), None)
        if prefix is not None:
            _check_value(value[name], prefixed[prefix], source, f"{path}{name}")
        elif name not in schema:
            valid = [*schema, *(f"{p}..." for p in prefixed or ())]
            raise ConfigError(f"{source}: {path}{name}: unknown key{_suggest(name, valid)}")
    for name, key in schema.items():
        where = f"{path}{name}"
        if name not in value:
            if key.required:
                raise ConfigError(f"{source}: {where}: required key missing ({key.doc}).")
            continue
        _check_value(value[name], key, source, where)


def _check_value(value, key, source, where):
    if value is None and not key.required:
        return
    if not _is_instance(value, key.types):
        kinds = " or ".join(_type_name(t) for t in key.types)
        hint = ""
        if isinstance(value, str) and float in key.types and _is_number_text(value):
            hint = " (YAML reads 1e-3 as text: write 1.0e-3)"
        raise ConfigError(f"{source}: {where}: expected {kinds}, got {value!r}{hint}.")
    if key.choices is not None and isinstance(value, str | int | float | bool) \
            and value not in key.choices:
        raise ConfigError(f"{source}: {where}: {value!r} is not one of "
                          f"{list(key.choices)}{_suggest(str(value), key.choices, 'value')}")
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        _check_range(value, key, source, where)
    if isinstance(value, dict):
        if key.variants is not None:
            kind = value.get("type")
            if kind not in key.variants:
                raise ConfigError(f"{source}: {where}.type: {kind!r} is not one of "
                                  f"{sorted(key.variants)}{_suggest(str(kind), key.variants, 'value')}")
            _check_mapping(value, key.variants[kind], source, f"{where}.")
        elif key.keys is not None:
            _check_mapping(value, key.keys, source, f"{where}.", key.prefixed)
    if isinstance(value, list) and key.items is not None:
        for i, item in enumerate(value):
            _check_value(item, key.items, source, f"{where}[{i}]")


def _check_range(value, key, source, where):
    low_bad = key.low is not None and (value <= key.low if key.low_open else value < key.low)
    high_bad = key.high is not None and (value >= key.high if key.high_open else value > key.high)
    if low_bad or high_bad:
        raise ConfigError(f"{source}: {where}: {value!r} is out of range; expected "
                          f"{_range_text(key)}.")


def _range_text(key):
    if key.low is not None and key.high is not None:
        return (f"a value in {'(' if key.low_open else '['}{key.low:g}, "
                f"{key.high:g}{')' if key.high_open else ']'}")
    if key.low is not None:
        return f"{'>' if key.low_open else '>='} {key.low:g}"
    return f"{'<' if key.high_open else '<='} {key.high:g}"


def _is_instance(value, types):
    for kind in types:
        if kind is float and isinstance(value, numbers.Real) and not isinstance(value, bool):
            return True
        if kind is int and isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return True
        if kind not in (int, float) and isinstance(value, kind):
            return True
    return False


def _is_number_text(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _type_name(kind):
    return {float: "a number", int: "an integer", str: "a string", bool: "true/false",
            dict: "a mapping", list: "a list"}.get(kind, kind.__name__)


def _suggest(name, valid, what="key"):
    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]}?"
    return f"; valid {what}s: {', '.join(sorted(map(str, valid)))}."


# -- documentation --------------------------------------------------------------------


def table(schema):
    """Markdown table of every key of ``schema`` (nested keys as dotted paths)."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for path, key in _walk(schema, ""):
        lines.append(f"| `{path}` | {_describe(key)} | {_default_text(key)} | {key.doc} |")
    return "\n".join(lines) + "\n"


def _walk(schema, prefix):
    for name, key in schema.items():
        path = f"{prefix}{name}"
        yield path, key
        if key.keys is not None:
            yield from _walk(key.keys, f"{path}.")
        for start, sub in (key.prefixed or {}).items():
            yield f"{path}.{start}<name>", sub
        if key.items is not None and key.items.keys is not None:
            yield from _walk(key.items.keys, f"{path}[].")
        if key.variants is not None:
            for kind, variant in key.variants.items():
                yield from ((p, k) for p, k in _walk(variant, f"{path}[type={kind}].")
                            if not p.endswith(".type"))


def _describe(key):
    text = " or ".join(_type_name(t).removeprefix("a ").removeprefix("an ") for t in key.types)
    if key.choices is not None:
        text += ": " + ", ".join(f"`{c}`" for c in key.choices)
    if key.low is not None or key.high is not None:
        text += ", " + _range_text(key).replace("a value in ", "")
    return text


def _default_text(key):
    if key.required:
        return "required"
    return "" if key.default is None else f"`{json.dumps(key.default)}`"
