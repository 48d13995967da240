"""Compilation and GPU paths. torch.compile graph capture runs everywhere; the CUDA tests need a GPU
and skip cleanly without one (CI has none)."""

from pathlib import Path

import pytest
import torch

import archspec

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "specs/resnet18.yaml"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_generated_module_compiles_without_graph_breaks():
    model = archspec.build(ROOT / "tests/specs/residual.yaml").eval()
    explanation = torch._dynamo.explain(model)(torch.randn(2, 3, 16, 16))
    assert explanation.graph_count == 1 and explanation.graph_break_count == 0
    compiled = torch.compile(model, backend="aot_eager")
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))


@needs_cuda
def test_cuda_training_step_bf16():
    model = archspec.build(SPEC, num_classes=10).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(8, 3, 224, 224, device="cuda")
    y = torch.randint(0, 10, (8,), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)


@needs_cuda
def test_cuda_matches_cpu_in_fp32():
    model = archspec.build(SPEC).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = model(x)
        got = model.cuda()(x.cuda()).cpu()
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-3)


@needs_cuda
def test_inductor_compile_on_cuda():
    model = archspec.build(SPEC).cuda().eval()
    compiled = torch.compile(model)
    x = torch.randn(4, 3, 224, 224, device="cuda")
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-3, atol=1e-3)
