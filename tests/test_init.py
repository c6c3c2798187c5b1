"""--init: the lessons' small normal by default, PyTorch's defaults on request."""

from __future__ import annotations

import numpy as np
import pytest

import seqkit
from seqkit.network import ModelSpec
from seqkit_cells.rnn import RNNTanh

V, H, E = 11, 64, 8


def test_the_default_is_the_lessons_small_normal_with_zero_biases():
    params = ModelSpec(RNNTanh(), V, H, E).init_params(np.random.default_rng(0))
    assert not params["b_h"].any() and not params["b_q"].any()
    assert 0.008 < params["W_hh"].std() < 0.012


def test_pytorch_init_draws_what_nn_rnn_linear_and_embedding_start_from():
    params = ModelSpec(RNNTanh(), V, H, E, "pytorch").init_params(np.random.default_rng(0))
    bound = 1 / np.sqrt(H)
    for name in ("W_xh", "W_hh", "b_h", "W_hq", "b_q"):
        values = params[name]
        assert np.abs(values).max() <= bound and np.abs(values).max() > 0.9 * bound, name
    assert params["W_hh"].std() == pytest.approx(bound / np.sqrt(3), rel=0.05)
    assert params["W_embed"].std() == pytest.approx(1.0, rel=0.1)
    again = ModelSpec(RNNTanh(), V, H, E, "pytorch").init_params(np.random.default_rng(0))
    assert all(np.array_equal(params[k], again[k]) for k in params)


def test_an_unknown_scheme_is_refused():
    with pytest.raises(ValueError, match="choose one of: small-normal, pytorch"):
        ModelSpec(RNNTanh(), V, H, init="xavier").init_params(np.random.default_rng(0))
    with pytest.raises(seqkit.SeqkitError, match="unknown --init 'xavier'; choose one of: small-normal, pytorch"):
        seqkit.train(init="xavier", progress=False)


def test_the_run_uses_it_and_remembers_it(corpora_dir, tmp_path):
    options = dict(max_tokens=3000, hidden=16, batch_size=4, num_steps=10, epochs=1, progress=False, val_fraction=0.1)
    small = seqkit.train(**options)
    torch_like = seqkit.train(**options, init="pytorch", out=str(tmp_path / "run"))
    assert torch_like.history[0]["train_ppl"] != small.history[0]["train_ppl"]
    assert seqkit.load(tmp_path / "run").config.init == "pytorch"
    resumed = seqkit.train(resume=tmp_path / "run", epochs=2, progress=False)
    assert resumed.config.init == "pytorch" and len(resumed.history) == 2
