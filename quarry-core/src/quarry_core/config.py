"""Configuration files, the environment layer and precedence (cli.md §5).

Reading a file::

    cfg = load_config(explicit=explicit_config_path(cli_config, no_config=no_config, environ=os.environ),
                      no_config=no_config)

``load_config`` finds the file (an explicit path, else ``quarry.toml``, then ``pyproject.toml`` with
``[tool.quarry]`` in the working directory only), parses TOML or YAML, checks every key against
:data:`SCHEMA`, expands ``${VAR}`` / ``${VAR:-default}`` in string values *after* parsing, and coerces typed
fields. Every problem is a :class:`~quarry_core.errors.ConfigError` (CLI exit 4) naming the file and the dotted
key, e.g. ``config error in quarry.toml: policy.buffer_events: expected integer, got "ten"``. Values of keys
named ``password`` and every ``headers`` value are shown as ``<redacted>``.

Typed values: durations are float seconds (a bare number in a file means seconds), sizes are int bytes,
``options`` tables are kept as they are (strings inside are expanded) for their plugin to check.

The environment layer (:func:`env_layer`, :func:`env_value`) parses ``QUARRY_*`` variables with the command-line
conventions (a bare number is not a duration there); :func:`merge_layers` applies the precedence
command line > environment > config file > default.
"""

from __future__ import annotations

import copy
import difflib
import enum
import importlib
import json
import os
import re
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Final

import attrs

from quarry_core.errors import ConfigError
from quarry_core.units import parse_bool, parse_duration, parse_size

__all__ = [
    "ENV_VARS",
    "SCHEMA",
    "ConfigFile",
    "ConfigView",
    "EnvVar",
    "Kind",
    "Scalar",
    "Table",
    "TableList",
    "TableMap",
    "env_layer",
    "env_value",
    "expand_vars",
    "explicit_config_path",
    "field_for",
    "load_config",
    "merge_layers",
]

_YAML_HINT = 'YAML config files need PyYAML: pip install "quarry-core[yaml]"'
_REDACTED = "<redacted>"


# ---------------------------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------------------------


class Kind(enum.Enum):
    """The type of a leaf value; ``.value`` is the name used in ``expected <type>`` messages."""

    STRING = "string"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    DURATION = "duration"
    SIZE = "size"
    STRING_MAP = "table of strings"
    """A table with free keys and string values (``adapter.headers``); merged per key across layers."""
    OPTIONS = "table"
    """A free-form plugin ``options`` table, kept as-is (strings expanded); merged per key across layers."""
    LIST = "comma-separated list"
    """Environment only: ``a,b,c`` → ``["a", "b", "c"]``."""


@attrs.frozen
class Scalar:
    """A leaf key. ``secret`` values never appear in messages; ``negative`` allows ``-1`` style durations."""

    kind: Kind
    secret: bool = False
    negative: bool = False


@attrs.frozen
class Table:
    """A table with a fixed set of keys."""

    fields: Mapping[str, Field]


@attrs.frozen
class TableMap:
    """A table whose keys are free names (``proxies.<pool>``), each value shaped like ``item``."""

    item: Table


@attrs.frozen
class TableList:
    """A list of tables shaped like ``item`` (``events.sinks``, ``proxies.<pool>.endpoints``)."""

    item: Table


Field = Scalar | Table | TableMap | TableList

_STR = Scalar(Kind.STRING)
_INT = Scalar(Kind.INTEGER)
_BOOL = Scalar(Kind.BOOLEAN)
_DUR = Scalar(Kind.DURATION)
_SIZE = Scalar(Kind.SIZE)
_OPTIONS = Scalar(Kind.OPTIONS)
#: the settings of one notification adapter, under ``[adapter]`` and in each ``[[adapters]]`` entry
_ADAPTER_FIELDS: Final[Mapping[str, Field]] = {
    "type": _STR,
    "url": _STR,
    "headers": Scalar(Kind.STRING_MAP, secret=True),
    "timeout": _DUR,
    "retries": _INT,
    "channel": _STR,
    "subject": _STR,
    "region": _STR,
    "endpoint": _STR,
    "options": _OPTIONS,
}

