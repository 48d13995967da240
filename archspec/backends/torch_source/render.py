"""IR graph -> the text of a standalone PyTorch file: the printer of the torch backend's lowering table.

Each op is lowered once (archspec/backends/torch/lowering.py) to a description: a module class and its
arguments, a function and its arguments, an owned tensor, a buffer, a tied call. The torch backend
instantiates the description; this module prints the same description, so both backends run the same
classes and functions with the same arguments, in the same order, and agree bit for bit in training as in
eval. The helper classes and functions that torch.nn lacks (modules.py, sequence.py, runtime.py) are copied
into the file from their one definition (`inspect.getsource`), with the helpers they use. A plugin's own
class or function is imported from the plugin's module: the file then needs the plugin installed, as the
torch backend does, but never archspec (see `_Names.reference`).

Everything that reaches the file is either fixed template text, a helper's source, an identifier from
`Namespace` (never a keyword, soft keyword, builtin, dunder, helper or import name), or a literal written by
`literal` (`ascii()` of the value: quotes, newlines, U+2028, bidi controls and every other non-ASCII character
are escapes). Spec text (the name, the description) enters only as such literals, so no spec can inject
code. Layer attribute paths are checked part by part before use. The output depends only on the graph, so
it is deterministic (tests/golden holds examples).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
import importlib
import inspect
import io
import keyword
import operator
import re
import sys
import textwrap
import tokenize
import types
from typing import Any

import torch
from torch import nn
import torch.nn.functional as F

from archspec.backends.torch import modules as _modules, runtime as _runtime, sequence as _sequence
from archspec.backends.torch.lowering import ALIAS, Buffer, Call, Emit, Lowering, Module, Owned, Tied, lower_node
from archspec.backends.torch.sequence import check_input
from archspec.backends.torch_source.backend import path_problem
from archspec.errors import ArchspecError
from archspec.ir import VALUES, Graph

Value = int | float | bool | str | None | tuple[Any, ...]

# The modules whose classes and functions the file may need, in the order their helpers are written.
HELPER_MODULES: tuple[types.ModuleType, ...] = (_modules, _sequence, _runtime)
HELPERS: dict[str, Any] = {
    name: obj
    for module in HELPER_MODULES
    for name, obj in vars(module).items()
    if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == module.__name__
}
# Modules the file imports (always, or when a helper or a long fold needs them) under these names.
IMPORTED = frozenset({"torch", "nn", "F", "math", "functools", "operator"})
# Names the file binds itself, beside Python's own: every helper's name is reserved whether or not this
# file needs the helper, so a spec's name can never take one (a network called `interpolate_like`).
FILE_NAMES = (
    frozenset({"self", "x", "annotations", "SPEC_NAME", "INPUT_SHAPE", "INPUT_DTYPE"}) | IMPORTED | frozenset(HELPERS)
)
RESERVED = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins)) | FILE_NAMES
_IDENTIFIER_PART = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_INDEX_PART = re.compile(r"^[0-9]+$")
INFIX: Mapping[Callable[..., Any], str] = {
    operator.add: "+",
    operator.iadd: "+",
    operator.mul: "*",
    operator.sub: "-",
    operator.matmul: "@",
}
# Above this many inputs a fold is written `functools.reduce(...)` over a list: a chain `a + b + ...` of
# thousands of terms nests too deeply for Python's compiler.
FOLD_CHAIN_LIMIT = 32


class Namespace:
    """Unique Python identifiers made from arbitrary text (torch.fx's _Namespace, in small)."""

    def __init__(self, taken: Sequence[str] = ()) -> None:
        self._used: set[str] = set(taken)

    def fresh(self, text: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_]", "_", text).strip("_") or "value"
        base = re.sub(r"_+", "_", base)
        if base[0].isdigit():
            base = f"v{base}"
        if base in RESERVED or base.startswith("__"):
            base = f"{base}_"
        name, k = base, 1
        while name in self._used or name in RESERVED:
            name, k = f"{base}_{k}", k + 1
        self._used.add(name)
        return name


def class_name(text: str, taken: frozenset[str] | set[str] = frozenset()) -> str:
    words = re.split(r"[^A-Za-z0-9]+", text)
    camel = "".join(w[:1].upper() + w[1:] for w in words if w)
    if not camel or not camel[0].isalpha():
        camel = f"Net{camel}"
    return camel if camel not in RESERVED and camel not in taken else f"{camel}Net"


def literal(value: Value) -> str:
    """A Python literal for a value from an op's typed parameters (or a spec string): ASCII only. A float
    keeps its sign (`-0.0`) and every digit (`repr`)."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, (int, float)):
        text = repr(value)
        if text in ("inf", "-inf"):  # a mask's -inf (constant values: -inf)
            return f"float({text!r})"
        if text == "nan":
            raise ArchspecError("AS803", f"the torch-source backend cannot write the number {text} as a literal")
        return text
    if isinstance(value, str):
        return ascii(value)
    if isinstance(value, (tuple, list)):
        items = ", ".join(literal(v) for v in value)
        return f"({items},)" if len(value) == 1 else f"({items})"
    raise ArchspecError("AS803", f"the torch-source backend cannot write a {type(value).__name__} as a literal")


def _is_default(value: Any, default: Any) -> bool:
    # Same type and same literal: 0 is not False, and -0.0 is not 0.0 (F.pad's value: -0.0 must be kept).
    return type(value) is type(default) and literal(value) == literal(default) if _printable(default) else False


def _printable(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    return isinstance(value, tuple) and all(_printable(v) for v in value)


def _shown(target: Callable[..., Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments that differ from the target's defaults, where its signature says them."""
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):  # a builtin without a signature: write every argument
        return dict(kwargs)
    return {
        k: v
        for k, v in kwargs.items()
        if k not in parameters
        or parameters[k].default is inspect.Parameter.empty
        or not _is_default(v, parameters[k].default)
    }


