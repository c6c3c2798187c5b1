"""The GRU cell keeps seqkit's cell contract on every installed backend, and trains through seqkit.

Written as a plugin author writes tests: only the public `seqkit` API and `seqkit.testing`.
Run with ``pytest`` in this folder (after ``pip install -e .``, or with this folder on PYTHONPATH).
"""

from __future__ import annotations

import numpy as np
import pytest

import seqkit
import seqkit_gru
from seqkit.plugins import build_registry
from seqkit.testing import check_cell, check_cell_agrees, installed_backends, make_backend, make_problem
from seqkit_gru import GRUCell

# An extra plugin of the same name replaces the installed one, so this works installed or not.
REGISTRY = build_registry(extra_plugins=[("gru", seqkit_gru)])


def test_the_plugin_registers_the_cell():
    component = REGISTRY.component("cell", "gru")
    assert component.plugin == "gru" and REGISTRY.get("cell", "gru") is GRUCell
    assert REGISTRY.plugins["gru"].available, REGISTRY.plugins["gru"].error


def test_cell_contract_on_every_installed_backend():
    check_cell(GRUCell(), registry=REGISTRY)


def test_the_same_numbers_in_float32_on_every_backend():
    backends = [make_backend(name, "float32", REGISTRY) for name in installed_backends(REGISTRY)]
    check_cell_agrees(GRUCell(), backends)


def test_a_saturated_update_gate_keeps_the_state():
    # Z = 1 everywhere: H' = Z * H + (1 - Z) * H~ = H whatever the input.
    backend = make_backend("numpy", "float64", REGISTRY)
    problem = make_problem(GRUCell())
    params, state = problem.on(backend)
    params["b_z"] = backend.asarray(np.full(problem.params["b_z"].shape, 1e3))
    x = backend.one_hot(backend.asarray(problem.X[:, 0]), problem.spec.vocab_size)
    out, (h,) = GRUCell().step(backend, params, x, state)
    np.testing.assert_allclose(backend.to_numpy(h), problem.state[0], atol=1e-12)


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("the time traveller kept the time machine in the laboratory. " * 40, encoding="utf-8")
    return str(path)


def test_trains_and_checkpoints_through_seqkit(text_file, tmp_path):
    run = seqkit.train(registry=REGISTRY, cell="gru", corpus_file=text_file, hidden=16, batch_size=4, num_steps=8,
                       epochs=3, lr=2.0, max_tokens=1500, predict_len=10, out=str(tmp_path / "run"))
    assert run.network.impl == "scratch"  # no backend has a fused GRU: the generic path
    assert run.history[-1]["train_ppl"] < run.history[0]["train_ppl"]
    again = seqkit.load(tmp_path / "run", registry=REGISTRY)
    assert again.predict("the ", length=12, decoder="greedy") == run.predict("the ", length=12, decoder="greedy")
