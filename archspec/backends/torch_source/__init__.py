"""The torch-source backend: IR -> one standalone, readable PyTorch file (`<name>.py`, no archspec import),
rendered from a jinja2 template, with the weights beside it as `.safetensors` on request (--save-weights).

Importing this package imports neither torch nor jinja2 (building does: the file prints the torch lowering table).
"""

from archspec.ops.base import Plugin

PLUGIN = Plugin(backends={"torch-source": "archspec.backends.torch_source.backend:TorchSourceBackend"})
