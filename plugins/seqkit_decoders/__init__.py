"""Built-in decoders: greedy, temperature, alpha-sharpened, top-k, top-p (nucleus) and beam search."""

from seqkit import hookimpl
from seqkit_decoders.beam import BeamDecoder
from seqkit_decoders.sampling import AlphaDecoder, GreedyDecoder, TemperatureDecoder
from seqkit_decoders.truncation import TopKDecoder, TopPDecoder


@hookimpl
def register_decoders(register) -> None:
    """Provide the ``greedy``, ``temperature``, ``alpha``, ``top-k``, ``top-p`` and ``beam`` decoders."""
    for decoder in (GreedyDecoder, TemperatureDecoder, AlphaDecoder, TopKDecoder, TopPDecoder, BeamDecoder):
        register(decoder)
