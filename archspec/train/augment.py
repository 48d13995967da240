"""Augmentations as batched tensor ops on the training device (`--augment hflip,brightness=0.75,crop`).

    hflip, vflip    mirror left-right / top-bottom                         each image with probability 1/2
    transpose       swap height and width (square inputs)                  each image with probability 1/2
    grayscale       luminance (ITU-R 601) in all three channels            each image with probability 1/2
    brightness=F    multiply by F, clipped to [0, 1]                       each image with probability 1/2
    crop[=P]        pad P pixels of zeros on every side (default 4), cut the input size back out at a
                    uniformly random offset                                every image

Randomness is drawn first (`draw`: a few numbers per image, from a CPU generator seeded by the run's seed
and epoch, so the same on every device and after a resume) and applied second (`apply`, on the device).
Under DDP every process draws for the whole global batch and applies its own slice, so N processes
augment exactly as one does. Augmentations act on images in [0, 1], before normalisation, and only in
training.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import torch
import torch.nn.functional as F

from archspec.errors import ArchspecError
from archspec.train.data import gray

BAD_OPTION = "AS913"
NAMES = ("hflip", "vflip", "transpose", "grayscale", "brightness", "crop")
P = 0.5  # probability of each per-image augmentation


@dataclass(frozen=True)
class Augment:
    name: str
    value: float = 0.0  # brightness: the factor; crop: the padding in pixels

    def __str__(self) -> str:
        if self.name == "brightness":
            return f"brightness={self.value:g}"
        if self.name == "crop":
            return f"crop={int(self.value)}"
        return self.name


def parse(text: str) -> tuple[Augment, ...]:
    """'hflip,brightness=0.75,crop=2' -> augments in the order given; '' -> none."""
    augments: list[Augment] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, raw = item.partition("=")
        if name not in NAMES:
            raise ArchspecError(
                BAD_OPTION,
                f"--augment: unknown augmentation {name!r}; use any of {', '.join(NAMES)} "
                "(e.g. --augment hflip,brightness=0.75,crop)",
            )
        if name == "brightness":
            value = _number(item, raw if sep else "", "a factor such as brightness=0.75")
            if not 0 < value <= 10:
                raise ArchspecError(BAD_OPTION, f"--augment {item}: the factor must be above 0 and at most 10")
        elif name == "crop":
            value = _number(item, raw, "a padding in pixels such as crop=4") if sep else 4.0
            if value != int(value) or not 0 <= value <= 64:
                raise ArchspecError(BAD_OPTION, f"--augment {item}: the padding must be a whole number from 0 to 64")
        elif sep:
            raise ArchspecError(BAD_OPTION, f"--augment {item}: {name} takes no value")
        else:
            value = 0.0
        if any(a.name == name for a in augments):
            raise ArchspecError(BAD_OPTION, f"--augment: {name} is given twice; give each augmentation once")
        augments.append(Augment(name, value))
    return tuple(augments)


def _number(item: str, raw: str, what: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ArchspecError(BAD_OPTION, f"--augment {item}: give {what}") from None
    if not math.isfinite(value):  # float() takes 'nan' and 'inf', which no range check below would catch
        raise ArchspecError(BAD_OPTION, f"--augment {item}: give {what} (a finite number)")
    return value


def check(augments: tuple[Augment, ...], shape: tuple[int, int, int]) -> None:
    """Refuse what cannot apply to the spec's input (C, H, W), before training starts."""
    if any(a.name == "transpose" for a in augments) and shape[1] != shape[2]:
        raise ArchspecError(
            BAD_OPTION, f"--augment transpose needs a square input; the spec takes {shape[1]}x{shape[2]}"
        )


def draw(augments: tuple[Augment, ...], n: int, generator: torch.Generator) -> list[torch.Tensor]:
    """The random choices for n images, one tensor per augmentation: a mask of the images it applies
    to, or (crop) each image's offset (n, 2)."""
    params = []
    for a in augments:
        if a.name == "crop":
            params.append(torch.randint(0, 2 * int(a.value) + 1, (n, 2), generator=generator))
        else:
            params.append(torch.rand(n, generator=generator) < P)
    return params


def apply(x: torch.Tensor, augments: tuple[Augment, ...], params: list[torch.Tensor]) -> torch.Tensor:
    """Apply the drawn choices to a float batch (N, C, H, W) in [0, 1], on its device."""
    for a, chosen in zip(augments, params):
        chosen = chosen.to(x.device, non_blocking=True)
        if a.name == "crop":
            x = _crop(x, int(a.value), chosen)
            continue
        mask = chosen.view(-1, 1, 1, 1)
        if a.name == "hflip":
            x = torch.where(mask, x.flip(-1), x)
        elif a.name == "vflip":
            x = torch.where(mask, x.flip(-2), x)
        elif a.name == "transpose":
            x = torch.where(mask, x.transpose(-1, -2), x)
        elif a.name == "grayscale":
            if x.shape[1] == 3:
                x = torch.where(mask, gray(x), x)
        elif a.name == "brightness":
            x = torch.where(mask, (x * a.value).clamp(0, 1), x)
    return x


def _crop(x: torch.Tensor, pad: int, offsets: torch.Tensor) -> torch.Tensor:
    """Per-image crops of the zero-padded batch, gathered in one indexing op."""
    if pad == 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad)).permute(0, 2, 3, 1)  # (N, H+2p, W+2p, C)
    rows = offsets[:, 0:1] + torch.arange(h, device=x.device)  # (N, H)
    cols = offsets[:, 1:2] + torch.arange(w, device=x.device)  # (N, W)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded[batch, rows.view(n, h, 1), cols.view(n, 1, w)].permute(0, 3, 1, 2).contiguous()
