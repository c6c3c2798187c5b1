"""``python -m seqkit``: the command line (what torchrun starts with ``-m seqkit``)."""

from seqkit.cli import main

if __name__ == "__main__":
    main(prog_name="seqkit")