SCHEMA: Final[Table] = Table(
    {
        "quiet": _BOOL,
        "source": _STR,
        "category": _STR,
        "executor": _STR,
        "executor_python": _STR,
        "resolve_from": _STR,
        "timeout": _DUR,
        "cancel_grace": _DUR,
        "browser_ws_endpoint": _STR,
        "no_browser_reuse": _BOOL,
        "error_snapshot": _BOOL,
        "policy": Table(
            {
                "name": _STR,
                "flush_mode": _STR,
                "buffer_events": _INT,
                "buffer_bytes": _SIZE,
                "batch_events": _INT,
                "batch_bytes": _SIZE,
                "flush_count": _INT,
                "flush_interval": _DUR,
                "max_flush_retries": _INT,
                "final_flush_timeout": _DUR,
            }
        ),
        "storage": Table(
            {
                "backend": _STR,
                "path": _STR,
                "dataset": _STR,
                "codec": _STR,
                "compression": _STR,
                "region": _STR,
                "endpoint": _STR,
                "s3_path_style": _BOOL,
                "options": _OPTIONS,
            }
        ),
        "proxy": Table(
            {
                "pool": _STR,
                "strategy": _STR,
                "max_rotations_per_run": _INT,
                "state_store": Table({"type": _STR, "path": _STR, "url": _STR, "key_prefix": _STR}),
            }
        ),
        "proxies": TableMap(
            Table(
                {
                    "strategy": _STR,
                    "endpoints": TableList(
                        Table(
                            {
                                "protocol": _STR,
                                "host": _STR,
                                "port": _INT,
                                "username": _STR,
                                "password": Scalar(Kind.STRING, secret=True),
                            }
                        )
                    ),
                    "sticky": Table({"scope": _STR, "ttl_ms": _INT}),
                    "recency_window": _INT,
                }
            )
        ),
        "fanout": Table(
            {
                "depth": _INT,
                "max_runs": _INT,
                "parallel": _INT,
                "warm_executors": _BOOL,
                "executor_recycle_after": _INT,
            }
        ),
        "adapter": Table(
            {
                **_ADAPTER_FIELDS,
                "outbox": _BOOL,
                "notify_children": _BOOL,
                "drain_on_run": _BOOL,
                "max_age": _DUR,
            }
        ),
        # several notification adapters, each with its own settings (selected by name; see cli/adapter_options.py)
        "adapters": TableList(Table({"name": _STR, **_ADAPTER_FIELDS})),
        "events": Table(
            {
                "lode_events": _BOOL,
                "sinks": TableList(
                    Table(
                        {
                            "type": _STR,
                            "delivery": _STR,
                            "url": _STR,
                            "stream_key": _STR,
                            "max_len": _INT,
                            "ttl": Scalar(Kind.DURATION, negative=True),
                            "timeout": _DUR,
                            "retries": _INT,
                            "options": _OPTIONS,
                        }
                    )
                ),
            }
        ),
        "log": Table({"level": _STR, "format": _STR}),
        "temporal": Table(
            {
                "address": _STR,
                "namespace": _STR,
                "task_queue": _STR,
                "max_concurrent_activities": _INT,
                "heartbeat_interval": _DUR,
            }
        ),
    }
)
"""Every key a configuration file may hold (cli.md §4 config keys plus the §5 extras)."""


# ---------------------------------------------------------------------------------------------------------------
# Dotted keys
# ---------------------------------------------------------------------------------------------------------------

Segment = str | int
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_KEY_TOKEN = re.compile(r"""(?:'([^']*)'|"([^"]*)"|([A-Za-z0-9_-]+))((?:\[\d+\])*)""")


def _format_key(path: Sequence[Segment]) -> str:
    """``("events", "sinks", 0, "delivery")`` → ``events.sinks[0].delivery``; odd names in single quotes."""
    out = ""
    for seg in path:
        if isinstance(seg, int):
            out += f"[{seg}]"
            continue
        text = seg if _BARE_KEY.fullmatch(seg) else f"'{seg}'"
        out += f".{text}" if out else text
    return out


def _parse_key(text: str) -> list[Segment]:
    """The inverse of :func:`_format_key`; also accepts ``"double quoted"`` segments."""
    segments: list[Segment] = []
    pos = 0
    while True:
        m = _KEY_TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"invalid dotted key {text!r}")
        name = next(g for g in m.groups()[:3] if g is not None)
        segments.append(name)
        segments.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(4)))
        pos = m.end()
        if pos == len(text):
            return segments
        if text[pos] != ".":
            raise ValueError(f"invalid dotted key {text!r}")
        pos += 1


def _schema_at(path: Sequence[Segment]) -> Field | None:
    """The schema entry for a path of values (list indexes and pool names included), or None."""
    node: Field = SCHEMA
    for seg in path:
        if isinstance(node, Table) and isinstance(seg, str) and seg in node.fields:
            node = node.fields[seg]
        elif (isinstance(node, TableMap) and isinstance(seg, str)) or (
            isinstance(node, TableList) and isinstance(seg, int)
        ):
            node = node.item
        else:
            return None
    return node


def field_for(dotted_key: str) -> Field | None:
    """The schema entry of a dotted key (``policy.buffer_events``, ``events.sinks[0].type``), or None."""
    try:
        return _schema_at(_parse_key(dotted_key))
    except ValueError:
        return None


