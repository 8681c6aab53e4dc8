"""Safe, located YAML loading for programs and configs.

Files are composed with PyYAML's safe loader into a node tree and converted by hand, so that every value
keeps its line and column, only plain YAML types are accepted (no tags that build objects), duplicate keys
are errors rather than silent overwrites, and alias expansion is bounded (an "alias bomb" is refused).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import ValidationError

from npusim.defaults import YamlLimits
from npusim.errors import Location, NpusimError, did_you_mean, shown

PathKey = tuple[str | int, ...]

_STANDARD_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:map",
}


@dataclass
class YamlDoc:
    """Plain data of a YAML file plus the location of every value, keyed by its path."""

    file: str
    data: Any
    locations: dict[PathKey, Location] = field(default_factory=dict)  # of values
    key_locations: dict[PathKey, Location] = field(default_factory=dict)  # of mapping keys

    def where(self, path: PathKey) -> Location:
        """Location of the value at `path`, or of its nearest located ancestor."""
        path = tuple(path)
        while path and path not in self.locations:
            path = path[:-1]
        return self.locations.get(path, Location(self.file, 1, 1))

    def where_key(self, path: PathKey) -> Location:
        """Location of the mapping key naming `path` (for "unknown key" messages)."""
        return self.key_locations.get(tuple(path)) or self.where(path)


def _mark_location(file: str, mark: Any) -> Location:
    return Location(file, mark.line + 1, mark.column + 1) if mark is not None else Location(file)


def read_bytes(path: Path, max_bytes: int, what: str = "file") -> bytes:
    """A user file's bytes, refusing with one message what is not a regular file (a directory, a FIFO that
    would block, a device such as /dev/zero that never ends) and what is larger than `max_bytes` (read with
    that bound, whatever st_size says: files in /proc report 0)."""
    name = str(path)
    try:
        # O_NONBLOCK: opening a FIFO for reading must not wait for a writer; the type is checked on the open
        # descriptor, so a file swapped after a check cannot slip through
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise NpusimError(f"cannot read {what}: {exc.strerror}", Location(name)) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise NpusimError(f"{what} is a directory, expected a file", Location(name))
        if not stat.S_ISREG(info.st_mode):
            raise NpusimError(f"{what} is {_file_kind(info.st_mode)}, not a regular file", Location(name))
        too_big = NpusimError(f"{what} is more than the limit of {max_bytes} bytes", Location(name))
        if info.st_size > max_bytes:
            raise too_big
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            raise too_big
    except OSError as exc:
        raise NpusimError(f"cannot read {what}: {exc.strerror}", Location(name)) from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def read_text(path: Path, max_bytes: int, what: str = "file") -> str:
    """A user YAML file as UTF-8 text (`read_bytes`'s checks), refusing binary or undecodable files."""
    try:
        raw = read_bytes(path, max_bytes, what)
    except NpusimError as exc:
        if "more than the limit" in exc.message:
            exc.message += " (raise it with --max-yaml-bytes)"
        elif exc.message.endswith("expected a file"):
            exc.message = exc.message.removesuffix("a file") + "a YAML file"
        raise
    name = str(path)
    if b"\x00" in raw:
        raise NpusimError(f"{what} looks binary (contains NUL bytes), expected YAML text", Location(name))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise NpusimError(f"{what} is not valid UTF-8 text (byte {exc.start})", Location(name, line)) from None


def _file_kind(mode: int) -> str:
    kinds = [(stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket")]
    return next((text for test, text in kinds if test(mode)), "a special file")


def parse_yaml(text: str, file: str, limits: YamlLimits = YamlLimits()) -> YamlDoc:
    """Compose `text` safely and convert it to plain data with locations."""
    if not text.strip():
        raise NpusimError("file is empty", Location(file, 1, 1))
    _check_bracket_depth(text, file, limits.max_depth)
    root = _fast_compose(text, limits.max_nodes)
    try:
        if root is None:
            loader = _BoundedLoader(text, limits.max_nodes)
            try:
                root = loader.get_single_node()
            finally:
                loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise NpusimError(f"YAML syntax error: {problem}", _mark_location(file, mark)) from None
    except yaml.YAMLError as exc:
        raise NpusimError(f"YAML error: {exc}", Location(file)) from None
    except RecursionError:
        raise NpusimError("YAML nesting is too deep", Location(file)) from None
    except _TooManyNodes as exc:
        raise NpusimError(
            f"YAML holds more than {limits.max_nodes} values; raise the limit with --max-yaml-nodes",
            _mark_location(file, exc.mark),
        ) from None
    if root is None:
        raise NpusimError("file holds no YAML document", Location(file, 1, 1))
    converter = _Converter(file, limits)
    data = converter.convert(root, (), 0)
    return YamlDoc(file, data, converter.locations, converter.key_locations)


def _check_bracket_depth(text: str, file: str, max_depth: int) -> None:
    """Refuse absurdly nested flow collections ([[[[...]]]]) before the parser recurses into them. Brackets
    inside strings count too: legitimate files stay far below the limit either way."""
    raw = np.frombuffer(text.encode(), dtype=np.uint8)
    opening = (raw == ord("[")) | (raw == ord("{"))
    closing = (raw == ord("]")) | (raw == ord("}"))
    depth = np.cumsum(opening, dtype=np.int64) - np.cumsum(closing, dtype=np.int64)
    if depth.size and int(depth.max()) > max_depth:
        at = int(np.argmax(depth > max_depth))
        before = raw[:at].tobytes()
        line = before.count(b"\n") + 1
        col = at - (before.rfind(b"\n") + 1) + 1
        raise NpusimError(f"YAML nesting is deeper than {max_depth} levels", Location(file, line, col))


def load_yaml(path: Path | str, limits: YamlLimits = YamlLimits(), what: str = "file") -> YamlDoc:
    path = Path(path)
    return parse_yaml(read_text(path, limits.max_bytes, what), str(path), limits)


_NODE_EVENTS = (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent, yaml.AliasEvent)


def _fast_compose(text: str, max_nodes: int) -> yaml.Node | None:
    """The node tree composed by libyaml (C, ~20x faster than PyYAML's Python composer: 2 ms against 45 for
    the Qwen3 program), after a pass over its events has counted the nodes (so a file of millions of values is
    never built); None when libyaml is missing, the file holds no document or more than one, has too many
    nodes or is not valid YAML: the Python loader then composes it, or gives its own located error."""
    if not yaml.__with_libyaml__:
        return None
    try:
        counter = yaml.CSafeLoader(text)
        try:
            nodes = 0
            while counter.check_event():
                nodes += isinstance(counter.get_event(), _NODE_EVENTS)
                if nodes > max_nodes:
                    return None
        finally:
            counter.dispose()
        loader = _FastLoader(text)
        try:
            return loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.YAMLError:
        return None


class _TooManyNodes(Exception):
    def __init__(self, mark: Any) -> None:
        self.mark = mark


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, counting nodes as it composes them: a file of millions of tiny values is refused
    before it becomes millions of Python objects. Floats are read as YAML 1.2 writes them, `1.85e9` and
    `1e-6` too (YAML 1.1 wants `1.85e+9`), so that values are never numbers in a string."""

    def __init__(self, text: str, max_nodes: int) -> None:
        super().__init__(text)
        self.nodes_left = max_nodes

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.nodes_left -= 1
        if self.nodes_left < 0:
            raise _TooManyNodes(self.peek_event().start_mark)
        return super().compose_node(parent, index)


class _Converter:
    """Turns a composed node tree into dicts, lists and scalars, recording where each came from."""

    def __init__(self, file: str, limits: YamlLimits) -> None:
        self.file = file
        self.limits = limits
        self.nodes = 0
        self.locations: dict[PathKey, Location] = {}
        self.key_locations: dict[PathKey, Location] = {}
        self.constructor = yaml.constructor.SafeConstructor()

    def fail(self, message: str, node: yaml.Node) -> NpusimError:
        return NpusimError(message, _mark_location(self.file, node.start_mark))

    def convert(self, node: yaml.Node, path: PathKey, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > self.limits.max_nodes:
            raise self.fail(
                f"YAML expands to more than {self.limits.max_nodes} values "
                "(an alias bomb or a far too large file); raise the limit with --max-yaml-nodes",
                node,
            )
        if depth > self.limits.max_depth:
            raise self.fail(f"YAML nesting is deeper than {self.limits.max_depth} levels", node)
        if node.tag not in _STANDARD_TAGS:
            raise self.fail(f"YAML tag {node.tag!r} is not allowed: only plain YAML values are", node)
        loc = _mark_location(self.file, node.start_mark)
        if isinstance(node, yaml.ScalarNode) and node.style in ("'", '"') and loc.col is not None:
            loc = Location(loc.file, loc.line, loc.col + 1)  # point into the quoted text, not at the quote
        self.locations[path] = loc
        if isinstance(node, yaml.ScalarNode):
            value = self._scalar(node)
            if isinstance(value, str) and len(value) > self.limits.max_string_chars:
                raise self.fail(
                    f"string of {len(value)} characters is longer than the limit of "
                    f"{self.limits.max_string_chars} (raise it with --max-yaml-string)",
                    node,
                )
            return value
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise self.fail("YAML merge keys ('<<') are not supported", key_node)
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self.fail("mapping keys must be plain scalars", key_node)
                key = self._key(key_node)
                if not isinstance(key, str | int):
                    raise self.fail(f"mapping key {key!r} must be a string", key_node)
                if key in result:
                    raise self.fail(f"duplicate key {key!r}", key_node)
                self.key_locations[(*path, key)] = _mark_location(self.file, key_node.start_mark)
                result[key] = self.convert(value_node, (*path, key), depth + 1)
            return result
        raise self.fail(f"unsupported YAML node {type(node).__name__}", node)

    def _key(self, node: yaml.Node) -> Any:
        if node.tag not in _STANDARD_TAGS:
            raise self.fail(f"YAML tag {node.tag!r} is not allowed: only plain YAML values are", node)
        return self._scalar(node)

    def _scalar(self, node: yaml.Node) -> Any:
        """A scalar's value; an integer literal too long for Python to convert (4300 digits) is refused."""
        try:
            return self.constructor.construct_object(node)
        except ValueError:
            raise self.fail(f"number of {len(node.value)} characters is too long to read", node) from None


class _FastLoader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):  # type: ignore[misc]
    """libyaml's safe loader, resolving scalars as _BoundedLoader does."""


for _loader in (_BoundedLoader, _FastLoader):
    _loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)[eE][-+]?[0-9]+$"),
        list("-+.0123456789"),
    )

