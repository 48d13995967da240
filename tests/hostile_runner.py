"""Run archspec's command line on hostile inputs, in this one interpreter, under a Python audit hook.

    python tests/hostile_runner.py CASES.json OUT_DIR  ->  one JSON object per case on stdout

CASES.json lists {"name", "argv"} (argv of `archspec`, "{out}" standing for the case's output folder). Each
case runs with that folder as the working directory, so a default output lands there. The hook records
every process spawn, socket, dynamic library load, import outside the allow-list and file-system write
outside the case's folder. An audit hook cannot be removed, hence a process of its own
(tests/test_hostile.py starts it).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
import sys
import time

SPAWN = (
    "subprocess.Popen",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "pty.spawn",
    "ctypes.dlopen",
    "os.startfile",
    "webbrowser.open",
)
WRITES = {
    "os.mkdir": 0,
    "os.rename": 0,
    "os.replace": 0,
    "os.remove": 0,
    "os.rmdir": 0,
    "os.chmod": 0,
    "os.chown": 0,
    "os.symlink": 1,
    "os.link": 1,
    "os.truncate": 0,
    "shutil.rmtree": 0,
    "os.utime": 0,
    "os.mkfifo": 0,
    "os.mknod": 0,
}
# Imports that handling a spec may cause. Everything archspec needs is imported by the warm-up build
# before the hook is installed; what is left is the standard library minus what spawns, connects or
# loads native code, and the project's own dependencies.
DENIED_STDLIB = {
    "subprocess",
    "socket",
    "ctypes",
    "pty",
    "multiprocessing",
    "webbrowser",
    "http",
    "urllib",
    "ftplib",
    "smtplib",
    "telnetlib",
    "xmlrpc",
    "socketserver",
    "ssl",
    "asyncio",
    "pdb",
    "code",
    "codeop",
}
ALLOWED = (set(sys.stdlib_module_names) - DENIED_STDLIB) | {
    "archspec",
    "yaml",
    "_yaml",
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_extensions",
    "typing_inspection",
    "networkx",
    "torch",
    "safetensors",
    "numpy",
    "sympy",
    "mpmath",
    "jinja2",
    "markupsafe",
    "onnx",
    "onnxruntime",
    "onnxscript",
}


class Watch:
    def __init__(self) -> None:
        self.out: Path | None = None
        self.violations: list[str] = []

    def inside(self, path: object) -> bool:
        if isinstance(path, int):  # a file descriptor: opened before, and checked then
            return True
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, (str, os.PathLike)) or self.out is None:
            return False
        resolved = os.path.realpath(os.path.abspath(os.fspath(path)))
        return resolved == str(self.out) or resolved.startswith(str(self.out) + os.sep) or resolved == os.devnull

    def hook(self, event: str, args: tuple[object, ...]) -> None:
        if self.out is None:
            return
        if event.startswith(SPAWN) or event.startswith("socket."):
            self.violations.append(f"{event} {args!r:.200}")
        elif event == "import":
            top = str(args[0]).split(".")[0]
            if top not in ALLOWED:
                self.violations.append(f"import {args[0]}")
        elif event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND)
            )
            if writing and not self.inside(path):
                self.violations.append(f"open {path!r} for writing")
        elif event in WRITES:
            for path in args[: WRITES[event] + 1]:
                if not self.inside(path):
                    self.violations.append(f"{event} {path!r}")


def main() -> None:
    cases = json.loads(Path(sys.argv[1]).read_text())
    root = Path(sys.argv[2]).resolve()
    from archspec.cli import main as archspec

    # Warm up: import everything a build needs, before the hook is watching.
    warm = root / "warm"
    warm.mkdir(parents=True, exist_ok=True)
    spec = warm / "warm.yaml"
    spec.write_text(
        "archspec: 1\nname: warm\ninput: [3, 8, 8]\nlayers:\n  - {op: conv2d, out: 2, kernel: 3}\n"
        "  - {op: batchnorm}\n  - {op: relu}\n  - {op: flatten}\n  - {op: linear, out: 2}\n"
    )
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert archspec(["build", str(spec), "-o", str(warm / "warm.pt2")]) == 0
        assert (
            archspec(["build", str(spec), "--backend", "torch-source", "--save-weights", "-o", str(warm / "warm.py")])
            == 0
        )
        archspec(["summary", str(spec), "--json"])
    import torch  # noqa: F401  - loaded by the warm-up already; named so the hook never sees it

    watch = Watch()
    sys.addaudithook(watch.hook)
    for case in cases:
        out = root / case["name"]
        out.mkdir(parents=True)
        watch.out = out.resolve()
        watch.violations = []
        stdout, stderr = io.StringIO(), io.StringIO()
        argv = [a.replace("{out}", str(out)) for a in case["argv"]]
        cwd = os.getcwd()
        os.chdir(out)
        start = time.perf_counter()
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                try:
                    code = archspec(argv)
                except SystemExit as exc:  # argparse's usage errors
                    code = exc.code if isinstance(exc.code, int) else 2
                except BaseException as exc:  # noqa: BLE001 - reported as the failure it is
                    code = -1
                    print(f"Traceback: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            os.chdir(cwd)
            elapsed = time.perf_counter() - start
            watch.out = None
        files = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
        print(
            json.dumps(
                {
                    "name": case["name"],
                    "code": code,
                    "stdout": stdout.getvalue(),
                    "stderr": stderr.getvalue(),
                    "violations": watch.violations,
                    "files": files,
                    "seconds": elapsed,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
