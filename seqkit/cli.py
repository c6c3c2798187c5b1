"""The ``seqkit`` command line: a thin layer over the Python API, its options generated from the
declared option schema (the engine's options and those of every installed component).

Frameworks load lazily: ``seqkit --help`` and ``seqkit run --help`` read the components'
declarations without importing torch or mxnet.
"""

from __future__ import annotations

import functools
import json
import signal
import sys
import threading
import time
import traceback
import warnings
import weakref
from typing import Any, Callable, Iterable

import click
from click.core import ParameterSource

from seqkit.errors import ConfigError, SeqkitError, TrainingInterrupted
from seqkit.options import Option

EXPLICIT_SOURCES = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


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
            if _is_main_process():
                click.echo(f"Interrupted: {exc}" if str(exc) else "Interrupted.", err=True)
            sys.exit(128 + getattr(exc, "signum", signal.SIGINT))

    return wrapper


def _is_main_process() -> bool:
    from seqkit.distributed import is_main_process

    return is_main_process()


class StopSignals:
    """SIGINT and SIGTERM as a request to stop after the current minibatch (call it to poll).

    `install` while training (main thread only); a second signal stops at once, except within
    ``repeat_grace`` seconds of the first (torchrun forwards the terminal's Ctrl-C to its ranks,
    which got it already: the copy is the same request)."""

    def __init__(self, repeat_grace: float = 0.0) -> None:
        self.signum: int | None = None
        self.repeat_grace = repeat_grace
        self._first = 0.0
        self._previous: dict[int, Any] = {}

    def __call__(self) -> int | None:
        return self.signum

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread() or self._previous:
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            if time.monotonic() - self._first < self.repeat_grace:
                return
            raise TrainingInterrupted(signum)
        self.signum, self._first = signum, time.monotonic()
        if not _is_main_process():
            return
        print(f"\n{signal.Signals(signum).name}: stopping after this minibatch to save a checkpoint "
              "(send it again to stop at once)", file=sys.stderr, flush=True)



def click_option(opt: Option, help_text: str | None = None) -> click.Option:
    """The click flag for a declared option. Its default is "not given": the schema decides."""
    name = opt.name.replace("_", "-")
    if opt.type is bool:
        base = name[3:] if name.startswith("no-") else name
        decls = [f"--no-{base}/--{base}" if name.startswith("no-") else f"--{base}/--no-{base}", opt.name]
        return click.Option(decls, default=None, help=help_text or opt.help)
    click_type = {str: click.STRING, int: click.INT, float: click.FLOAT}[opt.type]
    return click.Option([opt.flag, opt.name], type=click_type, default=None, multiple=opt.multiple,
                        help=help_text or opt.help, metavar=opt.type_name.split()[-1].upper())


