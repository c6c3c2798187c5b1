"""Every seqkit hook, in one place: the plugin author's reference.

A plugin is a module (or object) with functions decorated by ``seqkit.hookimpl`` whose names are
the hooks below, registered under the ``seqkit`` entry-point group::

    [project.entry-points.seqkit]
    mycell = "seqkit_mycell"

Each hook receives a ``register`` callable and calls it once per component it provides:
``register(ComponentClass)``. The class must subclass the matching interface and set a unique
``name``; it is instantiated by seqkit with keyword arguments taken from the run options its
constructor names. Instead of a class a plugin may pass ``seqkit.LazyComponent(...)`` naming
``"module:Class"`` and the modules it needs, so a heavy framework is imported only on use and a
missing one is reported with an install hint. Every implementation is called (none stops the
others); registering a name another plugin already registered for the same kind is an error.
"""

from __future__ import annotations

from typing import Callable

import pluggy

hookspec = pluggy.HookspecMarker("seqkit")
hookimpl = pluggy.HookimplMarker("seqkit")

Register = Callable[..., None]


@hookspec
def register_backends(register: Register) -> None:
    """Register `seqkit.Backend` subclasses (array frameworks), e.g. ``register(NumpyBackend)``.

    Selected with ``--backend NAME``; constructed as ``Backend(device=..., dtype=...)``."""


@hookspec
def register_corpora(register: Register) -> None:
    """Register `seqkit.Corpus` subclasses (text sources), e.g. ``register(TimeMachine)``.

    Selected with ``--corpus NAME``; constructed with no arguments."""


@hookspec
def register_samplers(register: Register) -> None:
    """Register `seqkit.Sampler` subclasses (minibatch schemes), e.g. ``register(SequentialSampler)``.

    Selected with ``--sampler NAME``; constructed with no arguments."""


@hookspec
def register_cells(register: Register) -> None:
    """Register `seqkit.Cell` subclasses (recurrent steps), e.g. ``register(RNNTanh)``.

    Selected with ``--cell NAME``; constructed with no arguments. A cell written only against the
    backend op surface runs on every backend through ``--impl scratch``."""


@hookspec
def register_optimizers(register: Register) -> None:
    """Register `seqkit.Optimizer` subclasses (parameter updates), e.g. ``register(Adam)``.

    Selected with ``--optimizer NAME``; constructor arguments ``beta1``, ``beta2`` and ``eps``
    receive the options of the same name. Per-parameter slots are checkpointed."""


@hookspec
def register_clippers(register: Register) -> None:
    """Register `seqkit.Clipper` subclasses (gradient transforms), e.g. ``register(NormClipper)``.

    Selected with ``--clipper NAME``; a constructor argument ``theta`` receives ``--clip-theta``."""


@hookspec
def register_decoders(register: Register) -> None:
    """Register `seqkit.Decoder` subclasses (next-token pickers), e.g. ``register(Greedy)``.

    Selected with ``--decoder NAME``; constructor arguments ``temperature`` and ``alpha`` receive
    the options of the same name."""
