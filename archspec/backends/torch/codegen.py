"""IR graph -> torch.fx GraphModule: a module whose forward is generated Python, as fast as a
hand-written one and traceable by torch.compile and torch.export.

Submodules sit at the IR's dotted layer names (`layer1.0.conv1`), so parameter names follow the spec.
fx's namespace turns names into identifiers that are never keywords, builtins or dunders, and the
generated code depends only on the IR, so it is deterministic (tests/golden holds examples).
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
import functools
import re
import threading
import types
from typing import Any
import weakref

import torch
from torch import fx, nn

try:  # fx's registry of generated sources (a private name): without it, kept forwards are compiled again
    from torch.fx.graph_module import _loader
except ImportError:  # pragma: no cover - another torch
    _loader = None  # type: ignore[assignment]

from archspec.backends.torch.init import initialise, initialise_owned
from archspec.backends.torch.lowering import ALIAS, Buffer, Call, Lowering, Module, Owned, Tied, lower_node
from archspec.backends.torch.sequence import check_input
from archspec.errors import ArchspecError
from archspec.ir import Graph, Init, Node
from archspec.ops.elementwise import broadcast


@functools.lru_cache(maxsize=4096)
def _module_path_clash(name: str) -> str | None:
    # Cached: a build asks for every layer's name, and nn.Module's attributes do not change.
    for part in name.split("."):
        if hasattr(nn.Module, part):
            return part
    return None


# Classes whose constructor fills only their parameters in `reset_parameters` (no buffers, no other
# state): when a layer's init rules overwrite every parameter, that default fill (kaiming_uniform_ for
# a conv's or a linear's weight: most of the cost of making one) is wasted, so it is skipped.
_SKIPPABLE_RESET = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)
_NO_RESET: dict[type, type] = {}


def _make_module(emit: Module, inits: tuple[tuple[str, Init], ...] | None) -> nn.Module:
    """`emit.make()`, without PyTorch's default initialisation where `inits` overwrite every parameter.

    The module is made as a subclass whose reset_parameters does nothing and then given its own class
    back, so it is an ordinary instance of `emit.cls` with tensors from torch.empty, all of which the
    rules then fill. Where the rules leave a parameter to the default, reset_parameters runs after all:
    nothing drew from the RNG in between, so the values are those the constructor would have made.
    `inits` None: the tensors' values are not wanted at all (the meta device, weights taken from elsewhere)."""
    cls = emit.cls
    if cls not in _SKIPPABLE_RESET or not isinstance(cls, type):
        return emit.make()
    quiet = _NO_RESET.get(cls)
    if quiet is None:
        quiet = _NO_RESET[cls] = type(
            cls.__name__, (cls,), {"reset_parameters": lambda self: None, "__module__": cls.__module__}
        )
    module = quiet(*emit.args, **emit.kwargs)
    module.__class__ = cls
    if inits is None:
        return module
    covered = {tensor for tensor, init in inits if init.kind != "default"}
    if any(value is not None and name not in covered for name, value in module._parameters.items()):
        module.reset_parameters()
    return module


