"""IR graph -> the text of a standalone PyTorch file, through jinja2 templates that only loop and substitute.

Everything that reaches the file is either fixed template text, an identifier from `Namespace` (never a
keyword, soft keyword, builtin, dunder or a name the file itself uses), or a literal written by `literal`
(`ascii()` of the value: quotes, newlines, U+2028, bidi controls and every other non-ASCII character are
escapes). Spec text (the name, the description) enters only as such literals, so no spec can inject code.
Layer attribute paths are checked part by part before use. The output depends only on the graph, so it
is deterministic (tests/golden holds examples).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
import keyword
import re

from archspec.backends.torch_source.lowering import ALIAS, Buffer, Call, Emit, Infix, Lowering, Module, Owned, Tied, Value
from archspec.errors import ArchspecError
from archspec.ir import VALUES, Graph, Node

# Names the generated file binds itself, beside Python's own.
FILE_NAMES = frozenset({"self", "x", "torch", "nn", "F", "annotations", "SPEC_NAME", "INPUT_SHAPE", "INPUT_DTYPE",
                        "SelfAttention", "ClassToken", "PosEmbedding", "DropPath",
                        "AxisLayerNorm", "Attention", "RMSNorm", "Rotary"})
RESERVED = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins)) | FILE_NAMES
_IDENTIFIER_PART = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_INDEX_PART = re.compile(r"^[0-9]+$")
# Attributes an nn.Module already has: a submodule of that name would shadow or break them.
MODULE_ATTRIBUTES = frozenset(dir(object)) | frozenset({
    "training", "forward", "eval", "train", "parameters", "buffers", "children", "modules", "state_dict", "to",
    "cuda", "cpu", "type", "float", "double", "half", "bfloat16", "apply", "register_buffer", "register_parameter",
    "add_module", "get_submodule", "named_parameters", "named_buffers", "named_children", "named_modules",
    "load_state_dict", "zero_grad", "requires_grad_", "extra_repr", "dump_patches", "call_super_init"})


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


def class_name(text: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", text)
    camel = "".join(w[:1].upper() + w[1:] for w in words if w)
    if not camel or not camel[0].isalpha():
        camel = f"Net{camel}"
    return camel if camel not in RESERVED else f"{camel}Net"


def literal(value: Value) -> str:
    """A Python literal for a value from an op's typed parameters (or a spec string): ASCII only."""
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
    if isinstance(value, tuple):
        items = ", ".join(literal(v) for v in value)
        return f"({items},)" if len(value) == 1 else f"({items})"
    raise ArchspecError("AS803", f"the torch-source backend cannot write a {type(value).__name__} as a literal")


def path_problem(name: str) -> str | None:
    """Why a layer's dotted name cannot be a submodule path in the generated class (None: it can)."""
    for part in name.split("."):
        if _INDEX_PART.match(part):
            continue
        if not _IDENTIFIER_PART.match(part) or keyword.iskeyword(part):
            return f"{part!r} is not an identifier"
        if part in MODULE_ATTRIBUTES:
            return f"{part!r} is an attribute of torch.nn.Module; rename the layer"
    return None


def _arguments(inputs: Sequence[str], args: Sequence[Value], kwargs: Mapping[str, Value]) -> str:
    return ", ".join([*inputs, *(literal(a) for a in args), *(f"{k}={literal(v)}" for k, v in kwargs.items())])


@dataclass(frozen=True)
class Rendered:
    text: str
    class_name: str


class _Attributes:
    """Submodule paths -> Python expressions on `self`, creating containers in __init__ as needed.
    A container with numbered children (repeats) is an nn.ModuleDict, read with ["0"]; others are plain
    nn.Module attributes. Parameter names follow the layer names (`layer1.0.conv1.weight`), as in the
    torch backend, so one state dict fits both."""

    def __init__(self, graph: Graph, modules: Sequence[str]) -> None:
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

    def ensure_parents(self, dotted: str) -> None:
        parts = dotted.split(".")
        for k in range(1, len(parts)):
            prefix = ".".join(parts[:k])
            if prefix not in self.created:
                self.created.add(prefix)
                container = "nn.ModuleDict()" if prefix in self.indexed else "nn.Module()"
                self.init.append(f"{self.expression(prefix)} = {container}")