class _Names:
    """How the file names a class or function of a description: `nn.X`, `F.x`, `torch.x`, a helper copied into
    the file, or an import from a plugin's module; collects the helpers and imports the file needs."""

    def __init__(self) -> None:
        self.helpers: set[str] = set()
        self.modules: set[str] = set()  # `import math`, for the helpers that use it
        self.imports: dict[tuple[str, str], str] = {}  # (module, name) -> the name in the file
        self.globals = Namespace()

    def reference(self, obj: Any, layer: str) -> str:
        name = getattr(obj, "__name__", None)
        if isinstance(obj, torch._ops.OpOverload):
            return f"torch.ops.{obj.namespace}.{obj._opname}.{obj._overloadname}"
        if name:
            for prefix, space in (("nn", nn), ("F", F), ("torch", torch), ("torch.Tensor", torch.Tensor)):
                if getattr(space, name, None) is obj:
                    return f"{prefix}.{name}"
            if HELPERS.get(name) is obj:
                self._helper(name)
                return name
            module = getattr(obj, "__module__", None)
            # A plugin's class or function: imported from the module that defines it, not copied. Its source may
            # use anything of that module (constants, other functions, imports), which a copy would lose; the
            # user installed the plugin for the torch backend already, and the plugin's code stays its own.
            if (
                module
                and module != "__main__"
                and not module.startswith(("archspec.", "torch"))
                and "<" not in getattr(obj, "__qualname__", "<")
                and "." not in obj.__qualname__
            ):
                found = getattr(sys.modules.get(module) or importlib.import_module(module), name, None)
                if found is obj:
                    key = (module, name)
                    if key not in self.imports:
                        self.imports[key] = self.globals.fresh(name)
                    return self.imports[key]
        raise ArchspecError(
            "AS803",
            f"layer {layer!r}: the torch-source backend cannot name {obj!r} in a standalone "
            "file; a lowering must use torch's functions and classes, archspec's helpers, or a "
            "class or function defined at the top level of an importable module",
        )

    def _helper(self, name: str) -> None:
        if name in self.helpers:
            return
        self.helpers.add(name)
        obj = HELPERS[name]
        module = sys.modules[obj.__module__]
        for token in _names_in(inspect.getsource(obj)):
            used = vars(module).get(token)
            if token != name and token in HELPERS and HELPERS[token] is used:
                self._helper(token)
            elif isinstance(used, types.ModuleType) and token not in ("torch", "nn", "F"):
                if token not in IMPORTED or used.__name__ != token:
                    raise ArchspecError(
                        "AS803",
                        f"helper {name} uses the module {used.__name__} as {token}, which the "
                        "torch-source file does not import",
                    )
                self.modules.add(token)

    def helper_sources(self) -> list[str]:
        """The helpers' source, each once, in their modules' order (so a helper follows those it uses)."""

        def position(name: str) -> tuple[int, int]:
            obj = HELPERS[name]
            return HELPER_MODULES.index(sys.modules[obj.__module__]), inspect.getsourcelines(obj)[1]

        return [textwrap.dedent(inspect.getsource(HELPERS[n])).rstrip() for n in sorted(self.helpers, key=position)]

    def import_lines(self) -> list[str]:
        lines = [f"import {m}" for m in sorted(self.modules)]
        for (module, name), alias in sorted(self.imports.items()):
            lines.append(f"from {module} import {name}" + ("" if alias == name else f" as {alias}"))
        return lines


