"""Every built-in component keeps its kind's contract, checked with the shipped `seqkit.testing` kit
(the same checks a third-party plugin's tests run), on every installed backend."""

from __future__ import annotations

import pytest

from seqkit.plugins import build_registry
from seqkit.testing import (check_backend, check_cell, check_clipper, check_corpus, check_decoder,
                            check_optimizer, check_sampler, installed_backends, make_backend)

REGISTRY = build_registry()
BACKENDS = installed_backends(REGISTRY)


def test_every_framework_installed_here_is_checked():
    import importlib.util

    for name in ("numpy", "torch", "mxnet"):
        if importlib.util.find_spec(name):
            assert name in BACKENDS


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", BACKENDS)
def test_backend_contract(name, dtype):
    check_backend(make_backend(name, dtype, REGISTRY))


@pytest.mark.parametrize("name", REGISTRY.names("cell"))
def test_cell_contract(name):
    check_cell(REGISTRY.create("cell", name), registry=REGISTRY)


@pytest.mark.parametrize("name", REGISTRY.names("decoder"))
def test_decoder_contract(name):
    check_decoder(REGISTRY.create("decoder", name))


@pytest.mark.parametrize("random_offset", [True, False])
@pytest.mark.parametrize("name", REGISTRY.names("sampler"))
def test_sampler_contract(name, random_offset):
    check_sampler(REGISTRY.create("sampler", name, random_offset=random_offset))


@pytest.mark.parametrize("name", REGISTRY.names("clipper"))
def test_clipper_contract(name):
    check_clipper(REGISTRY.create("clipper", name), registry=REGISTRY)


@pytest.mark.parametrize("name", REGISTRY.names("optimizer"))
def test_optimizer_contract(name):
    check_optimizer(REGISTRY.create("optimizer", name), registry=REGISTRY)


@pytest.mark.parametrize("name", ["timemachine", "lyrics", "shakespeare"])
def test_corpus_contract(name, corpora_dir):
    check_corpus(REGISTRY.create("corpus", name))


def test_file_corpus_contract(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("the quick brown fox jumps over the lazy dog\n", encoding="utf-8")
    check_corpus(REGISTRY.create("corpus", "file", corpus_file=str(path)))
