"""What the aoti backend compiles, per op. Inductor lowers every aten op the torch backend emits: matrix
products and convolutions call library kernels (oneDNN / cuBLAS, cuDNN), the rest becomes generated,
fused C++ or Triton code."""

from __future__ import annotations

from archspec.backends.coverage import CoverageTable, Support

LIBRARY = Support("native", "library kernel (oneDNN on CPU, cuDNN/cuBLAS on CUDA)")
FUSED = Support("native", "generated code, fused with its neighbours")
GONE = Support("native", "no code (identity at inference)")

COVERAGE: CoverageTable = {
    **{op: LIBRARY for op in ("conv2d", "linear", "self_attention", "conv_transpose2d", "attention", "matmul")},
    **{
        op: FUSED
        for op in (
            "maxpool2d",
            "avgpool2d",
            "adaptive_avgpool2d",
            "adaptive_maxpool2d",
            "lrn",
            "class_token",
            "pos_embedding",
            "batchnorm",
            "layernorm",
            "relu",
            "relu6",
            "silu",
            "sigmoid",
            "tanh",
            "hardswish",
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
            "interpolate",
            "upsample",
            "roll",
            "slice",
            "gather",
            "parameter",
            "constant",
            "sub",
            "abs",
            "exp",
            "clamp",
            "scale",
            "normalize",
            "grid",
            "grid_fill",
            "unflatten",
            "reshape_as",
            "embedding",
            "rmsnorm",
            "groupnorm",
            "rope",
        )
    },
    **{op: GONE for op in ("identity", "dropout", "drop_path")},
}