def _names_in(source: str) -> list[str]:
    return [
        t.string
        for t in tokenize.generate_tokens(io.StringIO(textwrap.dedent(source)).readline)
        if t.type == tokenize.NAME
    ]


@dataclass(frozen=True)
class Rendered:
    text: str
    class_name: str


class _Attributes:
    """Submodule paths -> Python expressions on `self`, creating containers in __init__ as needed.
    A container with numbered children (repeats) is an nn.ModuleDict, read with ["0"]; others are plain
    nn.Module attributes. A tensor a layer owns (a parameter or buffer, not a module) under such a container
    is registered and read by name (`register_parameter('0', ...)`, `getattr(self.p, '0')`): a ModuleDict
    item is a module. Parameter names follow the layer names (`layer1.0.conv1.weight`), as in the torch
    backend, so one state dict fits both."""

    def __init__(self, modules: Sequence[str]) -> None:
        self.indexed: set[str] = set()
        for name in modules:
            parts = name.split(".")
            for k in range(1, len(parts)):
                if _INDEX_PART.match(parts[k]):
                    self.indexed.add(".".join(parts[:k]))
        self.created: set[str] = set()
        self.init: list[str] = []

    def expression(self, dotted: str) -> str:
        parts = dotted.split(".")
        text = f"self.{parts[0]}"
        for k in range(1, len(parts)):
            parent = ".".join(parts[:k])
            text += f"[{literal(parts[k])}]" if parent in self.indexed else f".{parts[k]}"
        return text

    def tensor(self, dotted: str) -> str:
        """The expression reading the tensor at `dotted` (an owned parameter or buffer, or a module's leaf)."""
        parent, _, leaf = dotted.rpartition(".")
        owner = self.expression(parent) if parent else "self"
        return f"{owner}.{leaf}" if _IDENTIFIER_PART.match(leaf) else f"getattr({owner}, {literal(leaf)})"

    def register(self, dotted: str, kind: str, value: str) -> None:
        """`kind` is "parameter" or "buffer"."""
        self.ensure_parents(dotted)
        parent, _, leaf = dotted.rpartition(".")
        if kind == "parameter" and _IDENTIFIER_PART.match(leaf):
            self.init.append(f"{self.tensor(dotted)} = {value}")
        else:
            owner = self.expression(parent) if parent else "self"
            self.init.append(f"{owner}.register_{kind}({literal(leaf)}, {value})")

    def ensure_parents(self, dotted: str) -> None:
        parts = dotted.split(".")
        for k in range(1, len(parts)):
            prefix = ".".join(parts[:k])
            if prefix not in self.created:
                self.created.add(prefix)
                container = "nn.ModuleDict()" if prefix in self.indexed else "nn.Module()"
                self.init.append(f"{self.expression(prefix)} = {container}")


def _call(
    names: _Names,
    layer: str,
    target: Callable[..., Any],
    inputs: Sequence[str],
    args: Sequence[Value],
    kwargs: Mapping[str, Value],
) -> str:
    shown = _shown(target, kwargs)
    parts = [*inputs, *(literal(a) for a in args), *(f"{k}={literal(v)}" for k, v in shown.items())]
    return f"{names.reference(target, layer)}({', '.join(parts)})"


