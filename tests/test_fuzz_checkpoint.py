"""Property-based fuzzing of the checkpoint loader: mutated state.json values and types, truncated,
bit-flipped and re-headed safetensors files. Loading (and generating from) any of them either works
or raises a `seqkit.SeqkitError` with a one-line message, never another exception.

The suite runs the ``seqkit-quick`` profile (tests/conftest.py: a fixed, bounded set of examples);
``SEQKIT_FUZZ_PROFILE=seqkit-long`` or ``pytest --hypothesis-profile seqkit-long`` runs thousands of
random ones."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import seqkit  # noqa: E402
from seqkit.errors import SeqkitError  # noqa: E402

TINY = dict(corpus="timemachine", max_tokens=2000, hidden=8, batch_size=4, num_steps=6, epochs=2, seed=0,
            predict_len=4, optimizer="adam")

from conftest import SHARED_CORPORA  # noqa: E402

EXAMPLES: dict[str, int] = {}  # examples run per test (printed by the last test of the module)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[dict, bytes, Path]:
    """A valid checkpoint stopped mid-epoch (carried state, partial sums, Adam slots): its
    state.json, its weights file and a scratch folder."""
    root = tmp_path_factory.mktemp("fuzz")
    previous = os.environ.get("SEQKIT_DATA")
    os.environ["SEQKIT_DATA"] = str(SHARED_CORPORA)
    try:
        calls = {"n": 0}

        def stop() -> int | None:
            calls["n"] += 1
            return 15 if calls["n"] == 30 else None  # SIGTERM in epoch 2

        try:
            seqkit.train(**TINY, out=str(root / "run"), should_stop=stop)
        except KeyboardInterrupt:
            pass
    finally:
        if previous is None:
            os.environ.pop("SEQKIT_DATA", None)
        else:
            os.environ["SEQKIT_DATA"] = previous
    folder = root / "run" / "checkpoint"
    state = json.loads((folder / "state.json").read_text())
    assert state["training"]["position"] > 0 and state["training"]["carried_state"]
    return state, (folder / "model.safetensors").read_bytes(), root


def _check(state_text: bytes, model: bytes, root: Path, name: str, resume: bool = False) -> None:
    """Write the pair, load it and generate (and with ``resume`` train one more epoch from it):
    success or a one-line SeqkitError only."""
    EXAMPLES[name] = EXAMPLES.get(name, 0) + 1
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        folder = Path(tmp) / "checkpoint"
        folder.mkdir()
        (folder / "state.json").write_bytes(state_text)
        (folder / "model.safetensors").write_bytes(model)
        try:
            run = seqkit.load(folder)
            run.predict(length=3)
            if resume:
                seqkit.train(resume=str(folder), epochs=run.fit_state.epoch + 1, out=str(Path(tmp) / "resumed"),
                             data_dir=str(SHARED_CORPORA))
                EXAMPLES["resumed"] = EXAMPLES.get("resumed", 0) + 1
        except SeqkitError as exc:
            message = str(exc)
            assert message and "\n" not in message, repr(message)
        except Exception as exc:  # anything else is a finding
            raise AssertionError(f"{type(exc).__name__}: {exc}") from exc


# -- state.json -------------------------------------------------------------------------------------
json_scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**31, 2**63, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", "PCG64", "MT19937", "float16", "rnn-relu", "adam", "cuda", "file", "seqkit-checkpoint"]),
)
special_numbers = st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e300, -1e300, -1, -0.5, 0.5,
                                   2**31, 2**32, 2**63, 2**64, -(2**63), 10**400, True, False])
json_scalars = st.one_of(special_numbers, json_scalars)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)), max_leaves=8)


def _paths(value, prefix=()):
    """Every path into a JSON document (dict keys and list indices)."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value[:6]):
            yield from _paths(item, prefix + (index,))


def _mutate(state: dict, path: tuple, action: str, value) -> dict:
    doc = copy.deepcopy(state)
    if not path:
        return value if action == "replace" else doc
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if action == "delete":
        del parent[key]
    elif action == "replace":
        parent[key] = value
    elif action == "wrap":
        parent[key] = [parent[key]]
    elif action == "stringify":
        parent[key] = json.dumps(parent[key])
    return doc


