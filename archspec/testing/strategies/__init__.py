"""Hypothesis strategies that generate archspec specs, for property-based tests.

    facts     what a generated spec must compile to (SpecFacts), torch's size formulas written out
    writer    LayerWriter: bookkeeping of names, shapes and counts, and single layers
    stages    StageWriter: one method per stage kind (residual, concat, transformer, decoder, windows, ...)
    valid     valid_specs(): a random input, a list of stages, a head
    invalid   invalid_specs(): mutations of valid specs (MUTATIONS), with the codes they must raise

    from hypothesis import given
    from archspec.testing.strategies import invalid_specs, valid_specs

    @given(valid_specs())
    def test_compiles(case):
        text, facts = case              # YAML text, and the figures it must compile to
        ...

    @given(invalid_specs())
    def test_rejected(case):
        ...                             # case.text must fail with one of case.codes, at case.line

`valid_specs()` draws full specs that are valid by construction, on a random [C, H, W] input (C 1-8,
H and W 8-40): convolutions (kernel 1-5, stride 1-3, padding 0-2 or `same`, dilation 1-2, groups,
bias, square or per-axis), batch norm, activations, max/average pooling (ceil_mode, padding),
dropout, residual blocks (a `blocks:` entry applied with `repeat:`, its projection shortcut under
`if:`), inline residuals (`add` of two or three inputs), concat branches, squeeze-excite gating (`mul`
with broadcasting), layers switched off with `if:` or `repeat: 0`, then flatten and dense layers
(linear, layer norm), sometimes on a token-shaped [C, H*W] tensor, or after a global mean, or after a
small transformer: tokens by flatten/reshape and transpose/permute, a linear embedding, class token,
position embedding, pre-norm encoder blocks (self_attention, drop_path, an MLP sized by `in_shape`),
then select or mean. Also lrn, identity, softmax, adaptive max pooling, layer scale and layer norm
over any axis of a feature map, constant padding of every axis, and more activations, some
named like Python builtins. Decoder-style upsampling: conv_transpose2d (stride, padding, output
padding, dilation, groups), interpolate / upsample (nearest, nearest-exact, bilinear; by a scale or to
a size), and U-Net decoder levels: a block with two named inputs (`inputs: [x, skip]`) applied with
`from: [below, skip]`, which upsamples the level below to the skip's size (a transposed convolution,
a scale of 2, or interpolation to its second input's size), concatenates and convolves. Integer arguments are sometimes written as expressions of the spec's
parameters. Shapes are tracked while drawing, so no layer gets an empty output. The expected shapes, parameter and MAC counts in `SpecFacts` are computed here with
torch's formulas, written out independently of archspec's ops, so they check the core rather than
restate it.

`invalid_specs()` draws specs that must be rejected: mutations of valid specs, each with the error
codes one of the reported errors must have and, where it is unambiguous, the line it must point at.
`MUTATIONS` lists the kinds; `invalid_specs(kinds=...)` restricts the draw to some of them.

This package is for tests only: it imports hypothesis (a dev dependency, `pip install archspec[dev]`)
at module top. It never imports torch; of archspec it reads only the names of ops, op arguments and
expression functions (to make near misses that are not real names).
"""

from archspec.testing.strategies.facts import (
    InvalidSpec,
    SpecFacts,
    conv_output,
    conv_transpose_output,
    dump,
    pool_output,
)
from archspec.testing.strategies.invalid import MUTATIONS, invalid_specs
from archspec.testing.strategies.valid import STAGES, valid_specs

__all__ = [
    "MUTATIONS",
    "STAGES",
    "InvalidSpec",
    "SpecFacts",
    "conv_output",
    "conv_transpose_output",
    "dump",
    "invalid_specs",
    "pool_output",
    "valid_specs",
]
