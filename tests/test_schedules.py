"""Learning-rate schedules as components: per-minibatch rates, the same numbers on every backend,
exact resume mid-epoch."""

from __future__ import annotations


import numpy as np
import pytest

import seqkit
from seqkit.plugins import build_registry
from helpers import interrupted_then_resumed

OPTIONS = dict(max_tokens=3000, hidden=16, batch_size=4, num_steps=10, epochs=3, schedule="cosine", lr_min=0.05,
               warmup_steps=5, val_fraction=0.1, progress=False)


def installed_backends() -> list[str]:
    registry = build_registry()
    return [n for n in registry.names("backend") if registry.component("backend", n).unavailable_reason is None]


def test_the_schedules_are_registered():
    assert build_registry().names("schedule") == ["constant", "cosine", "step"]


def test_cosine_with_warmup_gives_the_same_numbers_on_every_backend(corpora_dir):
    runs = {name: seqkit.train(**OPTIONS, backend=name, dtype="float64") for name in installed_backends()}
    base = runs["numpy"].history
    assert base[0]["lr"] > base[1]["lr"] > base[2]["lr"] == pytest.approx(0.05)
    for name, run in runs.items():
        for a, b in zip(run.history, base):
            np.testing.assert_allclose([a["train_ppl"], a["val_ppl"], a["lr"]],
                                       [b["train_ppl"], b["val_ppl"], b["lr"]], rtol=1e-9, err_msg=name)


def test_a_schedule_option_without_its_schedule_is_an_error():
    with pytest.raises(seqkit.SeqkitError, match="--lr-min is used by schedule 'cosine', not by the selected "
                                                 "schedule 'step'"):
        seqkit.train(lr_min=0.1, progress=False)


def test_resume_mid_epoch_continues_the_schedule_exactly(corpora_dir, tmp_path):
    whole = seqkit.train(**OPTIONS)
    resumed = interrupted_then_resumed(OPTIONS, tmp_path / "run", stop_at=7)
    strip = [{k: v for k, v in r.items() if k not in ("tokens_per_s", "elapsed_s")} for r in resumed.history]
    expected = [{k: v for k, v in r.items() if k not in ("tokens_per_s", "elapsed_s")} for r in whole.history]
    assert strip == expected
