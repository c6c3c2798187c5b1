"""The TensorBoard logger's options, declared without importing tensorboardX."""

from seqkit import Option

TENSORBOARD_OPTIONS = (
    Option("tensorboard_dir", str, None, "Folder for the TensorBoard event files (default: OUT/tensorboard).",
           nullable=True, path=True, resumable=True, portable=False),
)
