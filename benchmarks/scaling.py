"""Scaling curves: training tokens/s of each backend's fused path and of ``nn.RNN`` over batch size,
hidden size and thread count, plotted to PNG.

    python benchmarks/scaling.py [--batch-sizes 32,64,128,256] [--hidden 256,512,1024]
                                 [--threads 1,2] [--out docs/img] [--json PATH] [--no-mxnet]
                                 [--data-dir DIR]

The workload is `bench.py`'s (The Time Machine, one-hot, T=35, tanh, clip 1, SGD lr 1, float32,
sequential minibatches with the state carried), at every (B, H). Each point is short: a warm-up
minibatch, then as many timed minibatches as fit about a quarter of a second of GEMM work (at
least one), median of ``--repeats`` rounds interleaved across the rows. Every thread count runs in
fresh processes (thread variables must be set before a framework is imported): torch and NumPy rows
in one, MXNet rows in another (MXNet's OpenMP runtime slows torch in-process). Writes
``scaling.png`` (tokens/s) and ``scaling_ratio.png`` (each path over ``nn.RNN`` at the same point)
into ``--out``, and the figures as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import T, load_corpus, minibatches, set_threads, train_timer  # no framework imports

HERE = Path(__file__).resolve().parent
BASELINE = "torch nn.RNN + nn.Linear"
PATHS = (BASELINE, "seqkit torch fused", "seqkit numpy fused", "seqkit mxnet fused")
STYLE = {BASELINE: ("black", "--", "o"), "seqkit torch fused": ("tab:red", "-", "s"),
         "seqkit numpy fused": ("tab:blue", "-", "^"), "seqkit mxnet fused": ("tab:green", "-", "D")}
GEMM_BUDGET_FLOPS = 15e9  # timed work per measurement: ~0.25 s at 60 GFLOP/s


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="32,64,128,256")
    parser.add_argument("--hidden", default="256,512,1024")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "img", help="folder for the PNGs")
    parser.add_argument("--json", type=Path, default=None, help="also write the points here")
    parser.add_argument("--no-mxnet", action="store_true")
    parser.add_argument("--data-dir", default=None, help="folder with timemachine.txt (else $SEQKIT_DATA)")
    parser.add_argument("--worker", choices=("torch", "mxnet"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("batch_sizes", "hidden", "threads"):
        setattr(args, name, [int(x) for x in getattr(args, name).split(",") if x.strip()])
    return args


def timed_minibatches(batch_size: int, hidden: int) -> int:
    """How many minibatches make about GEMM_BUDGET_FLOPS of training work (1 to 20)."""
    per_minibatch = 6.0 * hidden * hidden * batch_size * T
    return max(1, min(20, int(GEMM_BUDGET_FLOPS // per_minibatch)))


# -- workers (one process per thread count and framework) ----------------------------------------
def worker(args: argparse.Namespace, threads: int) -> list[dict]:
    """Measure every (B, H) point for this process's framework at ``threads`` threads."""
    set_threads(threads)
    import numpy as np

    from seqkit.network import ModelSpec
    from seqkit.plugins import get_registry

    registry = get_registry()
    ids, vocab = load_corpus(args.data_dir)
    V = len(vocab)
    clipper = registry.create("clipper", "norm", clip_theta=1.0)
    if args.worker == "torch":
        import torch

        torch.set_num_threads(threads)
    points = []
    for hidden in args.hidden:
        spec = ModelSpec(registry.create("cell", "rnn-tanh"), V, hidden)
        init = {k: v.astype(np.float32) for k, v in spec.init_params(np.random.default_rng(0)).items()}
        for batch_size in args.batch_sizes:
            count = timed_minibatches(batch_size, hidden)
            batches = minibatches(ids, batch_size, 1 + count)
            rows = [(name, train_timer(make(), batches, 1, lambda: None))
                    for name, make in makers(args.worker, registry, spec, init, batch_size, clipper)]
            measured: list[tuple[list[float], object]] = [([], once) for _, once in rows]
            for _ in range(args.repeats):  # interleaved: a burst of load elsewhere hits every row alike
                for runs, once in measured:
                    runs.append(once())
            for (name, _), (runs, _) in zip(rows, measured):
                points.append({"threads": threads, "hidden": hidden, "batch_size": batch_size, "path": name,
                               "tokens_per_s": statistics.median(runs), "runs": runs, "timed_minibatches": count})
            print(f"threads {threads} H {hidden} B {batch_size}: "
                  + ", ".join(f"{p['path']} {p['tokens_per_s']:,.0f}" for p in points[-len(rows):]), file=sys.stderr)
    return points


def makers(kind: str, registry, spec, init: dict, batch_size: int, clipper) -> list[tuple[str, object]]:
    """(row name, factory of a per-minibatch step) for this worker's framework."""
    import bench

    def seqkit_row(backend_name: str):
        def make():
            backend = registry.create("backend", backend_name, device="cpu", dtype="float32")
            network = backend.fused_network(spec)
            return bench.seqkit_train(network, {k: backend.asarray(v) for k, v in init.items()}, clipper)
        return make

    if kind == "mxnet":
        return [("seqkit mxnet fused", seqkit_row("mxnet"))]
    import torch

    bench.H = spec.hidden_size  # the reference models read the width from the module
    return [(BASELINE, lambda: bench.nn_rnn_train(torch, init, spec.vocab_size, batch_size, "cpu")),
            ("seqkit torch fused", seqkit_row("torch")),
            ("seqkit numpy fused", seqkit_row("numpy"))]


