"""Built-in PyTorch backend (CPU and CUDA): autograd for any cell, fast fused RNNs for the built-in ones.

Importing this package does not import torch: the backend class is loaded on first use.
"""

from seqkit import LazyComponent, hookimpl
from seqkit.backend import BACKEND_OPTIONS
from seqkit.options import Option

#: Declared here as well as on `seqkit_torch.backend.TorchBackend`, so the CLI knows the flag
#: without importing torch.
MATMUL_DTYPE = Option(
    "matmul_dtype", str, "float32",
    "Precision of the matrix products: bfloat16 runs them at about twice the float32 speed on CPUs "
    "with native bfloat16 (AVX512-BF16 or AMX); parameters, state and the loss stay in --dtype.",
    choices=("float32", "bfloat16"))
CUDA_GRAPHS = Option(
    "cuda_graphs", bool, False,
    "On CUDA, record each minibatch's loss and gradients of the fused network as a CUDA graph and "
    "replay it (fewer kernel launches at small batches); checked against the eager path on first use.",
    portable=False)
TORCH_OPTIONS = BACKEND_OPTIONS + (MATMUL_DTYPE, CUDA_GRAPHS)


@hookimpl
def register_backends(register) -> None:
    """Provide the ``torch`` backend (imported on first use; needs torch)."""
    register(LazyComponent(
        name="torch",
        target="seqkit_torch.backend:TorchBackend",
        requires=("torch",),
        install_hint="pip install 'seqkit[torch]'",
        options=TORCH_OPTIONS,
        description="PyTorch on CPU or CUDA; autograd for any cell, fused BPTT / cuDNN for rnn-tanh/rnn-relu",
    ))
