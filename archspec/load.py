"""YAML text -> plain data, with a map from every node to file:line:col.

Nothing else in the project knows YAML. Specs come from strangers, so loading never constructs
Python objects: we read the parser's *event* stream (the parser is a state machine, not a
recursion) and build dicts/lists/scalars ourselves. That is what lets us reject anchors before
anything is expanded, stop at the depth limit before the stack grows, and report every problem
of a file with its location in one `SpecErrors`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
import math
import os
import re
import stat
from types import MappingProxyType
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    NodeEvent,
    ScalarEvent,
    SequenceEndEvent,
    StreamEndEvent,
)

from .errors import Location, Path, SpecError, SpecErrors
from .limits import DEFAULT, Limits

_CParser: Any
try:  # libyaml's event parser: the same events, 25 times faster than the pure-Python one
    from yaml._yaml import CParser as _CParser
except ImportError:  # PyYAML built without libyaml
    _CParser = None

__all__ = ["MAX_FILE_BYTES", "MAX_DEPTH", "Document", "load_text", "load_file"]

# PyYAML's marks come from its pure-Python or its C scanner; both have .line and .column.
_Mark = Any

MAX_FILE_BYTES = DEFAULT.file_bytes
MAX_DEPTH = DEFAULT.depth  # open mappings/lists, the root one included
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Document:
    file: str
    data: Any
    locations: Mapping[Path, Location]
    key_locations: Mapping[Path, Location]
    size: int = 0  # characters of source text: the work a spec may ask for grows with it
    # Documents of imported block libraries, by the key that starts the paths of their blocks
    # (archspec.imports.import_key): lowering locates an imported block's layers through the importer.
    imported: Mapping[str, Document] = field(default_factory=dict)

    def locate(self, path: Sequence[str | int]) -> Location:
        """Where the value at `path` is, or its deepest known ancestor; the file start for the root."""
        p = tuple(path)
        if p and p[0] in self.imported:
            return self.imported[p[0]].locate(p[1:])  # type: ignore[index]
        while p:
            if p in self.locations:
                return self.locations[p]
            p = p[:-1]
        return self.locations.get((), Location(self.file, 1, 1))

    def locate_key(self, path: Sequence[str | int]) -> Location:
        """Where the key of the mapping entry at `path` is written, else `locate(path)`."""
        if path and path[0] in self.imported:
            return self.imported[path[0]].locate_key(path[1:])  # type: ignore[index]
        return self.key_locations.get(tuple(path)) or self.locate(path)


# Only this small scalar set is resolved; YAML 1.1's octal/hex/sexagesimal/timestamp forms stay
# strings because readers of the spec (and other YAML tools) would disagree on what they mean.
_DIGITS = r"[0-9](?:_?[0-9])*"
_INT = re.compile(rf"[-+]?{_DIGITS}")
_FLOAT = re.compile(rf"[-+]?(?:(?:{_DIGITS}\.(?:{_DIGITS})?|\.{_DIGITS})(?:[eE][-+]?[0-9]+)?|{_DIGITS}[eE][-+]?[0-9]+)")
_BOOLS = {"true": True, "false": False}
_FAKE_BOOLS = {"yes", "no", "on", "off", "y", "n"}
_NON_FINITE = {".nan", ".inf", "+.inf", "-.inf"}


def _resolve_plain(text: str) -> tuple[Any, tuple[str, str] | None]:
    """The value of an unquoted scalar, and (code, message) if it is not allowed."""
    low = text.lower()
    if low in ("", "~", "null"):
        return None, None
    if low in _BOOLS:
        return _BOOLS[low], None
    if low in _FAKE_BOOLS:
        return text, ("AS106", f"{text!r} is not a boolean in a spec; write true or false (or quote it)")
    if low in _NON_FINITE:
        return text, ("AS105", f"{text!r}: NaN and infinity are not allowed; write a finite number (or quote it)")
    try:
        if _INT.fullmatch(text):
            return int(text), None
        if _FLOAT.fullmatch(text):
            value = float(text)
            if not math.isfinite(value):
                return text, ("AS105", f"{text!r} is too large for a number (it would be infinity)")
            return value, None
    except ValueError:  # int() refuses thousands of digits (CVE-2020-10735 guard)
        return text, ("AS105", f"number with {len(text)} characters is too large")
    return text, None


def _loc(file: str, mark: _Mark | None) -> Location:
    return Location(file, mark.line + 1, mark.column + 1) if mark else Location(file, 1, 1)


class _TooDeep(Exception):
    """Raised by the scanner, ahead of the events, when flow nesting passes MAX_DEPTH."""


class _Events(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
    """Reader + scanner + parser only: no composer, resolver or constructor, so no tag can run code."""

    def __init__(self, text: str, depth: int = MAX_DEPTH) -> None:
        yaml.reader.Reader.__init__(self, text)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        self.max_depth = depth

    def fetch_flow_collection_start(self, TokenClass: type) -> None:
        # The scanner looks up to 1024 tokens ahead for a possible `[...]: value` key and scans
        # each pending key per token, so deep flow nesting is quadratic; stop at the limit here.
        if self.flow_level >= self.max_depth:
            raise _TooDeep(self.get_mark())  # the mark of the opening bracket
        yaml.scanner.Scanner.fetch_flow_collection_start(self, TokenClass)

    def __iter__(self) -> Iterator[Event]:
        while True:
            event = self.get_event()
            yield event
            if isinstance(event, StreamEndEvent):
                return


def _c_events(text: str) -> Iterator[Event]:
    """libyaml's events. Its parser keeps its own stack (no recursion) and scans lazily, so deep
    nesting costs nothing before the builder stops at the depth limit."""
    assert _CParser is not None
    parser = _CParser(text)
    while True:
        event: Event = parser.get_event()
        yield event
        if isinstance(event, StreamEndEvent):
            return


@dataclass
class _Frame:
    """An open mapping or sequence. `path` is None inside a subtree that is dropped (a bad key)."""

    path: Path | None
    value: dict[str, Any] | list[Any]
    expecting_key: bool = True
    key: str | None = None  # None: the pending value is checked but not stored
    first_line: dict[str, int] = field(default_factory=dict)


class _Builder:
    def __init__(self, file: str, depth: int = MAX_DEPTH) -> None:
        self.file = file
        self.max_depth = depth
        self.errors: list[SpecError] = []
        self.locations: dict[Path, Location] = {(): Location(file, 1, 1)}
        self.key_locations: dict[Path, Location] = {}
        self.stack: list[_Frame] = []
        self.data: Any = None
        self.documents = 0

    def error(self, code: str, message: str, mark: _Mark | None, path: Path | None) -> None:
        self.errors.append(SpecError(code, message, _loc(self.file, mark), path or ()))

    def too_deep(self, mark: _Mark | None) -> None:
        self.error(
            "AS108",
            f"nesting deeper than {self.max_depth} levels; flatten the spec (or raise --limit depth=N)",
            mark,
            self._parent_path(),
        )

    def _parent_path(self) -> Path:
        for frame in reversed(self.stack):
            if frame.path is not None:
                return frame.path
        return ()

    def _slot(self) -> tuple[Path | None, bool]:
        """The path the next node will have, and whether it is a mapping key."""
        if not self.stack:
            return (), False
        top = self.stack[-1]
        if isinstance(top.value, list):
            return (None if top.path is None else top.path + (len(top.value),)), False
        if top.expecting_key:
            return None, True
        return (None if top.path is None or top.key is None else top.path + (top.key,)), False

    def _store(self, value: Any) -> None:
        if not self.stack:
            self.data = value
            return
        top = self.stack[-1]
        if isinstance(top.value, list):
            top.value.append(value)
        elif top.expecting_key:  # a key that is not a string: its value is checked, then dropped
            top.expecting_key, top.key = False, None
        else:
            if top.key is not None:
                top.value[top.key] = value
            top.expecting_key = True

    def _key(self, event: ScalarEvent) -> None:
        top = self.stack[-1]
        top.expecting_key = False
        top.key = None
        text, mark, where = event.value, event.start_mark, self._parent_path()
        if not event.style and event.tag is None:
            value, _ = _resolve_plain(text)  # yes/no/.nan are fine as key names: `n: 4`
            if text == "<<":
                self.error("AS103", "merge keys (<<) are not allowed; write the entries out", mark, where)
                return
            if not isinstance(value, str):
                self.error(
                    "AS109",
                    f"key {text or 'null'!r} is not a string; keys must be names (quote it: '{text}')",
                    mark,
                    where,
                )
                return
        if text in top.first_line:
            self.error(
                "AS104",
                f"duplicate key {text!r} (first written at line {top.first_line[text]}); remove one",
                mark,
                where + (text,),
            )
            return
        top.first_line[text] = mark.line + 1 if mark is not None else 0
        top.key = text
        if top.path is not None:
            self.key_locations[top.path + (text,)] = _loc(self.file, mark)

    def _check_node(self, event: NodeEvent, path: Path | None) -> None:
        where = path if path is not None else self._parent_path()
        if event.anchor is not None:
            self.error("AS103", f"anchor &{event.anchor} is not allowed; write the value out", event.start_mark, where)
        tag = getattr(event, "tag", None)
        if tag is not None:
            self.error(
                "AS109",
                f"YAML tag {tag!r} is not allowed; remove it (quote the value for a string)",
                event.start_mark,
                where,
            )

    def feed(self, event: Event) -> bool:
        """Take one event; False once the rest of the stream must not be read."""
        if isinstance(event, DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                self.error(
                    "AS109",
                    "a spec file holds one YAML document; remove the second '---' and what follows it",
                    event.start_mark,
                    (),
                )
                return False
        elif isinstance(event, AliasEvent):
            path, _ = self._slot()
            self.error(
                "AS103",
                f"alias *{event.anchor} is not allowed; write the value out",
                event.start_mark,
                path or self._parent_path(),
            )
            self._store(None)  # in a key's place this marks the key bad, so its value is dropped
        elif isinstance(event, ScalarEvent):
            path, is_key = self._slot()
            self._check_node(event, path)
            if _SURROGATE.search(event.value):  # from an escape such as "\ud800": not text, cannot be printed
                self.error(
                    "AS102",
                    "a string holds a lone surrogate escape (\\ud800-\\udfff), which is not text; remove it",
                    event.start_mark,
                    path or self._parent_path(),
                )
                self._store(None)
                return True
            if is_key:
                self._key(event)
                return True
            value: Any = event.value
            if not event.style and event.tag is None:
                value, problem = _resolve_plain(event.value)
                if problem:
                    self.error(*problem, event.start_mark, path or self._parent_path())
            if path:  # the root stays at (file, 1, 1), after any leading comments or '---'
                self.locations[path] = _loc(self.file, event.start_mark)
            self._store(value)
        elif isinstance(event, CollectionStartEvent):
            path, is_key = self._slot()
            self._check_node(event, path)
            if len(self.stack) >= self.max_depth:
                self.too_deep(event.start_mark)
                return False
            if is_key:
                self.error(
                    "AS109", "a key must be a plain name, not a mapping or list", event.start_mark, self._parent_path()
                )
                path = None
            elif path:
                self.locations[path] = _loc(self.file, event.start_mark)
            self.stack.append(_Frame(path, {} if isinstance(event, MappingStartEvent) else []))
        elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
            self._store(self.stack.pop().value)
        return True


def _syntax_error(exc: yaml.YAMLError, text: str, file: str) -> SpecError:
    if isinstance(exc, yaml.reader.ReaderError):
        # Raised before any mark exists; its position is an index into the text (libyaml: into its UTF-8 bytes).
        pos = exc.position
        if exc.encoding == "?":
            pos = len(text.encode("utf-8")[:pos].decode("utf-8", "ignore"))
        line = text.count("\n", 0, pos) + 1
        column = pos - (text.rfind("\n", 0, pos) + 1) + 1
        character = exc.character if isinstance(exc.character, int) else ord(text[pos]) if pos < len(text) else 0
        return SpecError(
            "AS102", f"character U+{character:04X} is not allowed in YAML; remove it", Location(file, line, column)
        )
    if isinstance(exc, yaml.MarkedYAMLError):
        message = (exc.problem or "invalid YAML").strip()
        if exc.context and exc.context_mark is not None:
            message += f" ({exc.context} that starts at line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1})"
        elif exc.context:
            message += f" ({exc.context})"
        return SpecError("AS102", message, _loc(file, exc.problem_mark or exc.context_mark))
    return SpecError("AS102", str(exc), Location(file, 1, 1))


def _too_large(size: int, limit: int, file: str) -> SpecErrors:
    return SpecErrors(
        [
            SpecError(
                "AS107",
                f"the file is {size} bytes; spec files may be at most {limit} bytes "
                "(raise --limit file_bytes=N for a larger one)",
                Location(file, 1, 1),
            )
        ]
    )


def load_text(text: str, file: str = "<string>", limits: Limits = DEFAULT) -> Document:
    """Parse one spec's YAML text; raise SpecErrors listing every problem found."""
    # Every character is at least one byte, so the encode (the costly part) is only for short texts.
    size = len(text) if len(text) > limits.file_bytes else len(text.encode("utf-8", "surrogatepass"))
    if size > limits.file_bytes:
        raise _too_large(size, limits.file_bytes, file)
    surrogate = _SURROGATE.search(text)
    if surrogate:  # only a str from Python can hold one (a file is decoded from UTF-8); libyaml cannot take it
        pos = surrogate.start()
        line, column = text.count("\n", 0, pos) + 1, pos - (text.rfind("\n", 0, pos) + 1) + 1
        raise SpecErrors(
            [
                SpecError(
                    "AS102",
                    f"character U+{ord(text[pos]):04X} (a lone surrogate) is not text; remove it",
                    Location(file, line, column),
                )
            ]
        )
    builder = _Builder(file, limits.depth)
    events = _c_events(text) if _CParser is not None else _Events(text, limits.depth)
    try:
        for event in events:
            if not builder.feed(event):
                break
    except _TooDeep as exc:
        builder.too_deep(exc.args[0])
    except yaml.YAMLError as exc:
        builder.errors.append(_syntax_error(exc, text, file))
    if builder.errors:
        raise SpecErrors(builder.errors)
    return Document(
        file, builder.data, MappingProxyType(builder.locations), MappingProxyType(builder.key_locations), len(text)
    )


def load_file(path: str | os.PathLike[str], limits: Limits = DEFAULT) -> Document:
    """Read and parse a spec file, checking its size before reading it."""
    file = str(path)
    start = Location(file, 1, 1)

    def unreadable(why: str) -> SpecErrors:
        return SpecErrors([SpecError("AS101", why, start)])

    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):  # a directory, or a pipe/device that could block or never end
            raise unreadable("not a regular file; give the path of a .yaml spec file")
        if info.st_size > limits.file_bytes:
            raise _too_large(info.st_size, limits.file_bytes, file)
        with open(path, "rb") as f:
            raw = f.read(limits.file_bytes + 1)  # the file may have grown since the stat
    except FileNotFoundError:
        raise unreadable("no such file; check the path") from None
    except ValueError:  # a NUL byte in the path
        raise unreadable("the path holds a NUL character; check the path") from None
    except OSError as exc:
        raise unreadable(f"cannot read the file ({exc.strerror or exc}); check the path and its permissions") from None
    if len(raw) > limits.file_bytes:
        raise _too_large(len(raw), limits.file_bytes, file)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise unreadable(
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); save the file as UTF-8"
        ) from None
    return load_text(text, file, limits)
