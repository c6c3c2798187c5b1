"""The ``seqkit`` command line: a thin layer over the Python API. Frameworks load lazily."""

from __future__ import annotations

import functools
import json
import sys
from typing import Any, Callable

import click

from seqkit.config import DTYPES, IMPLS, NORMALIZE, TOKENS, RunConfig
from seqkit.errors import SeqkitError

D = RunConfig()


def friendly_errors(command: Callable) -> Callable:
    """Turn `SeqkitError` into a one-line ``Error: ...`` with exit status 1, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except SeqkitError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="seqkit")
def main() -> None:
    """seqkit: train and sample recurrent language models on any array framework."""


@main.command()
@click.option("--backend", default=D.backend, show_default=True, help="Array framework (see `seqkit plugins`).")
@click.option("--device", default=D.device, show_default=True, help="auto, cpu, cuda, cuda:N (backend-specific).")
@click.option("--dtype", type=click.Choice(DTYPES), default=D.dtype, show_default=True)
@click.option("--impl", type=click.Choice(IMPLS), default=D.impl, show_default=True,
              help="scratch = generic autodiff of the cell; fused = the backend's fast path.")
@click.option("--corpus", default=D.corpus, show_default=True, help="timemachine, lyrics, shakespeare, ...")
@click.option("--corpus-file", type=click.Path(dir_okay=False), default=None, help="Train on any text file.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Folder holding corpus files for offline use (also $SEQKIT_DATA).")
@click.option("--encoding", default=D.encoding, show_default=True, help="Encoding of --corpus-file.")
@click.option("--normalize", type=click.Choice(NORMALIZE), default=D.normalize, show_default=True)
@click.option("--tokens", type=click.Choice(TOKENS), default=D.tokens, show_default=True)
@click.option("--max-tokens", type=int, default=None, help="Keep only the first N tokens.")
@click.option("--val-fraction", type=float, default=None, help="Hold out the last fraction F (corpus default).")
@click.option("--sampler", default=D.sampler, show_default=True, help="random or sequential.")
@click.option("--no-detach", is_flag=True, help="Let gradients flow across the minibatches of an epoch.")
@click.option("--cell", default=D.cell, show_default=True)
@click.option("--hidden", type=int, default=D.hidden, show_default=True)
@click.option("--embedding", type=int, default=D.embedding, show_default=True, help="Embedding width (0 = one-hot).")
@click.option("--clipper", default=D.clipper, show_default=True, help="norm or none.")
@click.option("--clip-theta", type=float, default=D.clip_theta, show_default=True)
@click.option("--decoder", default=D.decoder, show_default=True, help="greedy, temperature or alpha.")
@click.option("--temperature", type=float, default=D.temperature, show_default=True)
@click.option("--alpha", type=float, default=D.alpha, show_default=True)
@click.option("--epochs", type=int, default=D.epochs, show_default=True)
@click.option("--batch-size", type=int, default=D.batch_size, show_default=True)
@click.option("--num-steps", type=int, default=D.num_steps, show_default=True)
@click.option("--lr", type=float, default=D.lr, show_default=True)
@click.option("--lr-decay", type=float, default=D.lr_decay, show_default=True, help="Multiply lr by this ...")
@click.option("--lr-decay-every", type=int, default=D.lr_decay_every, show_default=True, help="... every N epochs.")
@click.option("--seed", type=int, default=D.seed, show_default=True)
@click.option("--prefix", default=None, help="Sample prefix (corpus default).")
@click.option("--predict-len", type=int, default=D.predict_len, show_default=True)
@click.option("--sample-every", type=int, default=D.sample_every, show_default=True)
@click.option("--log-every", type=int, default=D.log_every, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output folder (default: a new folder under runs/).")
@friendly_errors
def run(**options: Any) -> None:
    """Train a model, printing perplexity and samples; writes summary.json and metrics.jsonl."""
    from seqkit.api import train
    from seqkit.console import RunPrinter
    from seqkit.output import default_out_dir

    if options["out"] is None:
        corpus = "file" if options["corpus_file"] else options["corpus"]
        options["out"] = str(default_out_dir(corpus, options["backend"]))
    printer = RunPrinter(options["epochs"], options["log_every"])
    train(progress=printer, **options)
    printer.done(options["out"])


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly_errors
def plugins(as_json: bool) -> None:
    """List installed plugins, the components each provides and whether they can be used."""
    from seqkit.console import plugin_table, plugins_as_dicts
    from seqkit.plugins import get_registry

    registry = get_registry()
    if as_json:
        click.echo(json.dumps(plugins_as_dicts(registry), indent=2))
    else:
        plugin_table(registry)
