"""Built-in NumPy backend: the op surface on NumPy with its own op tape, plus a hand-derived fused RNN."""

from seqkit import LazyComponent, hookimpl
from seqkit.backend import BACKEND_OPTIONS
from seqkit.hookspecs import Register


@hookimpl
def register_backends(register: Register) -> None:
    register(LazyComponent(
        name="numpy",
        target="seqkit_numpy.backend:NumpyBackend",
        options=BACKEND_OPTIONS,
        description="NumPy on the CPU; an op tape for any cell, hand-written BPTT for rnn-tanh/rnn-relu",
    ))
