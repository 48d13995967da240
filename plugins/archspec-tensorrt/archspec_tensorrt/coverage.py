"""What the tensorrt backend compiles, per op, from torch-tensorrt 2.14's converter registry
(torch_tensorrt/dynamo/conversion/aten_ops_converters.py) and its lowering decompositions. An aten op
without a converter runs in PyTorch between TensorRT engines: a fallback. Never run on a GPU here."""

from __future__ import annotations

from archspec.backends.coverage import CoverageTable, Support

NATIVE = Support("native", "TensorRT converter")
GONE = Support("native", "no layer (identity at inference)")

COVERAGE: CoverageTable = {
    **{
        op: NATIVE
        for op in (
            "conv2d",
            "maxpool2d",
            "avgpool2d",
            "adaptive_avgpool2d",
            "linear",
            "class_token",
            "pos_embedding",
            "batchnorm",
            "layernorm",
            "relu",
            "relu6",
            "sigmoid",
            "tanh",
            "hardsigmoid",
            "gelu",
            "softmax",
            "add",
            "mul",
            "flatten",
            "reshape",
            "permute",
            "transpose",
            "concat",
            "mean",
            "select",
            "layer_scale",
            "pad",
            "matmul",
            "slice",
            "gather",
            "parameter",
            "constant",
            "sub",
            "abs",
            "exp",
            "clamp",
            "scale",
            "unflatten",
            "reshape_as",
        )
    },
    "grid": Support("native", "TensorRT converters of arange, expand, stack and cat (sizes from the input's shape)"),
    "grid_fill": Support("native", "TensorRT converters of full and cat (sizes from the input's shape)"),
    "attention": Support("native", "matmul, softmax and elementwise converters (written out, not a fused kernel)"),
    "roll": Support("native", "TensorRT converter (aten.roll)"),
    "normalize": Support(
        "native", "TensorRT converters of its aten decomposition (linalg_vector_norm, clamp_min, div)"
    ),
    "self_attention": Support("native", "TensorRT attention converter (scaled_dot_product_attention)"),
    "silu": Support("fallback", "decomposed into sigmoid and mul by torch-tensorrt's lowering"),
    "hardswish": Support("fallback", "decomposed into clamp, add, mul by torch-tensorrt's lowering"),
    "lrn": Support("fallback", "decomposed into pow, avg_pool3d and div (no LRN converter)"),
    "adaptive_maxpool2d": Support(
        "fallback", "runs in PyTorch between engines (no converter for aten.adaptive_max_pool2d)"
    ),
    **{
        op: Support("native", "TensorRT resize converter (aten.upsample_nearest2d / upsample_bilinear2d)")
        for op in ("interpolate", "upsample")
    },
    "conv_transpose2d": Support("native", "TensorRT deconvolution converter"),
    "embedding": Support("native", "TensorRT converter (aten.embedding: a gather)"),
    "groupnorm": Support("native", "TensorRT converter (aten.native_group_norm)"),
    "rmsnorm": Support("native", "TensorRT converters of its steps (pow, mean, rsqrt, mul)"),
    "rope": Support("native", "TensorRT converters of its steps (arange, mul, cos, sin, slice, neg, cat)"),
    **{op: GONE for op in ("identity", "dropout", "drop_path")},
}
