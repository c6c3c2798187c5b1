"""Built-in decoders: greedy, temperature sampling and alpha-sharpened sampling."""

from seqkit import hookimpl
from seqkit_decoders.sampling import AlphaDecoder, GreedyDecoder, TemperatureDecoder


@hookimpl
def register_decoders(register) -> None:
    """Provide the ``greedy``, ``temperature`` and ``alpha`` decoders."""
    register(GreedyDecoder)
    register(TemperatureDecoder)
    register(AlphaDecoder)
