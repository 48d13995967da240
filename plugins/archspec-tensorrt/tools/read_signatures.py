"""Read the signatures of the torch-tensorrt functions the plugin calls from torch-tensorrt's own wheel, with
`ast` (nothing is imported: the wheel's TensorRT libraries cannot be installed where the tests run).

    python plugins/archspec-tensorrt/tools/read_signatures.py [WHEEL] > plugins/archspec-tensorrt/tools/torch_tensorrt-2.14.0.json

Without WHEEL it runs `pip download --no-deps torch-tensorrt==2.14.0` into a temporary folder. The JSON it
prints is what tests/test_tensorrt_plugin.py builds its stand-in for `torch_tensorrt` from, so that a keyword
the real function does not take fails a test there; the test also re-reads the wheel, when pip can fetch it,
and compares. Each function's parameters are listed in order with their kind (inspect.Parameter's names) and
whether they have a default. `torch_tensorrt.Input.__init__` takes only *args and **kwargs: its keywords are
the string keys its body reads from kwargs (`kwargs["dtype"]`, `kwargs.get("profiles")`, `"shape" in kwargs`,
`k in kwargs for k in ["min_shape", ...]`), listed under "keywords".
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
import json
from pathlib import Path
import subprocess
import sys
import tempfile
from typing import Any
import zipfile

VERSION = "2.14.0"
# public name -> (file in the wheel, function or Class.method there, (file, name) that makes it public)
FUNCTIONS = {
    "torch_tensorrt.dynamo.compile": (
        "torch_tensorrt/dynamo/_compiler.py",
        "compile",
        ("torch_tensorrt/dynamo/__init__.py", "compile"),
    ),
    "torch_tensorrt.dynamo.convert_exported_program_to_serialized_trt_engine": (
        "torch_tensorrt/dynamo/_compiler.py",
        "convert_exported_program_to_serialized_trt_engine",
        ("torch_tensorrt/dynamo/__init__.py", "convert_exported_program_to_serialized_trt_engine"),
    ),
    "torch_tensorrt.save": ("torch_tensorrt/_compile.py", "save", ("torch_tensorrt/_compile.py", "__all__")),
    "torch_tensorrt.Input": ("torch_tensorrt/_Input.py", "Input.__init__", ("torch_tensorrt/__init__.py", "Input")),
}


def download(folder: Path, version: str = VERSION) -> Path:
    """torch-tensorrt's wheel for this interpreter, through pip (its index, or its local one)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--disable-pip-version-check",
            "--timeout",
            "15",
            "--retries",
            "1",
            f"torch-tensorrt=={version}",
            "-d",
            str(folder),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = folder.glob(f"torch_tensorrt-{version}-*.whl")
    return wheel


def _function(tree: ast.Module, dotted: str) -> ast.FunctionDef:
    body: list[ast.stmt] = tree.body
    *outer, name = dotted.split(".")
    for cls in outer:
        body = next(n for n in body if isinstance(n, ast.ClassDef) and n.name == cls).body
    return next(n for n in body if isinstance(n, ast.FunctionDef) and n.name == name)


def _parameters(fn: ast.FunctionDef) -> list[list[Any]]:
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    first_default = len(positional) - len(a.defaults)
    out: list[list[Any]] = []
    for i, p in enumerate(positional):
        kind = "POSITIONAL_ONLY" if i < len(a.posonlyargs) else "POSITIONAL_OR_KEYWORD"
        out.append([p.arg, kind, i >= first_default])
    if a.vararg:
        out.append([a.vararg.arg, "VAR_POSITIONAL", False])
    out += [[p.arg, "KEYWORD_ONLY", d is not None] for p, d in zip(a.kwonlyargs, a.kw_defaults)]
    if a.kwarg:
        out.append([a.kwarg.arg, "VAR_KEYWORD", False])
    if out and out[0][0] == "self":
        out.pop(0)
    return out


