"""From a path to a validated Config: read, resolve references, validate, explain errors."""

from __future__ import annotations

import datetime
import difflib
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from tiers.config.model import COMMON_KEYS, Config, Environment
from tiers.config.refs import resolve
from tiers.config.source import Key, Source, parse, read
from tiers.errors import ConfigError, Problem
from tiers.platforms.options import SCHEMAS, known, schema

DEFAULT_FILE = "tiers.toml"


def load(path: Path | str = DEFAULT_FILE) -> Loaded:
    """Read and validate a tiers.toml; any problem raises ConfigError naming where it is."""
    return validate(read(Path(path)))


def load_text(text: str, name: str) -> Loaded:
    """Validate a tiers.toml given as text (as a commit has it); errors name ``name``."""
    return validate(parse(text, Path(name)))


def validate(source: Source) -> Loaded:
    """The model of a parsed tiers.toml."""
    data = resolve(source)
    services = set(data.get("services", {})) if isinstance(data.get("services"), dict) else set()
    problems: list[Problem] = []
    shaped = _shape(data, services, source, problems)
    if problems:
        raise ConfigError(problems)
    try:
        config = Config.model_validate(shaped)
    except ValidationError as exc:
        raise ConfigError(_explain_all(exc.errors(), shaped, source, services)) from None
    return Loaded(config, source)


class Loaded(typing.NamedTuple):
    config: Config
    source: Source


def _shape(data: dict[str, Any], services: set[str], src: Source, out: list[Problem]) -> Any:
    """Give each environment its name, and gather its per-service tables under ``services``.

    In the file a service's binding sits right in its environment
    (``[environments.staging.backend]``), which reads naturally; the model keeps the
    two apart.
    """
    environments = data.get("environments")
    if not isinstance(environments, dict):
        return data
    for service in sorted(services & set(Environment.model_fields)):
        message = f"a service may not be named {service!r}: that is an environment key"
        out.append(src.problem(("services", service), message))
    shaped: dict[str, Any] = {}
    for name, env in environments.items():
        if not isinstance(env, dict):
            shaped[name] = env
            continue
        for reserved, why in _RESERVED.items():
            if reserved in env:
                out.append(src.problem(("environments", name, reserved), why))
        own = {k: v for k, v in env.items() if k not in services}
        bound = {k: v for k, v in env.items() if k in services}
        shaped[name] = {"name": name, **own, "services": bound}
    return {**data, "environments": shaped}


_RESERVED = {
    "name": "an environment is named by its table, [environments.NAME]; remove this key",
    "services": "put each service's binding in its own table, like [environments.X.backend]",
}
_EXPECTED = {
    "model_type": "a table, like { key = value }",
    "model_attributes_type": "a table, like { key = value }",
    "dict_type": "a table, like { key = value }",
    "list_type": "a list, like [ ... ]",
    "tuple_type": "a list, like [ ... ]",
    "string_type": "a string (in quotes)",
    "bool_type": "true or false",
    "int_type": "a whole number",
    "float_type": "a number",
}


def _explain_all(errors: list[Any], data: Any, source: Source, services: set[str]) -> list[Problem]:
    """One problem per key, sorted by position.

    A union (a cost is a number or a range) reports once per branch: at one key the
    expected types are merged ("a number or a list"), and a branch's complaint about the
    whole value gives way to a more precise one about a part of it.
    """
    keyed = [(_source_key(e["loc"], data, e["type"]), e) for e in errors]
    keys = {key for key, _ in keyed}
    found: dict[Key, Problem] = {}
    for key, error in keyed:
        if error["type"] not in _EXPECTED:
            found.setdefault(key, _explain(error, key, source, services, data))
    wanted: dict[Key, dict[str, Any]] = {}
    for key, error in keyed:
        inner = any(k[: len(key)] == key and k != key for k in keys)
        if error["type"] in _EXPECTED and key not in found and not inner:
            wanted.setdefault(key, {}).setdefault(_EXPECTED[error["type"]], error["input"])
    for key, wants in wanted.items():
        names = list(wants)
        text = names[0] if len(names) == 1 else " or ".join(n.split(",")[0] for n in names)
        given = _toml_type(next(iter(wants.values())))
        found[key] = source.problem(key, f"expected {text}, not {given}")
    return sorted(found.values(), key=lambda p: (p.line, p.column, p.key))


