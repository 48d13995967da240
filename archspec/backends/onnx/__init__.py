"""The ONNX backend: IR -> torch module -> torch.export (the spec's dynamic dimensions) -> `<name>.onnx`
through torch.onnx's dynamo exporter (opset 18), checked with `onnx.checker.check_model(full_check=True)`.

Importing this package imports neither torch nor onnx. Needs `pip install "archspec[onnx]"`.
"""

from archspec.ops.base import Plugin

PLUGIN = Plugin(backends={"onnx": "archspec.backends.onnx.backend:OnnxBackend"})