def _keys_read(fn: ast.FunctionDef, mapping: str) -> list[str]:
    """String keys `fn` reads from its `mapping` parameter (subscripts, .get, `in`, and `k in mapping for k in [...]`)."""
    found: set[str] = set()

    def strings(node: ast.AST) -> Iterator[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value
        elif isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            for element in node.elts:
                yield from strings(element)

    def is_mapping(node: ast.AST) -> bool:
        return isinstance(node, ast.Name) and node.id == mapping

    for node in ast.walk(fn):
        if isinstance(node, ast.Subscript) and is_mapping(node.value):
            found.update(strings(node.slice))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and is_mapping(node.func.value)
            and node.func.attr in ("get", "pop")
            and node.args
        ):
            found.update(strings(node.args[0]))
        elif (
            isinstance(node, ast.Compare)
            and any(isinstance(o, (ast.In, ast.NotIn)) for o in node.ops)
            and any(is_mapping(c) for c in node.comparators)
        ):
            found.update(strings(node.left))
        elif isinstance(node, (ast.GeneratorExp, ast.ListComp)):
            elt = node.elt
            if (
                isinstance(elt, ast.Compare)
                and any(is_mapping(c) for c in elt.comparators)
                and isinstance(elt.left, ast.Name)
            ):
                for gen in node.generators:
                    if isinstance(gen.target, ast.Name) and gen.target.id == elt.left.id:
                        found.update(strings(gen.iter))
    return sorted(found)


def _is_public(tree: ast.Module, name: str) -> bool:
    """`name` is imported (or, for __all__, listed) in the module that makes the function public."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and any((alias.asname or alias.name) == name for alias in node.names):
            return True
        if (
            name == "__all__"
            and isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
        ):
            return True
    return False


def read(wheel: Path) -> dict[str, Any]:
    with zipfile.ZipFile(wheel) as z:

        def tree(path: str) -> ast.Module:
            return ast.parse(z.read(path).decode(), filename=path)

        functions: dict[str, Any] = {}
        for public, (path, dotted, (exporter, exported)) in FUNCTIONS.items():
            fn = _function(tree(path), dotted)
            if not _is_public(tree(exporter), exported):
                raise SystemExit(f"{wheel.name}: {exporter} does not export {exported}")
            if exported == "__all__":
                names = next(
                    ast.literal_eval(n.value)
                    for n in tree(exporter).body
                    if isinstance(n, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets)
                )
                if public.rsplit(".", 1)[1] not in names:
                    raise SystemExit(f"{wheel.name}: {exporter}'s __all__ does not list {public}")
            entry: dict[str, Any] = {"source": f"{path}:{fn.lineno}", "parameters": _parameters(fn)}
            if fn.args.kwarg and dotted.endswith("__init__"):
                entry["keywords"] = _keys_read(fn, fn.args.kwarg.arg)
            functions[public] = entry
    return {
        "distribution": "torch-tensorrt",
        "version": wheel.name.split("-")[1],
        "wheel": wheel.name,
        "generated_by": "plugins/archspec-tensorrt/tools/read_signatures.py",
        "functions": functions,
    }


def dumps(data: dict[str, Any]) -> str:
    """One parameter a line: the file diffs well when torch-tensorrt changes."""
    lines = ["{"]
    head = {k: v for k, v in data.items() if k != "functions"}
    lines += [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
    lines.append('  "functions": {')
    for i, (name, entry) in enumerate(data["functions"].items()):
        lines.append(f"    {json.dumps(name)}: {{")
        lines.append(f'      "source": {json.dumps(entry["source"])},')
        params = ",\n".join(f"        {json.dumps(p)}" for p in entry["parameters"])
        tail = "," if "keywords" in entry else ""
        lines.append(f'      "parameters": [\n{params}\n      ]{tail}')
        if "keywords" in entry:
            lines.append(f'      "keywords": {json.dumps(entry["keywords"])}')
        lines.append("    }" + ("," if i < len(data["functions"]) - 1 else ""))
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if argv:
        print(dumps(read(Path(argv[0]))), end="")
        return 0
    with tempfile.TemporaryDirectory() as folder:
        print(dumps(read(download(Path(folder)))), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
