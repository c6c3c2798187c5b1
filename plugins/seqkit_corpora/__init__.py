"""Built-in corpora: The Time Machine, Jay Chou lyrics, tiny Shakespeare and any text file."""

from seqkit import hookimpl
from seqkit_corpora.builtin import Lyrics, Shakespeare, TimeMachine
from seqkit_corpora.textfile import TextFile


@hookimpl
def register_corpora(register) -> None:
    """Provide the ``timemachine``, ``lyrics``, ``shakespeare`` and ``file`` corpora."""
    register(TimeMachine)
    register(Lyrics)
    register(Shakespeare)
    register(TextFile)
