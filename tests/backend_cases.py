"""The zoo as the backend tests build it: every spec in specs/, at a small input size.

Backends are compared with the torch backend on the same weights, so what matters is each spec's ops,
their configurations and connections, not its input size: `SMALL` gives each spec the smallest
resolution its family allows. `SHALLOW` also shortens the repeat counts of the deep families (the
repeated block is the same block, fewer times), for toolchains whose cost grows with the node count
(the ONNX exporter), and VGG's classifier width (its weights dominate the file). Every other width,
kernel, stride and op configuration stays that of the spec.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from reference import SPECS

ZOO = sorted(SPECS.glob("*.yaml"))
TOKEN_IDS = 100  # inputs of a language model: ids below every zoo vocabulary (small() keeps 512)


def sample(shape: tuple[int, ...], dtype: str, batch: int, generator: torch.Generator) -> torch.Tensor:
    """A batch of inputs of a spec's per-sample `shape` and input dtype (Costs.input): standard normal
    floats, or token ids for a spec whose input is int64."""
    if dtype == "int64":
        return torch.randint(0, TOKEN_IDS, (batch, *shape), generator=generator)
    return torch.randn(batch, *shape, generator=generator)


def _patch(name: str) -> int:
    return int(name.rsplit("_", 1)[-1]) if name.startswith("vit") else int(name[-2:])


def small(name: str) -> dict[str, Any]:
    """Overrides that keep the spec's structure at a small input size (every layer keeps a >= 2x2 map
    where the family needs it)."""
    if name.startswith(("seed_cnn", "lenet")):
        return {}
    if name.startswith(("resnet", "resnext", "wide_resnet", "fcn_resnet", "deeplabv3_resnet")):
        return {"resolution": 64}  # the family's dynamic: range starts at 64
    if name.startswith(("vgg", "densenet", "efficientnet", "regnet")):
        return {"resolution": 32}
    if name.startswith(("mobilenet", "mnasnet", "seresnet", "convnext", "lraspp_mobilenet")):
        return {"resolution": 32}  # /32 networks: the last stage is 1x1, the heads pool globally
    if name.startswith(("vit", "mixer")):
        patch = _patch(name)
        depth = "num_layers" if name.startswith("vit") else "num_blocks"
        return {"resolution": 2 * patch, depth: 1}  # a 2x2 patch grid; one of the identical encoder layers
    if name.startswith("swin"):
        # 32 px: the first stage (8x8) is padded to whole windows and shifted (mask, roll), the rest are one window
        return {"resolution": 32}
    if name == "alexnet":
        return {"resolution": 63}  # the smallest side through its three 3x3/2 poolings
    if name == "inception_v3":
        return {"resolution": 75}  # torchvision's minimum
    if name.startswith(("googlenet", "xception", "squeezenet", "shufflenet")):
        return {"resolution": 32}
    if name.startswith("unet"):
        return {"resolution": 32}  # 2x2 at the bottom of its four levels
    if name.startswith("gpt2"):  # language models: 8 tokens, one decoder layer, a 512-token vocabulary
        return {"seq_len": 8, "n_layer": 1, "vocab_size": 512}
    if name.startswith("bert"):
        return {"seq_len": 8, "num_hidden_layers": 1, "vocab_size": 512}
    if name.startswith("llama"):  # and a narrow MLP: the 8B row's would be 176M weights
        return {"seq_len": 8, "num_hidden_layers": 1, "vocab_size": 512, "intermediate_size": 256}
    if name.startswith("yolo"):
        return {"resolution": 64}  # P5 is 2x2: its upsampled copy meets P4 and the head has three levels
    raise AssertionError(f"no small overrides for {name}; add its family here")


def shallow(name: str) -> dict[str, Any]:
    """`small`, with the deep families' repeat counts cut to the first two of each kind of block."""
    overrides = small(name)
    if name.startswith(("resnet", "resnext", "wide_resnet", "fcn_resnet", "deeplabv3_resnet")):
        overrides["depths"] = [1, 2, 1, 1]
    elif name.startswith("densenet"):
        overrides["block_config"] = [2, 1, 1, 1]
    elif name.startswith("efficientnet"):
        overrides["depth_mult"] = 0.1  # every stage keeps its first block (ceil of the scaled depth)
    elif name.startswith("convnext"):
        overrides["depths"] = [1, 1, 2, 1]  # the stage blocks are one block repeated
    elif name.startswith("seresnet"):
        overrides["depths"] = [1, 2, 1, 1]
    elif name.startswith("vgg"):
        overrides["hidden"] = 256  # the two 4096-wide classifier layers hold 120M of VGG's 130M+ weights
    elif name == "alexnet":
        overrides["hidden"] = 256  # likewise 55M of AlexNet's 61M
    elif name.startswith("unet"):
        overrides["base_width"] = 8  # at 64 the two deepest levels hold 25M of its 31M weights
    elif name.startswith("swin"):
        overrides["depths"] = [2, 1, 1, 1]  # a plain and a shifted block, then one block per stage
    elif name.startswith("shufflenet"):
        overrides["stages_repeats"] = [1, 2, 1]  # a stride-2 unit per stage, and one stride-1 unit
    return overrides


def spec(name: str) -> Path:
    return SPECS / f"{name}.yaml"
