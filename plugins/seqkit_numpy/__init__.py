"""Built-in NumPy backend: the op surface on `autograd.numpy`, plus a hand-derived fused RNN."""

from seqkit import LazyComponent, hookimpl
from seqkit.backend import BACKEND_OPTIONS
from seqkit.hookspecs import Register


@hookimpl
def register_backends(register: Register) -> None:
    register(LazyComponent(
        name="numpy",
        target="seqkit_numpy.backend:NumpyBackend",
        requires=("autograd",),
        install_hint="pip install autograd",
        options=BACKEND_OPTIONS,
        description="NumPy on the CPU; autograd for any cell, hand-written BPTT for rnn-tanh/rnn-relu",
    ))