def _all_paths(node: Field = SCHEMA, prefix: str = "") -> Iterator[str]:
    """Every key of the schema as written in docs: ``proxies.<pool>.strategy``, ``events.sinks[].type``."""
    if isinstance(node, Table):
        for name, child in node.fields.items():
            here = f"{prefix}.{name}" if prefix else name
            yield here
            yield from _all_paths(child, here)
    elif isinstance(node, TableMap):
        yield from _all_paths(node.item, f"{prefix}.<pool>")
    elif isinstance(node, TableList):
        yield from _all_paths(node.item, f"{prefix}[]")


_ALL_PATHS: Final[tuple[str, ...]] = tuple(_all_paths())


# ---------------------------------------------------------------------------------------------------------------
# ${VAR} expansion
# ---------------------------------------------------------------------------------------------------------------

_VAR_RE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{")


def expand_vars(text: str, environ: Mapping[str, str]) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in one string value.

    Unset or empty → the default, or ``""``. ``$VAR`` stays literal, ``$${`` is a literal ``${``, the result is
    never expanded again. A ``${`` that is not a valid reference (bad name, no ``}``, ``${VAR-x}``, a nested
    reference in a default) raises ``ValueError``. A string without ``${`` is returned unchanged.
    """
    if "${" not in text:
        return text

    def replace(m: re.Match[str]) -> str:
        whole = m.group(0)
        if whole == "$${":
            return "${"
        name, default = m.group(1), m.group(2)
        if name is None:
            raise ValueError("invalid variable reference: expected ${NAME} or ${NAME:-default}")
        if default is not None and "${" in default:
            raise ValueError("invalid variable reference: nested references are not supported")
        value = environ.get(name, "")
        if value:
            return value
        return default if default is not None else ""

    return _VAR_RE.sub(replace, text)


# ---------------------------------------------------------------------------------------------------------------
# Type coercion
# ---------------------------------------------------------------------------------------------------------------

_INT_RE = re.compile(r"[+-]?\d+")


class _TypeProblem(Exception):
    """Internal: a value does not have the expected type; ``hint`` is appended in parentheses."""

    def __init__(self, hint: str | None = None) -> None:
        super().__init__(hint)
        self.hint = hint


def _describe(value: Any) -> str:
    """A value as shown after ``got``: strings JSON-quoted, booleans as ``true``/``false``."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def _coerce(value: Any, field: Scalar, *, config_file: bool) -> Any:
    """Coerce one scalar (strings are parsed); raise :class:`_TypeProblem` on a mismatch."""
    kind = field.kind
    if kind is Kind.STRING:
        if isinstance(value, str):
            return value
        raise _TypeProblem()
    if kind is Kind.INTEGER:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
            return int(value.strip())
        raise _TypeProblem()
    if kind is Kind.BOOLEAN:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return parse_bool(value)
            except ValueError:
                raise _TypeProblem("1/0/true/false/yes/no") from None
        raise _TypeProblem()
    if kind is Kind.DURATION:
        return _coerce_duration(value, field, config_file=config_file)
    if kind is Kind.SIZE:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise _TypeProblem()
        try:
            return parse_size(value)
        except ValueError:
            raise _TypeProblem("bytes, or a number with KB, MB, GB, KiB, MiB or GiB") from None
    if kind is Kind.LIST:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        raise _TypeProblem()
    raise AssertionError(f"no scalar coercion for {kind}")  # pragma: no cover


def _coerce_duration(value: Any, field: Scalar, *, config_file: bool) -> float:
    hint = "e.g. 500ms, 1.5s, 1m30s, 0" + (" or a number of seconds" if config_file else "")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _TypeProblem()
    sign = 1.0
    if field.negative:
        if isinstance(value, str) and value.strip().startswith("-"):
            sign, value = -1.0, value.strip()[1:]
        elif isinstance(value, (int, float)) and value < 0:
            sign, value = -1.0, -value
    try:
        return sign * parse_duration(value, bare_number_seconds=config_file)
    except ValueError:
        if not config_file and isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
            hint = "add a unit: ns, us, ms, s, m, h"
        raise _TypeProblem(hint) from None


def _type_message(where: str, field: Scalar, value: Any, problem: _TypeProblem, raw: str | None = None) -> str:
    shown = _REDACTED if field.secret else _describe(value)
    if raw is not None and raw != value and not field.secret:
        shown += f" (expanded from {_describe(raw)})"
    hint = f" ({problem.hint})" if problem.hint else ""
    return f"{where}: expected {field.kind.value}, got {shown}{hint}"


# ---------------------------------------------------------------------------------------------------------------
# Validation of a parsed document
# ---------------------------------------------------------------------------------------------------------------


@attrs.frozen
class _Checker:
    name: str
    environ: Mapping[str, str]

    def fail(self, message: str) -> ConfigError:
        return ConfigError(f"config error in {self.name}: {message}")

    def table(self, raw: Any, table: Table, path: tuple[Segment, ...]) -> dict[str, Any]:
        if raw is None and path:  # YAML: `policy:` with every child commented out
            return {}
        if not isinstance(raw, Mapping):
            hint = ""
            for guess in ("name", "type"):
                if guess in table.fields and isinstance(raw, str):
                    hint = f' (did you mean "{_format_key((*path, guess))}"?)'
            shown = _describe(raw)
            raise self.fail(f"{_format_key(path) or 'top level'}: expected table, got {shown}{hint}")
        out: dict[str, Any] = {}
        for key, value in raw.items():
            if not isinstance(key, str):
                where = f"{_format_key(path)}: " if path else ""
                raise self.fail(f"{where}keys must be strings, got {_describe(key)}")
            field = table.fields.get(key)
            if field is None:
                raise self.fail(self._unknown(key, table, path))
            out[key] = self.field(value, field, (*path, key))
        return out

    def _unknown(self, key: str, table: Table, path: tuple[Segment, ...]) -> str:
        full = _format_key((*path, key))
        # The same name at exactly one other place beats a near miss here (`buffer_events` → policy.*).
        elsewhere = [p for p in _ALL_PATHS if re.split(r"[.\]]", p)[-1] == key]
        close = difflib.get_close_matches(key, list(table.fields), n=1)
        if len(elsewhere) == 1:
            suggestion = elsewhere[0]
        elif close:
            suggestion = _format_key((*path, close[0]))
        else:
            suggestion = ""
        hint = f' (did you mean "{suggestion}"?)' if suggestion else ""
        return f'unknown key "{full}"{hint}'

    def field(self, raw: Any, field: Field, path: tuple[Segment, ...]) -> Any:
        where = _format_key(path)
        if isinstance(field, Table):
            return self.table(raw, field, path)
        if isinstance(field, TableMap):
            if raw is None:
                return {}
            if not isinstance(raw, Mapping):
                raise self.fail(f"{where}: expected table, got {_describe(raw)}")
            result: dict[str, Any] = {}
            for name, item in raw.items():
                if not isinstance(name, str):
                    raise self.fail(f"{where}: keys must be strings, got {_describe(name)}")
                result[name] = self.table(item, field.item, (*path, name))
            return result
        if isinstance(field, TableList):
            if not isinstance(raw, list):
                raise self.fail(f"{where}: expected list of tables, got {_describe(raw)}")
            items: list[dict[str, Any]] = []
            for i, item in enumerate(raw):
                if not isinstance(item, Mapping):
                    raise self.fail(f"{_format_key((*path, i))}: expected table, got {_describe(item)}")
                items.append(self.table(item, field.item, (*path, i)))
            return items
        return self.scalar(raw, field, path)

    def scalar(self, raw: Any, field: Scalar, path: tuple[Segment, ...]) -> Any:
        where = _format_key(path)
        if field.kind is Kind.OPTIONS:
            if not isinstance(raw, Mapping):
                raise self.fail(f"{where}: expected table, got {_describe(raw)}")
            return self.expand_any(raw, path, secret=field.secret)
        if field.kind is Kind.STRING_MAP:
            if not isinstance(raw, Mapping):
                raise self.fail(f"{where}: expected table, got {_describe(raw)}")
            out: dict[str, str] = {}
            value_field = Scalar(Kind.STRING, secret=field.secret)
            for key, value in raw.items():
                if not isinstance(key, str):
                    raise self.fail(f"{where}: keys must be strings, got {_describe(key)}")
                out[key] = self.scalar(value, value_field, (*path, key))
            return out
        value = raw
        if isinstance(raw, str):
            value = self.expand(raw, where, secret=field.secret)
        try:
            return _coerce(value, field, config_file=True)
        except _TypeProblem as problem:
            raise self.fail(
                _type_message(where, field, value, problem, raw if isinstance(raw, str) else None)
            ) from None

    def expand(self, raw: str, where: str, *, secret: bool) -> str:
        try:
            return expand_vars(raw, self.environ)
        except ValueError as exc:
            shown = _REDACTED if secret else _describe(raw)
            raise self.fail(f"{where}: {exc} in {shown}") from None

    def expand_any(self, raw: Any, path: tuple[Segment, ...], *, secret: bool) -> Any:
        """Expand strings anywhere inside a free-form value, keeping its structure."""
        if isinstance(raw, str):
            return self.expand(raw, _format_key(path), secret=secret)
        if isinstance(raw, Mapping):
            return {k: self.expand_any(v, (*path, str(k)), secret=secret) for k, v in raw.items()}
        if isinstance(raw, list):
            return [self.expand_any(v, (*path, i), secret=secret) for i, v in enumerate(raw)]
        return copy.deepcopy(raw)


# ---------------------------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------------------------

_MISSING: Final = object()


@attrs.define
class ConfigView:
    """Nested, typed configuration values with dotted-key access.

    Keys are written ``policy.buffer_events``, ``events.sinks[0].delivery``, ``proxies.'my.pool'.strategy``.
    A key is present even when its value is ``0``, ``false`` or ``""``.
    """

    values: dict[str, Any] = attrs.field(factory=dict)

    def _lookup(self, dotted_key: str) -> Any:
        node: Any = self.values
        for seg in _parse_key(dotted_key):
            if isinstance(seg, int):
                if not isinstance(node, list) or seg >= len(node):
                    return _MISSING
                node = node[seg]
            else:
                if not isinstance(node, Mapping) or seg not in node:
                    return _MISSING
                node = node[seg]
        return node

    def get(self, dotted_key: str, default: Any = None) -> Any:
        """The value at ``dotted_key`` (a table as a dict, a list of tables as a list), or ``default``."""
        value = self._lookup(dotted_key)
        return default if value is _MISSING else value

    def has(self, dotted_key: str) -> bool:
        """Whether ``dotted_key`` is set, whatever its value."""
        return self._lookup(dotted_key) is not _MISSING

    def flat(self) -> dict[str, Any]:
        """Dotted key → value for every leaf: scalars, list items as ``events.sinks[0].type``, and the
        ``headers``/``options`` tables as whole dicts."""
        out: dict[str, Any] = {}

        def walk(node: Any, path: tuple[Segment, ...]) -> None:
            field = _schema_at(path) if path else SCHEMA
            leaf_map = isinstance(field, Scalar) and field.kind in (Kind.STRING_MAP, Kind.OPTIONS)
            if isinstance(node, Mapping) and not leaf_map:
                for key, value in node.items():
                    walk(value, (*path, key))
            elif isinstance(node, list) and node and all(isinstance(v, Mapping) for v in node):
                for i, value in enumerate(node):
                    walk(value, (*path, i))
            else:
                out[_format_key(path)] = copy.deepcopy(node)

        walk(self.values, ())
        return out


@attrs.define
class ConfigFile(ConfigView):
    """A loaded configuration file; ``path`` is None when no file was used (``values`` is then empty)."""

    path: Path | None = None


# ---------------------------------------------------------------------------------------------------------------
# Discovery and parsing
# ---------------------------------------------------------------------------------------------------------------

_TOML_POS = re.compile(r"^(.*) \(at line (\d+), column (\d+)\)$", re.DOTALL)
_TOML_END = re.compile(r"^(.*) \(at end of document\)$", re.DOTALL)


def explicit_config_path(
    cli_value: str | os.PathLike[str] | None, *, no_config: bool, environ: Mapping[str, str] | None = None
) -> str | os.PathLike[str] | None:
    """The explicit config path: ``--config``, else ``QUARRY_CONFIG`` (non-empty) unless ``--no-config``.

    ``--no-config`` beats the environment variable (command line > environment); combined with ``--config``
    :func:`load_config` rejects it.
    """
    if cli_value is not None:
        return cli_value
    if no_config:
        return None
    env = os.environ if environ is None else environ
    return env.get("QUARRY_CONFIG") or None


def load_config(
    *,
    explicit: str | os.PathLike[str] | None,
    no_config: bool = False,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> ConfigFile:
    """Find, parse, validate and expand the configuration file (cli.md §5).

    ``explicit`` is ``--config`` or ``QUARRY_CONFIG`` (see :func:`explicit_config_path`); it must exist, and may be
    ``.toml`` (``pyproject.toml`` needs ``[tool.quarry]``), ``.yaml`` or ``.yml``. Without it, only the working
    directory ``cwd`` is searched: ``quarry.toml``, then ``pyproject.toml`` if it has ``[tool.quarry]``.
    ``environ`` (default ``os.environ``) feeds ``${VAR}`` expansion. Raises :class:`ConfigError`.
    """
    if no_config and explicit is not None:
        raise ConfigError("--no-config cannot be combined with --config")
    env: Mapping[str, str] = os.environ if environ is None else environ
    base = Path.cwd() if cwd is None else cwd
    if explicit is not None:
        given = os.fspath(explicit)
        path = base / given
        if not path.exists():
            raise ConfigError(f"config file not found: {given}")
        if not path.is_file():
            raise ConfigError(f"config file is not a file: {given}")
        suffix = path.suffix.lower()
        if suffix in (".yaml", ".yml"):
            raw = _parse_yaml(_read(path, given), given)
        elif suffix == ".toml":
            data = _parse_toml(_read(path, given), given)
            if path.name.lower() == "pyproject.toml":
                raw = _tool_quarry(data, given)
                if raw is None:
                    raise ConfigError(f"config error in {given}: no [tool.quarry] table")
            else:
                raw = data
        else:
            raise ConfigError(
                f"unsupported config file type {suffix or '(none)'!r}: {given} (use .toml, .yaml or .yml)"
            )
        return ConfigFile(values=_Checker(given, env).table(raw, SCHEMA, ()), path=path)
    if no_config:
        return ConfigFile()
    candidate = base / "quarry.toml"
    if candidate.is_file():
        raw = _parse_toml(_read(candidate, candidate.name), candidate.name)
        return ConfigFile(values=_Checker(candidate.name, env).table(raw, SCHEMA, ()), path=candidate)
    candidate = base / "pyproject.toml"
    if candidate.is_file():
        raw = _tool_quarry(_parse_toml(_read(candidate, candidate.name), candidate.name), candidate.name)
        if raw is not None:
            return ConfigFile(values=_Checker(candidate.name, env).table(raw, SCHEMA, ()), path=candidate)
    return ConfigFile()


def _read(path: Path, name: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {name}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"config error in {name}: line {line}: not valid UTF-8") from None


def _tool_quarry(data: Mapping[str, Any], name: str) -> Any:
    tool = data.get("tool")
    if not isinstance(tool, Mapping) or "quarry" not in tool:
        return None
    section = tool["quarry"]
    if not isinstance(section, Mapping):
        raise ConfigError(f"config error in {name}: tool.quarry: expected table, got {_describe(section)}")
    return section


def _parse_toml(text: str, name: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = _TOML_POS.match(message)
        if m:
            detail = f"line {m.group(2)}: {m.group(1)} (column {m.group(3)})"
        elif (m := _TOML_END.match(message)) is not None:
            detail = f"line {text.count(chr(10)) + 1}: {m.group(1)} (at end of file)"
        else:
            detail = message
        raise ConfigError(f"config error in {name}: {detail}") from None


def _parse_yaml(text: str, name: str) -> Any:
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        raise ConfigError(f"config error in {name}: {_YAML_HINT}") from None

    class _Loader(yaml.SafeLoader):  # type: ignore[misc,name-defined]
        """SafeLoader that rejects duplicate keys (TOML does, PyYAML would keep the last one)."""

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                if key in seen:
                    line = key_node.start_mark.line + 1
                    raise ConfigError(f"config error in {name}: line {line}: duplicate key {_describe(key)}")
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(f"config error in {name}: {where}{problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config error in {name}: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config error in {name}: top level: expected table, got {_describe(data)}")
    return data


# ---------------------------------------------------------------------------------------------------------------
# Environment layer
# ---------------------------------------------------------------------------------------------------------------


@attrs.frozen
class EnvVar:
    """One ``QUARRY_*`` variable of ``quarry run`` and the config key it sets.

    ``invert`` flips a boolean (``QUARRY_NO_LODE_EVENTS=1`` → ``events.lode_events = false``).
    """

    name: str
    key: str
    kind: Kind
    invert: bool = False
    secret: bool = False


def _env(name: str, key: str, kind: Kind = Kind.STRING, **kw: Any) -> EnvVar:
    return EnvVar(name, key, kind, **kw)


ENV_VARS: Final[tuple[EnvVar, ...]] = (
    _env("QUARRY_QUIET", "quiet", Kind.BOOLEAN),
    _env("QUARRY_SOURCE", "source"),
    _env("QUARRY_CATEGORY", "category"),
    _env("QUARRY_EXECUTOR", "executor"),
    _env("QUARRY_EXECUTOR_PYTHON", "executor_python"),
    _env("QUARRY_RESOLVE_FROM", "resolve_from"),
    _env("QUARRY_TIMEOUT", "timeout", Kind.DURATION),
    _env("QUARRY_CANCEL_GRACE", "cancel_grace", Kind.DURATION),
    _env("QUARRY_BROWSER_WS_ENDPOINT", "browser_ws_endpoint"),
    _env("QUARRY_BROWSER_ENDPOINT", "browser_ws_endpoint"),  # checked second (cli.md §4)
    _env("QUARRY_NO_BROWSER_REUSE", "no_browser_reuse", Kind.BOOLEAN),
    _env("QUARRY_NO_ERROR_SNAPSHOT", "error_snapshot", Kind.BOOLEAN, invert=True),
    _env("QUARRY_POLICY", "policy.name"),
    _env("QUARRY_FLUSH_MODE", "policy.flush_mode"),
    _env("QUARRY_BUFFER_EVENTS", "policy.buffer_events", Kind.INTEGER),
    _env("QUARRY_BUFFER_BYTES", "policy.buffer_bytes", Kind.SIZE),
    _env("QUARRY_BATCH_EVENTS", "policy.batch_events", Kind.INTEGER),
    _env("QUARRY_BATCH_BYTES", "policy.batch_bytes", Kind.SIZE),
    _env("QUARRY_FLUSH_COUNT", "policy.flush_count", Kind.INTEGER),
    _env("QUARRY_FLUSH_INTERVAL", "policy.flush_interval", Kind.DURATION),
    _env("QUARRY_MAX_FLUSH_RETRIES", "policy.max_flush_retries", Kind.INTEGER),
    _env("QUARRY_FINAL_FLUSH_TIMEOUT", "policy.final_flush_timeout", Kind.DURATION),
    _env("QUARRY_STORAGE_BACKEND", "storage.backend"),
    _env("QUARRY_STORAGE_PATH", "storage.path"),
    _env("QUARRY_STORAGE_DATASET", "storage.dataset"),
    _env("QUARRY_STORAGE_CODEC", "storage.codec"),
    _env("QUARRY_STORAGE_COMPRESSION", "storage.compression"),
    _env("QUARRY_STORAGE_REGION", "storage.region"),
    _env("QUARRY_STORAGE_ENDPOINT", "storage.endpoint"),
    _env("QUARRY_STORAGE_S3_PATH_STYLE", "storage.s3_path_style", Kind.BOOLEAN),
    _env("QUARRY_STORAGE_OPTION", "storage.options", Kind.STRING_MAP),
    _env("QUARRY_PROXY_POOL", "proxy.pool"),
    _env("QUARRY_PROXY_STRATEGY", "proxy.strategy"),
    _env("QUARRY_PROXY_STATE_STORE", "proxy.state_store.type"),
    _env("QUARRY_PROXY_STATE_PATH", "proxy.state_store.path"),
    _env("QUARRY_PROXY_STATE_URL", "proxy.state_store.url"),
    _env("QUARRY_PROXY_MAX_ROTATIONS", "proxy.max_rotations_per_run", Kind.INTEGER),
    _env("QUARRY_DEPTH", "fanout.depth", Kind.INTEGER),
    _env("QUARRY_MAX_RUNS", "fanout.max_runs", Kind.INTEGER),
    _env("QUARRY_PARALLEL", "fanout.parallel", Kind.INTEGER),
    _env("QUARRY_WARM_EXECUTORS", "fanout.warm_executors", Kind.BOOLEAN),
    _env("QUARRY_EXECUTOR_RECYCLE_AFTER", "fanout.executor_recycle_after", Kind.INTEGER),
    _env("QUARRY_ADAPTER", "adapter.type", Kind.LIST),  # QUARRY_ADAPTER=webhook,redis: several adapters
    _env("QUARRY_ADAPTER_URL", "adapter.url"),
    _env("QUARRY_ADAPTER_HEADER", "adapter.headers", Kind.STRING_MAP, secret=True),
    _env("QUARRY_ADAPTER_TIMEOUT", "adapter.timeout", Kind.DURATION),
    _env("QUARRY_ADAPTER_RETRIES", "adapter.retries", Kind.INTEGER),
    _env("QUARRY_ADAPTER_CHANNEL", "adapter.channel"),
    _env("QUARRY_ADAPTER_SUBJECT", "adapter.subject"),
    _env("QUARRY_ADAPTER_REGION", "adapter.region"),
    _env("QUARRY_ADAPTER_ENDPOINT", "adapter.endpoint"),
    _env("QUARRY_ADAPTER_OUTBOX", "adapter.outbox", Kind.BOOLEAN),
    _env("QUARRY_ADAPTER_NOTIFY_CHILDREN", "adapter.notify_children", Kind.BOOLEAN),
    _env("QUARRY_ADAPTER_OPTION", "adapter.options", Kind.STRING_MAP),
    _env("QUARRY_NO_LODE_EVENTS", "events.lode_events", Kind.BOOLEAN, invert=True),
    _env("QUARRY_LOG_LEVEL", "log.level"),
    _env("QUARRY_LOG_FORMAT", "log.format"),
)
"""The ``quarry run`` variables with a plain config key. ``--event-sink*`` variables (list items), ``QUARRY_CONFIG``
and the deprecated ``QUARRY_PROXY_CONFIG`` are left to the CLI."""


def env_value(
    name: str,
    kind: Kind,
    environ: Mapping[str, str] | None = None,
    *,
    secret: bool = False,
    negative: bool = False,
) -> Any:
    """Parse one environment variable with the command-line conventions; None when unset or empty.

    ``INTEGER`` → int, ``BOOLEAN`` → ``1/0/true/false/yes/no``, ``DURATION`` → seconds (a unit is required, as on
    the command line; ``0`` is fine), ``SIZE`` → bytes, ``LIST`` → comma-separated strings, ``STRING_MAP`` →
    comma-separated ``K=V`` pairs (non-empty K). Errors: ``QUARRY_BUFFER_EVENTS: expected integer, got "x"``.
    """
    env = os.environ if environ is None else environ
    text = env.get(name)
    if not text:
        return None
    if kind is Kind.STRING:
        return text
    if kind is Kind.STRING_MAP:
        out: dict[str, str] = {}
        for item in text.split(","):
            if not item.strip():
                continue
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                shown = _REDACTED if secret else _describe(item)
                raise ConfigError(f"{name}: expected comma-separated KEY=VALUE pairs, got {shown}")
            out[key.strip()] = value
        return out
    if kind is Kind.OPTIONS:
        raise ValueError("OPTIONS tables cannot come from the environment")
    field = Scalar(kind, secret=secret, negative=negative)
    try:
        return _coerce(text, field, config_file=False)
    except _TypeProblem as problem:
        raise ConfigError(_type_message(name, field, text, problem)) from None


def env_layer(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The environment layer for :func:`merge_layers`, from :data:`ENV_VARS` (first variable of a key wins)."""
    env = os.environ if environ is None else environ
    layer: dict[str, Any] = {}
    for var in ENV_VARS:
        value = env_value(var.name, var.kind, env, secret=var.secret)
        if value is None:
            continue
        if var.invert:
            value = not value
        path = [str(s) for s in _parse_key(var.key)]
        node = layer
        for seg in path[:-1]:
            node = node.setdefault(seg, {})
        node.setdefault(path[-1], value)
    return layer


# ---------------------------------------------------------------------------------------------------------------
# Precedence
# ---------------------------------------------------------------------------------------------------------------


def _nest(layer: Mapping[str, Any] | ConfigView | None) -> dict[str, Any]:
    """A layer as nested dicts: ``{"policy.name": "x"}`` → ``{"policy": {"name": "x"}}``; None values dropped."""
    if layer is None:
        return {}
    items = layer.values if isinstance(layer, ConfigView) else layer
    out: dict[str, Any] = {}
    for key, value in items.items():
        if value is None:
            continue
        path = _parse_key(key) if "." in key or "'" in key or '"' in key else [key]
        if any(isinstance(seg, int) for seg in path):
            raise ValueError(f"layer keys cannot index lists: {key!r}")
        node = out
        for seg in path[:-1]:
            child = node.get(str(seg))
            if not isinstance(child, dict):
                child = node[str(seg)] = {}
            node = child
        last = str(path[-1])
        if isinstance(value, Mapping) and isinstance(node.get(last), dict):
            node[last] = _merge(node[last], dict(value), (*path[:-1], last))
        else:
            node[last] = copy.deepcopy(value)
    return out


def _merge(lower: dict[str, Any], higher: Mapping[str, Any], path: tuple[Segment, ...]) -> dict[str, Any]:
    out = dict(lower)
    for key, value in higher.items():
        if value is None:
            continue
        here = (*path, key)
        current = out.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            field = _schema_at(here)
            if isinstance(field, Scalar):  # headers / options: per key, one level, higher wins
                out[key] = {**current, **copy.deepcopy(dict(value))}
            else:
                out[key] = _merge(dict(current), value, here)
        else:
            out[key] = copy.deepcopy(value)  # scalars and lists replace
    return out


def merge_layers(
    defaults: Mapping[str, Any] | ConfigView | None,
    config: Mapping[str, Any] | ConfigView | None,
    env: Mapping[str, Any] | ConfigView | None,
    cli: Mapping[str, Any] | ConfigView | None,
) -> ConfigView:
    """Apply the precedence command line > environment > config file > default.

    Each layer is nested (``{"policy": {"name": ...}}``) or uses dotted top-level keys (``{"policy.name": ...}``);
    a ``None`` value means "not given". Tables merge key by key; scalars and lists from a higher layer replace
    lower ones (``events.sinks``, ``proxies.<pool>.endpoints``); the free-key tables ``adapter.headers``,
    ``storage.options`` (and other ``options`` tables) merge per key, the higher layer winning. A table defined in
    one layer only (an adapter, sinks, pools in the config file) stays active. Inputs are not modified.
    """
    merged: dict[str, Any] = {}
    for layer in (defaults, config, env, cli):
        merged = _merge(merged, _nest(layer), ())
    return ConfigView(values=merged)
