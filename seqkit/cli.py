"""The ``seqkit`` command line: a thin layer over the Python API. Frameworks load lazily."""

from __future__ import annotations

import functools
import json
import signal
import sys
from typing import Any, Callable

import click
from click.core import ParameterSource

from seqkit.config import DTYPES, IMPLS, NORMALIZE, TOKENS, RunConfig
from seqkit.errors import ConfigError, SeqkitError

D = RunConfig()


def friendly_errors(command: Callable) -> Callable:
    """Turn `SeqkitError` into a one-line ``Error: ...`` with exit status 1, never a traceback;
    an interrupt exits with 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except SeqkitError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt as exc:
            click.echo(f"Interrupted: {exc}" if str(exc) else "Interrupted.", err=True)
            sys.exit(128 + getattr(exc, "signum", signal.SIGINT))

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
@click.option("--random-offset/--no-random-offset", default=D.random_offset, show_default=True,
              help="Start each epoch's partition at a random offset (d2l 2nd ed.) or at 0 (d2l-zh, 1st ed.).")
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
@click.option("--optimizer", default=D.optimizer, show_default=True, help="sgd (the lesson) or adam.")
@click.option("--lr", type=float, default=D.lr, show_default=True)
@click.option("--beta1", type=float, default=D.beta1, show_default=True, help="Adam's first-moment decay.")
@click.option("--beta2", type=float, default=D.beta2, show_default=True, help="Adam's second-moment decay.")
@click.option("--eps", type=float, default=D.eps, show_default=True, help="Adam's denominator epsilon.")
@click.option("--lr-decay", type=float, default=D.lr_decay, show_default=True, help="Multiply lr by this ...")
@click.option("--lr-decay-every", type=int, default=D.lr_decay_every, show_default=True, help="... every N epochs.")
@click.option("--seed", type=int, default=D.seed, show_default=True)
@click.option("--prefix", default=None, help="Sample prefix (corpus default).")
@click.option("--predict-len", type=int, default=D.predict_len, show_default=True)
@click.option("--sample-every", type=int, default=D.sample_every, show_default=True)
@click.option("--log-every", type=int, default=D.log_every, show_default=True)
@click.option("--checkpoint-every", type=int, default=D.checkpoint_every, show_default=True,
              help="Save a checkpoint every N epochs (0 = only at the end and when interrupted).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output folder (default: a new folder under runs/).")
@click.option("--resume", type=click.Path(), default=None,
              help="Continue the run checkpointed in this folder; options given change only what may change.")
@friendly_errors
def run(resume: str | None, **options: Any) -> None:
    """Train a model, printing perplexity and samples; writes summary.json, metrics.jsonl and
    checkpoint/. Ctrl-C or SIGTERM saves a checkpoint and exits (130, 143)."""
    from seqkit.api import train
    from seqkit.checkpoint import StopSignals, locate, run_dir_of
    from seqkit.console import RunPrinter
    from seqkit.output import default_out_dir

    if resume is not None:
        ctx = click.get_current_context()
        options = {k: v for k, v in options.items()
                   if ctx.get_parameter_source(k) not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)}
        if "out" not in options and run_dir_of(locate(resume)) is None:
            options["out"] = str(default_out_dir("resumed", options.get("backend", D.backend)))
    elif options["out"] is None:
        corpus = "file" if options["corpus_file"] else options["corpus"]
        options["out"] = str(default_out_dir(corpus, options["backend"]))
    printer = RunPrinter(options.get("epochs", D.epochs), options.get("log_every", D.log_every))
    stop = StopSignals()

    def progress(event: str, payload: Any) -> None:
        if event == "start":
            stop.install()  # only while training: before, Ctrl-C simply aborts
        printer(event, payload)

    try:
        result = train(progress=progress, resume=resume, should_stop=stop, **options)
    finally:
        stop.restore()
    printer.done(str(result.out_dir) if result.out_dir else None)


def _checkpoint_options(command: Callable) -> Callable:
    for decorator in reversed((
        click.argument("path", type=click.Path()),
        click.option("--backend", default="numpy", show_default=True,
                     help="Array framework to run on (any installed one; need not be the training one)."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N (backend-specific)."),
        click.option("--impl", type=click.Choice(IMPLS), default="auto", show_default=True),
    )):
        command = decorator(command)
    return command


@main.command()
@_checkpoint_options
@click.option("--prefix", default=None, help="Text to warm up on (default: the run's prefix).")
@click.option("--length", type=int, default=None, help="Tokens to generate (default: the run's --predict-len).")
@click.option("--decoder", default=None, help="greedy, temperature or alpha (default: the run's).")
@click.option("--temperature", type=float, default=None, help="For --decoder temperature (default: the run's).")
@click.option("--alpha", type=float, default=None, help="For --decoder alpha (default: the run's).")
@click.option("--seed", type=int, default=None, help="Decoder seed (default: the run's decoder stream).")
@click.option("--num-samples", type=int, default=1, show_default=True)
@friendly_errors
def generate(path: str, backend: str, device: str, impl: str, prefix: str | None, length: int | None,
             decoder: str | None, temperature: float | None, alpha: float | None, seed: int | None,
             num_samples: int) -> None:
    """Print text generated from the checkpoint at PATH (a run's --out folder or its checkpoint/)."""
    import numpy as np

    from seqkit.api import load

    if num_samples < 1:
        raise ConfigError(f"--num-samples must be >= 1, got {num_samples}")
    model = load(path, backend=backend, device=device, impl=impl)
    rng = model.decoder_rng() if seed is None else np.random.default_rng(seed)
    for i in range(num_samples):
        if num_samples > 1:
            click.echo(f"--- sample {i + 1} of {num_samples} ---")
        click.echo(model.predict(prefix, length, decoder, temperature, alpha, rng=rng))


@main.command()
@_checkpoint_options
@click.option("--corpus", default=None, help="Corpus to evaluate on (default: the run's own, normalised as it was).")
@click.option("--corpus-file", type=click.Path(dir_okay=False), default=None, help="Evaluate on any text file.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Folder holding corpus files for offline use (also $SEQKIT_DATA).")
@click.option("--encoding", default=None, help="Encoding of --corpus-file (default: the run's).")
@click.option("--max-tokens", type=int, default=None, help="Use only the first N tokens.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly_errors
def evaluate(path: str, backend: str, device: str, impl: str, corpus: str | None, corpus_file: str | None,
             data_dir: str | None, encoding: str | None, max_tokens: int | None, as_json: bool) -> None:
    """Print perplexity and bits per token of the checkpoint at PATH on a corpus or text file."""
    from seqkit.api import corpus_text, load

    model = load(path, backend=backend, device=device, impl=impl)
    text, name = corpus_text(model.config, None, corpus, corpus_file, data_dir, encoding, max_tokens)
    result = model.evaluate(text)
    result.update(text=name, backend=model.backend.name, device=model.backend.device)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"perplexity {result['ppl']:.4f}, {result['bits_per_token']:.4f} bits per token over "
               f"{result['tokens']:,} predicted tokens of {name} ({result['backend']}, {result['device']})")
    unknown = result["unknown_tokens"]
    click.echo("tokens outside the vocabulary: " +
               (f"{unknown:,}, counted as <unk>" if unknown else "none"))


@main.command()
@click.argument("run_dir", type=click.Path())
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="PNG to write (default: RUN_DIR/perplexity.png).")
@friendly_errors
def plot(run_dir: str, out: str | None) -> None:
    """Draw the perplexity curves of a run folder (needs matplotlib: pip install 'seqkit[plot]')."""
    from seqkit.plot import plot_run

    click.echo(f"Wrote {plot_run(run_dir, out)}")


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
