"""seqkit built-in plugin (in progress)."""
