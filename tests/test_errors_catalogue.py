"""docs/errors.md, row by row: each command exits as documented with its one-line message, no
traceback and nothing left behind; each Python API call raises the documented `SeqkitError`."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import seqkit
from seqkit import errors
from seqkit.store import CheckpointError

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT / "docs" / "errors.md"
CODE = re.compile(r"`([^`]+)`")
EXCEPTIONS = {"ConfigError": errors.ConfigError, "DataError": errors.DataError, "PluginError": errors.PluginError,
              "UnavailableError": errors.UnavailableError, "CheckpointError": CheckpointError,
              "DivergedError": errors.DivergedError}
LEFT_BY_DESIGN = {"diverged"}  # a diverging run keeps its metrics and summary


def catalogue_rows() -> list[dict]:
    rows = []
    for line in CATALOGUE.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 6 or not cells[0].isdigit():
            continue
        command, message = CODE.findall(cells[2])[0], CODE.findall(cells[3])[0]
        api = CODE.findall(cells[5])
        rows.append({"number": int(cells[0]), "what": cells[1], "command": command, "message": message,
                     "exit": int(cells[4]), "api": api[0] if api else None, "raises": api[1] if api else None})
    return rows


ROWS = catalogue_rows()


def test_the_catalogue_has_at_least_40_rows_numbered_in_order():
    assert len(ROWS) >= 40
    assert [r["number"] for r in ROWS] == list(range(1, len(ROWS) + 1))
    assert all(r["raises"] in EXCEPTIONS for r in ROWS if r["api"])


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    """The files the rows name, and a finished one-epoch run in good/."""
    shared = ROOT.parent / "shared" / "corpora"
    root = tmp_path_factory.mktemp("catalogue")
    previous, data = os.getcwd(), os.environ.get("SEQKIT_DATA")
    os.environ["SEQKIT_DATA"] = str(shared)
    os.chdir(root)
    try:
        seqkit.train(corpus="timemachine", max_tokens=3000, hidden=16, batch_size=4, num_steps=10, epochs=1,
                     out="good", progress=False)
    finally:
        os.chdir(previous)
        if data is None:
            os.environ.pop("SEQKIT_DATA")
        else:
            os.environ["SEQKIT_DATA"] = data
    (root / "words.txt").write_text("the cat sat on the mat and the dog sat on the log. " * 40)
    (root / "empty.txt").write_text("")
    (root / "spaces.txt").write_text("   \n\n  \t \n")
    (root / "binary.bin").write_bytes(bytes(range(256)) * 8)
    (root / "latin1.txt").write_bytes("café au lait, naïve façade. ".encode("latin-1") * 40)
    (root / "bad.toml").write_text("hidden = \n")
    (root / "typo.toml").write_text("hiden = 4\n")
    (root / "not-a-run").mkdir()
    for name in ("ckpt-truncated", "ckpt-tampered", "ckpt-badjson", "ckpt-newer"):
        shutil.copytree(root / "good" / "checkpoint", root / name)
    model = root / "ckpt-truncated" / "model.safetensors"
    model.write_bytes(model.read_bytes()[:200])
    tampered = root / "ckpt-tampered" / "model.safetensors"
    data_bytes = bytearray(tampered.read_bytes())
    data_bytes[-5] ^= 0xFF
    tampered.write_bytes(bytes(data_bytes))
    (root / "ckpt-badjson" / "state.json").write_text("{ this is not json")
    state = json.loads((root / "ckpt-newer" / "state.json").read_text())
    state["format_version"] = 99
    (root / "ckpt-newer" / "state.json").write_text(json.dumps(state))
    return root


def listing(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1) for p in root.rglob("*")}


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r['number']:02d}")
def test_cli_row(row, workdir, tmp_path):
    before = listing(workdir)
    args = shlex.split(row["command"])
    assert args[0] == "seqkit"
    env = {**os.environ, "SEQKIT_DATA": str(ROOT.parent / "shared" / "corpora"), "SEQKIT_CACHE": str(tmp_path),
           "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-m", "seqkit", *args[1:]], cwd=workdir, env=env,
                            capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == row["exit"], output
    assert "Traceback" not in output, output
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(error_lines) == 1, output
    assert row["message"] in error_lines[0], output
    after = listing(workdir)
    new = sorted(set(after) - set(before))
    left = {name.split(os.sep)[0] for name in new}
    assert left <= LEFT_BY_DESIGN, new
    for folder in left:
        assert (workdir / folder / "metrics.jsonl").stat().st_size > 0
        assert json.loads((workdir / folder / "summary.json").read_text())["status"] == "diverged"
        shutil.rmtree(workdir / folder)
    changed = [name for name in before if after.get(name) != before[name]]
    assert not changed, changed


@pytest.mark.parametrize("row", [r for r in ROWS if r["api"]], ids=lambda r: f"{r['number']:02d}")
def test_api_row(row, workdir, monkeypatch, corpora_dir):
    monkeypatch.chdir(workdir)
    before = listing(workdir)
    with pytest.raises(EXCEPTIONS[row["raises"]]) as caught:
        eval(row["api"], {"seqkit": seqkit})  # the documented call, verbatim
    assert isinstance(caught.value, seqkit.SeqkitError)
    assert "\n" not in str(caught.value)
    assert listing(workdir) == before
