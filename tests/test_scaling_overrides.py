"""Non-default settings stay consistent: random `--set` overrides of every family spec in specs/families/
(num_classes, resolution, phi, widths, depths: whatever each family declares, within small bounds) give
summary figures equal to those measured on the built module.

Measured on the module: the parameter count from module.parameters(), the output shape from a forward
pass, and the MACs from torch.utils.flop_counter.FlopCounterMode (total / 2). On the CPU, a ViT's
attention products run in a fused kernel the counter does not see, so 2 * L * T^2 * D is added (the
convention of docs/spec-format.md); on the meta device they run as matrix products, which it counts. The
modules are built and run on the meta device (torch's shape-checking kernels, no memory, no arithmetic),
so even a compound-scaled EfficientNet at its own resolution is cheap; networks under 20M MACs also run
one real forward pass on the CPU. Two examples per family by default, 25 with --exhaustive.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import archspec
from reference import SPECS

FAMILIES = sorted((SPECS / "families").glob("*.yaml"))
CPU_FORWARD_MACS = 20 * 10**6
classes = st.integers(1, 16)
small = st.integers(1, 8)


def _vgg_cfg() -> st.SearchStrategy[list[Any]]:
    stage = st.tuples(small, st.integers(1, 2)).map(lambda t: [t[0]] * t[1] + ["M"])
    return st.lists(stage, min_size=1, max_size=5).map(lambda stages: [x for s in stages for x in s])


def _vit() -> st.SearchStrategy[dict[str, Any]]:
    def make(patch: int, grid: int, heads: int, head_dim: int, **rest: Any) -> dict[str, Any]:
        return {
            "patch_size": patch,
            "resolution": patch * grid,
            "num_heads": heads,
            "hidden_dim": heads * head_dim,
            **rest,
        }

    return st.builds(
        make,
        patch=st.sampled_from([4, 8, 16]),
        grid=st.integers(1, 3),
        heads=st.integers(1, 2),
        head_dim=st.sampled_from([2, 4, 8]),
        num_layers=st.integers(0, 2),
        mlp_dim=st.integers(1, 16),
        num_classes=classes,
        representation_size=st.none() | st.integers(1, 8),
    )


def _mixer() -> st.SearchStrategy[dict[str, Any]]:
    def make(patch: int, grid: int, **rest: Any) -> dict[str, Any]:
        return {"patch_size": patch, "resolution": patch * grid, **rest}

    return st.builds(
        make,
        patch=st.sampled_from([4, 8]),
        grid=st.integers(1, 3),
        num_blocks=st.integers(0, 2),
        embed_dim=st.integers(2, 16),
        mlp_ratio=st.tuples(st.sampled_from([0.5, 1.0]), st.sampled_from([1.0, 4.0])).map(list),
        stem_norm=st.booleans(),
        num_classes=classes,
    )


def _gpt2() -> st.SearchStrategy[dict[str, Any]]:
    def make(heads: int, head_dim: int, n_positions: int, seq_len: int, **rest: Any) -> dict[str, Any]:
        return {
            "n_head": heads,
            "n_embd": heads * head_dim,
            "n_positions": n_positions,
            "seq_len": min(seq_len, n_positions),
            **rest,
        }

    return st.builds(
        make,
        heads=st.integers(1, 2),
        head_dim=st.integers(1, 8),
        n_positions=st.integers(1, 16),
        seq_len=st.integers(1, 16),
        n_layer=st.integers(0, 2),
        vocab_size=st.integers(1, 32),
    )


def _bert() -> st.SearchStrategy[dict[str, Any]]:
    def make(heads: int, head_dim: int, max_position_embeddings: int, seq_len: int, **rest: Any) -> dict[str, Any]:
        return {
            "num_attention_heads": heads,
            "hidden_size": heads * head_dim,
            "max_position_embeddings": max_position_embeddings,
            "seq_len": min(seq_len, max_position_embeddings),
            **rest,
        }

    return st.builds(
        make,
        heads=st.integers(1, 2),
        head_dim=st.integers(1, 8),
        max_position_embeddings=st.integers(1, 16),
        seq_len=st.integers(1, 16),
        num_hidden_layers=st.integers(0, 2),
        intermediate_size=st.integers(1, 16),
        vocab_size=st.integers(1, 32),
        type_vocab_size=st.integers(1, 3),
    )


def _llama() -> st.SearchStrategy[dict[str, Any]]:
    # grouped-query attention: kv_heads key/value heads, each serving `groups` query heads; rope needs an even head
    # width; head_dim given (Llama 3.2 1B's config.json has it) or derived from hidden_size
    def make(kv_heads: int, groups: int, head_dim: int, explicit: bool, **rest: Any) -> dict[str, Any]:
        heads = kv_heads * groups
        widths = (
            {"head_dim": head_dim, "hidden_size": heads * head_dim + 2}
            if explicit
            else {"hidden_size": heads * head_dim}
        )
        return {"num_key_value_heads": kv_heads, "num_attention_heads": heads, **widths, **rest}

    return st.builds(
        make,
        kv_heads=st.integers(1, 2),
        groups=st.integers(1, 3),
        head_dim=st.sampled_from([2, 4, 8]),
        explicit=st.booleans(),
        num_hidden_layers=st.integers(0, 2),
        intermediate_size=st.integers(1, 16),
        vocab_size=st.integers(1, 32),
        seq_len=st.integers(1, 16),
        tie_word_embeddings=st.booleans(),
        rope_scaling_factor=st.sampled_from([1.0, 8.0, 32.0]),
        rope_theta=st.sampled_from([10000.0, 500000.0]),
        rope_original_max_position_embeddings=st.integers(4, 64),
    )


def _rows(*columns: st.SearchStrategy[Any], min_size: int = 1, max_size: int = 3) -> st.SearchStrategy[list[list[Any]]]:
    """A table of rows (a stage or block list), each row one draw of the columns."""
    return st.lists(st.tuples(*columns).map(list), min_size=min_size, max_size=max_size)


def _squeezenet() -> st.SearchStrategy[dict[str, Any]]:
    # at most three 3x3/2 poolings after a stride-2 stem: 48 pixels leave at least 2 at the end
    cfg = st.lists(st.just("M") | st.tuples(small, small).map(list), min_size=1, max_size=6).filter(
        lambda c: c.count("M") <= 3 and any(x != "M" for x in c)
    )
    custom = st.fixed_dictionaries(
        {
            "num_classes": classes,
            "resolution": st.integers(48, 64),
            "stem": st.tuples(small, st.sampled_from([3, 7])).map(list),
            "cfg": cfg,
        }
    )
    variant = st.fixed_dictionaries(
        {
            "variant": st.sampled_from(["squeezenet1_0", "squeezenet1_1"]),
            "num_classes": classes,
            "resolution": st.integers(21, 64),
        }
    )
    return custom | variant


def _mnasnet() -> st.SearchStrategy[dict[str, Any]]:
    stacks = _rows(
        st.sampled_from([3, 5]), st.sampled_from([1, 2]), st.integers(1, 6), st.integers(1, 2), min_size=6, max_size=6
    )
    return st.fixed_dictionaries(
        {
            "num_classes": classes,
            "resolution": st.integers(32, 64),
            "alpha": st.floats(0.1, 1.5),
            "stacks": stacks,
            "widths": st.lists(st.integers(1, 24), min_size=8, max_size=8),
        },
        optional={"variant": st.sampled_from(["mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3"])},
    )


def _resnet() -> st.SearchStrategy[dict[str, Any]]:
    """Classification or a segmentation head; dilation (bottleneck only, as in torchvision) in either."""

    def make(block: str, dilate: list[bool], **rest: Any) -> dict[str, Any]:
        return {
            "block": block,
            "replace_stride_with_dilation": dilate if block == "bottleneck" else [False] * 3,
            **rest,
        }

    return st.builds(
        make,
        block=st.sampled_from(["basic", "bottleneck"]),
        dilate=st.lists(st.booleans(), min_size=3, max_size=3),
        num_classes=classes,
        resolution=st.integers(32, 64),
        depths=st.lists(st.integers(0, 2), min_size=4, max_size=4),
        groups=st.sampled_from([1, 2]),
        width_per_group=st.sampled_from([4, 8]),
        seg_head=st.sampled_from(["none", "fcn", "deeplabv3"]),
        atrous_rates=st.lists(st.integers(1, 6), min_size=3, max_size=3),
    )


def _mobilenet_v3() -> st.SearchStrategy[dict[str, Any]]:
    classify = st.fixed_dictionaries(
        {
            "num_classes": classes,
            "resolution": st.integers(32, 64),
            "width_mult": st.floats(0.05, 1.25),
            "stem_width": st.integers(1, 16),
            "last_channel": st.integers(1, 32),
            "dilated": st.booleans(),
            "bneck": _rows(
                st.sampled_from([3, 5]),
                st.integers(1, 32),
                st.integers(1, 16),
                st.booleans(),
                st.sampled_from(["RE", "HS"]),
                st.sampled_from([1, 2]),
                max_size=4,
            ),
        },
        optional={"variant": st.sampled_from(["mobilenet_v3_large", "mobilenet_v3_small"])},
    )
    # Lite R-ASPP needs two stride-2 rows before its last features: the published tables, narrowed
    segment = st.fixed_dictionaries(
        {
            "variant": st.sampled_from(["mobilenet_v3_large", "mobilenet_v3_small", "lraspp_mobilenet_v3_large"]),
            "seg_head": st.just("lraspp"),
            "num_classes": classes,
            "resolution": st.integers(32, 64),
            "width_mult": st.floats(0.05, 0.5),
            "dilated": st.booleans(),
            "lraspp_channels": st.integers(1, 16),
        }
    )
    return classify | segment


# Per family: overrides that keep the network small. A family without an entry gets num_classes only
# (at its default size: on the meta device that is still cheap); add an entry when adding a family.
STRATEGIES: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "seed_cnn": st.fixed_dictionaries(
        {
            "num_classes": classes,
            "resolution": st.integers(8, 40),
            "widths": st.lists(small, min_size=1, max_size=3),
            "hidden": st.lists(small, min_size=0, max_size=2),
            "batch_norm": st.booleans(),
        }
    ),
    "lenet": st.fixed_dictionaries(
        {
            "num_classes": classes,
            "resolution": st.integers(16, 40),
            "widths": st.lists(small, min_size=2, max_size=2),
            "hidden": st.lists(small, min_size=2, max_size=2),
        }
    ),
    "vgg": st.fixed_dictionaries(
        {
            "num_classes": classes,
            "resolution": st.integers(32, 64),
            "cfg": _vgg_cfg(),
            "hidden": st.integers(1, 16),
            "batch_norm": st.booleans(),
        }
    ),
    "resnet": _resnet(),
    "densenet": st.fixed_dictionaries(
        {
            "num_classes": classes,
            "resolution": st.integers(32, 64),
            "growth_rate": small,
            "block_config": st.lists(st.integers(1, 2), min_size=4, max_size=4),
            "num_init_features": st.integers(2, 16),
            "bn_size": st.integers(1, 4),
        }
    ),
    # The compound-scaled resolution itself (resolution None) only for small phi: at phi 7 it is 596 px, a
    # B7-sized network whose batch of 2 needs 9 GB (AS503) and minutes of arithmetic; larger phi at 32-64 px.
    "efficientnet": st.one_of(
        *(
            st.fixed_dictionaries(
                {"num_classes": classes, "phi": phi, "published_table": st.booleans(), "resolution": resolution},
                optional={"depth_mult": st.floats(0.1, 1.0), "width_mult": st.floats(0.1, 1.0)},
            )
            for phi, resolution in (
                (st.floats(0, 2.5) | st.integers(0, 7), st.integers(32, 64)),
                (st.floats(0, 1) | st.integers(0, 1), st.none()),
            )
        )
    ),
    "vit": _vit(),
    "mixer": _mixer(),
    "regnet": st.fixed_dictionaries(
        {
            "num_classes": classes,
            "resolution": st.integers(32, 64),
            "depth": st.integers(1, 8),
            "w_0": st.integers(1, 4).map(lambda k: 8 * k),
            "w_a": st.floats(0, 30),
            "w_m": st.floats(1.5, 3.0),
            "group_width": st.sampled_from([1, 2, 4, 8]),
            "se_ratio": st.sampled_from([0.0, 0.25]),
        }
    ),
    "alexnet": st.fixed_dictionaries(
        {
            "num_classes": classes,
            "resolution": st.integers(63, 96),
            "widths": st.lists(small, min_size=5, max_size=5),
            "hidden": st.integers(1, 16),
        }
    ),
    "googlenet": st.fixed_dictionaries(
        {
            "num_classes": classes,
            "resolution": st.integers(15, 64),
            "modules": st.lists(st.lists(small, min_size=6, max_size=6), min_size=9, max_size=9),
        }
    ),
    "inception_v3": st.fixed_dictionaries(
        {
            "num_classes": classes,
            "resolution": st.integers(75, 120),
            "pool_features": st.lists(small, min_size=3, max_size=3),
            "channels_7x7": st.lists(small, min_size=4, max_size=4),
        }
    ),
    "xception": st.fixed_dictionaries(
        {"num_classes": classes, "resolution": st.integers(7, 64), "middle_width": st.integers(1, 16)}
    ),
    "squeezenet": _squeezenet(),
    "shufflenet_v2": st.fixed_dictionaries(  # stage widths are even: each unit splits its channels in halves
        {
            "num_classes": classes,
            "resolution": st.integers(1, 64),
            "stages_repeats": st.lists(st.integers(1, 2), min_size=3, max_size=3),
            "stages_out_channels": st.tuples(small, *[small.map(lambda c: 2 * c)] * 3, small).map(list),
        },
        optional={
            "variant": st.sampled_from(
                ["shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"]
            )
        },
    ),
    "mobilenet_v1": st.fixed_dictionaries(
        {
            "num_classes": classes,
            "resolution": st.integers(32, 64),
            "width_mult": st.floats(0.05, 1.25),
            "stages": _rows(st.integers(1, 64), st.integers(1, 2), st.sampled_from([1, 2])),
        },
        optional={"variant": st.sampled_from(["mobilenet_v1", "mobilenet_v1_125"])},
    ),
    "mobilenet_v2": st.fixed_dictionaries(
        {
            "num_classes": classes,
            "resolution": st.integers(32, 64),
            "width_mult": st.floats(0.05, 1.4),
            "stages": _rows(st.integers(1, 6), st.integers(1, 32), st.integers(1, 2), st.sampled_from([1, 2])),
        }
    ),
    "mobilenet_v3": _mobilenet_v3(),
    "mnasnet": _mnasnet(),
    "senet": st.fixed_dictionaries(
        {
            "num_classes": classes,
            "resolution": st.integers(32, 64),
            "block": st.sampled_from(["basic", "bottleneck", "resnext"]),
            "depths": st.lists(st.integers(0, 2), min_size=4, max_size=4),
            "groups": st.sampled_from([1, 2]),
            "base_width": st.sampled_from([4, 8]),
            "reduction": st.integers(1, 16),
        }
    ),
    "convnext": st.fixed_dictionaries(
        {
            "num_classes": classes,
            "resolution": st.integers(32, 64),
            "widths": st.lists(small, min_size=4, max_size=4),
            "depths": st.lists(st.integers(0, 2), min_size=4, max_size=4),
            "layer_scale": st.floats(1e-6, 1.0),
        },
        optional={"variant": st.sampled_from(["convnext_tiny", "convnext_small", "convnext_base", "convnext_large"])},
    ),
    "unet": st.builds(
        lambda depth, k, **rest: {"depth": depth, "resolution": k * 2**depth, **rest},  # the check: 2**depth divides it
        depth=st.integers(1, 5),
        k=st.integers(1, 3),
        base_width=small,
        bilinear=st.booleans(),
        in_channels=st.integers(1, 4),
        num_classes=classes,
    ),
    "efficientnet_v2": st.fixed_dictionaries(
        {
            "num_classes": classes,
            "resolution": st.integers(32, 64),
            "width_mult": st.floats(0.1, 1.0),
            "depth_mult": st.floats(0.1, 1.0),
            "last_channel": st.integers(1, 32),
            "stages": _rows(
                st.sampled_from(["fused", "mbconv"]),
                st.sampled_from([1, 4, 6]),
                st.sampled_from([1, 3]),
                st.sampled_from([1, 2]),
                st.integers(1, 32),
                st.integers(1, 32),
                st.integers(1, 2),
            ),
        }
    ),
    # heads divide every stage's width (embed_dim * 2^s); small windows, some padded, some shifted, V1 and V2
    "swin": st.builds(
        lambda heads, per_head, **rest: {
            "embed_dim": heads * per_head,
            "num_heads": [heads, heads, 2 * heads, 2 * heads],
            **rest,
        },
        heads=st.integers(1, 2),
        per_head=st.integers(1, 4),
        num_classes=classes,
        resolution=st.integers(8, 48),
        patch_size=st.sampled_from([2, 4]),
        window_size=st.integers(2, 5),
        depths=st.lists(st.integers(0, 2), min_size=4, max_size=4),
        v2=st.booleans(),
    ),
    "gpt2": _gpt2(),
    "bert": _bert(),
    "llama": _llama(),
}


def _attention_macs(family: str, overrides: dict[str, Any]) -> int:
    """2 * L * T^2 * D: the attention products FlopCounterMode does not count (ViT only)."""
    if family != "vit":
        return 0
    tokens = (overrides["resolution"] // overrides["patch_size"]) ** 2 + 1
    return 2 * overrides["num_layers"] * tokens**2 * overrides["hidden_dim"]


def _measured(module: torch.nn.Module, shape: tuple[int, ...], dtype: str, device: str) -> tuple[int, tuple[int, ...]]:
    """MACs per sample and output shape per sample of one forward pass in train mode (the convention's:
    in eval mode under no_grad nn.MultiheadAttention takes a fused CPU kernel the counter does not see).
    A language model takes token ids 0, in every vocabulary."""
    counter = FlopCounterMode(display=False)
    x = (
        torch.zeros(2, *shape, dtype=torch.int64, device=device)
        if dtype == "int64"
        else torch.randn(2, *shape, device=device)
    )
    with counter, torch.no_grad():
        out = module.train()(x)
    return counter.get_total_flops() // 4, tuple(out.shape[1:])  # batch 2, 2 FLOPs per MAC


def check_overrides(family: Path, overrides: dict[str, Any]) -> None:
    costs = archspec.summary(family, **overrides)
    with torch.device("meta"):
        module = archspec.build(family, **overrides)
    assert sum(p.numel() for p in module.parameters()) == costs.params, overrides
    macs, output = _measured(module, tuple(costs.input), costs.input_dtype, "meta")
    assert output == tuple(costs.output), overrides
    assert macs == costs.macs, overrides  # on meta, attention runs as plain matrix products, which count
    if costs.macs <= CPU_FORWARD_MACS:  # the real thing too, where it is cheap
        cpu = archspec.build(family, **overrides)
        cpu_macs, cpu_output = _measured(cpu, tuple(costs.input), costs.input_dtype, "cpu")
        assert cpu_output == output, overrides
        assert cpu_macs + _attention_macs(family.stem, overrides) == costs.macs, overrides


def _test(family: Path, examples: int) -> None:
    strategy = STRATEGIES.get(family.stem, st.fixed_dictionaries({"num_classes": classes}))

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(strategy)
    def run(overrides: dict[str, Any]) -> None:
        check_overrides(family, overrides)

    run()


@pytest.mark.parametrize("family", FAMILIES, ids=lambda p: p.stem)
def test_overrides_keep_summary_and_module_consistent(family: Path) -> None:
    _test(family, 2)


@pytest.mark.exhaustive
@pytest.mark.parametrize("family", FAMILIES, ids=lambda p: p.stem)
def test_overrides_keep_summary_and_module_consistent_exhaustive(family: Path) -> None:
    _test(family, 25)


@pytest.mark.parametrize(
    "phi", [3.3, pytest.param(2.5, marks=pytest.mark.exhaustive), pytest.param(0.7, marks=pytest.mark.exhaustive)]
)
def test_efficientnet_any_phi_matches_the_built_module(phi: float) -> None:
    """`archspec summary specs/efficientnet_b0.yaml --set phi=3.3` (issue 8): a compound-scaled network at
    its own compound-scaled resolution, alpha^phi deep and beta^phi wide."""
    spec = SPECS / "efficientnet_b0.yaml"
    check_overrides(spec, {"phi": phi})
    costs, b0 = archspec.summary(spec, phi=phi), archspec.summary(spec)
    assert costs.input == (3, round(224 * 1.15**phi), round(224 * 1.15**phi))
    assert costs.params > b0.params and costs.macs > b0.macs


def test_efficientnet_whole_phi_is_the_published_variant_unless_the_rule_is_asked_for() -> None:
    b0 = SPECS / "efficientnet_b0.yaml"
    figures = lambda c: (c.params, c.macs, c.input, c.output)  # noqa: E731
    assert figures(archspec.summary(b0, phi=3)) == figures(archspec.summary(SPECS / "efficientnet_b3.yaml"))
    rule = archspec.summary(b0, phi=3, published_table=False)
    assert rule.input == (3, 341, 341) and rule.params != archspec.summary(b0, phi=3).params