_UNION_TAGS = {"int", "str", "float", "bool", "list", "dict"}


_BOUND_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "multiple_of", "finite_number"}


def _model_at(models: dict[tuple, Any], parent: tuple) -> Any:
    return next((m for prefix, m in models.items() if len(prefix) == len(parent)
                 and all(a in ("*", b) for a, b in zip(prefix, parent, strict=True))), None)


def _field_bounds(models: dict[tuple, Any], path: tuple) -> str:
    """'ge 1, le 4096: why': every bound declared on the field at `path`, not only the one that was violated,
    and the reason for the range when the model gives one."""
    model = _model_at(models, path[:-1])
    field = model.model_fields.get(str(path[-1])) if model is not None else None
    if field is None:
        return ""
    parts = []
    for meta in field.metadata:
        for name in ("ge", "gt", "le", "lt", "multiple_of"):
            value = getattr(meta, name, None)
            if value is not None:
                parts.append(f"{name.replace('_', ' ')} {value:g}")
    reason = f": {field.description}" if field.description else ""
    return ", ".join(parts) + reason


def key_path(path: tuple) -> str:
    """`a.b.0.'odd key'`: a key path for a message, each key that is not a plain identifier or an index shown
    by its repr, so control characters and quotes in user keys can never break the one-line message."""
    return ".".join(str(p) if isinstance(p, int) or (isinstance(p, str) and p.isidentifier()) else repr(p)
                    for p in path)


