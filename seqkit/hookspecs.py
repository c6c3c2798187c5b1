"""Every seqkit hook, in one place: the plugin author's reference.

A plugin is a module (or object) with functions decorated by ``seqkit.hookimpl`` whose names are
the hooks below, registered under the ``seqkit`` entry-point group::

    [project.entry-points.seqkit]
    mycell = "seqkit_mycell"

Each hook receives a ``register`` callable and calls it once per component it provides:
``register(ComponentClass)``. The class must subclass the matching interface, set a unique
``name`` and declare its options in ``options`` (a tuple of `seqkit.Option`); seqkit validates
the values and passes each one to the constructor as a keyword of the same name. The command line
gets one flag per option (``top_k`` is ``--top-k``), the Python API one keyword. Instead of a class a plugin may pass ``seqkit.LazyComponent(...)`` naming
``"module:Class"`` and the modules it needs, so a heavy framework is imported only on use and a
missing one is reported with an install hint. Every implementation is called (none stops the
others). A registration that is wrong (no name, not the interface, an abstract method left
out, a name another plugin already registered, an option that clashes) is refused and recorded
against the plugin (``seqkit plugins`` shows it); everything else keeps working.

The second group, the run lifecycle hooks, is called while a run trains, in phase order, on every
plugin that implements them and on the `seqkit.Logger` instances selected with ``--logger``.
Their results are ignored; an exception in one stops the run (as in pytest), so keep them small.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pluggy

if TYPE_CHECKING:
    import click

hookspec = pluggy.HookspecMarker("seqkit")
hookimpl = pluggy.HookimplMarker("seqkit")

Register = Callable[..., None]


@hookspec
def register_backends(register: Register) -> None:
    """Register `seqkit.Backend` subclasses (array frameworks), e.g. ``register(NumpyBackend)``.

    Selected with ``--backend NAME``; options ``device`` and ``dtype`` (`seqkit.backend.BACKEND_OPTIONS`)
    reach the constructor as ``Backend(device=..., dtype=...)``."""


@hookspec
def register_corpora(register: Register) -> None:
    """Register `seqkit.Corpus` subclasses (text sources), e.g. ``register(TimeMachine)``.

    Selected with ``--corpus NAME``; constructed with its declared options (for example
    `seqkit.corpus.NORMALIZE` and `seqkit.corpus.DATA_DIR`), then ``read()`` gives the text."""


@hookspec
def register_samplers(register: Register) -> None:
    """Register `seqkit.Sampler` subclasses (minibatch schemes), e.g. ``register(SequentialSampler)``.

    Selected with ``--sampler NAME``; constructed with its declared options (``random_offset``
    for the built-ins)."""


@hookspec
def register_cells(register: Register) -> None:
    """Register `seqkit.Cell` subclasses (recurrent steps), e.g. ``register(RNNTanh)``.

    Selected with ``--cell NAME``; constructed with its declared options. A cell written only against the
    backend op surface runs on every backend through ``--impl scratch``."""


@hookspec
def register_optimizers(register: Register) -> None:
    """Register `seqkit.Optimizer` subclasses (parameter updates), e.g. ``register(Adam)``.

    Selected with ``--optimizer NAME``; constructed with its declared options (Adam: ``beta1``,
    ``beta2``, ``eps``). Per-parameter slots are checkpointed."""


@hookspec
def register_schedules(register: Register) -> None:
    """Register `seqkit.Schedule` subclasses (learning rate per update), e.g. ``register(Cosine)``.

    Selected with ``--schedule NAME``; constructed with their declared options (``step``:
    ``lr_decay``, ``lr_decay_every``; ``cosine``: ``lr_min``; all: ``warmup_steps``)."""


@hookspec
def register_clippers(register: Register) -> None:
    """Register `seqkit.Clipper` subclasses (gradient transforms), e.g. ``register(NormClipper)``.

    Selected with ``--clipper NAME``; constructed with its declared options (``norm``: ``clip_theta``,
    the ``--clip-theta`` flag)."""


@hookspec
def register_decoders(register: Register) -> None:
    """Register `seqkit.Decoder` subclasses (next-token pickers), e.g. ``register(Greedy)``.

    Selected with ``--decoder NAME``; constructed with its declared options (``temperature``,
    ``alpha`` for the built-ins). Decoder options may differ between training, ``seqkit generate``
    and ``Run.predict``."""


@hookspec
def register_presets(register: Register) -> None:
    """Register named configurations, e.g. ``register(Preset("my-lesson", {"hidden": 256, ...}))``.

    ``register`` takes a `seqkit.presets.Preset` (`seqkit.presets.presets_in_folder` reads a folder
    of TOML files). Selected with ``seqkit run --preset NAME``; listed by ``seqkit presets``.
    Names must be unique across plugins."""


@hookspec
def register_loggers(register: Register) -> None:
    """Register `seqkit.Logger` subclasses (run watchers), e.g. ``register(TensorBoardLogger)``.

    Selected with ``--logger NAME`` (repeatable); constructed with their declared options, then
    registered for the length of the run so their lifecycle methods are called."""


# -- Run lifecycle (called in this order while ``seqkit run`` / ``seqkit.train`` trains) --------------------
@hookspec
def seqkit_run_started(run: Any, info: dict) -> None:
    """Training is about to start. ``run`` is the `seqkit.api.Run` (``run.config``, ``run.out_dir``
    — None without an output folder — ``run.vocab``, ``run.history`` when resuming); ``info``
    holds backend, device, impl, dtype, corpus, sizes, ``epochs``, ``batches_per_epoch``,
    ``estimate_s`` (seconds, or None) and ``resumed`` (None, or where the run resumes)."""


@hookspec
def seqkit_step_ended(run: Any, state: Any) -> None:
    """A minibatch was trained. ``state`` is a `seqkit.engine.FitState`: ``epoch`` epochs done,
    ``position`` minibatches of the current one, running ``loss_sum``, ``tokens``,
    ``train_time``. Called after every minibatch: keep it cheap (reading ``loss_sum`` on a GPU
    waits for the device to finish the minibatch; `seqkit.running`)."""


@hookspec
def seqkit_epoch_ended(run: Any, row: dict) -> None:
    """An epoch ended. ``row`` is its metrics row: ``epoch``, ``train_ppl``, ``val_ppl``,
    ``val_bpc`` (None without a validation split), ``lr``, ``grad_norm``, ``clipped_fraction``,
    ``tokens_per_s``, ``elapsed_s`` (the run's training wall time, across resumes), and
    ``budget_spent: True`` on an epoch ``--time-budget`` cut short. It is already in ``run.history``."""


@hookspec
def seqkit_sample_generated(run: Any, text: str, epoch: int) -> None:
    """A sample was generated after ``epoch`` epochs (``--sample-every`` and at the end): ``text``
    is the prefix followed by the generated tokens."""


@hookspec
def seqkit_checkpoint_saved(run: Any, folder: Path) -> None:
    """A checkpoint was written atomically into ``folder`` (``--checkpoint-every``, at the end, or
    when the run was interrupted)."""


@hookspec
def seqkit_run_finished(run: Any, status: str, error: str | None) -> None:
    """The run ended: ``status`` is ``"completed"``, ``"early-stopped"`` (``--early-stop``),
    ``"diverged"``, ``"interrupted"`` or ``"failed"``; ``error`` is the one-line reason (None when completed). Always called once
    after `seqkit_run_started`, also when training raised."""


@hookspec
def register_commands(cli: "click.Group") -> None:
    """Add subcommands to the ``seqkit`` command line (as simonw/llm's hook of the same name).

    ``cli`` is a `click.Group`; decorate functions with ``@cli.command()`` (or call
    ``cli.add_command(command)``)::

        @hookimpl
        def register_commands(cli):
            @cli.command()
            @click.argument("path")
            def stats(path):
                \"\"\"Print token counts of a text file.\"\"\"

    The commands are collected when the command line first needs them (``seqkit --help`` or an
    unknown command name), one plugin at a time: a hook that raises, or a command whose name is
    already taken (a built-in such as ``run``, or another plugin's), is refused and recorded against
    the plugin (``seqkit plugins`` shows it); the other commands keep working. Import frameworks
    inside the command function, not at module level, so ``seqkit --help`` stays fast."""
