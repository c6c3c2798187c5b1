"""Built-in PyTorch backend (CPU and CUDA): autograd for any cell, fast fused RNNs for the built-in ones.

Importing this package does not import torch: the backend class is loaded on first use.
"""

from seqkit import LazyComponent, hookimpl
from seqkit.backend import BACKEND_OPTIONS


@hookimpl
def register_backends(register) -> None:
    """Provide the ``torch`` backend (imported on first use; needs torch)."""
    register(LazyComponent(
        name="torch",
        target="seqkit_torch.backend:TorchBackend",
        requires=("torch",),
        install_hint="pip install 'seqkit[torch]'",
        options=BACKEND_OPTIONS,
        description="PyTorch on CPU or CUDA; autograd for any cell, fused BPTT / cuDNN for rnn-tanh/rnn-relu",
    ))