def pydantic_message(doc: YamlDoc, exc: ValidationError, models: dict[tuple, Any]) -> tuple[str, Location]:
    """The most useful pydantic error as (message, location): unknown keys first (with a suggestion), then
    missing keys, then bad values. `models` maps a path prefix to the model whose fields are allowed there."""
    errors = sorted(exc.errors(), key=lambda e: {"extra_forbidden": 0, "missing": 1}.get(e["type"], 2))
    err = errors[0]
    path = tuple(p for p in err["loc"] if not (isinstance(p, str) and (p in _UNION_TAGS or "[" in p)))
    key = path[-1] if path else ""
    dotted = key_path(path)
    if err["type"] == "extra_forbidden":
        parent = path[:-1]
        model = _model_at(models, parent)
        fields = model.model_fields if model is not None else {}
        hint = did_you_mean(str(key), fields)
        allowed = f"; allowed: {', '.join(fields)}" if fields else ""
        return f"unknown key {key!r}{hint}{allowed}", doc.where_key(path)
    if err["type"] == "missing":
        return f"missing required key {key!r}", doc.where(path[:-1])
    bounds = _field_bounds(models, path) if err["type"] in _BOUND_ERRORS else ""
    msg = err["msg"].removeprefix("Value error, ")
    if not path:  # a check of the whole document: its input is the whole file, not worth repeating
        return msg, doc.where(path)
    value = shown(err.get("input"))
    return f"{dotted}: {msg}, got {value}" + (f" (allowed: {bounds})" if bounds else ""), doc.where(path)
