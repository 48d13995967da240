"""The PyTorch backend: IR -> nn.Module with a generated forward (torch.fx), saved via torch.export.

Importing this package does not import torch; `archspec.backends.torch.backend` does.
"""

from archspec.ops.base import Plugin

PLUGIN = Plugin(backends={"torch": "archspec.backends.torch.backend:TorchBackend"})
