"""Where `imports:` entries point, and the blocks each scope may use.

An entry is `archspec:NAME` (a library of archspec's own, `archspec/blocks/NAME.yaml`) or a path relative
to the importing file that stays inside that file's folder. Reading and validating the files is the
validate stage's work (it loads them like any spec file, so no code runs); this module only finds them
and describes the result: every block with the file it came from and the blocks its own layers may use.

Scoping, the reason a `BlockRef` carries `scope` and `isolated`:
- a spec's own blocks see the spec's parameters and vars, and use the spec's blocks and its imports;
- an imported block sees only its own parameters, `in_shape` and `in_channels`, and uses the blocks of
  its own library and of that library's imports (never the importer's): it means the same everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
import os
from pathlib import Path as FsPath
import re
from typing import Any

from archspec.errors import Location, Path, SpecError, SpecErrors, did_you_mean
from archspec.spec import Block

STDLIB_PREFIX = "archspec:"
STDLIB_DIR = FsPath(__file__).resolve().parent / "blocks"
_STDLIB_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_ENTRY_CHARS = 1024


@dataclass(frozen=True, eq=False)
class BlockRef:
    """A block as one scope sees it: the block, the file it was written in (None: the spec's own), the
    blocks its layers may use (`scope`, shared by every block of one file), and whether it is isolated
    from the spec's parameters (an imported block)."""

    name: str
    block: Block
    source: str | None
    scope: Mapping[str, BlockRef]
    preset: Mapping[str, Any] = field(default_factory=dict)  # under a preset's name: the values it sets

    @property
    def isolated(self) -> bool:
        return self.source is not None


def import_key(file: str) -> str:
    """The first part of the path of every node of an imported file, for Document.imported. Angle
    brackets never start a key that validation lets through at a spec's root."""
    return f"<{file}>"


def stdlib_libraries() -> list[str]:
    """The names of archspec's own block libraries (`archspec:NAME`)."""
    if not STDLIB_DIR.is_dir():
        return []
    return sorted(p.stem for p in STDLIB_DIR.glob("*.yaml") if _STDLIB_NAME.match(p.stem))


def relative_path(path: FsPath) -> str:
    """A file's path relative to the working folder when inside it, else absolute (as locations show it)."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def display_path(path: FsPath) -> str:
    """How messages name a library: `archspec:NAME` for ours, else its path."""
    return STDLIB_PREFIX + path.stem if path.parent == STDLIB_DIR else relative_path(path)


def find(entry: str, importer: str, location: Location | None, at: Path) -> FsPath:
    """The file an `imports:` entry names, or a located AS111 saying why it cannot be used."""

    def refuse(message: str) -> SpecErrors:
        return SpecErrors([SpecError("AS111", message, location, at)])

    if "\0" in entry or len(entry) > MAX_ENTRY_CHARS or not entry.strip():
        raise refuse(f"an import is archspec:NAME or a relative path of 1 to {MAX_ENTRY_CHARS} characters without NUL")
    if entry.startswith(STDLIB_PREFIX):
        name = entry[len(STDLIB_PREFIX) :]
        known = stdlib_libraries()
        if name not in known:
            raise refuse(
                f"{entry!r} is not one of archspec's block libraries.{did_you_mean(name, known)} "
                f"They are: {', '.join(STDLIB_PREFIX + k for k in known) or 'none'} (archspec list shows their blocks)"
            )
        return STDLIB_DIR / f"{name}.yaml"
    if os.path.isabs(entry) or entry.startswith("~"):
        raise refuse(f"import {entry!r} is absolute; give a path relative to {importer}, or archspec:NAME")
    folder = FsPath(importer).resolve().parent
    target = (folder / entry).resolve()
    if not target.is_relative_to(folder):
        raise refuse(f"import {entry!r} leaves the folder of {importer}; keep block libraries beside or below it")
    if not target.exists():
        raise refuse(f"import {entry!r}: no such file beside {importer}")
    if not target.is_file():  # a folder, FIFO or device: never read (it could block or never end)
        raise refuse(f"import {entry!r} is not a regular file; give the path of a .yaml block library")
    return target
