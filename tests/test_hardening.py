"""Regression tests of issue 5's findings that are not spec files (those live in tests/hostile/): plugins
that fail inside their own code, the plugin switch, output paths, interrupted and failed writes, our own
output to a full device, the limits table, and the pure-Python YAML path agreeing with libyaml's."""

from __future__ import annotations

import os
from pathlib import Path
import re
import shutil
import signal
import stat
import subprocess
import sys
import time

import pytest

from archspec.errors import SpecErrors
from archspec.limits import DEFAULT, Limits, parse_limit
import archspec.load as load_module
from archspec.load import load_text
from archspec.pipeline import compile_spec
from test_plugins import archspec, make_dist, run

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "specs/seed_cnn.yaml"
TINY = "archspec: 1\nname: tiny\ninput: [3, 8, 8]\nlayers:\n  - {op: %s}\n  - {op: flatten}\n"

# A plugin whose op, count, lowering or backend raises: each must be reported as that plugin's bug.
FAULTY = """
from pydantic import BaseModel
from archspec.ops.base import NoParams, OpDef, Plugin

def bad_shape(p, inputs):
    raise ZeroDivisionError("shape bug")

def bad_weights(p, inputs):
    raise RuntimeError("weights bug")

def bad_lowering(node, shapes):
    raise ValueError("lowering bug")

class BadBackend:
    name = "faulty"
    suffix = ".bin"
    def __init__(self, *, extra_lowerings): pass
    def supports(self, op): return True
    def unsupported(self, graph): return []
    def build(self, graph, options): raise KeyError("backend bug")
    def save(self, artifact, graph, path): pass

LOWERINGS = {"weights_op": bad_lowering, "lower_op": bad_lowering}
PLUGIN = Plugin(
    ops=[OpDef("shape_op", NoParams, (1, 1), bad_shape),
         OpDef("weights_op", NoParams, (1, 1), lambda p, i: i[0], weights=bad_weights),
         OpDef("lower_op", NoParams, (1, 1), lambda p, i: i[0])],
    backends={"faulty": "faulty_plugin:BadBackend"},
    lowerings={"torch": "faulty_plugin:LOWERINGS"},
)
"""


@pytest.fixture(scope="module")
def faulty_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dist(
        tmp_path_factory.mktemp("faulty") / "site",
        "faulty-plugin",
        "6.6.6",
        {"faulty": "faulty_plugin:PLUGIN"},
        {"faulty_plugin": FAULTY},
    )


