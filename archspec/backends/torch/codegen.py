"""IR graph -> torch.fx GraphModule: a module whose forward is generated Python, as fast as a
hand-written one and traceable by torch.compile and torch.export.

Submodules sit at the IR's dotted layer names (`layer1.0.conv1`), so parameter names follow the spec.
fx's namespace turns names into identifiers that are never keywords, builtins or dunders, and the
generated code depends only on the IR, so it is deterministic (tests/golden holds examples).
"""

from __future__ import annotations

from collections.abc import Mapping
import re

import torch
from torch import fx, nn

from archspec.backends.torch.init import initialise, initialise_owned
from archspec.backends.torch.lowering import ALIAS, Buffer, Call, Lowering, Module, Owned, Tied
from archspec.backends.torch.sequence import check_input
from archspec.errors import ArchspecError
from archspec.ir import Graph, Node
from archspec.ops.elementwise import broadcast


def _module_path_clash(name: str) -> str | None:
    for part in name.split("."):
        if hasattr(nn.Module, part):
            return part
    return None


def generate(graph: Graph, table: Mapping[str, Lowering], class_name: str) -> fx.GraphModule:
    """Build the GraphModule for `graph` (weights initialised from torch's global RNG)."""
    fx_graph = fx.Graph()
    # The forward first checks the input's element type (token ids for an int64 input, floats otherwise), so a
    # wrong tensor is a TypeError that says so, not an error from inside the first layer.
    checked = fx_graph.create_node("call_function", check_input, (fx_graph.placeholder("x"), graph.input.dtype == "int64",
                                                                 graph.name), name="input_checked")
    values: dict[str, fx.Node] = {graph.input.name: checked}
    submodules: dict[str, nn.Module | nn.Parameter | torch.Tensor] = {}  # in graph order: containers are created in it
    for node in graph.ops:
        shapes = graph.input_shapes(node)
        try:
            emit = table[node.op](node, shapes)
        except ArchspecError:
            raise
        except Exception as exc:  # a lowering function's own bug: name the op, whose provider `archspec list` shows
            raise ArchspecError("AS805", f"the torch lowering of op {node.op!r} (layer {node.name!r}) raised "
                                f"{type(exc).__name__}: {exc}; this is a bug in the package providing {node.op!r} "
                                "(see `archspec list`)") from None
        inputs = [values[src] for src in node.inputs]
        label = node.name.replace(".", "_")
        if label == "self":  # the one identifier fx's namespace allows that forward's code needs itself
            label = "self_"
        if isinstance(emit, Module):  # the description is instantiated here, where the lowering used to make it
            emit = emit.make()
        if emit is ALIAS:
            values[node.name] = inputs[0]
        elif isinstance(emit, nn.Module):
            clash = _module_path_clash(node.name)
            if clash:
                raise ArchspecError("AS803", f"layer {node.name!r}: {clash!r} is an attribute of torch.nn.Module; rename the layer")
            if node.init:
                initialise(emit, node.name, node.init)
            if not node.trainable:
                emit.requires_grad_(False)
            submodules[node.name] = emit
            values[node.name] = fx_graph.create_node("call_module", node.name, tuple(inputs), {}, name=label)
        elif isinstance(emit, Owned):
            clash = _module_path_clash(node.name)
            if clash:
                raise ArchspecError("AS803", f"layer {node.name!r}: {clash!r} is an attribute of torch.nn.Module; rename the layer")
            owned = submodules[node.name] = nn.Parameter(emit.make(), requires_grad=node.trainable)
            if node.init:  # init: rules over the layer's own tensor (key "")
                initialise_owned(owned, node.name, node.init)
            tensor = fx_graph.create_node("get_attr", node.name, name=f"{label}_tensor")
            values[node.name] = fx_graph.create_node("call_function", emit.target, (tensor, *inputs), {}, name=label)
        elif isinstance(emit, Buffer):
            clash = _module_path_clash(node.name)
            if clash:
                raise ArchspecError("AS803", f"layer {node.name!r}: {clash!r} is an attribute of torch.nn.Module; rename the layer")
            submodules[node.name] = emit.value
            tensor = fx_graph.create_node("get_attr", node.name, name=f"{label}_buffer")
            values[node.name] = fx_graph.create_node("call_function", emit.target, (tensor, *inputs), dict(emit.kwargs),
                                                     name=label)
        elif isinstance(emit, Tied):
            clash = _module_path_clash(node.name)
            if clash:
                raise ArchspecError("AS803", f"layer {node.name!r}: {clash!r} is an attribute of torch.nn.Module; rename the layer")
            tied = dict(node.ties)
            own = emit.own.make()
            for leaf in tied:  # the owner's tensor is used instead (Node.ties)
                delattr(own, leaf)
            if any(True for _ in own.parameters()):
                if node.init:
                    initialise(own, node.name, node.init)
                if not node.trainable:
                    own.requires_grad_(False)
                submodules[node.name] = own
            tensors = [fx_graph.create_node("get_attr", tied.get(leaf, f"{node.name}.{leaf}"), name=f"{label}_{leaf}")
                       for leaf in emit.tensors]
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
            raise ArchspecError("AS803", f"the torch lowering of {node.op!r} returned {type(emit).__name__}; "
                                "it must return an nn.Module, a Call, an Owned tensor, a Buffer, a Tied call or ALIAS")
    results = tuple(values[o] for o in graph.outputs)
    fx_graph.output(results[0] if len(results) == 1 else results)
    root = nn.Module()
    for name, module in submodules.items():
        _attach(root, name, module)
    return fx.GraphModule(root, fx_graph, class_name=_class_name(class_name))


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
        result = fx_graph.create_node("call_function", target, (result, inputs[k]), dict(emit.kwargs),
                                      name=label if step == len(inputs) - 2 else f"{label}_part")
        shape, fresh = broadcast(None, [shape, shapes[k]]), True
    return result


def _accumulable(graph: Graph, node: Node, k: int) -> bool:
    """Whether input `k` of `node` may be overwritten with the result: fresh, read by `node` alone and
    only once, and already of the result's shape (an in-place op cannot grow a broadcast operand)."""
    name = node.inputs[k]
    return (_overwritable(graph, name) and node.inputs.count(name) == 1
            and graph.node(name).shape == node.shape)


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