def run_worker(args: argparse.Namespace, kind: str, threads: int) -> list[dict]:
    """This script as a ``--worker`` subprocess for one framework group and thread count."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "points.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--threads", str(threads),
               "--batch-sizes", ",".join(map(str, args.batch_sizes)), "--hidden", ",".join(map(str, args.hidden)),
               "--repeats", str(args.repeats), "--json", str(out)]
        if args.data_dir:
            cmd += ["--data-dir", str(Path(args.data_dir).resolve())]
        done = subprocess.run(cmd, text=True, stderr=subprocess.PIPE)
        if done.returncode != 0 or not out.exists():
            tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
            print(f"{kind} worker at {threads} threads failed (exit {done.returncode}): {tail[0]}", file=sys.stderr)
            return []
        sys.stderr.write(done.stderr)
        return json.loads(out.read_text())["points"]


# -- plots ------------------------------------------------------------------------------------------
def plot(points: list[dict], out: Path) -> list[Path]:
    """Two PNGs over a (threads × H) grid of panels: tokens/s against B, and the ratio to nn.RNN."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threads = sorted({p["threads"] for p in points})
    hidden = sorted({p["hidden"] for p in points})
    value = {(p["threads"], p["hidden"], p["batch_size"], p["path"]): p["tokens_per_s"] for p in points}
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for ratio in (False, True):
        fig, axes = plt.subplots(len(threads), len(hidden), figsize=(4.2 * len(hidden), 3.4 * len(threads)),
                                 squeeze=False, sharex=True)
        for i, th in enumerate(threads):
            for j, h in enumerate(hidden):
                ax = axes[i][j]
                for path in PATHS:
                    if ratio and path == BASELINE:
                        continue
                    xs = sorted(b for (t_, h_, b, p_) in value if (t_, h_, p_) == (th, h, path))
                    if ratio:
                        xs = [b for b in xs if (th, h, b, BASELINE) in value]
                        ys = [value[(th, h, b, path)] / value[(th, h, b, BASELINE)] for b in xs]
                    else:
                        ys = [value[(th, h, b, path)] for b in xs]
                    if xs:
                        color, line, marker = STYLE[path]
                        ax.plot(xs, ys, line, color=color, marker=marker, label=path)
                if ratio:
                    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
                ax.set_xscale("log", base=2)
                ax.set_xticks(sorted({p["batch_size"] for p in points}))
                ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
                ax.set_title(f"H={h}, {th} thread{'s' if th > 1 else ''}")
                ax.grid(True, alpha=0.3)
                if i == len(threads) - 1:
                    ax.set_xlabel("batch size B")
                if j == 0:
                    ax.set_ylabel("× nn.RNN (tokens/s)" if ratio else "training tokens/s")
        axes[0][0].legend(fontsize=8, loc="best")
        fig.suptitle("seqkit training speed, " + ("relative to nn.RNN + nn.Linear" if ratio else "tokens/s")
                     + f" (The Time Machine one-hot, T={T}, float32)")
        fig.tight_layout()
        path = out / ("scaling_ratio.png" if ratio else "scaling.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        points = worker(args, args.threads[0])
        args.json.write_text(json.dumps({"points": points}) + "\n")
        return 0
    load_corpus(args.data_dir)  # a missing corpus stops here with one line, not in every worker
    with_mxnet = not args.no_mxnet and importlib.util.find_spec("mxnet") is not None
    points: list[dict] = []
    for threads in args.threads:
        points += run_worker(args, "torch", threads)
        if with_mxnet:
            points += run_worker(args, "mxnet", threads)
    if not points:
        return 1
    for path in plot(points, args.out):
        print(f"wrote {path}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {"workload": f"timemachine one-hot, T={T}, tanh, clip 1, SGD lr 1, float32",
                "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE",)}}
        args.json.write_text(json.dumps({"meta": meta, "points": points}, indent=1) + "\n")
    print_points(points)
    return 0


def print_points(points: list[dict]) -> None:
    """The sweep as a table: tokens/s per path and its ratio to nn.RNN at each point."""
    base = {(p["threads"], p["hidden"], p["batch_size"]): p["tokens_per_s"] for p in points if p["path"] == BASELINE}
    print(f"{'threads':>7} {'H':>5} {'B':>4}  " + "  ".join(f"{p:>22}" for p in PATHS))
    for key in sorted(base):
        cells = []
        for path in PATHS:
            v = next((p["tokens_per_s"] for p in points if (p["threads"], p["hidden"], p["batch_size"]) == key
                      and p["path"] == path), None)
            cells.append(f"{v:>12,.0f} ({v / base[key]:4.2f}x)" if v else f"{'-':>22}")
        print(f"{key[0]:>7} {key[1]:>5} {key[2]:>4}  " + "  ".join(cells))


if __name__ == "__main__":
    sys.exit(main())
