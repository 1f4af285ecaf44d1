"""The README's worked examples run as written: each ``<!-- readme-test: NAME -->`` block is executed line by
line with bash in a fresh folder, the installed ``subclassbench`` and ``python`` first on PATH.

The only substitutions: the CIFAR paths under ``../shared`` point at a generated CIFAR-format folder (random
images, the real file layout and split sizes) and a randomly initialised ResNet-20 checkpoint, and CIFAR
commands get ``--limit 300`` so the suite stays fast. Everything else is the README's text.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from .conftest import REPO

BLOCK = re.compile(r"<!-- readme-test: (?P<name>[\w-]+) -->\s*```bash\n(?P<body>.*?)```", re.S)
EXPECTED_BLOCKS = {"digits", "cifar", "shards", "python"}


def readme_blocks() -> dict[str, str]:
    return {m["name"]: m["body"] for m in BLOCK.finditer((REPO / "README.md").read_text())}


@pytest.fixture(scope="module")
def fake_shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``../shared`` as the README expects it: data/cifar10_{train,test}.npz and weights/resnet20-*.th."""
    from subclassbench.encoders.architectures import ARCHITECTURES

    root = tmp_path_factory.mktemp("shared")
    (root / "data").mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 2000), ("test", 10_000)):  # the test split's size is fixed by the task
        labels = np.arange(n) % 10
        images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        images[..., 0] = (labels * 25)[:, None, None]  # a class signal, so clusters mean something
        np.savez(root / "data" / f"cifar10_{split}.npz", images=images, labels=labels)
    (root / "weights").mkdir()
    torch.manual_seed(0)
    model = ARCHITECTURES["cifar_resnet20"].build(num_classes=10)
    torch.save({"state_dict": model.state_dict()}, root / "weights" / "resnet20-12fca82f.th")
    return root


def run_block(name: str, shared: Path, work: Path) -> subprocess.CompletedProcess[str]:
    lines = []
    for line in readme_blocks()[name].splitlines():
        line = line.replace("../shared/", f"{shared}/")
        if "--task cifar10" in line:
            code, hash_mark, comment = line.partition(" #")  # before a trailing comment, or it would be one
            line = f"{code} --limit 300{hash_mark}{comment}"
        lines.append(line)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    work.mkdir()
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "\n".join(lines)],
        cwd=work, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_the_readme_has_its_worked_examples():
    assert set(readme_blocks()) == EXPECTED_BLOCKS


@pytest.fixture(scope="module")
def ran(fake_shared: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Any]]:
    """Every block, run side by side (independent folders; the feature cache is safe across processes):
    most of each block's time is its processes starting, which overlaps well."""
    from concurrent.futures import ThreadPoolExecutor

    works = {name: tmp_path_factory.mktemp(f"readme-{name}") / "work" for name in sorted(EXPECTED_BLOCKS)}
    with ThreadPoolExecutor(max_workers=len(works)) as pool:
        futures = {name: pool.submit(run_block, name, fake_shared, work) for name, work in works.items()}
        return {name: (works[name], future.result()) for name, future in futures.items()}


@pytest.mark.parametrize("name", sorted(EXPECTED_BLOCKS))
def test_readme_example_runs_as_written(name: str, ran: dict[str, tuple[Path, Any]]):
    work, done = ran[name]
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    if name == "digits":
        written = {p.name for p in work.iterdir()}
        assert {"digits.json", "digits.csv", "digits.png", "digits.svg", "digits.pdf"} <= written
        assert "ami_low" in done.stdout
    elif name == "cifar":
        doc = json.loads((work / "r20.json").read_text())
        # What makes a CIFAR result rankable is all there: a committed layer and the transfer metrics.
        assert doc["summary"]["committed_layer"] and doc["metrics"] == ["clusterability", "transfer"]
        assert "r20.json" in done.stdout
    elif name == "shards":
        assert json.loads((work / "sharded.json").read_text())["run"]["feature_cache"]["hits"] > 0
    else:
        doc = json.loads((work / "tiny-cnn.json").read_text())
        assert doc["encoder"]["spec"] == "module:tiny-cnn" and len(doc["layers"]) >= 3


SLOW = re.compile(r"--task (cifar10|breeds-)|reproduce |verify submissions/cifar|train --task cifar")


def test_readme_commands_that_take_minutes_say_so():
    """A newcomer should know before running it that a command takes minutes or hours, not seconds."""
    text = (REPO / "README.md").read_text()
    commands = [block.split("```")[0] for block in text.split("```bash\n")[1:]]
    lines = [line for block in commands for line in block.replace("\\\n", " ").splitlines()]
    slow = [line for line in lines if SLOW.search(line) and line.startswith("subclassbench ")]
    assert len(slow) >= 5
    unsaid = [line for line in slow if not re.search(r"minute|hour|--limit", line)]
    assert unsaid == [], unsaid
