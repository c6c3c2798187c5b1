"""Built-in cells: the lesson's vanilla RNN with tanh or ReLU activation."""

from seqkit import hookimpl
from seqkit_cells.rnn import RNNRelu, RNNTanh


@hookimpl
def register_cells(register) -> None:
    """Provide the ``rnn-tanh`` and ``rnn-relu`` cells."""
    register(RNNTanh)
    register(RNNRelu)
