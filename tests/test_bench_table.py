"""benchmarks/bench.py's table arithmetic: the ratios a closing note quotes come from here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("seqkit_bench_under_test", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_paired_ratio_cancels_drift_that_the_ratio_of_medians_keeps(bench):
    # The machine speeds up over the run; the row is 10% slower than nn.RNN in every round.
    base_runs = [30_000.0, 34_000.0, 40_000.0, 46_000.0, 52_000.0]
    rows = [bench.Row(bench.BASELINE_TRAIN, "train", 32, base_runs),
            bench.Row("seqkit torch scratch", "train", 32, [r * 0.9 for r in base_runs])]
    rows[1].runs[2] = 40_000.0 * 1.5  # one round where only the row ran in a quiet spell: the median ignores it
    paired = bench.paired_ratios(rows)
    assert paired[0] == pytest.approx(1.0)
    assert paired[1] == pytest.approx(0.9)
    assert bench.ratios(rows)[1] == pytest.approx(41_400.0 / 40_000.0)  # drift leaks into the ratio of medians


def test_rows_timed_in_other_rounds_get_no_paired_ratio(bench):
    base = bench.Row(bench.BASELINE_TRAIN, "train", 32, [1.0, 2.0, 3.0])
    subprocess_row = bench.Row("seqkit mxnet fused", "train", 32, [2.0, 4.0, 6.0], source="bench_mxnet.py (subprocess)")
    fewer_runs = bench.Row("seqkit numpy fused", "train", 32, [2.0, 4.0])
    other_batch = bench.Row("seqkit numpy fused", "train", 64, [2.0, 4.0, 6.0])
    ceiling = bench.Row("matmul-only ceiling", "ceiling", 32, [3.0, 6.0, 9.0])
    paired = bench.paired_ratios([base, subprocess_row, fewer_runs, other_batch, ceiling])
    assert paired[1] is None and paired[2] is None and paired[3] is None
    assert paired[4] == pytest.approx(3.0)  # the ceiling pairs with the training baseline


def test_an_unusable_corpus_stops_the_benchmark_with_one_line(bench, tmp_path):
    (tmp_path / "timemachine.txt").write_text("not the book")
    with pytest.raises(SystemExit) as stopped:
        bench.load_corpus(str(tmp_path))
    message = str(stopped.value.code)
    assert message.startswith("error: ") and "SHA-1" in message and "\n" not in message