@pytest.mark.parametrize(
    "op, command, bug",
    [
        ("shape_op", "validate", "ZeroDivisionError: shape bug"),
        ("weights_op", "summary", "RuntimeError: weights bug"),
        ("lower_op", "build", "ValueError: lowering bug"),
    ],
)
def test_a_plugin_failing_in_its_own_code_is_reported_as_its_bug(
    faulty_site: Path, tmp_path: Path, op: str, command: str, bug: str
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(TINY % op)
    result = archspec(
        command, str(spec), *(["-o", str(tmp_path / "m.pt2")] if command == "build" else []), path=[faulty_site]
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "AS805" in result.stderr and bug in result.stderr, result.stderr
    assert "faulty-plugin 6.6.6" in result.stderr or "(see `archspec list`)" in result.stderr
    if op != "lower_op":  # located at the layer that uses the op
        assert f"{spec}:5:5: AS805" in result.stderr, result.stderr
    assert not (tmp_path / "m.pt2").exists()


def test_a_failing_backend_is_reported_as_its_bug(faulty_site: Path, tmp_path: Path) -> None:
    result = archspec("build", str(SEED), "--backend", "faulty", "-o", str(tmp_path / "m.bin"), path=[faulty_site])
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "AS805: the faulty backend failed in build: KeyError: 'backend bug'" in result.stderr
    assert "faulty-plugin 6.6.6" in result.stderr and list(tmp_path.iterdir()) == []


def test_no_plugins_switch_and_variable(faulty_site: Path) -> None:
    with_plugins = archspec("list", path=[faulty_site])
    assert "shape_op" in with_plugins.stdout and "faulty" in with_plugins.stdout
    for result in (
        archspec("--no-plugins", "list", path=[faulty_site]),
        run(
            [
                "-c",
                "import os, sys; os.environ['ARCHSPEC_NO_PLUGINS'] = '1'; "
                "from archspec.cli import main; sys.exit(main(['list']))",
            ],
            [faulty_site],
        ),
    ):
        assert result.returncode == 0, result.stderr
        assert "shape_op" not in result.stdout and "faulty" not in result.stdout and "conv2d" in result.stdout
        assert "faulty_plugin" not in result.stderr


def test_a_duplicate_backend_withdraws_the_name_only(tmp_path: Path) -> None:
    module = "from archspec.ops.base import Plugin\nPLUGIN = Plugin(backends={'torch': 'dup_backend:Nope'})\n"
    site = make_dist(tmp_path / "site", "dup-backend", "1.0", {"dup": "dup_backend:PLUGIN"}, {"dup_backend": module})
    assert archspec("validate", str(SEED), path=[site]).returncode == 0
    result = archspec("build", str(SEED), "-o", str(tmp_path / "m.pt2"), path=[site])
    assert result.returncode == 1 and "AS802: backend 'torch' is provided twice" in result.stderr
    assert "dup-backend 1.0" in result.stderr and not (tmp_path / "m.pt2").exists()


# -- where build writes -------------------------------------------------------------------------------
def test_default_output_goes_in_the_current_folder(tmp_path: Path) -> None:
    result = run(["-m", "archspec.cli", "build", str(SEED)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed_cnn.pt2"]


def test_output_refuses_special_files_and_links(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.pt2"
    os.mkfifo(fifo)
    target = tmp_path / "elsewhere.pt2"
    target.write_bytes(b"keep")
    link = tmp_path / "link.pt2"
    link.symlink_to(target)
    for path, why in ((fifo, "not a regular file"), (Path(os.devnull), "not a regular file"), (link, "symbolic link")):
        result = archspec("build", str(SEED), "-o", str(path))
        assert result.returncode == 1 and why in result.stderr and "AS804" in result.stderr, result.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and link.is_symlink() and target.read_bytes() == b"keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere.pt2", "fifo.pt2", "link.pt2"]


def test_replacing_a_file_keeps_its_mode(tmp_path: Path) -> None:
    out = tmp_path / "model.pt2"
    out.write_bytes(b"old")
    out.chmod(0o640)
    assert archspec("build", str(SEED), "-o", str(out)).returncode == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640 and out.read_bytes()[:2] == b"PK"


def test_a_full_disk_is_an_error_and_leaves_nothing(tmp_path: Path) -> None:
    # RLIMIT_FSIZE stands in for a full disk (the write fails with EFBIG as it would with ENOSPC);
    # torch's own C++ writer aborted the process here, ours reports it.
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))\n"
        "from archspec.cli import main\n"
        "sys.exit(main(['build', sys.argv[1], '-o', sys.argv[2]]))\n"
    )
    result = run(["-c", script, str(SEED), str(tmp_path / "out" / "model.pt2")])
    assert result.returncode == 1, result.stderr
    assert "AS804: cannot write" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # not the file, not the temporary folder, not the folder made for it


def test_our_own_output_to_a_full_device() -> None:
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "archspec.cli", "summary", str(SEED)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
    assert result.returncode == 1 and "cannot write the output" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_build_leaves_nothing_behind(tmp_path: Path, sig: signal.Signals) -> None:
    out = tmp_path / "vgg16.pt2"
    # Ctrl-C as from a terminal: a shell's background job inherits SIGINT ignored, and Python then never
    # raises KeyboardInterrupt; give the child the default disposition whatever launched the tests.
    proc = subprocess.Popen(
        [sys.executable, "-m", "archspec.cli", "build", "specs/vgg16.yaml", "-o", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(p.name.startswith(".") for p in tmp_path.iterdir()):
        time.sleep(0.05)  # wait until the write has started: its private temporary folder exists
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_surrogates_in_the_command_line_are_printed_escaped(tmp_path: Path) -> None:
    name = os.fsdecode(b"bad\xff.yaml")  # an undecodable file name: a lone surrogate in argv
    result = subprocess.run([sys.executable, "-m", "archspec.cli", "validate", name], capture_output=True, cwd=tmp_path)
    assert result.returncode == 2 and b"Traceback" not in result.stderr and b"\\udcff" in result.stderr


# -- limits ---------------------------------------------------------------------------------------------
def test_limits_parse_and_raise() -> None:
    assert parse_limit("memory_bytes=16Gi") == ("memory_bytes", 16 * 2**30)
    assert parse_limit("nodes=100_000") == ("nodes", 100_000) and parse_limit("params=5G") == ("params", 5 * 10**9)
    for bad in ("cpu=1", "nodes", "nodes=-1", "nodes=1e9", "nodes=" + "9" * 40):
        with pytest.raises(ValueError):
            parse_limit(bad)
    assert Limits().raised(nodes=5).nodes == 5 and DEFAULT.nodes == Limits().nodes


def test_raising_a_limit_lets_a_larger_spec_through(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "archspec: 1\nname: long\ninput: [3, 8, 8]\nlayers:\n  - {op: relu, repeat: 20000}\n  - {op: flatten}\n"
    )
    refused = archspec("validate", str(spec))
    assert refused.returncode == 1 and "AS404" in refused.stderr and "--limit repeat=N" in refused.stderr
    assert (
        archspec(
            "validate", str(spec), "--limit", "repeat=30000", "--limit", "nodes=30000", "--limit", "work_base=100000"
        ).returncode
        == 0
    )


def test_the_huge_network_is_refused_before_allocation_with_the_memory_it_needs(tmp_path: Path) -> None:
    spec = ROOT / "tests/hostile/build_huge_parameters.yaml"
    result = archspec("build", str(spec), "-o", str(tmp_path / "m.pt2"))
    assert result.returncode == 1 and "AS503" in result.stderr and "4,900,070,000 parameters (19.6 GB" in result.stderr
    wide = archspec("build", "specs/vgg16.yaml", "--set", "resolution=2048", "-o", str(tmp_path / "m.pt2"))
    assert wide.returncode == 1 and "building needs about" in wide.stderr and "--limit memory_bytes" in wide.stderr


# -- the pure-Python YAML path (PyYAML built without libyaml) --------------------------------------------
@pytest.mark.parametrize(
    "spec",
    sorted((ROOT / "specs").rglob("*.yaml"))[:12] + sorted((ROOT / "tests/hostile").glob("*.yaml")),
    ids=lambda p: p.stem,
)
def test_libyaml_and_pure_python_events_agree(spec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = spec.read_text(encoding="utf-8")

    def outcome() -> object:
        try:
            doc = load_text(text, "f.yaml")
            return doc.data, dict(doc.locations), dict(doc.key_locations)
        except SpecErrors as exc:  # libyaml stops at a bad escape, the pure-Python scanner reads on
            return {e.code for e in exc.errors}, exc.errors[0].location.line if exc.errors[0].location else None

    fast = outcome()
    monkeypatch.setattr(load_module, "_CParser", None)
    assert outcome() == fast


# -- issue 18: validation cost, values that validate but cannot run, run folders, command line ------------
def test_did_you_mean_is_bounded_in_a_flood_of_unknown_names(tmp_path: Path) -> None:
    # 2,000 unknown names among 2,000 declared ones took 21 s (every suggestion compared against every name,
    # and every layer copied the scope); the suggestion budget and the shared scope keep it linear.
    n = 2000
    spec = tmp_path / "flood.yaml"
    spec.write_text(
        "archspec: 1\nname: flood\nparams:\n"
        + "".join(f"  param_number_{k}: {k}\n" for k in range(n))
        + "input: [3, 8, 8]\nlayers:\n"
        + "".join(f'  - {{op: dropout, p: "${{paramnumber_{k} / 1e9}}"}}\n' for k in range(n))
    )
    started = time.process_time()  # CPU, not wall time: the machine is shared
    with pytest.raises(SpecErrors) as caught:
        compile_spec(spec)
    elapsed = time.process_time() - started
    assert caught.value.total == n and len(caught.value.errors) == DEFAULT.errors
    shown = caught.value.errors
    assert all(e.code == "AS303" for e in shown)
    # The errors shown still say what was meant: the exact near-miss is found among 2,000 similar names.
    assert all(f"Did you mean 'param_number_{k}'" in e.message for k, e in enumerate(shown)), shown[0].message
    assert elapsed < 20, f"{elapsed:.1f} s of CPU"  # 70 s before, about 2 s after


@pytest.mark.parametrize(
    "args, words",
    [
        (["train", str(SEED), "--data", "digits", "--augment", "crop=nan"], "finite number"),
        (["train", str(SEED), "--data", "digits", "--augment", "brightness=inf"], "finite number"),
        (["compare", f"{SEED}:augment=crop=nan", "--data", "digits"], "finite number"),
        (["bench", str(SEED), "--batch", "100000000000"], "use a smaller --batch"),
    ],
    ids=["augment_nan", "augment_inf", "compare_entry_nan", "bench_huge_batch"],
)
def test_command_line_values_beyond_range_are_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, args: list[str], words: str
) -> None:
    from archspec import cli

    monkeypatch.chdir(tmp_path)  # nothing may be written, but if it were it lands here
    code = cli.main(args)
    err = capsys.readouterr().err
    # 2: a usage error (AS913, as for every bad training option), 1: AS901
    assert code in (1, 2) and re.search(r"error: AS9\d\d: ", err) and words in err and "Traceback" not in err, err
    assert not any(tmp_path.iterdir())


def test_a_pickle_with_code_is_refused_without_torchs_advice_to_load_it_fully(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from archspec import cli

    class Planted:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("ran",))

    import torch

    torch.save({"w": Planted()}, tmp_path / "planted.pt")
    code = cli.main(["build", str(SEED), "--weights", str(tmp_path / "planted.pt"), "-o", str(tmp_path / "x.pt2")])
    captured = capsys.readouterr()
    assert code == 1 and "AS701" in captured.err and "ran" not in captured.out
    assert "weights_only" not in captured.err and "add_safe_globals" not in captured.err and "trust" not in captured.err


# -- run folders: every field checked by one model (archspec.train.run_folder), links refused ---------------
RUN_ARGS = [str(SEED), "--data", "digits", "--set", "resolution=8"]
TRAIN_ARGS = ["train", *RUN_ARGS, "--threads", "1", "--batch-size", "128"]


@pytest.fixture(scope="module")
def a_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from archspec import cli

    folder = tmp_path_factory.mktemp("run") / "run"
    assert cli.main([*TRAIN_ARGS, "--epochs", "1", "--out", str(folder)]) == 0
    return folder


def _state_edit(key: str, value: object) -> object:
    def edit(state: dict) -> None:
        target = state
        *parents, leaf = key.split(".")
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        target[leaf] = value

    return edit


def _tensor_edit(change: str) -> object:
    def edit(tensors: dict) -> None:
        import torch

        if change == "no_rng":
            del tensors["rng/torch"]
        elif change == "extra_rng":
            tensors["rng/planted"] = torch.zeros(4, dtype=torch.uint8)
        elif change == "momentum_shape":
            key = next(k for k in tensors if k.startswith("optimizer/"))
            tensors[key] = torch.zeros(3)

    return edit


@pytest.mark.parametrize(
    "edit, words",
    [
        (_state_edit("epoch", float("inf")), "epoch"),
        (_state_edit("epoch", -3), "epoch"),  # trained 6 more epochs
        (_state_edit("epoch", 1e30), "epoch"),  # reported the run done
        (_state_edit("epoch", 5), "history records 1 epochs"),  # an epoch count the history does not back
        (_state_edit("seconds", "x"), "seconds"),
        (_state_edit("seconds", float("nan")), "seconds"),
        (_state_edit("optimizer", []), "optimizer"),
        (_state_edit("history", ["a string"]), "history.0"),
        (_state_edit("options.overrides", [1, 2]), "options.overrides"),
        (_state_edit("python_random", [3, [0] * 624 + [625], None]), "python_random"),  # position past the end
        (_state_edit("weights", "../../elsewhere.safetensors"), "weights"),
        (_state_edit("optimizer.param_groups.0.lr", "fast"), "param_groups.0.lr"),
        (_tensor_edit("no_rng"), "missing rng/torch"),
        (_tensor_edit("extra_rng"), "rng/planted"),
        (_tensor_edit("momentum_shape"), "has shape [3]"),
    ],
    ids=[
        "epoch_infinity",
        "epoch_negative",
        "epoch_1e30",
        "epoch_beyond_history",
        "seconds_string",
        "seconds_nan",
        "optimizer_list",
        "history_string",
        "overrides_list",
        "python_random_position",
        "weights_outside",
        "lr_string",
        "rng_missing",
        "rng_extra",
        "momentum_shape",
    ],
)
def test_a_tampered_run_folder_is_a_located_error(
    a_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: object, words: str
) -> None:
    import json

    from safetensors.torch import load_file, save_file

    from archspec import cli

    folder = tmp_path / "run"
    shutil.copytree(a_run, folder)
    (folder / "model.safetensors").unlink()  # stopped after its checkpoint: eval reads state.json too
    state = json.loads((folder / "state.json").read_text())
    if edit.__qualname__.startswith("_tensor_edit"):  # type: ignore[attr-defined]
        tensors = load_file(str(folder / state["state"]))
        edit(tensors)  # type: ignore[operator]
        save_file(tensors, str(folder / state["state"]))
    else:
        edit(state)  # type: ignore[operator]
        (folder / "state.json").write_text(json.dumps(state))
    code = cli.main([*TRAIN_ARGS, "--epochs", "2", "--out", str(folder), "--resume"])
    err = capsys.readouterr().err
    assert code == 1 and "error: AS915: " in err and words in err, err
    assert not (folder / "model.safetensors").exists()
    # eval needs only the weights: it may use them (an optimizer's field does not matter to it), or refuse
    code = cli.main(["eval", *RUN_ARGS, "--weights", str(folder)])
    err = capsys.readouterr().err
    assert code == 0 or (code == 1 and "error: AS915: " in err), err


@pytest.mark.parametrize("link", ["runs", "runs/seed_cnn"])
def test_a_planted_link_for_the_run_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, link: str
) -> None:
    from archspec import cli

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    work = tmp_path / "work"
    (work / link).parent.mkdir(parents=True, exist_ok=True)
    (work / link).symlink_to(elsewhere, target_is_directory=True)
    monkeypatch.chdir(work)
    code = cli.main([*TRAIN_ARGS, "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "AS915" in err and "symbolic link" in err, err
    assert not any(elsewhere.iterdir())  # nothing written where the link points
