"""The built-in ops, registered through the `archspec.plugins` entry-point group like any plugin."""

from archspec.ops import (
    attention,
    constants,
    dense,
    elementwise,
    indexing,
    norm,
    pointwise,
    resample,
    runtime,
    sequence,
    spatial,
    tensor,
)
from archspec.ops.base import Plugin

PLUGIN = Plugin(
    ops=[
        *spatial.OPS,
        *dense.OPS,
        *norm.OPS,
        *elementwise.OPS,
        *tensor.OPS,
        *resample.OPS,
        *attention.OPS,
        *indexing.OPS,
        *constants.OPS,
        *pointwise.OPS,
        *runtime.OPS,
        *sequence.OPS,
    ]
)