def _owned_start(emit: Owned, values: Mapping[str, tuple[float, ...]]) -> str:
    """The tensor an owned parameter starts from: the spec's values, or a constant fill; a random init starts
    from zeros (the weights are loaded, or made by the torch backend with --save-weights)."""
    if "" in values:
        return f"torch.tensor({literal(values[''])}).reshape({literal(emit.shape)})"
    args = dict(emit.init.args)
    fill = {"ones": 1.0, "constant": args.get("value")}.get(emit.init.kind)
    fill = float(fill) if isinstance(fill, (int, float)) else 0.0
    return f"torch.full({literal(emit.shape)}, {literal(fill)})"


def render(graph: Graph, table: Mapping[str, Lowering], description: str = "") -> Rendered:
    """The source text of the module for `graph` (the caller has refused unsupported layers)."""
    import jinja2  # only when rendering

    emits: dict[str, Emit] = {}
    for node in graph.ops:
        emit = lower_node(table, node, graph.input_shapes(node))
        if isinstance(emit, nn.Module):
            raise ArchspecError(
                "AS803",
                f"layer {node.name!r}: the torch lowering of {node.op!r} returns a module "
                f"instance ({type(emit).__name__}), which the torch-source backend cannot write; the "
                "lowering should return archspec.backends.torch.lowering.Module(cls, args, kwargs)",
            )
        if not isinstance(emit, (Module, Call, Owned, Buffer, Tied)) and emit is not ALIAS:
            raise ArchspecError(
                "AS803",
                f"the torch lowering of {node.op!r} returned {type(emit).__name__}; "
                "it must return a Module, a Call, an Owned tensor, a Buffer, a Tied call or ALIAS",
            )
        emits[node.name] = emit
    owners = [
        name
        for name, emit in emits.items()
        if isinstance(emit, (Module, Owned, Buffer)) or (isinstance(emit, Tied) and _own_leaves(graph, name, emit))
    ]
    attributes = _Attributes(owners)
    names = _Names()
    for name in owners:
        problem = path_problem(name)
        if problem:
            raise ArchspecError("AS803", f"layer {name!r}: {problem}")
        emit = emits[name]
        node = graph.node(name)
        values = {tensor: init.values for tensor, init in node.init if init.kind == VALUES}
        frozen = "" if node.trainable else ", requires_grad=False"
        if isinstance(emit, Owned):
            attributes.register(name, "parameter", f"nn.Parameter({_owned_start(emit, values)}{frozen})")
            continue
        if isinstance(emit, Buffer):
            attributes.register(
                name,
                "buffer",
                f"torch.tensor({literal(emit.values)}, dtype=torch.{emit.dtype}).reshape({literal(emit.shape)})",
            )
            continue
        module = emit.own if isinstance(emit, Tied) else emit
        assert isinstance(module, Module)
        attributes.ensure_parents(name)
        target = attributes.expression(name)
        attributes.init.append(f"{target} = {_call(names, name, module.cls, (), module.args, module.kwargs)}")
        if isinstance(emit, Tied):  # the owner's tensor is used instead (Node.ties)
            attributes.init.extend(f"del {target}.{leaf}" for leaf, _ in node.ties)
        for tensor, numbers in values.items():  # a layer's init: values: are part of the network, so written here
            plain = path_problem(tensor) is None and not any(_INDEX_PART.match(p) for p in tensor.split("."))
            copied = f"{target}.{tensor}" if plain else f"{target}.get_parameter({literal(tensor)})"
            attributes.init.append(
                f"with torch.no_grad(): {copied}.copy_(torch.tensor({literal(numbers)}).reshape({copied}.shape))"
            )
        if frozen:
            attributes.init.append(f"{target}.requires_grad_(False)")
    forward, output = _forward(graph, emits, attributes, names)
    # The forward first checks the input's element type, with the torch backend's own function (codegen.py).
    title = class_name(graph.name, set(names.imports.values()))
    template = jinja2.Environment(
        loader=jinja2.PackageLoader("archspec.backends.torch_source", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    ).get_template("module.py.j2")
    text = template.render(
        spec_name=literal(graph.name),
        docstring=_docstring(description.strip() or f"The network {graph.name}."),
        input_shape=literal(tuple(graph.input.shape or ())),
        input_dtype=f"torch.{graph.input.dtype}",
        input_check=[
            f"x = {names.reference(check_input, graph.input.name)}(x, {graph.input.dtype == 'int64'}, SPEC_NAME)"
        ],
        class_name=title,
        imports=names.import_lines(),
        helpers=names.helper_sources(),
        init=attributes.init,
        forward=forward,
        output=output,
    )
    return Rendered(text, title)


def _own_leaves(graph: Graph, name: str, emit: Tied) -> list[str]:
    """The tensors of a tied layer that are its own (a tied head's bias): those its node does not tie."""
    tied = dict(graph.node(name).ties)
    return [leaf for leaf in emit.tensors if leaf not in tied]


def _docstring(text: str) -> list[str]:
    """The description as one literal per line, which Python joins into the class docstring."""
    lines = text.split("\n")
    return [literal(line + "\n") for line in lines[:-1]] + [literal(lines[-1])]


def _expression(graph: Graph, name: str, emit: Emit, inputs: list[str], attributes: _Attributes, names: _Names) -> str:
    """The right-hand side computing layer `name` from its inputs' variables."""
    if isinstance(emit, Module):
        return f"{attributes.expression(name)}({', '.join(inputs)})"
    if isinstance(emit, (Owned, Buffer)):
        tensor = attributes.tensor(name)
        if emit.target in INFIX and len(inputs) == 1 and not (isinstance(emit, Buffer) and emit.kwargs):
            return f"{tensor} {INFIX[emit.target]} {inputs[0]}"
        return _call(names, name, emit.target, [tensor, *inputs], (), emit.kwargs if isinstance(emit, Buffer) else {})
    if isinstance(emit, Tied):
        tied = dict(graph.node(name).ties)
        tensors = [
            attributes.tensor(tied[leaf]) if leaf in tied else attributes.tensor(f"{name}.{leaf}")
            for leaf in emit.tensors
        ]
        return _call(names, name, emit.target, [*inputs, *tensors], (), {})
    assert isinstance(emit, Call)
    if emit.target in INFIX and not emit.args and not emit.kwargs and not emit.listed:
        if len(inputs) <= FOLD_CHAIN_LIMIT:
            return f" {INFIX[emit.target]} ".join(inputs)
        names.modules.update(("functools", "operator"))
        return f"functools.reduce(operator.{emit.target.__name__}, [{', '.join(inputs)}])"
    listed = [f"[{', '.join(inputs)}]"] if emit.listed else inputs
    return _call(names, name, emit.target, listed, emit.args, emit.kwargs)


def _forward(graph: Graph, emits: Mapping[str, Emit], attributes: _Attributes, names: _Names) -> tuple[list[str], str]:
    """Statements of forward and the name it returns. A statement takes over the variable of an input that
    nothing reads any more (`x = self.bn1(x)`; `x` first), so chains read like hand-written code; values
    still needed later (shortcuts, branches) keep their own names."""
    for node in graph.ops:  # first every import the file makes, so that no local takes an imported name
        emit = emits[node.name]
        target = getattr(emit, "target", None)
        if target is not None and target not in INFIX:
            names.reference(target, node.name)
    local = Namespace(list(names.imports.values()))
    variable: dict[str, str] = {graph.input.name: "x"}
    bound: dict[str, list[str]] = {"x": [graph.input.name]}  # variable -> the values it has held
    unread = {node.name: set(graph.users(node.name)) for node in graph}
    statements: list[tuple[str, str]] = []
    for node in graph.ops:
        emit = emits[node.name]
        inputs = [variable[src] for src in node.inputs]
        for src in node.inputs:
            unread[src].discard(node.name)
        if emit is ALIAS:
            variable[node.name] = inputs[0]
            bound[inputs[0]].append(node.name)
            continue
        expression = _expression(graph, node.name, emit, inputs, attributes, names)
        free = [v for v in dict.fromkeys(inputs) if not any(unread[n] or n in graph.outputs for n in bound[v])]
        if free:
            reuse = "x" if "x" in free else free[0]  # keep the main path in x, as hand-written code does
        else:
            reuse = local.fresh(node.name)
            bound[reuse] = []
        variable[node.name] = reuse
        bound[reuse].append(node.name)
        statements.append((reuse, expression))
    lines = [f"{r} = {e}" for r, e in statements]
    results = [variable[o] for o in graph.outputs]
    return lines, results[0] if len(results) == 1 else f"({', '.join(results)})"
