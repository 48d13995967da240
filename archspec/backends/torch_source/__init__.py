"""The torch-source backend: IR -> one standalone, readable PyTorch file (`<name>.py`, no archspec import),
rendered from jinja2 templates, with the weights beside it as `.safetensors` on request (--save-weights).

Importing this package imports neither torch nor jinja2.
"""

from archspec.ops.base import Plugin

PLUGIN = Plugin(backends={"torch-source": "archspec.backends.torch_source.backend:TorchSourceBackend"})
