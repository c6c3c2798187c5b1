"""``python -m seqkit``: the command line (also what ``torchrun -m seqkit`` runs)."""

from seqkit.cli import main

if __name__ == "__main__":
    main()
