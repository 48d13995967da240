"""Build time of archspec's backends against the same toolchain run on the reference torchvision model.

    python benchmarks/build_vs_reference.py [--spec resnet50] [--backends onnx,aoti,tensorrt] [--repeats 1]

For each backend, "ours" is `archspec.build_file(spec, backend=...)`: compile the spec, build the torch
module, torch.export it with the spec's dynamic ranges, run the toolchain, write the file. "reference" runs
the same toolchain on torchvision's model with the same dynamic ranges: torch.export + torch.onnx (onnx),
torch.export + aoti_compile_and_package (aoti), torch_tensorrt.dynamo.compile (tensorrt, only where
torch-tensorrt and a GPU exist). The ratio is ours / reference. Not a test: timings on shared machines vary.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
from pathlib import Path
import statistics
import tempfile
import time

import torch
import torchvision

import archspec
from archspec.backends.export import dynamic_shapes, example_shape

ROOT = Path(__file__).resolve().parents[1]
REFERENCES = {"resnet50": lambda: torchvision.models.resnet50(weights=None)}


def reference_export(name: str) -> torch.export.ExportedProgram:
    compiled = archspec.compile_spec(ROOT / "specs" / f"{name}.yaml")
    dynamic = archspec.pipeline.dynamic_dims(compiled)
    model = REFERENCES[name]().eval()
    example = torch.zeros(*example_shape(compiled.graph, dynamic))
    return torch.export.export(model, (example,), dynamic_shapes=(dynamic_shapes(compiled.graph, dynamic),))


def reference_onnx(name: str, out: Path) -> None:
    torch.onnx.export(reference_export(name), (), dynamo=True, opset_version=18, verbose=False).save(str(out))


def reference_aoti(name: str, out: Path) -> None:
    torch._inductor.aoti_compile_and_package(reference_export(name), package_path=str(out))


def reference_tensorrt(name: str, out: Path) -> None:
    import torch_tensorrt

    compiled = archspec.compile_spec(ROOT / "specs" / f"{name}.yaml")
    dynamic = archspec.pipeline.dynamic_dims(compiled)
    model = REFERENCES[name]().eval().cuda()
    with torch.device("cuda"):
        example = torch.zeros(*example_shape(compiled.graph, dynamic))
        program = torch.export.export(model, (example,), dynamic_shapes=(dynamic_shapes(compiled.graph, dynamic),))
    side = dynamic.resolution
    shape = lambda b, s: (b, 3, s, s)  # noqa: E731
    assert side is not None
    inputs = [
        torch_tensorrt.Input(
            min_shape=shape(dynamic.batch.min, side.min),
            opt_shape=shape(dynamic.batch.opt, side.opt),
            max_shape=shape(dynamic.batch.max, side.max),
            dtype=torch.float32,
            name="x",
        )
    ]
    trt = torch_tensorrt.dynamo.compile(program, arg_inputs=inputs, min_block_size=1)
    torch_tensorrt.save(trt, str(out), output_format="exported_program", arg_inputs=[example], retrace=True)


TOOLCHAINS: dict[str, tuple[str, Callable[[str, Path], None]]] = {
    "onnx": (".onnx", reference_onnx),
    "aoti": (".aoti.pt2", reference_aoti),
    "tensorrt": (".trt.ep", reference_tensorrt),
}


def available(backend: str) -> str | None:
    """Why `backend` cannot run here, or None."""
    if backend == "tensorrt":
        import importlib.util

        if importlib.util.find_spec("torch_tensorrt") is None:
            return "torch-tensorrt is not installed"
        if not torch.cuda.is_available():
            return "no CUDA GPU"
    return None


def seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="resnet50", choices=sorted(REFERENCES))
    parser.add_argument("--backends", default="onnx,aoti,tensorrt")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    spec = ROOT / "specs" / f"{args.spec}.yaml"
    print(
        f"{args.spec}: build time, ours / reference (same toolchain on torchvision's model), {args.repeats} run(s) each"
    )
    for backend in args.backends.split(","):
        why = available(backend)
        if why:
            print(f"  {backend:<9} skipped: {why}")
            continue
        suffix, reference = TOOLCHAINS[backend]
        ours, theirs = [], []
        with tempfile.TemporaryDirectory() as tmp:
            for k in range(args.repeats):  # interleaved, so that machine noise hits both
                ours.append(
                    seconds(partial(archspec.build_file, spec, Path(tmp) / f"ours{k}{suffix}", backend=backend))
                )
                theirs.append(seconds(partial(reference, args.spec, Path(tmp) / f"reference{k}{suffix}")))
        a, b = statistics.median(ours), statistics.median(theirs)
        print(f"  {backend:<9} ours {a:7.1f} s   reference {b:7.1f} s   ratio {a / b:.2f}", flush=True)


if __name__ == "__main__":
    main()