def _source_key(loc: tuple[int | str, ...], data: Any, kind: str) -> Key:
    """The key path as written: validator tags dropped, service bindings back in place.

    Parts of ``loc`` that are not in the file (union branches like ``float``, ``[key]``,
    a key a validator added) are skipped; a missing key is named at the end.
    """
    key: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        in_table = isinstance(node, dict) and part in node
        in_list = isinstance(node, list | tuple) and isinstance(part, int) and part < len(node)
        if in_table or in_list:
            node = node[part]
        elif not (kind == "missing" and index == len(loc) - 1 and isinstance(node, dict)):
            continue
        key.append(part)
    if len(key) > 3 and key[0] == "environments" and key[2] == "services":
        del key[2]
    return tuple(key)


def _explain(error: Any, key: Key, source: Source, services: set[str], data: Any) -> Problem:
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(error["loc"][:-1], services, data)
        platform = _platform_at(error["loc"][:-1], data)
        where = f" for platform {platform}" if platform else ""
        message = _unknown(str(key[-1]), allowed, where)
        if len(key) == 3 and key[0] == "environments" and isinstance(error["input"], dict):
            message += f"; to bind a service here, declare it first as [services.{key[-1]}]"
        return source.problem(key, message)
    if kind == "missing":
        return source.problem(key, "required key is missing")
    if kind == "finite_number":
        return source.problem(key, "expected a finite number, not nan or inf")
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        choices = [c.strip(" '") for c in expected.replace(" or ", ",").split(",")]
        close = difflib.get_close_matches(str(error["input"]), choices, n=1)
        message = f"{error['input']!r} is not allowed; expected {expected}"
        if close:
            message += f"; did you mean {close[0]!r}?"
    return source.problem(key, message)


def _unknown(name: str, allowed: list[str], where: str = "") -> str:
    message = f"unknown key {name!r}{where}"
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    if close:
        return f"{message}; did you mean {close[0]!r}?"
    if allowed:
        return f"{message}; allowed here: {', '.join(allowed)}"
    return message


def _allowed_keys(loc: tuple[int | str, ...], services: set[str], data: Any) -> list[str]:
    """The keys the model accepts at ``loc`` (to suggest the one that was meant)."""
    annotation: Any = Config
    for index, part in enumerate(loc):
        platform = _platform_at(loc[: index + 1], data)
        if platform is not None:  # a binding's own keys: its platform's options model
            annotation = schema(platform) if platform else None
            if index == len(loc) - 1:
                return [*COMMON_KEYS, *_options_keys(platform)]
            continue
        annotation = _step(annotation, part)
        if annotation is None:
            return []
    model = _model_of(annotation)
    if model is None:
        return []
    if model is Environment:
        return [n for n in model.model_fields if n not in _RESERVED] + sorted(services)
    return list(model.model_fields)


def _platform_at(loc: tuple[int | str, ...], data: Any) -> str | None:
    """Where a binding's own keys are validated (``environments.E.services.S.options``):
    its platform as written, or "" when it names none that is known; None elsewhere."""
    if len(loc) != 5 or loc[0] != "environments" or loc[2] != "services" or loc[4] != "options":
        return None
    node = data
    for part in loc[:4]:
        node = node.get(part) if isinstance(node, dict) else None
    platform = node.get("platform") if isinstance(node, dict) else None
    return platform if isinstance(platform, str) and platform in known() else ""


def _options_keys(platform: str) -> list[str]:
    """The keys ``platform`` takes of its own; with none known, those any platform takes."""
    models = [schema(platform)] if platform else list(SCHEMAS.values())
    return list(dict.fromkeys(key for model in models if model for key in model.model_fields))


def _toml_type(value: Any) -> str:
    kinds: dict[type, str] = {bool: "a boolean", int: "a number", float: "a number"}
    kinds |= {str: "a string", list: "a list", tuple: "a list", dict: "a table"}
    kinds |= {datetime.datetime: "a date-time", datetime.date: "a date", datetime.time: "a time"}
    return next((name for kind, name in kinds.items() if isinstance(value, kind)), "a value")


def _step(annotation: Any, part: int | str) -> Any:
    model = _model_of(annotation)
    if model is not None:
        field = model.model_fields.get(str(part))
        return field.annotation if field else None
    args = [a for a in typing.get_args(_unwrap(annotation)) if a is not type(None)]
    return args[-1] if args else None  # dict[K, V] → V, list[V] → V


def _unwrap(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _model_of(annotation: Any) -> type[BaseModel] | None:
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None
