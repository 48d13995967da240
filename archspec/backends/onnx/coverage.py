"""What the ONNX backend compiles, per op: the ONNX operators it becomes at opset 18 (docs/backends.md).

The ONNX graph is made from the torch backend's module, so every op here also has a torch lowering;
this table says how each comes out in ONNX. "fallback" marks ops ONNX has no single operator for at
this opset: they are exported as a decomposition into basic operators (same outputs, more nodes).
"""

from __future__ import annotations

from collections.abc import Sequence

from archspec.backends.coverage import NATIVE, CoverageTable, Support
from archspec.ir import Node, Shape
from archspec.ops import spatial

OPSET = 18


def _native(operators: str) -> Support:
    return Support("native", operators)


def _adaptive(kind: str, operator: str) -> object:
    def rule(node: Node, shapes: Sequence[Shape]) -> Support:
        p: spatial.AdaptivePool2d = node.params  # type: ignore[assignment]
        size = spatial.pair(p.size)
        if size == (1, 1):
            return _native(f"Global{operator}")
        h, w = shapes[0][1:]
        if h % size[0] == 0 and w % size[1] == 0:
            return Support("fallback", f"{operator} with a fixed kernel (the input side divides the output side)")
        if kind == "max":
            return Support(
                "unsupported",
                f"adaptive max pooling from {h}x{w} to {size[0]}x{size[1]} has no ONNX "
                "form (the output side does not divide the input side); use a size that divides it",
            )
        return Support(
            "fallback",
            f"decomposed into GatherND and ReduceMean over uneven windows ({h}x{w} -> "
            f"{size[0]}x{size[1]}); fixed to this input size",
        )

    return rule


COVERAGE: CoverageTable = {
    "conv2d": _native("Conv"),
    "maxpool2d": _native("MaxPool"),
    "avgpool2d": _native("AveragePool"),
    "adaptive_avgpool2d": _adaptive("avg", "AveragePool"),  # type: ignore[dict-item]
    "adaptive_maxpool2d": _adaptive("max", "MaxPool"),  # type: ignore[dict-item]
    "lrn": _native("LRN"),
    "linear": _native("Gemm or MatMul + Add"),
    "self_attention": Support(
        "fallback",
        f"decomposed into MatMul, Softmax, Reshape and Transpose (no fused attention operator at opset {OPSET})",
    ),
    "class_token": _native("Expand + Concat"),
    "pos_embedding": _native("Add"),
    "batchnorm": _native("BatchNormalization (inference)"),
    "layernorm": _native("LayerNormalization (between two Transposes for an axis other than the last)"),
    "layer_scale": _native("Mul"),
    "relu": _native("Relu"),
    "relu6": _native("Clip"),
    "silu": Support("fallback", "x * Sigmoid(x) (no Swish operator at this opset)"),
    "sigmoid": _native("Sigmoid"),
    "tanh": _native("Tanh"),
    "hardswish": _native("HardSwish"),
    "hardsigmoid": _native("HardSigmoid"),
    "identity": _native("no operator"),
    "gelu": Support("fallback", f"Erf-based decomposition (Gelu is an operator from opset 20; this exports {OPSET})"),
    "softmax": _native("Softmax"),
    "dropout": _native("no operator (identity at inference)"),
    "drop_path": _native("no operator (identity at inference)"),
    "add": _native("Add"),
    "mul": _native("Mul"),
    "flatten": _native("Reshape"),
    "reshape": _native("Reshape"),
    "permute": _native("Transpose"),
    "transpose": _native("Transpose"),
    "concat": _native("Concat"),
    "mean": _native("ReduceMean"),
    "select": _native("Gather"),
    "pad": _native("Pad"),
    "interpolate": _native("Resize"),
    "upsample": _native("Resize"),
    "conv_transpose2d": _native("ConvTranspose"),
    "attention": Support("fallback", "MatMul, Mul, Add, Softmax (no fused attention operator at opset 18)"),
    "matmul": _native("MatMul"),
    "roll": Support("fallback", "two Slices and a Concat per axis (no Roll operator)"),
    "slice": _native("Slice"),
    "gather": _native("Gather (the index an initializer)"),
    "parameter": _native("Expand of an initializer"),
    "constant": _native("Expand of an initializer"),
    "sub": _native("Sub"),
    "abs": _native("Abs"),
    "exp": _native("Exp"),
    "clamp": _native("Clip"),
    "scale": _native("Mul"),
    "normalize": Support("fallback", "ReduceL2, Clip (the eps), Expand and Div (no normalize operator)"),
    "grid": _native("Range, Expand and Concat from the input's running Shape"),
    "grid_fill": _native("Expand of a constant to the input's running Shape"),
    "unflatten": _native("Reshape"),
    "reshape_as": _native("Reshape to the second input's running Shape"),
    "embedding": _native("Gather (the table an initializer)"),
    "rmsnorm": Support(
        "fallback",
        "Pow, ReduceMean, Add, Sqrt, Reciprocal and Mul (RMSNormalization is an operator "
        f"from opset 23; this exports {OPSET})",
    ),
    "groupnorm": Support("fallback", "Reshape, InstanceNormalization, Reshape, Mul and Add (the exporter's form)"),
    "rope": Support(
        "fallback",
        "Range, Mul, Cos, Sin, Slice, Neg, Concat and Add (RotaryEmbedding is an operator "
        f"from opset 23; this exports {OPSET})",
    ),
}
assert all(isinstance(v, Support) or callable(v) for v in COVERAGE.values())
NATIVE_OPS = frozenset(op for op, v in COVERAGE.items() if v is NATIVE)