def explicit_values(ctx: click.Context, values: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The schema options the user typed (not defaults), as API keywords."""
    given = {}
    for name in names:
        if ctx.get_parameter_source(name) in EXPLICIT_SOURCES:
            value = values[name]
            given[name] = list(value) if isinstance(value, tuple) else value
    return given


class SchemaCommand(click.Command):
    """A command whose flags come from the option schema, built on first use; ``--help`` groups
    them: the command's own, the engine's by topic, then each installed component's."""

    def __init__(self, *args: Any, core: tuple[str, ...] | None, kinds: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.core, self.kinds = core, kinds
        self.schema_names: list[str] = []
        self._loaded_for: object = None
        self._own_params = list(self.params)

    def _load(self) -> None:
        from seqkit.config import CORE_GROUPS
        from seqkit.plugins import get_registry

        registry = get_registry()
        if self._loaded_for is registry:
            return
        self._loaded_for = registry
        self.params = list(self._own_params)
        self.schema_names = []
        for group in CORE_GROUPS.values():
            for opt in group:
                if self.core is None or opt.name in self.core:
                    self.params.append(click_option(opt))
                    self.schema_names.append(opt.name)
        for kind in self.kinds:
            for component in registry.components(kind):
                for opt in component.options:
                    if opt.name not in self.schema_names:
                        self.params.append(click_option(opt))
                        self.schema_names.append(opt.name)

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        self._load()
        return super().get_params(ctx)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from seqkit.config import CORE_GROUPS
        from seqkit.plugins import get_registry

        self._load()
        own = [p.get_help_record(ctx) for p in self.get_params(ctx)
               if p.name not in self.schema_names and isinstance(p, click.Option)]
        with formatter.section("Options"):
            formatter.write_dl([r for r in own if r])
        for title, group in CORE_GROUPS.items():
            rows = [_row(opt) for opt in group if self.core is None or opt.name in self.core]
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
        registry = get_registry()
        for kind in self.kinds:
            for component in registry.components(kind):
                if component.options:
                    with formatter.section(f"{kind} {component.name} (plugin {component.plugin})"):
                        formatter.write_dl([_row(opt) for opt in component.options])


def _row(opt: Option) -> tuple[str, str]:
    name = opt.name.replace("_", "-")
    if opt.type is bool:
        flag = f"--{name}" if opt.default is not True else f"--{name} / --no-{name}"
        if name.startswith("no-"):
            flag = f"--{name}"
    else:
        flag = f"{opt.flag} {opt.type_name.split()[-1].upper()}"
    extra = []
    if opt.constraint():
        extra.append(opt.constraint())
    if opt.default is not None:
        extra.append(f"default: {opt.default_text()}")
    if opt.multiple:
        extra.append("repeatable")
    tail = f"  [{'; '.join(extra)}]" if extra else ""
    return flag, f"{opt.help}{tail}"


class PluginGroup(click.Group):
    """The ``seqkit`` group: built-in commands plus those plugins add (`plugin_commands`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Built-in and plugin command names, sorted (for ``--help``)."""
        return sorted({*super().list_commands(ctx), *plugin_commands(self)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """A built-in command, else a plugin's (plugins are asked only for names seqkit lacks)."""
        return super().get_command(ctx, cmd_name) or plugin_commands(self).get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command with Python warnings (seqkit's, a plugin's, a framework's) printed as one
        ``Warning: ...`` line on stderr instead of a source path and a line of code."""
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            return super().invoke(ctx)


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      file: Any = None, line: str | None = None) -> None:
    click.echo(f"Warning: {message}", err=True)


@click.group(cls=PluginGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="seqkit")
def main() -> None:
    """seqkit: train and sample recurrent language models on any array framework."""


@main.command(cls=SchemaCommand, core=None, kinds=("backend", "corpus", "sampler", "cell", "optimizer", "schedule",
                                                   "clipper", "decoder", "logger"))
@click.option("--preset", default=None, help="Start from a named configuration (see `seqkit presets`).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="Read options from a TOML file; flags override it.")
@click.option("--print-config", is_flag=True, help="Print the resolved configuration as TOML and exit.")
@click.option("--resume", type=click.Path(), default=None,
              help="Continue the run checkpointed in this folder; options given change only what may change.")
@click.option("--quiet", "-q", is_flag=True, help="Print only errors and the final summary.")
@click.option("--nproc", type=int, default=None, metavar="N",
              help="Train data-parallel in N processes here (torch.distributed; see docs/distributed.md).")
@click.pass_context
@friendly_errors
def run(ctx: click.Context, preset: str | None, config_file: str | None, print_config: bool, resume: str | None,
        quiet: bool, nproc: int | None, **values: Any) -> None:
    """Train a model, printing perplexity and samples; writes summary.json, metrics.jsonl and
    checkpoint/. Ctrl-C or SIGTERM saves a checkpoint and exits (130, 143). Under torchrun (or
    with --nproc) it trains data-parallel: see docs/distributed.md."""
    from seqkit.api import configure, train
    from seqkit.console import RunPrinter
    from seqkit.output import default_out_dir
    from seqkit.store import locate, run_dir_of

    options = explicit_values(ctx, values, ctx.command.schema_names)
    if print_config:
        from seqkit.configfile import config_to_toml

        if resume is not None:
            raise ConfigError("--print-config prints a new run's configuration; leave out --resume")
        click.echo(config_to_toml(configure(options, preset, config_file),
                                  header="# seqkit run --config FILE reads this back\n"), nl=False)
        return
    if nproc is not None and nproc != 1:
        sys.exit(_launch_ranks(nproc, options, preset, config_file, resume))
    if resume is not None:
        if "out" not in options and run_dir_of(locate(resume)) is None:
            options["out"] = str(default_out_dir("resumed", options.get("backend", "numpy")))
    else:
        resolved = configure(options, preset, config_file)
        if resolved.out is None:
            options["out"] = str(default_out_dir(resolved.corpus, resolved.backend))
    printer = RunPrinter(quiet=quiet)
    main_rank = _is_main_process()  # data-parallel: only rank 0 prints
    stop = StopSignals(repeat_grace=_repeat_grace())

    def progress(event: str, payload: Any) -> None:
        if event == "start":
            stop.install()  # only while training: before, Ctrl-C simply aborts
        if main_rank:
            printer(event, payload)

    try:
        result = train(progress=progress, resume=resume, should_stop=stop, preset=preset, config=config_file,
                       **options)
    finally:
        stop.restore()
        printer.close()
    if main_rank:
        printer.done(str(result.out_dir) if result.out_dir else None)


def _repeat_grace() -> float:
    """Seconds in which a repeated signal is the same request: none in one process."""
    from seqkit.distributed import REPEAT_SIGNAL_GRACE_S, world_from_env

    return 0.0 if world_from_env() is None else REPEAT_SIGNAL_GRACE_S


def _launch_ranks(nproc: int, options: dict[str, Any], preset: str | None, config_file: str | None,
                  resume: str | None) -> int:
    """``seqkit run --nproc N``: check what can be checked here, run the ranks, return their status."""
    from seqkit.api import configure
    from seqkit.distributed import check_world, launch, without_option

    if nproc < 1:
        raise ConfigError(f"--nproc must be >= 1, got {nproc}")
    if resume is None:
        resolved = configure(options, preset, config_file)
        check_world(resolved.backend, resolved.batch_size, nproc)
    return launch(nproc, without_option(sys.argv[1:], "--nproc"))


@main.command(cls=SchemaCommand, core=("backend", "impl", "decoder", "prefix"), kinds=("backend", "decoder"))
@click.argument("path", type=click.Path())
@click.option("--length", type=int, default=None, help="Tokens to generate (default: the run's --predict-len).")
@click.option("--seed", type=int, default=None, help="Decoder seed (default: the run's decoder stream).")
@click.option("--num-samples", type=int, default=1, show_default=True,
              help="Samples per prefix, drawn as one batch (beam search: its best continuation).")
@click.pass_context
@friendly_errors
def generate(ctx: click.Context, path: str, length: int | None, seed: int | None, num_samples: int,
             **values: Any) -> None:
    """Print text generated from the checkpoint at PATH (a run's --out folder or its checkpoint/).
    The decoder and its options default to the run's; the backend to numpy."""
    import numpy as np

    from seqkit.api import load

    if num_samples < 1:
        raise ConfigError(f"--num-samples must be >= 1, got {num_samples}")
    if length is not None and length < 0:
        raise ConfigError(f"--length must be >= 0, got {length}")
    options = explicit_values(ctx, values, ctx.command.schema_names)
    prefixes = options.pop("prefix", None)
    model = load(path, **options)
    rng = model.decoder_rng() if seed is None else np.random.default_rng(seed)
    for prefix in prefixes or model.prefixes[:1]:
        for i, text in enumerate(model.samples(prefix, num_samples, length, rng=rng)):
            if num_samples > 1:
                click.echo(f"--- sample {i + 1} of {num_samples} ---")
            click.echo(text)


@main.command(cls=SchemaCommand, core=("backend", "impl", "corpus", "max_tokens"), kinds=("backend", "corpus"))
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@friendly_errors
def evaluate(ctx: click.Context, path: str, as_json: bool, **values: Any) -> None:
    """Print perplexity and bits per token of the checkpoint at PATH on a corpus or text file
    (default: the run's own held-out tail, or its training text when it held nothing out)."""
    from seqkit.api import corpus_text, load
    from seqkit.plugins import get_registry

    options = explicit_values(ctx, values, ctx.command.schema_names)
    corpus_names = {"corpus", "max_tokens"} | {o.name for c in get_registry().components("corpus") for o in c.options}
    corpus_options = {k: options.pop(k) for k in list(options) if k in corpus_names}
    model = load(path, **options)
    if corpus_options:
        text, name = corpus_text(model.config, saved=model.saved_options, **corpus_options)
        result = model.evaluate(text)
    else:
        ids, name = model.held_out()
        result = model.evaluate_ids(ids)
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
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--out", "-o", type=click.Path(dir_okay=False), default=None,
              help="PNG to write (default: RUN_DIR/perplexity.png for one run, overlay.png here for several).")
@click.option("--label", "labels", multiple=True, help="Legend label per run, in order (default: folder names).")
@friendly_errors
def plot(run_dirs: tuple[str, ...], out: str | None, labels: tuple[str, ...]) -> None:
    """Draw the perplexity curves of one run folder, or overlay several (needs matplotlib:
    pip install 'seqkit[plot]')."""
    from seqkit.plot import plot_run, plot_runs

    if labels and len(labels) != len(run_dirs):
        raise ConfigError(f"{len(labels)} --label values for {len(run_dirs)} run folders: give one per folder")
    if len(run_dirs) == 1 and not labels:
        click.echo(f"Wrote {plot_run(run_dirs[0], out)}")
        return
    click.echo(f"Wrote {plot_runs(list(run_dirs), out or 'overlay.png', list(labels) or None)}")


@main.command()
@click.option("--corpus", default="timemachine", show_default=True, help="Corpus every variant trains on.")
@click.option("--epochs", type=int, default=20, show_default=True, help="Epochs per variant.")
@click.option("--backend", default="numpy", show_default=True, help="Array framework.")
@click.option("--max-tokens", type=int, default=10000, show_default=True,
              help="Tokens of the corpus to use (no-detach costs grow with the epoch's length).")
@click.option("--hidden", type=int, default=256, show_default=True)
@click.option("--val-fraction", type=float, default=0.1, show_default=True, help="Held-out tail for validation.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output folder (default: a new folder under runs/).")
@friendly_errors
def ablate(corpus: str, epochs: int, backend: str, max_tokens: int, hidden: int, val_fraction: float, seed: int,
           out: str | None) -> None:
    """Train the lesson's exercises side by side on one budget — tanh vs ReLU, clipping vs none,
    sequential vs random sampling, detach vs no-detach, one-hot vs embedding — and write a markdown
    table and an overlay plot."""
    from seqkit.ablate import ablate as run_ablation
    from seqkit.api import configure
    from seqkit.output import default_out_dir

    options = dict(corpus=corpus, epochs=epochs, backend=backend, max_tokens=max_tokens, hidden=hidden,
                   val_fraction=val_fraction, seed=seed, checkpoint_every=0)
    configure(options)  # every value checked before the first variant starts
    folder = out or str(default_out_dir(f"ablate-{corpus}", backend))
    click.echo("| variant | change | epochs | train ppl | val ppl | tokens/s | diverged |")
    click.echo("|---|---|---|---|---|---|---|")
    run_ablation(folder, options, report=click.echo)
    click.echo(f"Wrote {folder}/ablation.md and {folder}/ablation.png")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--verbose", "-v", is_flag=True,
              help="After the table, the full traceback of every plugin failure (also: SEQKIT_PLUGIN_TRACEBACKS=1).")
@friendly_errors
def plugins(as_json: bool, verbose: bool) -> None:
    """List installed plugins, the components each provides and whether they can be used.
    SEQKIT_DISABLE_PLUGINS=name1,name2 switches plugins off."""
    from seqkit.console import plugin_table, plugins_as_dicts
    from seqkit.plugins import get_registry

    registry = get_registry()
    plugin_commands(main)  # collect plugin commands now, so a failing register_commands is listed
    if as_json:
        click.echo(json.dumps(plugins_as_dicts(registry), indent=2))
    else:
        plugin_table(registry)
    if verbose and not as_json:
        _print_plugin_failures(registry)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly_errors
def presets(as_json: bool) -> None:
    """List the presets (`seqkit run --preset NAME`): what each reproduces and the curve it should give."""
    from seqkit.console import preset_table
    from seqkit.plugins import get_registry

    registry = get_registry()
    rows = [registry.presets[name].as_dict() for name in sorted(registry.presets)]
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        preset_table(rows)


# -- plugin failures and plugin commands (issue 10) -------------------------------------------------------


def _print_plugin_failures(registry: Any) -> None:
    """Print every plugin failure with its full traceback, or say there is none."""
    from seqkit.plugins import failure_report

    report = failure_report(registry)
    click.echo(report if report else "No plugin failures.")


_PLUGIN_COMMANDS: "weakref.WeakKeyDictionary[Any, dict[str, click.Command]]" = weakref.WeakKeyDictionary()


def plugin_commands(group: click.Group) -> dict[str, click.Command]:
    """The commands plugins add through ``register_commands``, collected once per registry, one
    plugin at a time: a hook that raises or a name already taken is refused and recorded against
    the plugin, never raised."""
    from seqkit.plugins import get_registry

    registry = get_registry()
    if registry in _PLUGIN_COMMANDS:
        return _PLUGIN_COMMANDS[registry]
    commands: dict[str, click.Command] = {}
    owners: dict[str, str] = {}
    for impl in registry.pm.hook.register_commands.get_hookimpls():
        info = registry.plugins[impl.plugin_name]
        staging = click.Group(name="seqkit")
        try:
            impl.function(cli=staging)
        except Exception as exc:
            registry.refuse(info, f"register_commands failed: {type(exc).__name__}: {exc}", traceback.format_exc())
            continue
        for name, command in staging.commands.items():
            if name in group.commands or name in commands:
                owner = "seqkit itself" if name in group.commands else f"plugin {owners[name]!r}"
                registry.refuse(info, f"command {name!r} is already provided by {owner}; plugin {info.name!r} must "
                                      "name its command differently")
                continue
            commands[name], owners[name] = command, info.name
    _PLUGIN_COMMANDS[registry] = commands
    return commands