def render(graph: Graph, table: Mapping[str, Lowering], description: str = "") -> Rendered:
    """The source text of the module for `graph` (the caller has refused unsupported layers)."""
    import jinja2  # only when rendering

    emits: dict[str, Emit] = {}
    for node in graph.ops:
        emit = table[node.op](node, graph.input_shapes(node))
        if not isinstance(emit, (Module, Call, Infix, Owned, Buffer, Tied)) and emit is not ALIAS:
            raise ArchspecError("AS803", f"the torch-source lowering of {node.op!r} returned {type(emit).__name__}; "
                                "it must return a Module, a Call, an Infix, an Owned tensor, a Buffer, a Tied call or ALIAS")
        emits[node.name] = emit
    modules = [name for name, emit in emits.items() if isinstance(emit, (Module, Owned, Buffer))
               or (isinstance(emit, Tied) and emit.own)]
    attributes = _Attributes(graph, modules)
    helpers: list[str] = []
    for name in modules:
        problem = path_problem(name)
        if problem:
            raise ArchspecError("AS803", f"layer {name!r}: {problem}")
        module = emits[name]
        attributes.ensure_parents(name)
        node = graph.node(name)
        values = {tensor: init.values for tensor, init in node.init if init.kind == VALUES}
        frozen = "" if node.trainable else ", requires_grad=False"
        if isinstance(module, Tied):  # its own tensors (a tied head's bias) at the layer's path; the tied one is its owner's
            for leaf, shape in module.own.items():
                attributes.ensure_parents(f"{name}.{leaf}")
                attributes.init.append(f"{attributes.expression(name)}.{leaf} = nn.Parameter(torch.zeros({literal(shape)}){frozen})")
            continue
        if isinstance(module, Owned):
            start = (f"torch.tensor({literal(values[''])}).reshape({literal(module.shape)})" if "" in values
                     else f"torch.full({literal(module.shape)}, {literal(module.fill)})")
            attributes.init.append(f"{attributes.expression(name)} = nn.Parameter({start}{frozen})")
            continue
        if isinstance(module, Buffer):
            parent, _, leaf = name.rpartition(".")
            owner = attributes.expression(parent) if parent else "self"
            attributes.init.append(f"{owner}.register_buffer({literal(leaf)}, torch.tensor({literal(module.values)}, "
                                   f"dtype=torch.{module.dtype}).reshape({literal(module.shape)}))")
            continue
        assert isinstance(module, Module)
        attributes.init.append(f"{attributes.expression(name)} = {module.constructor}("
                               f"{_arguments((), module.args, module.kwargs)})")
        for tensor, numbers in values.items():  # a layer's init: values: are part of the network, so written here
            plain = path_problem(tensor) is None and not any(_INDEX_PART.match(p) for p in tensor.split("."))
            target = (f"{attributes.expression(name)}.{tensor}" if plain
                      else f"{attributes.expression(name)}.get_parameter({literal(tensor)})")
            attributes.init.append(f"with torch.no_grad(): {target}.copy_(torch.tensor({literal(numbers)})"
                                   f".reshape({target}.shape))")
        if frozen:
            attributes.init.append(f"{attributes.expression(name)}.requires_grad_(False)")
        if module.helper and module.helper not in helpers:
            helpers.append(module.helper)
    forward = _forward(graph, emits, attributes)
    title = class_name(graph.name)
    template = jinja2.Environment(
        loader=jinja2.PackageLoader("archspec.backends.torch_source", "templates"),
        undefined=jinja2.StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True,
    ).get_template("module.py.j2")
    text = template.render(
        spec_name=literal(graph.name), docstring=_docstring(description.strip() or f"The network {graph.name}."),
        input_shape=literal(tuple(graph.input.shape or ())), input_dtype=f"torch.{graph.input.dtype}",
        input_check=_input_check(graph.input.dtype == "int64"), class_name=title,
        helpers=[f"helpers/{h}.py.j2" for h in sorted(helpers)], init=attributes.init, forward=forward[0],
        output=forward[1],
    )
    return Rendered(text, title)


