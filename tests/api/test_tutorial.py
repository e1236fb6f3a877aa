"""docs/python-api.md stays true: its Python blocks run, in order, in one namespace, on the tiny
MNIST, in under a minute."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

pytest.importorskip("pandas")

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "python-api.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_tutorial_runs_end_to_end(tmp_path, dataset_root, monkeypatch, capsys):
    monkeypatch.setenv("OPEN_PRUNE_ROOT", str(tmp_path / "runs"))
    monkeypatch.setenv("OPEN_PRUNE_DATASETS", str(dataset_root))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the CPU, as on the test machine
    blocks = python_blocks(TUTORIAL.read_text())
    assert len(blocks) >= 5
    namespace: dict = {}
    started = time.perf_counter()
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"{TUTORIAL.name} block {number}", "exec"), namespace)
    seconds = time.perf_counter() - started
    assert seconds < 60, f"the tutorial took {seconds:.1f} s"
    print(f"tutorial: {seconds:.1f} s")
    assert len(namespace["frame"]) == 14  # 2 replicates x (trunk + 2 x 3 levels); level 0 of each branch is listed
