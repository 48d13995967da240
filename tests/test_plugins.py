"""Third-party plugins, end to end: the example package installed for real, broken and clashing plugins.

The example plugin (plugins/archspec-example) is pip-installed once per session into a temporary
folder, and the CLI runs in subprocesses with that folder on PYTHONPATH, so `importlib.metadata`
discovers it exactly as it would a package installed into site-packages. The test process itself
never sees the plugin: its own `default_registry()` (cached) is left as the rest of the suite expects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import importlib.metadata
from importlib.metadata import EntryPoint
import json
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from archspec.registry import GROUP, build_registry
from reference import perturb_batchnorm, relative_error

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SRC = ROOT / "plugins" / "archspec-example"
EXAMPLE_SPEC = PLUGIN_SRC / "specs" / "shuffle_net_tiny.yaml"
SUBPROCESS_TIMEOUT = 300


# -- helpers -----------------------------------------------------------------------------------
def run(args: Sequence[str], path: Sequence[Path] = (), cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """`python <args>` in a fresh interpreter with `path` prepended to PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, path), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT
    )


def archspec(*args: str, path: Sequence[Path] = ()) -> subprocess.CompletedProcess[str]:
    """The `archspec` command line (as `python -m archspec.cli`, so it is this interpreter's archspec)."""
    return run(["-m", "archspec.cli", *args], path)


def make_dist(root: Path, name: str, version: str, entry_points: Mapping[str, str], modules: Mapping[str, str]) -> Path:
    """Lay out an installed distribution in `root` the way pip does: modules plus a dist-info folder
    with METADATA and entry_points.txt, which is all `importlib.metadata` reads."""
    root.mkdir(parents=True, exist_ok=True)
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = [f"[{GROUP}]", *(f"{k} = {v}" for k, v in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for module, text in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(text))
    return root


def located_lines(stderr: str, code: str, spec: Path) -> list[int]:
    """Line numbers of the `file:line:col: CODE:` errors in `stderr` that point into `spec`."""
    pattern = re.compile(rf"^(.+):(\d+):(\d+): {code}: ", re.M)
    return [int(m.group(2)) for m in pattern.finditer(stderr) if Path(m.group(1)).resolve() == spec.resolve()]


def installed_plugin(tmp_path_factory: pytest.TempPathFactory, source: Path, dist_info: str) -> Path:
    """A plugin package really installed by pip (offline, no build isolation, --no-deps) into a fresh folder.

    pip builds from a copy so that setuptools' build/ and *.egg-info never land in the source tree."""
    tmp = tmp_path_factory.mktemp("plugin")
    src = shutil.copytree(
        source, tmp / "src", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "dist")
    )
    site = tmp / "site"
    result = run(
        [
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--quiet",
            "--target",
            str(site),
            str(src),
        ]
    )
    assert result.returncode == 0, f"pip install failed:\n{result.stdout}\n{result.stderr}"
    assert (site / dist_info / "entry_points.txt").is_file()
    return site


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin, really installed."""
    return installed_plugin(tmp_path_factory, PLUGIN_SRC, "archspec_example-0.1.0.dist-info")


# -- the example plugin, installed ----------------------------------------------------------------
def test_list_shows_the_plugin_op_and_its_package(installed: Path) -> None:
    result = archspec("list", path=[installed])
    assert result.returncode == 0, result.stderr
    assert re.search(r"^\s+channel_shuffle\s+archspec-example 0\.1\.0 \(entry point 'example'\)$", result.stdout, re.M)
    assert re.search(r"^\s+relu\s+archspec 0\.1\.0 \(entry point 'builtin'\)$", result.stdout, re.M)
    assert "AS80" not in result.stderr


def test_validate_example_spec(installed: Path) -> None:
    result = archspec("validate", str(EXAMPLE_SPEC), path=[installed])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: ") and "5,200 params" in result.stdout and "output [10]" in result.stdout
    assert "AS80" not in result.stderr


def test_torch_is_imported_only_by_the_backend_and_the_op_shuffles(installed: Path, tmp_path: Path) -> None:
    # One interpreter for both checks (starting one with torch costs seconds):
    # 1. the entry point loads archspec_example, and compiling a spec (shapes, counts) uses only the
    #    OpDef: torch comes in only with the torch backend, through the "module:attribute" string;
    # 2. a known answer: six channels in three groups [0 1] [2 3] [4 5] come out as [0 2 4 1 3 5].
    spec = tmp_path / "shuffle.yaml"
    spec.write_text("archspec: 1\nname: shuffle\ninput: [6, 2, 1]\nlayers:\n  - {op: channel_shuffle, groups: 3}\n")
    probe = f"""
