"""Property-based fuzzing of the whole option space: any combination of options either trains a
minibatch and generates, or raises a `SeqkitError` with a one-line message — never another
exception, never a hang. ``SEQKIT_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz_options.py`` runs a
longer search than the suite's default."""

from __future__ import annotations

import math
import os
import signal

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import seqkit  # noqa: E402
from seqkit.config import CORE_OPTIONS, KIND_OPTIONS  # noqa: E402
from seqkit.errors import TrainingInterrupted  # noqa: E402
from seqkit.options import Option  # noqa: E402
from seqkit.plugins import get_registry  # noqa: E402

EXAMPLES = int(os.environ.get("SEQKIT_FUZZ_EXAMPLES", "40"))
COMMON_INTS = [1, 2, 3, 16]
EDGE_INTS = [0, -1, 7, 10**9, 10**400]
COMMON_FLOATS = [0.1, 0.5]
EDGE_FLOATS = [0.0, 1.0, -1.0, 1e-308, 1e300, math.nan, math.inf, 0.999, 100.0]
TEXTS = {
    "empty": b"", "spaces": b" \n\t ", "one char": b"a", "two chars": b"ab", "binary": bytes(range(256)) * 4,
    "latin1": "café naïve ".encode("latin-1") * 50, "utf8": "naïve café 分开 ".encode() * 50,
    "words": b"the cat sat on the mat " * 50,
}
SKIPPED = {"out", "data_dir", "tensorboard_dir", "logger", "corpus_file", "prefix"}


def mostly(common: list, edges: list) -> st.SearchStrategy:
    """Common values nine times out of ten, so most examples get far enough to train."""
    return st.sampled_from(common * (3 * len(edges)) + edges)


def value_strategy(opt: Option) -> st.SearchStrategy:
    if opt.type is bool:
        return st.booleans()
    if opt.type is int:
        return mostly(COMMON_INTS, EDGE_INTS)
    if opt.type is float:
        return mostly(COMMON_FLOATS, EDGE_FLOATS)
    if opt.choices:
        return mostly(list(opt.choices), ["", "nonsense"])
    return mostly([opt.default] if isinstance(opt.default, str) else ["cpu"], ["", "x", "cuda", "latin-1"])


def option_space() -> st.SearchStrategy[dict]:
    registry = get_registry()
    usable = {kind: [c.name for c in registry.components(kind) if c.unavailable_reason is None]
              for kind in KIND_OPTIONS}
    fields: dict[str, st.SearchStrategy] = {}
    for kind, option in KIND_OPTIONS.items():
        fields[option] = st.sampled_from([*usable[kind] * 12, "nonsense"])
    for name, opt in {**CORE_OPTIONS, **registry.option_schema()}.items():
        if name not in fields and name not in SKIPPED:
            fields[name] = value_strategy(opt)
    fields["prefix"] = st.sampled_from(["t", "the", "ROMEO:", "€", "分开", "   "])
    fields["text"] = st.sampled_from([None, *TEXTS])
    return st.fixed_dictionaries({}, optional=fields)


class StopAfterFirstMinibatch:
    """A ``should_stop`` that asks training to stop once one minibatch is done."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> int | None:
        self.calls += 1
        return signal.SIGINT


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(options=option_space())
def test_any_options_train_or_fail_cleanly(options, corpora_dir, tmp_path_factory):
    options = dict(options)
    text = options.pop("text", None)
    if text is not None:
        path = tmp_path_factory.mktemp("fuzz") / "text.txt"
        path.write_bytes(TEXTS[text])
        options.pop("corpus", None)
        options["corpus_file"] = str(path)
    options.setdefault("max_tokens", 3000)
    stop = StopAfterFirstMinibatch()
    try:
        seqkit.train(**options, should_stop=stop, progress=False)
    except TrainingInterrupted as exc:  # stopped after its first minibatch, as asked
        assert stop.calls == 1 and exc.run is not None
        generated = exc.run.predict(length=5)
        assert isinstance(generated, str)
        event("trained a minibatch and generated")
    except seqkit.SeqkitError as exc:
        message = str(exc)
        assert message and "\n" not in message, message
        event(f"refused: {type(exc).__name__}")
    else:
        pytest.fail("training finished without polling should_stop after its first minibatch")
