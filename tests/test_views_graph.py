"""archspec graph: DOT text (tested without Graphviz) and pictures (where the `dot` program is installed)."""

from pathlib import Path
import re
import shutil
import struct
import xml.etree.ElementTree as ET

import pytest

from archspec import pipeline
from archspec.cli import main
from archspec.registry import default_registry
from archspec.views.graph import to_dot

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = default_registry()
HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot program is not installed")
NODE = re.compile(r"^\s*(n\d+) \[label=\"([^\"]*)\".*tooltip=\"?([^\"\]\s]+)", re.M)
EDGE = re.compile(r"^\s*(n\d+) -> (n\d+)", re.M)
CLUSTER = re.compile(r"subgraph \"?cluster_([^\"\s{]+)\"? \{\s*\n[^\n]*label=(?:\"([^\"]*)\"|(\S+))", re.M)


def drawn(spec, **options):
    compiled = pipeline.compile_spec(ROOT / f"specs/{spec}.yaml", registry=REGISTRY)
    source = to_dot(compiled.graph, compiled.costs, REGISTRY, **options).source
    nodes = {nid: (label, tip) for nid, label, tip in NODE.findall(source)}
    edges = EDGE.findall(source)
    clusters = {path: quoted or bare for path, quoted, bare in CLUSTER.findall(source)}
    return compiled, source, nodes, edges, clusters


def test_resnet50_blocks_are_clusters_and_residual_adds_merge_two_paths():
    compiled, source, nodes, edges, clusters = drawn("resnet50")
    assert {a for e in edges for a in e} <= set(nodes)  # every edge joins drawn things
    assert clusters["layer1"] == "layer1 ×3" and "layer1.0" in clusters and "layer1.0.downsample" in clusters
    adds = [nid for nid, (label, tip) in nodes.items() if label.startswith("add\\n")]
    assert adds and all(sum(1 for _, head in edges if head == nid) == 2 for nid in adds)
    # The first two copies of each stage are drawn (the first has the projection); the rest, built alike, are one box.
    assert "layer1.2 ×1\\nbuilt like layer1.1" in source and "layer4.2 ×1" in source
    assert "layer3.2–5 ×4\\nbuilt like layer3.1" in source
    conv1 = next(label for label, tip in nodes.values() if tip == "conv1")
    assert conv1.split("\\n") == ["conv1", "conv2d", "[64, 112, 112]", "params 9.41K"]  # name, op, shape, params


@pytest.mark.parametrize("spec, repeat", [("vit_h_14", "layers.1–31 ×31"), ("densenet264", "denseblock3.1–63 ×63")])
def test_the_largest_specs_collapse_to_a_readable_picture(spec, repeat):
    compiled, source, nodes, edges, clusters = drawn(spec)
    assert len(compiled.graph) > 350 and len(nodes) < 120
    assert repeat in source
    ir_edges = sum(len(n.inputs) for n in compiled.graph)
    assert len(edges) < ir_edges


def test_depth_and_collapse_options():
    _, source, nodes, _, clusters = drawn("vit_b_16", depth=1)
    assert "encoder" in clusters and "encoder.layers" not in clusters and "layers ×12" in source
    _, _, all_nodes, _, clusters = drawn("vit_b_16", collapse=False)
    assert {f"encoder.layers.{k}" for k in range(12)} <= set(clusters)
    assert len(all_nodes) > 2 * len(nodes)
    _, _, flat_nodes, _, clusters = drawn("vit_b_16", depth=0)
    assert not clusters and any("block · " in label for label, _ in flat_nodes.values())


