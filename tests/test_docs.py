"""The Python examples in the docs run: every ```python block of README.md and docs/*.md, in order,
one namespace per file (blocks marked ``python no-run`` are fragments and are skipped)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.S | re.M)


def python_blocks(path: Path) -> list[str]:
    return [code for info, code in BLOCK.findall(path.read_text(encoding="utf-8")) if "no-run" not in info]


def test_the_docs_have_examples_that_run():
    assert python_blocks(ROOT / "docs" / "plugins.md"), "the plugin guide lost its runnable example"


@pytest.mark.parametrize("path", [p for p in DOCS if python_blocks(p)], ids=lambda p: p.name)
def test_doc_examples_run(path, corpora_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"doc_{path.stem}"}
    for number, code in enumerate(python_blocks(path), start=1):
        try:
            exec(compile(code, f"{path.name} block {number}", "exec"), namespace)
        except Exception as exc:  # report which block broke
            pytest.fail(f"{path.name} python block {number} failed: {type(exc).__name__}: {exc}")
