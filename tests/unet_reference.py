"""A hand-written U-Net, the oracle of specs/unet.yaml: milesial/Pytorch-UNet's modules (unet_parts.py,
unet_model.py) written out again, with its depth and base width made parameters (the original is depth 4,
width 64). Module names are the original's: inc, down1.., up1.. from the deepest level, outc."""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


class DoubleConv(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, mid_channels: int | None = None):
        super().__init__()
        mid_channels = mid_channels or out_channels
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


class Down(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class Up(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, bilinear: bool = True):
        super().__init__()
        if bilinear:
            self.up: nn.Module = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.conv = DoubleConv(in_channels, out_channels, in_channels // 2)
        else:
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
            self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        x1 = self.up(x1)
        diff_y = x2.size()[2] - x1.size()[2]
        diff_x = x2.size()[3] - x1.size()[3]
        x1 = F.pad(x1, [diff_x // 2, diff_x - diff_x // 2, diff_y // 2, diff_y - diff_y // 2])
        return self.conv(torch.cat([x2, x1], dim=1))


class OutConv(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class UNet(nn.Module):
    """UNet(n_channels, n_classes, bilinear) of the original at depth=4, base_width=64."""

    def __init__(
        self, n_channels: int = 3, n_classes: int = 2, bilinear: bool = False, depth: int = 4, base_width: int = 64
    ):
        super().__init__()
        self.depth = depth
        factor = 2 if bilinear else 1
        widths = [base_width * 2**k for k in range(depth + 1)]
        self.inc = DoubleConv(n_channels, widths[0])
        for k in range(1, depth + 1):
            setattr(self, f"down{k}", Down(widths[k - 1], widths[k] // (factor if k == depth else 1)))
        for j in range(1, depth + 1):
            level = depth - j  # the skip's level
            setattr(self, f"up{j}", Up(widths[level + 1], widths[level] // (factor if level > 0 else 1), bilinear))
        self.outc = OutConv(widths[0], n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for k in range(1, self.depth + 1):
            skips.append(getattr(self, f"down{k}")(skips[-1]))
        x = skips.pop()
        for j in range(1, self.depth + 1):
            x = getattr(self, f"up{j}")(x, skips.pop())
        return self.outc(x)