def _input_check(integer: bool) -> list[str]:
    """The first lines of forward: the input's element type fits the spec (the torch backend's check_input)."""
    if integer:
        return ["if x.dtype not in (torch.int64, torch.int32):",
                "    raise TypeError(f'the network {SPEC_NAME!r} takes integer token ids (int64) of shape [batch, ...]; '",
                "                    f'got a tensor of dtype {x.dtype}')"]
    return ["if not x.is_floating_point():",
            "    raise TypeError(f'the network {SPEC_NAME!r} takes floating-point input; got a tensor of dtype {x.dtype}')"]


def _docstring(text: str) -> list[str]:
    """The description as one literal per line, which Python joins into the class docstring."""
    lines = text.split("\n")
    return [literal(line + "\n") for line in lines[:-1]] + [literal(lines[-1])]


def _forward(graph: Graph, emits: Mapping[str, Emit], attributes: _Attributes) -> tuple[list[str], str]:
    """Statements of forward and the name it returns. A statement takes over the variable of an input that
    nothing reads any more (`x = self.bn1(x)`; `x` first), so chains read like hand-written code; values
    still needed later (shortcuts, branches) keep their own names."""
    names = Namespace()
    variable: dict[str, str] = {graph.input.name: "x"}
    bound: dict[str, list[str]] = {"x": [graph.input.name]}  # variable -> the values it has held
    unread = {node.name: set(graph.users(node.name)) for node in graph}
    lines: list[str] = []
    for node in graph.ops:
        emit = emits[node.name]
        inputs = [variable[src] for src in node.inputs]
        for src in node.inputs:
            unread[src].discard(node.name)
        if emit is ALIAS:
            variable[node.name] = inputs[0]
            bound[inputs[0]].append(node.name)
            continue
        if isinstance(emit, Module):
            expression = f"{attributes.expression(node.name)}({', '.join(inputs)})"
        elif isinstance(emit, Infix):
            expression = f" {emit.operator} ".join(inputs)
        elif isinstance(emit, Owned) and emit.form is None:
            expression = f"{attributes.expression(node.name)} {emit.operator} {inputs[0]}"
        elif isinstance(emit, (Owned, Buffer)):
            assert emit.form is not None
            expression = emit.form.format(tensor=attributes.expression(node.name), input=inputs[0])
        elif isinstance(emit, Tied):
            tied = dict(node.ties)
            tensors = [(attributes.expression(tied[leaf].rpartition(".")[0]) + "." + tied[leaf].rpartition(".")[2])
                       if leaf in tied else f"{attributes.expression(node.name)}.{leaf}" for leaf in emit.tensors]
            expression = f"{emit.function}({', '.join([*inputs, *tensors])})"
        else:
            assert isinstance(emit, Call)
            listed = [f"[{', '.join(inputs)}]"] if emit.listed else inputs
            expression = f"{emit.function}({_arguments(listed, emit.args, emit.kwargs)})"
        free = [v for v in dict.fromkeys(inputs) if not any(unread[n] or n in graph.outputs for n in bound[v])]
        if free:
            reuse = "x" if "x" in free else free[0]  # keep the main path in x, as hand-written code does
        else:
            reuse = names.fresh(node.name)
            bound[reuse] = []
        variable[node.name] = reuse
        bound[reuse].append(node.name)
        lines.append(f"{reuse} = {expression}")
    results = [variable[o] for o in graph.outputs]
    return lines, results[0] if len(results) == 1 else f"({', '.join(results)})"