def test_cli_writes_dot_text_without_graphviz_and_refuses_unknown_formats(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot here
    out = tmp_path / "g.dot"
    assert main(["graph", str(ROOT / "specs/resnet18.yaml"), "-o", str(out)]) == 0
    assert out.read_text().startswith("digraph resnet18 {")
    assert main(["graph", str(ROOT / "specs/resnet18.yaml"), "-o", str(tmp_path / "g.svg")]) == 1
    err = capsys.readouterr().err
    assert "AS931" in err and "apt-get install graphviz" in err and "brew install graphviz" in err
    assert not (tmp_path / "g.svg").exists()
    assert main(["graph", str(ROOT / "specs/resnet18.yaml"), "-o", str(tmp_path / "g.jpg")]) == 2
    assert "AS933" in capsys.readouterr().err


@needs_dot
def test_pictures_in_every_format(capsys, tmp_path):
    for spec in ("resnet50", "vit_b_16"):
        svg = tmp_path / f"{spec}.svg"
        assert main(["graph", str(ROOT / f"specs/{spec}.yaml"), "-o", str(svg)]) == 0
        root = ET.parse(svg).getroot()
        titles = [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")]
        assert spec in titles and len(titles) > 20  # graph, clusters, nodes and edges each have a title
    magic = {"png": b"\x89PNG", "pdf": b"%PDF", "html": b"<!DOCTYPE html>"}
    for fmt, start in magic.items():
        out = tmp_path / "sub" / f"g.{fmt}"
        assert main(["graph", str(ROOT / "specs/seed_cnn.yaml"), "-o", str(out), "--depth", "1"]) == 0
        assert out.read_bytes().startswith(start)
    assert b"<svg" in (tmp_path / "sub" / "g.html").read_bytes()
    (tmp_path / "folder.svg").mkdir()
    assert main(["graph", str(ROOT / "specs/seed_cnn.yaml"), "-o", str(tmp_path / "folder.svg")]) == 1
    assert "AS804" in capsys.readouterr().err


def test_views_never_import_torch(tmp_path):
    import subprocess
    import sys

    script = (
        "import sys\nfrom archspec.cli import main\n"
        f"for argv in (['graph', 'resnet18', '-o', {str(tmp_path / 'g.dot')!r}], ['card', 'resnet18', '-o', {str(tmp_path / 'c.html')!r}],"
        " ['diff', 'seed_cnn', 'seed_cnn_bn'], ['fingerprint', 'seed_cnn'], ['schema']):\n"
        "    assert main(argv) == 0, argv\n"
        "print('torch imported' if 'torch' in sys.modules else 'torch-free', file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "torch-free"


def test_times_n_marks_only_real_repeats():
    # swin_t's features.0 (patch conv, permute, norm) and each block's mlp.0-4 (linear, gelu, dropout, ...) are
    # numbered as torchvision numbers them, but each child is a different layer: drawn as blocks, not "×N".
    _, source, nodes, _, clusters = drawn("swin_t")
    labels = list(clusters.values()) + [label.split("\\n")[0] for label, _ in nodes.values()]
    assert "features.0" in clusters and clusters["features.0"] == "features.0"
    assert not [label for label in labels if re.search(r"\b(features|features\.0|mlp) ×", label)]
    assert any(label.startswith("mlp\\nblock · 5 layers") for label, _ in nodes.values())
    # The real repeats still are: the four stages (repeat: len(depths)) and each stage's blocks (repeat: depths[s]).
    assert clusters["stages"] == "stages ×4" and clusters["stages.2.blocks"] == "blocks ×6"
    _, source, _, _, clusters = drawn("vgg16")  # features.0-30 written one by one: no repeat among them
    assert clusters["features"] == "features" and "features ×" not in source


def test_a_repeat_of_one_op_is_marked_and_a_hand_built_graph_falls_back_to_numbering(tmp_path):
    from archspec.ir import Graph, Node
    from archspec.views.structure import tree

    spec = tmp_path / "r.yaml"
    spec.write_text(
        "archspec: 1\ninput: [8]\nlayers:\n  - {name: fc, op: linear, out: 8, repeat: 3}\n"
        "  - {name: head.0, op: linear, out: 4}\n  - {name: head.1, op: relu}\n"
    )
    compiled = pipeline.compile_spec(spec, registry=REGISTRY)
    groups = {g.path: g for g in tree(compiled.graph).children if not isinstance(g, Node)}
    assert groups["fc"].is_repeat and not groups["head"].is_repeat
    assert 'label="fc ×3"' in to_dot(compiled.graph, compiled.costs, REGISTRY).source
    bare = Graph("bare")  # no source locations: numbered children are all there is to go by
    for node in compiled.graph:
        bare.add(Node(node.name, node.op, node.params, node.inputs, node.shape))
    groups = {g.path: g for g in tree(bare).children if not isinstance(g, Node)}
    assert groups["fc"].is_repeat and groups["head"].is_repeat


@needs_dot
def test_pictures_grow_with_the_graph_and_pngs_fit_the_bitmap_limit(tmp_path):
    from archspec.views.graph import BITMAP_SIDE, PNG_DPI

    def points(svg):
        root = ET.parse(svg).getroot()
        return tuple(float(root.get(side).removesuffix("pt")) for side in ("width", "height"))

    sizes = {}
    for spec in ("lenet5", "vit_b_16", "inception_v3"):
        assert main(["graph", str(ROOT / f"specs/{spec}.yaml"), "-o", str(tmp_path / f"{spec}.svg")]) == 0
        sizes[spec] = points(tmp_path / f"{spec}.svg")
    # inception_v3's parallel branches make a wide layout; lenet5 is a short chain: the pictures follow.
    assert sizes["inception_v3"][0] > 2.5 * sizes["lenet5"][0] and sizes["inception_v3"][1] > 5 * sizes["lenet5"][1]
    assert sizes["vit_b_16"][1] > sizes["lenet5"][1]
    png = tmp_path / "v.png"
    assert main(["graph", str(ROOT / "specs/vit_b_16.yaml"), "-o", str(png)]) == 0
    width, height = struct.unpack(">II", png.read_bytes()[16:24])
    want = [side * PNG_DPI / 72 for side in sizes["vit_b_16"]]
    assert abs(width - want[0]) < 0.02 * want[0] and abs(height - want[1]) < 0.02 * want[1]
    assert main(["graph", str(ROOT / "specs/efficientnet_b7.yaml"), "-o", str(png)]) == 0  # too long for PNG_DPI
    width, height = struct.unpack(">II", png.read_bytes()[16:24])
    assert BITMAP_SIDE * 0.9 < height <= BITMAP_SIDE