def generate(graph: Graph, table: Mapping[str, Lowering], class_name: str, *, fill: bool = True) -> fx.GraphModule:
    """Build the GraphModule for `graph` (weights initialised from torch's global RNG; with `fill` False,
    left as made, without init rules or PyTorch's default init: for a module on the meta device whose
    tensors come from another module, where filling them would be wasted work)."""
    fx_graph = fx.Graph()
    # The forward first checks the input's element type (token ids for an int64 input, floats otherwise), so a
    # wrong tensor is a TypeError that says so, not an error from inside the first layer.
    checked = fx_graph.create_node(
        "call_function",
        check_input,
        (fx_graph.placeholder("x"), graph.input.dtype == "int64", graph.name),
        name="input_checked",
    )
    values: dict[str, fx.Node] = {graph.input.name: checked}
    submodules: dict[str, nn.Module | nn.Parameter | torch.Tensor] = {}  # in graph order: containers are created in it
    for node in graph.ops:
        shapes = graph.input_shapes(node)
        emit = lower_node(table, node, shapes)
        inputs = [values[src] for src in node.inputs]
        label = node.name.replace(".", "_")
        if label == "self":  # the one identifier fx's namespace allows that forward's code needs itself
            label = "self_"
        if isinstance(emit, Module):  # the description is instantiated here, where the lowering used to make it
            emit = _make_module(emit, node.init if fill else None)
        if emit is ALIAS:
            values[node.name] = inputs[0]
        elif isinstance(emit, nn.Module):
            clash = _module_path_clash(node.name)
            if clash:
                raise ArchspecError(
                    "AS803", f"layer {node.name!r}: {clash!r} is an attribute of torch.nn.Module; rename the layer"
                )
            if node.init and fill:
                initialise(emit, node.name, node.init)
            if not node.trainable:
                emit.requires_grad_(False)
            submodules[node.name] = emit
            values[node.name] = fx_graph.create_node("call_module", node.name, tuple(inputs), {}, name=label)
        elif isinstance(emit, Owned):
            clash = _module_path_clash(node.name)
            if clash:
                raise ArchspecError(
                    "AS803", f"layer {node.name!r}: {clash!r} is an attribute of torch.nn.Module; rename the layer"
                )
            owned = submodules[node.name] = nn.Parameter(emit.make(), requires_grad=node.trainable)
            if node.init and fill:  # init: rules over the layer's own tensor (key "")
                initialise_owned(owned, node.name, node.init)
            tensor = fx_graph.create_node("get_attr", node.name, name=f"{label}_tensor")
            values[node.name] = fx_graph.create_node("call_function", emit.target, (tensor, *inputs), {}, name=label)
        elif isinstance(emit, Buffer):
            clash = _module_path_clash(node.name)
            if clash:
                raise ArchspecError(
                    "AS803", f"layer {node.name!r}: {clash!r} is an attribute of torch.nn.Module; rename the layer"
                )
            submodules[node.name] = emit.value
            tensor = fx_graph.create_node("get_attr", node.name, name=f"{label}_buffer")
            values[node.name] = fx_graph.create_node(
                "call_function", emit.target, (tensor, *inputs), dict(emit.kwargs), name=label
            )
        elif isinstance(emit, Tied):
            clash = _module_path_clash(node.name)
            if clash:
                raise ArchspecError(
                    "AS803", f"layer {node.name!r}: {clash!r} is an attribute of torch.nn.Module; rename the layer"
                )
            tied = dict(node.ties)
            own = emit.own.make()
            for leaf in tied:  # the owner's tensor is used instead (Node.ties)
                delattr(own, leaf)
            if any(True for _ in own.parameters()):
                if node.init and fill:
                    initialise(own, node.name, node.init)
                if not node.trainable:
                    own.requires_grad_(False)
                submodules[node.name] = own
            tensors = [
                fx_graph.create_node("get_attr", tied.get(leaf, f"{node.name}.{leaf}"), name=f"{label}_{leaf}")
                for leaf in emit.tensors
            ]
            values[node.name] = fx_graph.create_node("call_function", emit.target, (*inputs, *tensors), {}, name=label)
        elif isinstance(emit, Call):
            if emit.fold:
                values[node.name] = _fold(fx_graph, graph, node, emit, inputs, label)
            else:
                args = ((inputs,) if emit.listed else tuple(inputs)) + tuple(emit.args)
                kwargs = dict(emit.kwargs)
                if emit.inplace_ok and _overwritable(graph, node.inputs[0]):
                    kwargs["inplace"] = True
                values[node.name] = fx_graph.create_node("call_function", emit.target, args, kwargs, name=label)
        else:
            raise ArchspecError(
                "AS803",
                f"the torch lowering of {node.op!r} returned {type(emit).__name__}; "
                "it must return an nn.Module, a Call, an Owned tensor, a Buffer, a Tied call or ALIAS",
            )
    results = tuple(values[o] for o in graph.outputs)
    fx_graph.output(results[0] if len(results) == 1 else results)
    root = nn.Module()
    for name, module in submodules.items():
        _attach(root, name, module)
    return _graph_module(root, fx_graph, _class_name(class_name), graph)


# The forward per IR graph, for the next build of the same compiled spec (archspec.build reuses it, see
# pipeline._compiled_for_build): fx writes the forward's source from the fx graph and compiles it each time,
# a sixth of making a DenseNet. Used only if the new fx graph is the same, node for node (op, name, target,
# arguments), so a lowering that gives something else the second time (a plugin's) gets its own code.
_CODE: dict[int, tuple[weakref.ref[Graph], tuple[object, ...], dict[str, Any], Any, Any]] = {}
_CODE_ENTRIES = 16
_CODE_LOCK = threading.Lock()
# What fx compiles in place of the kept source (a few microseconds); the kept function replaces it at once.
_STAND_IN = "\n\ndef forward(self, *args, **kwargs):\n    raise AssertionError('archspec: forward not installed')\n"


def _graph_module(root: nn.Module, fx_graph: fx.Graph, class_name: str, graph: Graph) -> fx.GraphModule:
    shape = _fx_shape(fx_graph)
    entry = _CODE.get(id(graph))
    if entry is not None and entry[0]() is graph and entry[1] == shape:
        wanted, code, forward = entry[2], entry[3], entry[4]
        given = dataclasses.replace(code, src=_STAND_IN) if forward is not None else code

        def python_code(*args: Any, **kwargs: Any) -> Any:
            if args or kwargs != wanted:
                return fx.Graph.python_code(fx_graph, *args, **kwargs)
            return given

        fx_graph.python_code = python_code  # type: ignore[method-assign]  # for fx's recompile, just below
        try:
            module = fx.GraphModule(root, fx_graph, class_name=class_name)
        finally:
            del fx_graph.python_code  # the graph's own method again, for any later edit and recompile
        if forward is not None and module._code == _STAND_IN:
            _install(module, code, forward)
        return module
    seen: list[tuple[dict[str, Any], Any]] = []
    real = fx_graph.python_code

    def recorded(*args: Any, **kwargs: Any) -> Any:
        code = real(*args, **kwargs)
        if not args:
            seen.append((kwargs, code))
        return code

    fx_graph.python_code = recorded  # type: ignore[method-assign]
    try:
        module = fx.GraphModule(root, fx_graph, class_name=class_name)
    finally:
        del fx_graph.python_code
    if len(seen) == 1:
        forward = type(module).__dict__.get("forward")
        if not (_loader is not None and module._code == seen[0][1].src and isinstance(forward, types.FunctionType)):
            forward = None  # fx changed what it does: its source is still kept
        with _CODE_LOCK:  # builds in several threads
            while len(_CODE) >= _CODE_ENTRIES:
                _CODE.pop(next(iter(_CODE)), None)
            _CODE[id(graph)] = (weakref.ref(graph), shape, seen[0][0], seen[0][1], forward)
    return module


