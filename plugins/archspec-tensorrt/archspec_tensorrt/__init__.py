"""archspec's TensorRT backend, a separate distribution: `archspec build SPEC --backend tensorrt`.

Importing this package imports neither torch nor torch_tensorrt; the backend imports them when it runs.
"""

from archspec.ops.base import Plugin

PLUGIN = Plugin(backends={"tensorrt": "archspec_tensorrt.backend:TensorRTBackend"})