import json, sys
import archspec, archspec_example
assert "torch" not in sys.modules, "importing the plugin imported torch"
costs = archspec.summary({str(EXAMPLE_SPEC)!r})
tiny = archspec.summary({str(spec)!r})
assert "torch" not in sys.modules, "validating a spec that uses the plugin imported torch"
import torch
model = archspec.build({str(spec)!r})
x = torch.arange(6.0).reshape(1, 6, 1, 1).expand(2, 6, 2, 1)
print(json.dumps([costs.params, costs.macs, tiny.params, tiny.macs, model(x)[:, :, 0, 0].tolist()]))
"""
    result = run(["-c", probe], path=[installed])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [5200, 1046208, 0, 0, [[0, 2, 4, 1, 3, 5]] * 2]


# A hand-written ShuffleNet-tiny in plain torch, with torch's own nn.ChannelShuffle as the oracle for
# the plugin's op. Module names follow the spec, so the state dicts agree name by name.
class Unit(nn.Module):
    def __init__(self, width: int, groups: int):
        super().__init__()
        mid = width // 4
        self.conv1 = nn.Conv2d(width, mid, 1, groups=groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.shuffle = nn.ChannelShuffle(groups)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, width, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(width)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        x = self.shuffle(torch.relu(self.bn1(self.conv1(x))))
        return self.bn3(self.conv3(self.bn2(self.conv2(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.branch(x))


class Down(Unit):
    def __init__(self, in_width: int, width: int, groups: int):
        nn.Module.__init__(self)
        branch = width - in_width
        mid = branch // 4
        self.conv1 = nn.Conv2d(in_width, mid, 1, groups=groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.shuffle = nn.ChannelShuffle(groups)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=2, padding=1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, branch, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(branch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = nn.functional.avg_pool2d(x, 3, stride=2, padding=1)
        return torch.relu(torch.cat([shortcut, self.branch(x)], dim=1))


class Stage(nn.Module):
    def __init__(self, in_width: int, width: int, depth: int, groups: int):
        super().__init__()
        self.down = Down(in_width, width, groups)
        self.units = nn.Sequential(*(Unit(width, groups) for _ in range(depth - 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.units(self.down(x))


class ShuffleNetTiny(nn.Module):
    def __init__(
        self,
        num_classes: int = 10,
        groups: int = 3,
        stem: int = 24,
        widths: Sequence[int] = (48, 96),
        depths: Sequence[int] = (2, 2),
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(3, stem, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        ins = [stem, *widths[:-1]]
        self.stages = nn.Sequential(*(Stage(i, w, d, groups) for i, w, d in zip(ins, widths, depths)))
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(torch.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def conv_linear_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates per sample of the convolutions and linear layers, counted with hooks."""
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        per_output = module.weight[0].numel()  # (cin / groups) * kh * kw, or in_features
        total += output[0].numel() * per_output

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(x[:1])
    for h in handles:
        h.remove()
    return total


def test_build_example_spec_matches_handwritten_torch(installed: Path, tmp_path: Path) -> None:
    reference = ShuffleNetTiny().eval()
    perturb_batchnorm(reference)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))  # batch 3: not the export's example batch
    # The spec's expect: figures, recomputed from the hand-written model.
    assert sum(p.numel() for p in reference.parameters()) == 5200
    assert conv_linear_macs(reference, x) == 1046208

    # .pt, not .safetensors: safetensors' load_file returns tensors sorted by dtype and name, not in
    # registration order, so --weights' pairing by order and shape would swap each batch norm's
    # weight/bias/running_mean/running_var (all [C]). torch.save keeps the order.
    weights = tmp_path / "reference.pt"
    torch.save(reference.state_dict(), weights)
    out = tmp_path / "x.pt2"
    result = archspec("build", str(EXAMPLE_SPEC), "-o", str(out), "--weights", str(weights), path=[installed])
    assert result.returncode == 0, result.stderr
    assert out.is_file() and f"wrote {out}" in result.stdout

    # The .pt2 holds aten ops only: it loads and runs here, where the plugin is not importable.
    program = torch.export.load(str(out))
    names = {name for name, _ in reference.named_parameters()}
    assert names <= set(program.state_dict), sorted(names - set(program.state_dict))
    with torch.no_grad():
        expected = reference(x)
        got = program.module()(x)
    assert got.shape == (3, 10)
    assert relative_error(got, expected) <= 1e-5


