"""`seqkit.testing` catches broken components: each check fails, naming the broken promise."""

from __future__ import annotations

import numpy as np
import pytest

from seqkit import Cell, Clipper, Corpus, ParamSpec
from seqkit.testing import (check_backend, check_cell, check_cell_gradients, check_cell_shapes, check_clipper,
                            check_corpus, check_decoder, check_optimizer, check_sampler, installed_backends,
                            make_backend)
from seqkit_cells.rnn import RNNTanh
from seqkit_decoders.sampling import TemperatureDecoder
from seqkit_numpy.backend import NumpyBackend
from seqkit_optimizers.updates import SGD
from seqkit_samplers.partition import RandomSampler


class NaiveCrossEntropy(NumpyBackend):
    def cross_entropy(self, logits, targets):
        probs = np.exp(logits) / np.sum(np.exp(logits), axis=1, keepdims=True)
        return -np.mean(np.log(probs[np.arange(len(targets)), targets]))


class AbsRelu(NumpyBackend):
    def relu(self, x):
        return self.add(self.relu_of_positive(x), self.relu_of_positive(self.multiply(x, -1.0)))

    def relu_of_positive(self, x):
        return super().relu(x)


class NoCopy(NumpyBackend):
    def asarray(self, array):
        return array if array.dtype.kind != "f" else array.astype(self.dtype, copy=False)


@pytest.mark.parametrize("backend, message", [
    (NaiveCrossEntropy(dtype="float64"), "cross_entropy overflows"),
    (AbsRelu(dtype="float64"), "relu"),
    (NoCopy(dtype="float64"), "asarray must copy"),
])
def test_a_broken_backend_fails_the_contract(backend, message):
    with np.errstate(all="ignore"), pytest.raises(AssertionError, match=message):
        check_backend(backend)


def test_installed_backends_start_with_numpy_and_make_backend_builds_them():
    names = installed_backends()
    assert names[0] == "numpy"
    assert make_backend("numpy", "float32").dtype == "float32"


class Transposed(RNNTanh):
    name = "transposed"

    def state_shapes(self, batch_size, hidden_size):
        return ((hidden_size, batch_size),)


class Leaky(Cell):
    """Cuts the recurrent path out of the graph (through NumPy): W_hh gets no gradient."""

    name = "leaky"

    def param_specs(self, input_size, hidden_size):
        return {"W_xh": ParamSpec((input_size, hidden_size)), "W_hh": ParamSpec((hidden_size, hidden_size))}

    def step(self, ops, params, x, state):
        (h,) = state
        recurrent = ops.asarray(ops.to_numpy(ops.matmul(h, params["W_hh"])))
        h = ops.tanh(ops.add(ops.matmul(x, params["W_xh"]), recurrent))
        return h, (h,)


def test_a_cell_with_wrong_state_shapes_fails():
    with pytest.raises(AssertionError, match="must start with the batch size"):
        check_cell_shapes(Transposed())


def test_a_cell_that_breaks_the_gradient_fails():
    with pytest.raises(AssertionError, match="gradient of W_hh.*finite differences"):
        check_cell_gradients(Leaky(), make_backend("numpy", "float64"))
    check_cell(RNNTanh(), backends=["numpy"])


class Unnormalised(TemperatureDecoder):
    name = "unnormalised"

    def distribution(self, logits):
        return super().distribution(logits) * 2


class GlobalRandom(TemperatureDecoder):
    name = "global-random"

    def choose(self, logits, rng):
        return int(np.random.choice(len(logits), p=self.distribution(logits)))


@pytest.mark.parametrize("decoder, message", [(Unnormalised(), "sums to"), (GlobalRandom(), "same seed")])
def test_a_broken_decoder_fails(decoder, message):
    with pytest.raises(AssertionError, match=message):
        check_decoder(decoder)


class SameTargets(RandomSampler):
    def batches(self, tokens, batch_size, num_steps, rng):
        for X, _ in super().batches(tokens, batch_size, num_steps, rng):
            yield X, X


class HalfSampler(RandomSampler):
    def batches(self, tokens, batch_size, num_steps, rng):
        return super().batches(tokens[: len(tokens) // 2], batch_size, num_steps, rng)

    def min_batches(self, num_tokens, batch_size, num_steps):
        return 0


class ClaimsToCarry(RandomSampler):
    carries_state = True


@pytest.mark.parametrize("sampler, message", [(SameTargets(), "shifted by one"), (HalfSampler(), "left out"),
                                              (ClaimsToCarry(), "continue the previous")])
def test_a_broken_sampler_fails(sampler, message):
    with pytest.raises(AssertionError, match=message):
        check_sampler(sampler)


class PostNorm(Clipper):
    name = "post-norm"

    def clip(self, backend, grads):
        grads = backend.scale(grads, 0.5)
        return grads, backend.global_norm(grads), True


class Lazy(SGD):
    def update(self, backend, params, grads, lr, state):
        backend.sgd_update(params, grads, lr)


def test_a_broken_clipper_and_optimizer_fail():
    with pytest.raises(AssertionError, match="pre-clip global L2 norm"):
        check_clipper(PostNorm(), backends=["numpy"])
    with pytest.raises(AssertionError, match="state.step"):
        check_optimizer(Lazy(), backends=["numpy"])


class Empty(Corpus):
    name = "empty"

    def read(self):
        return "   "


def test_a_broken_corpus_fails():
    with pytest.raises(AssertionError, match="non-empty text"):
        check_corpus(Empty())
