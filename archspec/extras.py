"""The optional packages behind archspec's extras, and the one error for a missing one (AS810).

The core (load, validate, lower, passes, the views) needs only pydantic, PyYAML and networkx; torch and the
rest come with extras (pyproject.toml). Whatever needs one of them says which extra brings it, instead of a
ModuleNotFoundError traceback: a command checks before it imports (`require`), and a backend whose import
fails on a missing package is reported the same way (`missing`, used by the registry and the pipeline).
Nothing here imports an optional package.
"""

from __future__ import annotations

from collections.abc import Sequence
import importlib.util

from archspec.errors import ArchspecError

# import name -> the archspec extra that installs it (the smallest one; `train` and `onnx` include torch)
EXTRA_OF = {
    "torch": "torch",
    "safetensors": "torch",
    "jinja2": "torch",
    "onnx": "onnx",
    "onnxscript": "onnx",
    "onnxruntime": "onnx",
    "sklearn": "train",
    "matplotlib": "train",
    "PIL": "train",
}


def install_hint(package: str, extra: str | None = None) -> str:
    """How to install `package`: archspec's extra for it, or else the package itself."""
    extra = extra or EXTRA_OF.get(package)
    return f'pip install "archspec[{extra}]"' if extra else f"pip install {package}"


def require(packages: Sequence[str], what: str, extra: str) -> None:
    """Refuse to go on without `packages` (import names), naming them and the extra that installs them."""
    missing_now = [p for p in packages if importlib.util.find_spec(p) is None]
    if missing_now:
        raise ArchspecError(
            "AS810",
            f"{what} needs the package(s) {', '.join(missing_now)}, which are not "
            f"installed; {install_hint(missing_now[0], extra)}",
        )


def missing(exc: ModuleNotFoundError, what: str) -> ArchspecError:
    """The AS810 error for `exc`, raised while importing or running `what` (e.g. "the torch backend")."""
    package = (exc.name or "").partition(".")[0] or "?"
    return ArchspecError(
        "AS810", f"{what} needs the package {package}, which is not installed; {install_hint(package)}"
    )