def test_torch_source_prints_the_plugins_torch_lowering(installed: Path, tmp_path: Path) -> None:
    # The plugin registers one torch lowering; torch-source prints it (importing the plugin's function), and the
    # file computes what the torch backend's module computes, bit for bit, in eval and in train mode (batch norm's
    # batch statistics and running-stat updates), with the torch backend's weights.
    out = tmp_path / "x.py"
    result = archspec("build", str(EXAMPLE_SPEC), "--backend", "torch-source", "-o", str(out), path=[installed])
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout
    assert "from archspec_example.functional import channel_shuffle\n" in out.read_text()
    probe = f"""
import ast, importlib.util, sys, torch
import archspec
spec = importlib.util.spec_from_file_location("x", {str(out)!r})
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
ours = getattr(module, ast.parse(open({str(out)!r}).read()).body[-1].name)()
reference = archspec.build({str(EXAMPLE_SPEC)!r}, seed=5)
ours.load_state_dict(reference.state_dict(), strict=True)
x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
for mode in (True, False):
    ours.train(mode); reference.train(mode)
    torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)
for name, tensor in reference.state_dict().items():
    torch.testing.assert_close(ours.state_dict()[name], tensor, rtol=0, atol=0)
print("same")
"""
    result = run(["-c", probe], path=[installed])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "same"


