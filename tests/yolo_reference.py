"""The YOLOv8 / YOLO11 reference: ultralytics' DetectionModel, built from ultralytics' own YAML.

`YOLO_OFFLINE=1` is set before ultralytics is imported, and a model built from a `.yaml` name downloads
nothing (no `.pt` weights are involved). The weights are PyTorch's default initialisation under a seed,
with ultralytics' own Detect bias init, then non-trivial batch-norm statistics (tests/reference.py's
`perturb_batchnorm`); DFL's fixed integral conv (weights 0 .. reg_max - 1) is left as ultralytics makes it.
`state_dict` gives the tensors under the names of an ultralytics checkpoint (`model.22.cv2.0.0.conv.weight`:
DetectionModel.state_dict(), what `torch.load("yolov8n.pt")["model"].state_dict()` holds), and
`layer_outputs` every layer's output (`model.model[i]`) for an input.
"""

from __future__ import annotations

import os
from pathlib import Path
import tempfile

import torch
from torch import nn

from reference import perturb_batchnorm

# Before any ultralytics import: no network, and its settings file in a scratch folder, not the home folder.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(tempfile.gettempdir()) / "archspec-tests-ultralytics"))

# name -> (parameters, MACs at 640 x 640: FlopCounterMode's total / 2 in eval mode), as ultralytics 8.4 builds them
FIGURES = {
    "yolov8n": (3_157_200, 4_371_993_600),
    "yolov8s": (11_166_560, 14_301_312_000),
    "yolo11n": (2_624_080, 3_271_251_200),
}


def available() -> str | None:
    """None when ultralytics can be imported, else why not (a skip reason)."""
    try:
        import ultralytics.nn.tasks  # noqa: F401
    except Exception as exc:  # not installed, or broken by a missing system library (opencv's libGL)
        return f"ultralytics is not importable ({type(exc).__name__}: {exc}); pip install -e '.[dev]'"
    _undo_pil_patch()
    return None


def _undo_pil_patch() -> None:
    """Importing ultralytics replaces PIL.Image.open for the whole process (an opener that installs pi-heif on an
    unidentified file); the rest of the session's tests read images with Pillow's own."""
    from PIL import Image
    from ultralytics.utils import patches

    Image.open = patches._image_open


def build(name: str, seed: int = 0, width: float | None = None) -> nn.Module:
    """ultralytics' DetectionModel for `name` ("yolov8n", "yolo11n", ...) in eval mode, seeded weights; `width`
    replaces the scale's width multiple (a narrow copy of a deep scale's structure)."""
    from ultralytics.nn.tasks import DetectionModel, yaml_model_load

    _undo_pil_patch()

    cfg = yaml_model_load(f"{name}.yaml")
    if width is not None:
        depth, _, max_channels = cfg["scales"][cfg["scale"]]
        cfg["scales"][cfg["scale"]] = [depth, width, max_channels]
    torch.manual_seed(seed)
    model = DetectionModel(cfg, verbose=False)
    perturb_batchnorm(model, seed)
    return model.eval()


def state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors under an ultralytics checkpoint's names (`model.0.conv.weight`, ...)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def output(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The eval output: decoded boxes (xywh, pixels) and class probabilities, [N, 4 + nc, anchors]."""
    with torch.no_grad():
        y = model(x)
    return y[0] if isinstance(y, (tuple, list)) else y


def layer_outputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The output of every layer `model.model[i]` for input x, in order (Detect's: the decoded output)."""
    outputs: list[torch.Tensor | None] = [None] * len(model.model)

    def keep(i: int):  # type: ignore[no-untyped-def]
        def hook(module: nn.Module, inputs: object, out: object) -> None:
            outputs[i] = (out[0] if isinstance(out, (tuple, list)) else out).detach().clone()

        return hook

    handles = [layer.register_forward_hook(keep(i)) for i, layer in enumerate(model.model)]
    try:
        output(model, x)
    finally:
        for handle in handles:
            handle.remove()
    assert all(o is not None for o in outputs)
    return outputs  # type: ignore[return-value]


def macs(model: nn.Module, side: int = 640) -> int:
    """FlopCounterMode's total / 2 for one image in eval mode (archspec's MACs convention)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        output(model, torch.zeros(1, 3, side, side))
    return counter.get_total_flops() // 2
