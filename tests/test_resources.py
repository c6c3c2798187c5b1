"""Memory estimates and the refusal of configurations that cannot fit (seqkit.resources)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import seqkit
from seqkit import resources
from seqkit.api import configure
from seqkit.errors import ConfigError
from seqkit.network import ModelSpec
from seqkit.plugins import get_registry
from seqkit.resources import Workload, check_memory, estimate_memory
from seqkit_cells.rnn import RNNTanh
from seqkit_numpy.backend import NumpyBackend

REPO = Path(__file__).resolve().parents[1]


def config_of(**options):
    """The resolved run configuration of these options."""
    return configure(options)


def _env() -> dict:
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "plugins"), env.get("PYTHONPATH", "")])
    return env


def test_estimate_counts_parameters_gradients_slots_and_activations():
    sgd = estimate_memory(Workload(vocab=28, hidden=512, embedding=0, batch=32, steps=35, itemsize=4, slots=0))
    adam = estimate_memory(Workload(vocab=28, hidden=512, embedding=0, batch=32, steps=35, itemsize=4, slots=2))
    params = 28 * 512 + 512 * 512 + 512 + 512 * 28 + 28
    assert sgd.parts["parameters"] == params * 4
    assert adam.parts["optimizer slots"] == 2 * params * 4
    assert adam.total - sgd.total == 2 * params * 4
    doubled_batch = estimate_memory(Workload(28, 512, 0, 64, 35, 4, 0))
    assert doubled_batch.parts["activations"] > 1.9 * sgd.parts["activations"]
    float64 = estimate_memory(Workload(28, 512, 0, 32, 35, 8, 0))
    assert float64.total == 2 * sgd.total
    scratch = estimate_memory(Workload(28, 512, 0, 32, 35, 4, 0, fused=False))
    assert scratch.parts["activations"] > sgd.parts["activations"]


def test_huge_hidden_needs_tens_of_tebibytes():
    est = estimate_memory(Workload(vocab=28, hidden=2_000_000, embedding=0, batch=32, steps=35))
    # float32 parameters, then gradients and their clipped copy (or the float64 initial draw)
    assert est.total >= 12 * 2_000_000**2
    assert est.total > 40 * 2**40
    assert "TiB" in est.describe()


def _spec(hidden: int, vocab: int = 28) -> ModelSpec:
    return ModelSpec(RNNTanh(), vocab, hidden, 0)


def test_check_memory_refuses_with_the_figure_and_what_fits():
    config = config_of(hidden=4096)
    backend = NumpyBackend()
    optimizer = get_registry().create("optimizer", "adam")
    with pytest.raises(ConfigError) as info:
        check_memory(config, _spec(4096), backend, optimizer, available=100 << 20)
    message = str(info.value)
    assert "\n" not in message
    assert "needs about" in message and "100 MiB is free on cpu" in message and "lower --hidden (" in message
    fits = int(message.split("lower --hidden (")[1].split(" fits")[0].replace(",", ""))
    assert 0 < fits < 4096
    assert check_memory(config_of(hidden=fits), _spec(fits), backend, optimizer, available=100 << 20).total <= 100 << 20
    with pytest.raises(ConfigError):
        check_memory(config_of(hidden=fits + 1), _spec(fits + 1), backend, optimizer, available=100 << 20)


def test_no_detach_counts_the_whole_epoch_graph():
    config = config_of(hidden=256, no_detach=True, batch_size=8, num_steps=10)
    sampler = get_registry().create("sampler", "sequential")
    backend = NumpyBackend()
    whole = check_memory(config, _spec(256), backend, None, sampler, train_tokens=800_000, available=1 << 50)
    window = check_memory(config_of(hidden=256, batch_size=8, num_steps=10), _spec(256), backend, None, sampler,
                          train_tokens=800_000, available=1 << 50)
    assert whole.parts["activations"] > 1000 * window.parts["activations"]
    with pytest.raises(ConfigError, match="drop --no-detach"):
        check_memory(config, _spec(256), backend, None, sampler, train_tokens=800_000,
                     available=window.total * 2)


def test_available_memory_reads_the_machine():
    available = resources.available_memory()
    assert available is None or available > 0
    if Path("/proc/meminfo").exists():
        assert available is not None and available < 1 << 50


def test_cgroup_headroom_caps_what_is_available(tmp_path, monkeypatch):
    (tmp_path / "memory.max").write_text("1073741824\n")
    (tmp_path / "memory.current").write_text("536870912\n")
    assert resources._cgroup_headroom(str(tmp_path)) == 512 << 20
    (tmp_path / "memory.max").write_text("max\n")
    assert resources._cgroup_headroom(str(tmp_path)) is None


def test_meminfo_parsing(tmp_path):
    info = tmp_path / "meminfo"
    info.write_text("MemTotal:       16000000 kB\nMemFree:  100 kB\nMemAvailable:    8000000 kB\n")
    assert resources._meminfo_available(str(info)) == 8000000 * 1024
    info.write_text("MemTotal: 1 kB\n")
    assert resources._meminfo_available(str(info)) is None


def test_huge_hidden_is_one_line_from_the_api(corpora_dir):
    with pytest.raises(ConfigError, match=r"needs about .*TiB.* of memory but .* is available .*lower --hidden"):
        seqkit.train(corpus="timemachine", hidden=2_000_000, epochs=1, max_tokens=3000)


def test_huge_hidden_is_one_line_from_the_cli(corpora_dir, tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "from seqkit.cli import main; main()", "run", "--hidden", "2000000",
         "--out", str(tmp_path / "run")],
        capture_output=True, text=True, env=_env(), timeout=120)
    assert result.returncode == 1, result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: this configuration needs about"), lines
    assert "TiB" in lines[0] and "Traceback" not in result.stderr


_MEASURE = textwrap.dedent("""
    import json, sys
    import seqkit.api as api

    def kib(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024

    seen = {}
    check = api.check_memory
    def measured(*args, **kwargs):
        seen["estimate"] = check(*args, **kwargs).total
        seen["rss"] = kib("VmRSS:")
        open("/proc/self/clear_refs", "w").write("5")  # peak RSS from here on
        return seen["estimate"]
    api.check_memory = measured
    api.train(**json.loads(sys.argv[1]))
    print(json.dumps({"estimate": seen["estimate"], "used": kib("VmHWM:") - seen["rss"]}))
""")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to measure peak RSS")
@pytest.mark.parametrize("impl", ["fused", "scratch"])
def test_estimate_is_near_the_measured_peak(corpora_dir, impl):
    """One minibatch whose activations dominate: the estimate is within a factor 2 of the peak RSS."""
    options = dict(corpus="timemachine", max_tokens=13000, hidden=384, batch_size=192, num_steps=60,
                   epochs=1, predict_len=1, impl=impl)
    result = subprocess.run([sys.executable, "-c", _MEASURE, json.dumps(options)], capture_output=True,
                            text=True, env=_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    ratio = figures["used"] / figures["estimate"]
    assert 0.5 < ratio < 2.0, figures


class _CudaBackend(NumpyBackend):
    """A backend that says it runs on a CUDA device (the memory check only reads ``device``)."""

    def __init__(self) -> None:
        super().__init__()
        self.device = "cuda:1"


def test_on_cuda_the_device_free_memory_decides(monkeypatch):
    import types

    asked = []

    def mem_get_info(index):
        asked.append(index)
        return 64 << 20, 80 << 30

    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=types.SimpleNamespace(mem_get_info=mem_get_info)))
    backend = _CudaBackend()
    assert resources.device_free_memory(backend) == 64 << 20 and asked == [1]
    with pytest.raises(ConfigError, match=r"but 64 MiB is free on cuda:1: lower --hidden"):
        check_memory(config_of(hidden=4096), _spec(4096), backend)
    check_memory(config_of(hidden=64), _spec(64), backend)


def test_a_driver_that_cannot_answer_means_no_device_check(monkeypatch):
    import types

    def broken(index):
        raise RuntimeError("driver")

    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=types.SimpleNamespace(mem_get_info=broken)))
    assert resources.device_free_memory(_CudaBackend()) is None
    assert resources.device_free_memory(NumpyBackend()) is None
