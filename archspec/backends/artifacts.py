"""Where and how a backend's artifact is written: one rule for every backend.

`output_path` decides the path before anything is built: the default is `<name><suffix>` in the current
folder (the name is checked in validation: no separators, no dots), and an explicit path must be a
regular file or a new path (missing folders above it are made when the artifact is written, and
removed again if the write fails). Devices, FIFOs, folders and symbolic links are
refused, so `-o /dev/sda` or a link planted in the output folder cannot redirect the write.

`write_atomically` writes the bytes under a private temporary name beside the target and moves them in
with one rename: an interrupted or failed write (full disk, Ctrl-C, SIGTERM) leaves the old file as it
was and no partial file behind. Bytes are written by Python, never by a C++ writer, so a full disk is
an OSError we report rather than an abort. The new file keeps the mode of the file it replaces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
import os
from pathlib import Path
import shutil
import stat
import tempfile
from typing import BinaryIO

from archspec.errors import ArchspecError

CHUNK = 1 << 24


def output_path(output: str | os.PathLike[str] | None, name: str, suffix: str) -> Path:
    """The path to write, checked; raise AS804 saying why a path is refused."""
    if output is None:
        path = Path.cwd() / f"{name}{suffix}"
    else:
        text = os.fspath(output)
        if not text or "\0" in text:
            raise ArchspecError("AS804", f"-o {text!r} is not a usable path")
        path = Path(text)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        existing = next((p for p in path.parents if os.path.lexists(p)), None)
        if existing is not None and not existing.is_dir():
            raise ArchspecError("AS804", f"cannot write {path}: {existing} is not a folder") from None
        return path
    except OSError as exc:
        raise ArchspecError("AS804", f"cannot write {path}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(info.st_mode):
        raise ArchspecError("AS804", f"{path} is a symbolic link; give the path of a regular file or a new file")
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file (a device, FIFO or socket)"
        raise ArchspecError("AS804", f"{path} is {kind}; give the path of a regular file or a new file")
    return path


@contextmanager
def staged(path: Path) -> Iterator[Path]:
    """Yield a path with `path`'s final name inside a private folder beside it; once the block ends,
    move everything written there into place (the file and its siblings, e.g. ONNX external data; the
    main file last), keeping the mode of a file it replaces. On any failure (an exception, Ctrl-C,
    SIGTERM) remove it all, and the folders made for it. The name inside is the final one, so tools
    that record their file name (torch.export's archive folder) give the same bytes on every build."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    made = _make_parents(path.parent)
    done = False
    try:
        folder = Path(tempfile.mkdtemp(prefix=f".{path.name[:64]}.", dir=path.parent))
        try:
            target = folder / path.name
            yield target
            if not target.is_file():
                raise ArchspecError("AS804", f"the backend wrote no {path.name}")
            for item in sorted(folder.iterdir(), key=lambda p: p.name == path.name):
                if item.is_file():
                    with open(item, "rb+") as file:  # on disk before it is renamed in
                        os.fsync(file.fileno())
                    os.chmod(item, mode)
                os.replace(item, path.parent / item.name)
            done = True
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        if not done:
            _remove(made)


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """`write(file)` into a staged file (see `staged`), then move it into place."""
    with staged(path) as target, open(target, "wb") as file:
        write(file)


def _make_parents(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; return those created, deepest first."""
    missing = [p for p in (folder, *folder.parents) if not os.path.lexists(p)]
    for p in reversed(missing):
        p.mkdir()
    return missing


def _remove(folders: list[Path]) -> None:
    for p in folders:
        try:
            p.rmdir()
        except OSError:
            return


def write_bytes_atomically(path: Path, data: bytes | memoryview) -> None:
    view = memoryview(data)

    def write(file: BinaryIO) -> None:
        for start in range(0, len(view), CHUNK):
            file.write(view[start : start + CHUNK])

    write_atomically(path, write)