# -- broken plugins ---------------------------------------------------------------------------------
BROKEN = {
    "import_error": (
        "broken_plugin:PLUGIN",
        "raise ImportError('broken on purpose')\n",
        "ImportError: broken on purpose",
    ),
    "not_a_plugin": ("broken_plugin:PLUGIN", "PLUGIN = {'ops': []}\n", "TypeError: broken_plugin:PLUGIN is a dict"),
    "missing_attribute": ("broken_plugin:NOPE", "PLUGIN = None\n", "AttributeError"),
    # Not Exceptions: a plugin must not be able to stop archspec by raising these at import either.
    "keyboard_interrupt": (
        "broken_plugin:PLUGIN",
        "raise KeyboardInterrupt('at import')\n",
        "KeyboardInterrupt: at import",
    ),
    "system_exit": ("broken_plugin:PLUGIN", "raise SystemExit(3)\n", "SystemExit: 3"),
    "base_exception": ("broken_plugin:PLUGIN", "raise BaseException('base')\n", "BaseException: base"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_plugin_is_reported_and_skipped(kind: str, tmp_path: Path) -> None:
    target, module, why = BROKEN[kind]
    site = make_dist(tmp_path / "site", "broken-plugin", "0.0.1", {"broken": target}, {"broken_plugin": module})
    result = archspec("validate", "specs/seed_cnn.yaml", path=[site])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: specs/seed_cnn.yaml")
    warning = [line for line in result.stderr.splitlines() if "AS801" in line]
    assert len(warning) == 1, result.stderr
    assert "broken-plugin 0.0.1 (entry point 'broken')" in warning[0] and why in warning[0], warning[0]


def test_broken_plugin_does_not_hide_a_working_one(installed: Path, tmp_path: Path) -> None:
    site = make_dist(
        tmp_path / "site",
        "broken-plugin",
        "0.0.1",
        {"broken": "broken_plugin:PLUGIN"},
        {"broken_plugin": "raise ImportError('broken on purpose')\n"},
    )
    result = archspec("validate", str(EXAMPLE_SPEC), path=[site, installed])
    assert result.returncode == 0, result.stderr
    assert "AS801: plugin broken-plugin 0.0.1" in result.stderr


# -- two providers of one op ----------------------------------------------------------------------
DUP_MODULE = """
from archspec.ops.base import NoParams, OpDef, Plugin
PLUGIN = Plugin(ops=[OpDef("relu", NoParams, (1, 1), lambda p, inputs: inputs[0])])
"""


def builtin_entry_points() -> list[EntryPoint]:
    """archspec's own entry points (whatever else this environment has installed is left out)."""
    return [ep for ep in importlib.metadata.entry_points(group=GROUP) if ep.value.startswith("archspec.")]


def test_duplicate_op_names_both_providers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The edge where a real second installed package is simulated: an EntryPoint object made by hand
    # (so it has no distribution, and its provider reads "<unknown package>") pointing at a module in tmp.
    # The CLI test below installs the same clash as a real distribution.
    module = "archspec_test_dup_relu"
    (tmp_path / f"{module}.py").write_text(DUP_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    eps = [*builtin_entry_points(), EntryPoint("dup", f"{module}:PLUGIN", GROUP)]
    messages = []
    for order in (eps, eps[::-1]):  # the message must not depend on discovery order
        registry = build_registry(order)  # the clash does not break the registry ...
        assert "relu" not in registry.ops and "conv2d" in registry.ops
        messages.append(registry.conflict("op", "relu"))  # ... it withdraws the name, with a message naming both
        assert len(registry.problems) == 1 and registry.problems[0].startswith("AS802: ")
    assert messages[0] == messages[1]
    assert messages[0] is not None and messages[0].startswith(
        "op 'relu' is provided twice: by archspec 0.1.0 (entry point 'builtin') and by <unknown package> (entry point 'dup')"
    ), messages[0]
    monkeypatch.delitem(sys.modules, module, raising=False)


def test_duplicate_op_from_an_installed_package_fails_only_its_users(tmp_path: Path) -> None:
    site = make_dist(tmp_path / "site", "dup-relu", "0.0.1", {"relu": "dup_relu:PLUGIN"}, {"dup_relu": DUP_MODULE})
    clash = (
        "op 'relu' is provided twice: by archspec 0.1.0 (entry point 'builtin') "
        "and by dup-relu 0.0.1 (entry point 'relu')"
    )
    result = archspec("validate", "specs/seed_cnn.yaml", path=[site])
    assert result.returncode == 1
    # Located at each layer that uses the op, as an error; announced once as a warning.
    spec_lines = (ROOT / "specs/families/seed_cnn.yaml").read_text().splitlines()
    relu_line = next(n for n, line in enumerate(spec_lines, 1) if "op: relu" in line)
    assert f"seed_cnn.yaml:{relu_line}:" in result.stderr and f"AS802: {clash}" in result.stderr, result.stderr
    assert f"warning: AS802: {clash}" in result.stderr
    # Commands that do not use the name still work: `list` is how the user finds the culprit.
    listing = archspec("list", path=[site])
    assert listing.returncode == 0 and "conv2d" in listing.stdout and "dup-relu 0.0.1" in listing.stderr
    assert archspec("explain", "conv2d", path=[site]).returncode == 0


# -- the plugin not installed -------------------------------------------------------------------------
def test_without_the_plugin_its_op_is_an_unknown_op() -> None:
    try:
        importlib.metadata.distribution("archspec-example")
        pytest.skip("archspec-example is installed in this environment")
    except importlib.metadata.PackageNotFoundError:
        pass
    result = archspec("validate", str(EXAMPLE_SPEC))
    assert result.returncode == 1
    assert "unknown op or block 'channel_shuffle'" in result.stderr
    # One located error per layer using the op, pointing at that layer's op: value.
    text = EXAMPLE_SPEC.read_text().splitlines()
    using = [n for n, line in enumerate(text, 1) if "op: channel_shuffle" in line]
    assert len(using) == 2 and located_lines(result.stderr, "AS204", EXAMPLE_SPEC) == using, result.stderr
    column = text[using[0] - 1].index("channel_shuffle") + 1
    assert f"shuffle_net_tiny.yaml:{using[0]}:{column}: AS204:" in result.stderr
