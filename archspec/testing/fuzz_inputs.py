"""Mutation fuzzing of what archspec reads besides specs, and of what it writes (archspec.testing.fuzz mutates specs).

Three modes, each a function that runs `cases` cases and returns a `ModeReport`:

    run_folders     tamper one field of state.json, one tensor or the bytes of one file of a real tiny run
                    folder (archspec train), or make it a link; `train --resume` and `eval` must work or end in
                    one of our coded errors (exit 1 or 2), never a traceback
    image_files     mutate the bytes of one PNG or JPEG of a tiny image folder; `train` must work or name the
                    file in its error, never a traceback
    torch_source    mutate a small spec (archspec.testing.fuzz's mutations); where it compiles, the file
                    `--backend torch-source` writes must import, load the torch backend's weights and give
                    its outputs

Each case runs the command line in process (archspec.cli.main), as a user would. A finding says what was
done and what happened. Cases run where `workdir` says; the caller removes it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
import contextlib
from dataclasses import dataclass, field
import io
import json
import math
from pathlib import Path
import random
import re
import shutil
import types
from typing import Any

import torch

ERROR_LINE = re.compile(r"^error: AS\d{3}: \S", re.MULTILINE)
HOSTILE_JSON: tuple[Any, ...] = (
    math.inf,
    -math.inf,
    math.nan,
    -3,
    -1,
    0,
    1,
    10**30,
    1e30,
    2**64,
    0.5,
    "",
    "x",
    "../../etc/passwd",
    "/dev/zero",
    [],
    [1],
    {},
    {"a": 1},
    None,
    True,
    False,
    [[]],
    "checkpoint-0001.safetensors",
    "checkpoint-9999.state.safetensors",
)


@dataclass
class ModeReport:
    mode: str
    cases: int = 0
    worked: int = 0  # the command succeeded
    refused: int = 0  # it ended in one of our coded errors
    findings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.mode}: {self.cases} cases, {self.worked} worked, {self.refused} refused with a coded error, "
            f"{len(self.findings)} findings"
        )


def run_cli(args: list[str]) -> tuple[int | None, str]:
    """archspec's command line in process: (exit code, stderr), or (None, the traceback's last line)."""
    from archspec import cli

    err = io.StringIO()
    threads = torch.get_num_threads()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = cli.main(args)
    except SystemExit as exc:  # argparse
        code = exc.code if isinstance(exc.code, int) else 2
    except Exception as exc:  # noqa: BLE001 - exactly what fuzzing looks for
        return None, f"{type(exc).__name__}: {exc}"
    finally:
        torch.set_num_threads(threads)
    return code, err.getvalue()


def _judge(
    report: ModeReport, what: str, code: int | None, err: str, must_name: str | None = None, must_refuse: bool = False
) -> None:
    report.cases += 1
    if code == 0 and must_refuse:
        report.findings.append(f"{what}: accepted")
    elif code == 0:
        report.worked += 1
    elif code in (1, 2) and ERROR_LINE.search(err) and "Traceback" not in err:
        if must_name is not None and must_name not in err:
            report.findings.append(f"{what}: the error does not name {must_name}: {err.strip()[-400:]}")
        else:
            report.refused += 1
    else:
        report.findings.append(f"{what}: exit {code}: {err.strip()[-600:]}")


# -- run folders -----------------------------------------------------------------------------------------
def _slots(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _slots(value, (*path, key))
    elif isinstance(data, list):
        for k, value in enumerate(data[:8]):  # python_random's 625 words: a few are enough
            yield from _slots(value, (*path, k))


def _tamper_json(state: dict[str, Any], rng: random.Random) -> str:
    path = rng.choice([p for p in _slots(state) if p])
    parent = state
    for part in path[:-1]:
        parent = parent[part]
    action = rng.random()
    if action < 0.15 and isinstance(parent, dict):
        del parent[path[-1]]
        return f"state.json: deleted {'.'.join(map(str, path))}"
    value = rng.choice(HOSTILE_JSON)
    parent[path[-1]] = value
    return f"state.json: {'.'.join(map(str, path))} = {value!r}"


def _tamper_tensors(file: Path, rng: random.Random) -> str:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(file))
    name = rng.choice(sorted(tensors))
    action = rng.choice(("drop", "add", "dtype", "shape", "nan"))
    if action == "drop":
        del tensors[name]
    elif action == "add":
        name = rng.choice(
            ("rng/extra", "rng/cuda/0", "rng/cuda/5", "optimizer/999/momentum_buffer", "weights", "optimizer/0/x")
        )
        tensors[name] = torch.zeros(3)
    elif action == "dtype":
        tensors[name] = tensors[name].to(rng.choice((torch.float64, torch.int64, torch.uint8, torch.float16)))
    elif action == "shape":
        tensors[name] = torch.zeros(rng.choice(((1,), (2, 2), (0,), (7, 1, 1))))
    elif tensors[name].is_floating_point():
        tensors[name] = torch.full_like(tensors[name], math.nan)
    else:
        action = "nan (not a float tensor: unchanged)"
    save_file(tensors, str(file))
    return f"{file.name}: {action} {name}"


def _tamper_bytes(file: Path, rng: random.Random) -> str:
    data = bytearray(file.read_bytes())
    if rng.random() < 0.4 or not data:
        cut = rng.randrange(len(data) + 1)
        file.write_bytes(bytes(data[:cut]))
        return f"{file.name}: cut at byte {cut}"
    at = rng.randrange(min(len(data), 200))  # the header: where a flip changes meaning rather than one value
    data[at] ^= 1 << rng.randrange(8)
    file.write_bytes(bytes(data))
    return f"{file.name}: flipped a bit of byte {at}"


def tamper_run(folder: Path, rng: random.Random) -> str:
    """Change one thing in the run folder `folder`; say what."""
    state_file = folder / "state.json"
    kind = rng.random()
    if kind < 0.5:
        state = json.loads(state_file.read_text())
        what = _tamper_json(state, rng)
        state_file.write_text(json.dumps(state))  # Infinity and NaN as json writes them
        return what
    state = json.loads(state_file.read_text())
    if kind < 0.75:
        return _tamper_tensors(folder / state["state"], rng)
    if kind < 0.95:
        return _tamper_bytes(folder / rng.choice((state["state"], state["weights"], "state.json")), rng)
    real = folder.with_name(folder.name + "-real")
    folder.rename(real)
    folder.symlink_to(real, target_is_directory=True)
    return "the run folder is a symbolic link"


def fuzz_run_folders(spec: Path, workdir: Path, cases: int, rng_seed: int = 0) -> ModeReport:
    """One real run of `spec` on digits (one epoch at 8x8), then `cases` tampered copies of its folder."""
    report = ModeReport("run folders")
    common = [str(spec), "--data", "digits", "--set", "resolution=8"]
    train = ["train", *common, "--threads", "1", "--batch-size", "128", "--epochs", "1"]
    original = workdir / "run"
    code, err = run_cli([*train, "--out", str(original)])
    if code != 0:
        report.findings.append(f"the run to tamper with failed: {err.strip()[-600:]}")
        return report
    rng = random.Random(rng_seed)
    for k in range(cases):
        folder = workdir / f"case{k}"
        shutil.copytree(original, folder)
        (folder / "model.safetensors").unlink()  # a run stopped after its checkpoint: resume has an epoch to train
        what = tamper_run(folder, rng)
        code, err = run_cli([*train[:-1], "2", "--out", str(folder), "--resume"])
        linked = folder.is_symlink()  # written through, the run would land wherever the link points
        _judge(report, f"train --resume after {what}", code, err, must_refuse=linked)
        code, err = run_cli(["eval", *common, "--weights", str(folder)])
        _judge(report, f"eval after {what}", code, err, must_refuse=linked)
        for path in (folder, folder.with_name(folder.name + "-real")):
            if path.is_symlink():
                path.unlink()
            elif path.exists():
                shutil.rmtree(path)
    return report


# -- image folders ---------------------------------------------------------------------------------------
def _image_folder(root: Path, rng: random.Random) -> list[Path]:
    from PIL import Image

    files = []
    for split in ("train", "test"):
        for label in ("a", "b"):
            (root / split / label).mkdir(parents=True)
            for k in range(3):
                pixels = bytes(rng.randrange(256) for _ in range(8 * 8 * 3))
                image = Image.frombytes("RGB", (8, 8), pixels)
                path = root / split / label / f"{k}.{'png' if k % 2 == 0 else 'jpg'}"
                image.save(path)
                files.append(path)
    return files


def _mutate_image(path: Path, rng: random.Random) -> str:
    data = bytearray(path.read_bytes())
    action = rng.choice(("flip", "flip", "cut", "zero", "junk_header", "empty", "huge_size"))
    if action == "flip":
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif action == "cut":
        data = data[: rng.randrange(len(data))]
    elif action == "zero":
        start = rng.randrange(len(data))
        data[start : start + 32] = bytes(len(data[start : start + 32]))
    elif action == "junk_header":
        data[:8] = b"GIF89a\x00\x00"
    elif action == "empty":
        data = bytearray()
    elif path.suffix == ".png" and len(data) > 24:  # IHDR's width and height: a pixel bomb
        data[16:24] = (100_000).to_bytes(4, "big") * 2
    else:  # JPEG's SOF0 height and width
        at = data.find(b"\xff\xc0")
        if at > 0:
            data[at + 5 : at + 9] = (60_000).to_bytes(2, "big") * 2
    path.write_bytes(bytes(data))
    return f"{path.parent.parent.name}/{path.parent.name}/{path.name}: {action}"


def fuzz_image_files(spec: Path, workdir: Path, cases: int, rng_seed: int = 0) -> ModeReport:
    """`cases` copies of a tiny image folder (2 classes, 3 images each per split), one image mutated in each;
    `train` for one epoch must work, or fail naming the image."""
    report = ModeReport("image files")
    rng = random.Random(rng_seed)
    for k in range(cases):
        root = workdir / f"images{k}"
        files = _image_folder(root, rng)
        target = rng.choice(files)
        what = _mutate_image(target, rng)
        code, err = run_cli(
            [
                "train",
                str(spec),
                "--data",
                f"folder:{root}",
                "--set",
                "resolution=8",
                "--threads",
                "1",
                "--batch-size",
                "2",
                "--epochs",
                "1",
                "--out",
                str(workdir / f"run{k}"),
            ]
        )
        _judge(report, f"train on an image folder after {what}", code, err, must_name=target.name)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(workdir / f"run{k}", ignore_errors=True)
    return report


# -- torch-source ----------------------------------------------------------------------------------------
SMALL = 2_000_000  # parameters, and MACs per sample / 100: a case builds two networks and runs both


def _source_matches(text: str, graph: Any, reference: torch.nn.Module, shape: tuple[int, ...]) -> None:
    """Exec the generated file, load the torch backend's weights into it, compare outputs (raises if not equal)."""
    module = types.ModuleType("generated")
    exec(compile(text, "<generated>", "exec"), module.__dict__)  # noqa: S102 - our own generated code
    ours = getattr(module, ast.parse(text).body[-1].name)().eval()  # type: ignore[attr-defined]
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn((2, *shape), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got, want = ours(x), reference(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    return None


def fuzz_torch_source(seeds: Path, workdir: Path, cases: int, rng_seed: int = 0) -> ModeReport:
    """Mutate the thin specs in `seeds` (archspec.testing.fuzz.Fuzzer; a family they use must be there too);
    each that compiles small enough is built by both backends and compared. `cases` counts those compared.
    Refusals with a coded error (an op torch-source lacks) count as refused."""
    from archspec.backends import BuildOptions
    from archspec.errors import ArchspecError, SpecErrors
    from archspec.pipeline import compile_spec
    from archspec.registry import default_registry
    from archspec.testing.fuzz import Fuzzer

    report = ModeReport("torch-source")
    registry = default_registry()
    with Fuzzer(seeds, workdir, rng_seed) as fuzzer:
        fuzzer.seeds = [seed for seed in fuzzer.seeds if seed.path.parent == fuzzer.root]  # thin specs, not families
        order = fuzzer._round_robin()
        tries = 0
        while report.cases < cases and tries < cases * 40:
            tries += 1
            seed = next(order)
            target, text, mutation = fuzzer.mutate(seed)
            path = fuzzer._write(target, text)
            try:
                try:
                    compiled = compile_spec(path, None, registry, seed.variant if target == seed.path else None)
                except (SpecErrors, ArchspecError):
                    continue  # the spec fuzzer's business
                costs = compiled.costs
                if costs.params > SMALL or costs.macs > SMALL * 100 or costs.input_dtype != "float32":
                    continue  # token-id inputs need the vocabulary's bounds: the zoo test covers those
                report.cases += 1
                what = f"{seed.label}: {mutation}"
                try:
                    reference = registry.backend("torch").build(compiled.graph, BuildOptions()).eval()
                    source = registry.backend("torch-source").build(compiled.graph, BuildOptions()).text
                except (SpecErrors, ArchspecError):
                    report.refused += 1
                    continue
                try:
                    _source_matches(source, compiled.graph, reference, tuple(costs.input))
                    report.worked += 1
                except Exception as exc:  # noqa: BLE001
                    first = (str(exc).strip().splitlines() or [""])[0]
                    report.findings.append(f"{what}: the written source {type(exc).__name__}: {first}")
            finally:
                fuzzer._restore(target)
    return report