@given(data=st.data())
def test_mutated_state_json_is_loaded_or_refused_in_one_line(base, data):
    state, model, root = base
    paths = sorted(_paths(state), key=lambda p: [str(k) for k in p])
    edits = data.draw(st.lists(st.tuples(st.sampled_from(paths), st.sampled_from(["replace", "delete", "wrap",
                                                                                   "stringify"]), json_values),
                               min_size=1, max_size=3))
    doc = state
    for path, action, value in edits:
        try:
            doc = _mutate(doc, path, action, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed that path
    text = json.dumps(doc, allow_nan=True).encode("utf-8")
    _check(text, model, root, "state.json", resume=data.draw(st.booleans()))


CONFIG_FIELDS = sorted(__import__("seqkit.api", fromlist=["configure"]).configure().to_dict())


@given(data=st.data())
def test_hostile_config_values_are_loaded_or_refused_in_one_line(base, data):
    """Every saved option, set to an edge value (0, huge, tiny, NaN, wrong type, unknown name)."""
    state, model, root = base
    changes = data.draw(st.dictionaries(
        st.sampled_from(CONFIG_FIELDS),
        st.one_of(special_numbers, st.sampled_from([0, 1, 1e-308, 5e-324, 10**9, "", "word", "char", "file", "none",
                                                    "scratch", "fused", "float64", "float16", "cuda", "cuda:7",
                                                    "random", "alpha", "temperature", "x" * 2000, None, [], {}])),
        min_size=1, max_size=4))
    doc = copy.deepcopy(state)
    doc["config"].update(changes)
    _check(json.dumps(doc, allow_nan=True).encode("utf-8"), model, root, "config values", resume=True)


@given(text=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                      st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n),
                      st.integers(4000, 6000).map(lambda n: b'{"format": ' + b"9" * n + b"}")))
def test_arbitrary_state_json_bytes_are_refused_in_one_line(base, text):
    _, model, root = base
    _check(text, model, root, "state.json bytes")


# -- model.safetensors ------------------------------------------------------------------------------
def _with_sha(state: dict, model: bytes) -> bytes:
    doc = copy.deepcopy(state)
    doc["model"]["sha256"] = hashlib.sha256(model).hexdigest()
    return json.dumps(doc).encode("utf-8")


@given(data=st.data())
def test_truncated_or_bit_flipped_weights_are_refused_in_one_line(base, data):
    state, model, root = base
    kind = data.draw(st.sampled_from(["truncate", "flip", "flip header", "append"]))
    blob = bytearray(model)
    header_end = 8 + int.from_bytes(model[:8], "little")
    if kind == "truncate":
        blob = blob[:data.draw(st.integers(0, len(model) - 1))]
    elif kind == "append":
        blob += data.draw(st.binary(min_size=1, max_size=64))
    else:
        hi = header_end - 1 if kind == "flip header" else len(model) - 1
        for _ in range(data.draw(st.integers(1, 8))):
            position = data.draw(st.integers(0, hi))
            blob[position] ^= 1 << data.draw(st.integers(0, 7))
    # A hostile but self-consistent pair gets past the SHA-256 check to the parser.
    fix_sha = data.draw(st.booleans())
    state_text = _with_sha(state, bytes(blob)) if fix_sha else json.dumps(state).encode("utf-8")
    _check(state_text, bytes(blob), root, "safetensors bytes")


@given(data=st.data())
def test_rewritten_safetensors_headers_are_refused_in_one_line(base, data):
    state, model, root = base
    size = int.from_bytes(model[:8], "little")
    header = json.loads(model[8:8 + size])
    body = model[8 + size:]
    names = sorted(k for k in header if k != "__metadata__")
    name = data.draw(st.sampled_from(names + ["__metadata__"]))
    field = data.draw(st.sampled_from(["dtype", "shape", "data_offsets", "whole"]))
    value = data.draw(st.one_of(
        json_values, st.sampled_from(["F16", "BF16", "I64", "U8", "BOOL", "F64", "F8_E4M3", "complex"]),
        st.lists(st.integers(-5, 2**40), max_size=4)))
    if name == "__metadata__" or field == "whole":
        header[name] = value
    else:
        header[name] = {**header[name], field: value}
    encoded = json.dumps(header).encode("utf-8")
    declared = data.draw(st.sampled_from([len(encoded), len(encoded) + 7, 2**63]))
    blob = declared.to_bytes(8, "little") + encoded + body
    _check(_with_sha(state, blob), blob, root, "safetensors header")


def test_the_unmutated_checkpoint_loads_and_resumes(base):
    """The baseline of the mutations above: it loads, generates and resumes."""
    state, model, root = base
    before = EXAMPLES.get("resumed", 0)
    _check(json.dumps(state).encode("utf-8"), model, root, "unmutated", resume=True)
    assert EXAMPLES["resumed"] == before + 1


def test_fuzzing_ran_examples():
    """Guard against a silently empty run (and show the counts with -s)."""
    print(f"checkpoint fuzz examples ({settings().max_examples} per test at most): {EXAMPLES}")
    loaders = ("state.json", "config values", "state.json bytes", "safetensors bytes", "safetensors header")
    assert all(EXAMPLES.get(name, 0) >= 10 for name in loaders), EXAMPLES
