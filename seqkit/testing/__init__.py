"""Conformance checks for seqkit components, for a plugin author's tests (and seqkit's own).

Each ``check_*`` function raises `AssertionError` with a message naming the broken promise, so it
works under pytest or anything else. Checks that involve arrays run on every installed backend
(found through the plugin registry; frameworks are imported only by their backends)::

    import pytest
    from seqkit.testing import check_backend, check_cell, installed_backends, make_backend

    def test_my_cell():
        check_cell(MyCell())                   # numpy, torch, mxnet: whatever is installed

    @pytest.mark.parametrize("name", installed_backends())
    def test_backend_contract(name):
        check_backend(make_backend(name, "float32"))
"""

from seqkit.testing.backends import (check_autodiff, check_backend, check_conversion, check_cross_entropy,
                                     check_ops, check_updates, numeric_gradient)
from seqkit.testing.cells import (Problem, check_cell, check_cell_agrees, check_cell_gradients, check_cell_shapes,
                                  check_cell_step, make_problem)
from seqkit.testing.compare import TOLERANCE, as_numpy, assert_close
from seqkit.testing.data import check_corpus, check_sampler
from seqkit.testing.decoders import MarkovModel, check_choose, check_decoder, check_distribution, check_search
from seqkit.testing.networks import check_network
from seqkit.testing.registry import installed_backends, make_backend, usable_backends
from seqkit.testing.updates import check_clipper, check_optimizer

__all__ = [
    "MarkovModel", "Problem", "TOLERANCE", "as_numpy", "assert_close", "check_autodiff", "check_backend",
    "check_cell", "check_cell_agrees", "check_cell_gradients", "check_cell_shapes", "check_cell_step",
    "check_choose", "check_clipper", "check_conversion", "check_corpus", "check_cross_entropy", "check_decoder",
    "check_distribution", "check_network", "check_ops", "check_optimizer", "check_sampler", "check_search", "check_updates",
    "installed_backends", "make_backend", "make_problem", "numeric_gradient", "usable_backends",
]
