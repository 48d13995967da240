"""Every augmentation's effect on a known image: applied images equal an independent computation
(numpy / PIL semantics), unchosen images are untouched, and the draws are reproducible."""

import numpy as np
import pytest
import torch

from archspec.errors import ArchspecError
from archspec.train import augment as aug
from archspec.train.data import gray

# A known 3x4x4 image: every pixel distinct, so any misplaced pixel shows.
IMAGE = torch.arange(48, dtype=torch.float32).view(3, 4, 4) / 47


def batch(n: int = 2) -> torch.Tensor:
    return IMAGE.expand(n, -1, -1, -1).clone()


def run(text: str, chosen: list[bool]) -> torch.Tensor:
    augments = aug.parse(text)
    assert len(augments) == 1
    return aug.apply(batch(len(chosen)), augments, [torch.tensor(chosen)])


def test_flips_and_transpose_move_pixels_exactly() -> None:
    ref = IMAGE.numpy()
    for name, expected in (
        ("hflip", ref[:, :, ::-1]),
        ("vflip", ref[:, ::-1, :]),
        ("transpose", ref.transpose(0, 2, 1)),
    ):
        out = run(name, [True, False])
        np.testing.assert_array_equal(out[0].numpy(), expected, err_msg=name)
        assert torch.equal(out[1], IMAGE), name


def test_grayscale_is_luminance_in_every_channel() -> None:
    out = run("grayscale", [True, False])
    r, g, b = IMAGE.numpy()
    luminance = 0.299 * r + 0.587 * g + 0.114 * b
    for c in range(3):
        np.testing.assert_allclose(out[0, c].numpy(), luminance, rtol=1e-6)
    assert torch.equal(out[1], IMAGE)
    # against PIL's own conversion of the same image (8-bit, so within one level)
    from PIL import Image

    pixels = (IMAGE.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    pil = np.asarray(Image.fromarray(pixels, "RGB").convert("L"), dtype=np.float32) / 255
    np.testing.assert_allclose(
        gray(torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255)[0, 0].numpy(), pil, atol=1.5 / 255
    )


def test_brightness_scales_and_clips() -> None:
    out = run("brightness=0.75", [True, False])
    np.testing.assert_allclose(out[0].numpy(), IMAGE.numpy() * 0.75, rtol=1e-6)
    assert torch.equal(out[1], IMAGE)
    bright = run("brightness=2", [True])
    np.testing.assert_allclose(bright[0].numpy(), np.minimum(IMAGE.numpy() * 2, 1.0), rtol=1e-6)
    assert bright.max() == 1.0


def test_crop_cuts_the_padded_image_at_each_offset() -> None:
    augments = aug.parse("crop=1")
    offsets = torch.tensor([[0, 0], [1, 1], [2, 0], [1, 2]])
    out = aug.apply(batch(4), augments, [offsets])
    padded = np.pad(IMAGE.numpy(), ((0, 0), (1, 1), (1, 1)))
    for i, (dy, dx) in enumerate(offsets.tolist()):
        np.testing.assert_array_equal(out[i].numpy(), padded[:, dy : dy + 4, dx : dx + 4])
    assert torch.equal(out[1], IMAGE)  # offset (pad, pad) is the original image
    assert aug.parse("crop") == (aug.Augment("crop", 4.0),)


def test_draws_choose_about_half_and_repeat_with_the_seed() -> None:
    augments = aug.parse("hflip,vflip,transpose,grayscale,brightness=0.5,crop=2")
    first = aug.draw(augments, 400, torch.Generator().manual_seed(3))
    again = aug.draw(augments, 400, torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    for mask in first[:5]:
        assert 140 < int(mask.sum()) < 260  # p = 1/2
    assert first[5].shape == (400, 2) and int(first[5].min()) == 0 and int(first[5].max()) == 4
    # applied together, each image is its own composition: the batch holds many distinct results
    out = aug.apply(batch(400), augments, first)
    assert out.shape == (400, 3, 4, 4) and len({tuple(o.flatten().tolist()) for o in out}) > 50


@pytest.mark.parametrize(
    "text, words",
    [
        ("blur", "unknown augmentation 'blur'"),
        ("brightness", "a factor"),
        ("brightness=-1", "above 0"),
        ("crop=1.5", "whole number"),
        ("hflip=2", "takes no value"),
        ("hflip,crop,hflip", "hflip is given twice"),
    ],
)
def test_bad_augmentations_are_usage_errors(text: str, words: str) -> None:
    with pytest.raises(ArchspecError) as info:
        aug.parse(text)
    assert info.value.code == "AS913" and words in info.value.message


def test_transpose_needs_a_square_input() -> None:
    with pytest.raises(ArchspecError, match="square"):
        aug.check(aug.parse("transpose"), (3, 32, 48))
