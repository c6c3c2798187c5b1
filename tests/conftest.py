"""Shared fixtures: the shared corpora folder and an isolated cache for every test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # the dev extra is not installed: the fuzz tests skip themselves
    pass
else:
    _LENIENT = [HealthCheck.too_slow, HealthCheck.data_too_large]
    # Bounded and reproducible in the suite; `pytest --hypothesis-profile seqkit-long` (or
    # SEQKIT_FUZZ_PROFILE=seqkit-long) explores thousands of random examples.
    settings.register_profile("seqkit-quick", max_examples=40, deadline=None, derandomize=True,
                              suppress_health_check=_LENIENT)
    settings.register_profile("seqkit-long", max_examples=3000, deadline=None, suppress_health_check=_LENIENT)
    settings.load_profile(os.environ.get("SEQKIT_FUZZ_PROFILE", "seqkit-quick"))

SHARED_CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's cache or the checkout (runs land in a temporary working
    folder); ``SEQKIT_DATA`` is unset unless a test sets it."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    monkeypatch.setenv("SEQKIT_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("SEQKIT_DATA", raising=False)
    for name in ("SEQKIT_LOAD_PLUGINS", "SEQKIT_DISABLE_PLUGINS", "SEQKIT_PLUGIN_TRACEBACKS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def corpora_dir(monkeypatch) -> Path:
    """The shared corpora (beside the repo), exported as ``SEQKIT_DATA``."""
    if not SHARED_CORPORA.is_dir():
        pytest.fail(f"shared corpora not found at {SHARED_CORPORA}")
    monkeypatch.setenv("SEQKIT_DATA", str(SHARED_CORPORA))
    return SHARED_CORPORA


@pytest.fixture
def tiny() -> dict:
    """Options for a seconds-long training run on a slice of The Time Machine."""
    return dict(corpus="timemachine", max_tokens=3000, hidden=32, batch_size=4, num_steps=10,
                epochs=2, predict_len=10, seed=0)
