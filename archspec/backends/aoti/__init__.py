"""The aoti backend: IR -> torch module -> torch.export (the spec's dynamic dimensions) -> an AOTInductor
package (`<name>.aoti.pt2`) of compiled C++/CUDA code and weights, loadable with
`torch._inductor.aoti_load_package` without archspec or any model code.

Importing this package does not import torch.
"""

from archspec.ops.base import Plugin

PLUGIN = Plugin(backends={"aoti": "archspec.backends.aoti.backend:AotiBackend"})
