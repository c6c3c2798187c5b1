"""Built-in MXNet backend: the op surface on ``mx.nd`` with ``mx.autograd``, plus MXNet's fused RNN."""

from seqkit import LazyComponent, hookimpl
from seqkit.backend import BACKEND_OPTIONS


@hookimpl
def register_backends(register) -> None:
    """Provide the ``mxnet`` backend (imported on first use; needs mxnet and numpy < 2)."""
    register(LazyComponent(
        name="mxnet",
        target="seqkit_mxnet.backend:MxnetBackend",
        requires=("mxnet",),
        install_hint="pip install 'seqkit[mxnet]'  (MXNet 1.9.1 needs Python <= 3.11-compatible wheels and numpy < 2)",
        options=BACKEND_OPTIONS,
        description="MXNet 1.9 (CPU or GPU); mx.autograd for any cell, the fused RNN operator for rnn-tanh/rnn-relu",
    ))