def _install(module: fx.GraphModule, code: Any, forward: types.FunctionType) -> None:
    """Give `module` the forward compiled from `code` for an earlier module, as fx's recompile would have:
    a function of its own, whose code object is a copy under a file name of its own that fx's loader
    maps to the source (tracebacks and fx's error messages show the generated lines; torch.compile
    sees a code object per module, as with fx's own compile)."""
    assert _loader is not None
    key = _loader.cache(code.src, code.globals)
    function = types.FunctionType(
        forward.__code__.replace(co_filename=key),
        dict(forward.__globals__),
        forward.__name__,
        forward.__defaults__,
        forward.__closure__,
    )
    function.__kwdefaults__ = forward.__kwdefaults__
    type(module).forward = function  # the module's own class (fx makes one per module)
    module._code = code.src
    module._lineno_map = code._lineno_map
    module._prologue_start = code._prologue_start


def _fx_shape(fx_graph: fx.Graph) -> tuple[object, ...]:
    """What the generated code is made from: each node's op, name, target and arguments (other nodes by name)."""
    name = _node_name
    return tuple(
        (n.op, n.name, n.target, fx.node.map_arg(n.args, name), fx.node.map_arg(n.kwargs, name)) for n in fx_graph.nodes
    )


def _node_name(node: fx.Node) -> str:
    return node.name


# Ops whose output is a fresh tensor that their backward does not read: an activation or a residual add
# may overwrite it in place (as torchvision's ReLU(inplace=True) and `out += identity` do), saving a copy.
FRESH_OUTPUT = frozenset({"conv2d", "batchnorm", "linear", "layernorm", "add"})


def _overwritable(graph: Graph, name: str) -> bool:
    """Whether the value of node `name` may be overwritten by its one reader."""
    node = graph.node(name)
    return node.op in FRESH_OUTPUT and len(graph.users(name)) == 1 and name not in graph.outputs


def _fold(fx_graph: fx.Graph, graph: Graph, node: Node, emit: Call, inputs: list[fx.Node], label: str) -> fx.Node:
    """Combine the inputs pairwise, left to right. With `emit.accumulate` (add), the running value is
    updated in place (`a += b`, as torchvision writes `out += identity`) whenever it is a fresh tensor
    of the output's full shape that nothing else reads: the first input if it is overwritable, else the
    second of two (addition commutes exactly), and every partial result after the first step."""
    order = list(range(len(inputs)))
    fresh = False
    if emit.accumulate is not None:
        for k in order[:1] if len(inputs) > 2 else order:
            if _accumulable(graph, node, k):
                order.insert(0, order.pop(k))
                fresh = True
                break
    shapes = graph.input_shapes(node)
    result, shape = inputs[order[0]], shapes[order[0]]
    for step, k in enumerate(order[1:]):
        target = emit.accumulate if emit.accumulate is not None and fresh and shape == node.shape else emit.target
        result = fx_graph.create_node(
            "call_function",
            target,
            (result, inputs[k]),
            dict(emit.kwargs),
            name=label if step == len(inputs) - 2 else f"{label}_part",
        )
        shape, fresh = broadcast(None, [shape, shapes[k]]), True
    return result


def _accumulable(graph: Graph, node: Node, k: int) -> bool:
    """Whether input `k` of `node` may be overwritten with the result: fresh, read by `node` alone and
    only once, and already of the result's shape (an in-place op cannot grow a broadcast operand)."""
    name = node.inputs[k]
    return _overwritable(graph, name) and node.inputs.count(name) == 1 and graph.node(name).shape == node.shape


def _attach(root: nn.Module, dotted: str, member: nn.Module | nn.Parameter | torch.Tensor) -> None:
    *parents, leaf = dotted.split(".")
    current = root
    for part in parents:
        if not hasattr(current, part):
            current.add_module(part, nn.Module())
        current = getattr(current, part)
    if isinstance(member, nn.Parameter):
        current.register_parameter(leaf, member)
    elif isinstance(member, torch.Tensor):
        current.register_buffer(leaf, member)
    else:
        current.add_module(leaf, member)


def _class_name(name: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", name)
    camel = "".join(w[:1].upper() + w[1:] for w in words if w)
    return camel if camel and camel[0].isalpha() else f"Net{camel}"
