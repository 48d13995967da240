"""archspec card: one self-contained page; rendered in headless Chromium where it is installed."""

from html.parser import HTMLParser
from pathlib import Path
import shutil
import subprocess

import pytest

from archspec.cli import main
from archspec.registry import default_registry
from archspec.validate import resolve_file

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
HAS_DOT = shutil.which("dot") is not None
CONV_FILL = (0xCF, 0xE2, 0xFF)  # graph.COLORS["conv"]: a drawn conv node


SECTIONS = {"summary": "table", "expect": "table", "stages": "svg", "graph": "div"}  # the card's parts, by id


class Page(HTMLParser):
    """Counts what the card must hold: rows of each table, chart bars, inline SVG, anything loaded from outside."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.rows: dict[str, int] = {}
        self.bars = 0
        self.graph_svg = False
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id") in SECTIONS:
            self.open.append(a["id"])
        if tag == "tr" and self.open:
            self.rows[self.open[-1]] = self.rows.get(self.open[-1], 0) + 1
        if tag == "rect" and "stages" in self.open:
            self.bars += 1
        if tag == "svg" and "graph" in self.open:
            self.graph_svg = True
        if tag in ("script", "link", "img", "iframe") or any(
            k in ("src", "href") and v and "://" in v for k, v in attrs if k != "xmlns"
        ):
            self.external.append(f"{tag} {a}")

    def handle_endtag(self, tag):
        if self.open and tag == SECTIONS[self.open[-1]]:  # sections do not nest their own tag inside
            self.open.pop()


def card(capsys, tmp_path, spec, *extra):
    out = tmp_path / f"{Path(spec).stem}.html"
    code = main(["card", str(spec), "-o", str(out), *extra])
    _, err = capsys.readouterr()
    assert code == 0, err
    page = Page()
    text = out.read_text()
    page.feed(text)
    return out, text, page, err


def test_card_holds_table_chart_expect_status_and_source(capsys, tmp_path):
    out, text, page, _ = card(capsys, tmp_path, ROOT / "specs/resnet18.yaml")
    from archspec import pipeline

    compiled = pipeline.compile_spec(ROOT / "specs/resnet18.yaml")
    assert page.rows["summary"] == len(compiled.costs.layers) + 1  # a header and one row per layer
    assert page.rows["expect"] == 5 and text.count('class="ok">ok<') == 4
    stages = {layer.name.split(".")[0] for layer in compiled.costs.layers}
    assert page.bars == 2 * len(stages)  # one params bar and one MACs bar per stage
    assert "use: families/resnet.yaml" in text and "variants:" in text  # the thin spec and its family
    assert page.external == []  # nothing to fetch at view time
    assert page.graph_svg == HAS_DOT


def test_a_thin_spec_s_own_description_and_paper_replace_the_family_s(capsys, tmp_path):
    """fcn_resnet50 is a row of the ResNet family but another model: its card and `archspec list` say so."""
    _, text, _, _ = card(capsys, tmp_path, ROOT / "specs/fcn_resnet50.yaml")
    assert "the FCN head" in text and "Fully Convolutional Networks" in text
    assert (
        "Deep Residual Learning" not in text.split("<h2>Spec source</h2>")[0]
    )  # the family's paper shows only in its source
    _, text, _, _ = card(capsys, tmp_path, ROOT / "specs/resnet50.yaml")
    assert "Deep Residual Learning" in text
    assert main(["list"]) == 0
    listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    family = resolve_file(ROOT / "specs/families/resnet.yaml", default_registry()).spec.description.split()
    assert "fcn_resnet50 (aux_loss false)" in listed["fcn_resnet50"] and " ".join(family[:4]) in listed["resnet50"]


def test_a_failing_expect_is_shown_not_fatal_and_no_dot_leaves_out_only_the_graph(capsys, tmp_path, monkeypatch):
    spec = tmp_path / "seed.yaml"
    shutil.copytree(ROOT / "specs/families", tmp_path / "families")  # the thin spec's use: is relative
    spec.write_text((ROOT / "specs/seed_cnn.yaml").read_text().replace("params: 66706", "params: 66707"))
    assert main(["validate", str(spec)]) == 1 and "AS601" in capsys.readouterr().err
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot
    _, text, page, err = card(capsys, tmp_path, spec)
    assert 'class="differs">differs<' in text and "66,707" in text
    assert "warning: the graph is left out" in err and "apt-get install graphviz" in text
    assert not page.graph_svg and page.rows["summary"] > 10


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")
@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot program is not installed")
def test_card_renders_in_headless_chromium(capsys, tmp_path):
    image = pytest.importorskip("PIL.Image")
    stat = pytest.importorskip("PIL.ImageStat")
    out, _, page, _ = card(capsys, tmp_path, ROOT / "specs/resnet18.yaml")
    assert page.graph_svg and page.rows["summary"] > 10
    shot = tmp_path / "card.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,1600",
            out.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.exists(), "Chromium wrote no screenshot"
    with image.open(shot) as picture:
        rgb = picture.convert("RGB")
        assert rgb.size == (1200, 1600)
        variance = stat.Stat(rgb.convert("L")).var[0]
        colors = {color: n for n, color in rgb.getcolors(maxcolors=1 << 24)}
    total = rgb.size[0] * rgb.size[1]
    assert variance > 100  # not a blank page
    assert total - colors.get((255, 255, 255), 0) > 0.02 * total
    assert colors.get(CONV_FILL, 0) > 500  # the graph's conv nodes are drawn on screen


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot program is not installed")
def test_the_card_shows_a_wide_graph_at_its_own_size(capsys, tmp_path):
    """yolo11n's layout is wider than the page: the card keeps the SVG's own width (its frame scrolls)
    rather than shrinking the labels to fit, which is what `max-width: 100%` on the SVG did."""
    import re

    _, text, page, _ = card(capsys, tmp_path, ROOT / "specs/yolo11n.yaml")
    assert page.graph_svg
    width = float(re.search(r'<div class="graph" id="graph"><svg width="([\d.]+)pt"', text).group(1))
    page_width = float(re.search(r"body \{[^}]*max-width: (\d+)px", text).group(1))
    assert width * 4 / 3 > page_width  # points to CSS pixels: wider than the page
    rules = re.search(r"\.graph svg \{([^}]*)\}", text)
    assert rules is None or "max-width: 100%" not in rules.group(1)
    assert re.search(r"\.graph \{[^}]*overflow: auto", text)
