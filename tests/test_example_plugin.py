"""The example third-party plugin (examples/seqkit-gru): found, trained on every installed backend."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import seqkit
from seqkit.errors import ConfigError
from seqkit.plugins import build_registry

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "seqkit-gru"


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    sys.modules.pop("seqkit_gru", None)
    import seqkit_gru

    return build_registry(extra_plugins=[("gru", seqkit_gru)])


def test_registered_like_any_plugin(registry):
    assert registry.component("cell", "gru").plugin == "gru"
    assert "register_cells" in registry.plugins["gru"].hooks


def test_gru_learns_on_numpy_through_the_generic_path(registry, corpora_dir, tiny):
    run = seqkit.train(registry=registry, **{**tiny, "cell": "gru", "epochs": 4, "lr": 2.0})
    assert run.network.impl == "scratch"  # auto falls back: no backend has a fused GRU
    assert run.history[-1]["train_ppl"] < run.history[0]["train_ppl"]
    with pytest.raises(ConfigError, match="no fused implementation of cell 'gru'.*--impl scratch"):
        seqkit.train(registry=registry, **{**tiny, "cell": "gru", "impl": "fused"})


@pytest.mark.parametrize("backend", [n for n in build_registry().names("backend") if n != "numpy"])
def test_gru_gives_the_same_numbers_on_other_backends(registry, corpora_dir, tiny, backend):
    if registry.component("backend", backend).unavailable_reason:
        pytest.skip(registry.component("backend", backend).unavailable_reason)
    options = {**tiny, "cell": "gru", "epochs": 1, "device": "cpu"}
    reference = seqkit.train(registry=registry, **options)
    other = seqkit.train(registry=registry, backend=backend, **options)
    np.testing.assert_allclose(other.history[0]["train_ppl"], reference.history[0]["train_ppl"], rtol=1e-4)
    assert other.predict(length=15) == reference.predict(length=15)
