"""Fixtures and helpers shared by test files in every folder (a folder's own ones are in its conftest.py).
Core tests need neither the network nor ../shared."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

# One math thread per test process, set before numpy and torch are imported (and inherited by every subprocess a
# test starts). pytest-xdist runs up to 4 processes on the 2-core project machines; torch's and OpenBLAS's worker
# threads spin-wait for cores that the other processes hold, and a ResNet-20 training step on 8x8 digits took
# 0.3 s of CPU with one thread and 6-24 s with two on a loaded machine (docs/testing.md, "Threads").
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402  (after the thread settings above, which numpy reads when it is imported)

# Fail fast instead of waiting on the hub (it would hang ~30 s offline).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# A fresh feature cache per test session: never the user's, never stale between sessions.
os.environ["SUBCLASSBENCH_CACHE"] = tempfile.mkdtemp(prefix="subclassbench-test-cache-")
atexit.register(shutil.rmtree, os.environ["SUBCLASSBENCH_CACHE"], ignore_errors=True)  # never left behind

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
CLASS_NAMES = ["cat", "dog", "car", "truck"]


def load_script(name: str) -> Any:
    """A script of scripts/ imported as a module (scripts are not a package), for its tests."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered under its name while it runs, as an import would: dataclasses resolve their annotations there.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def tiny_task_raw() -> dict:
    """An image_classification task over 4 classes in 2 superclasses (animals, vehicles)."""
    return {
        "name": "tiny-images",
        "version": 1,
        "description": "Four generated classes in two superclasses.",
        "citation": "Generated in the test suite.",
        "data": {"source": "image_classification", "image_shape": [3, 16, 16], "class_names": CLASS_NAMES},
        "hierarchy": {
            "superclasses": [
                {"id": 0, "name": "animal", "subclasses": [{"id": 0, "name": "cat"}, {"id": 1, "name": "dog"}]},
                {"id": 1, "name": "vehicle", "subclasses": [{"id": 2, "name": "car"}, {"id": 3, "name": "truck"}]},
            ]
        },
        "evaluation_split": "test",
        "splits": {"test": {"source_split": "test", "select": "all", "expected_count": 40}},
    }


def add_transfer(raw: dict, expected_count: int | None = None) -> dict:
    """A train split and a transfer block (cat, car → dog, truck) for the tiny task."""
    raw["splits"]["train"] = {"source_split": "train", "select": "all"}
    if expected_count:
        raw["splits"]["train"]["expected_count"] = expected_count
    raw["transfer"] = {"id_train_split": "train", "id_test_split": "test", "ood_split": "test", "source": [0, 2],
                       "target": [1, 3]}  # fmt: skip
    return raw


@pytest.fixture
def tiny_image_task(tmp_path: Path) -> Path:
    raw = tiny_task_raw()
    path = tmp_path / "tiny-images.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def make_images(n_per_class: int = 10, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class-dependent colour blobs, so the classes really differ."""
    rng = np.random.RandomState(seed)
    images, labels = [], []
    for label in range(len(CLASS_NAMES)):
        base = np.zeros((size, size, 3))
        base[..., label % 3] = 0.3 + 0.2 * label
        for _ in range(n_per_class):
            img = base + rng.rand(size, size, 3) * 0.3
            images.append((np.clip(img, 0, 1) * 255).astype(np.uint8))
            labels.append(label)
    return np.stack(images), np.asarray(labels, dtype=np.int64)


@pytest.fixture
def tiny_npz(tmp_path: Path) -> Path:
    images, labels = make_images()
    path = tmp_path / "tiny_test.npz"
    np.savez(path, images=images, labels=labels)
    return path


@pytest.fixture
def tiny_image_folder(tmp_path: Path) -> Path:
    from PIL import Image

    images, labels = make_images()
    root = tmp_path / "folder"
    for i, (img, label) in enumerate(zip(images, labels, strict=False)):
        target = root / "test" / CLASS_NAMES[label]
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(target / f"{i:04d}.png")
    return root


def digits_mlp_weights(path: Path, seed: int | None = None) -> Path:
    """A digits_mlp weights file: its default initialisation, or (``seed``) other weights per seed, as
    another training run would give."""
    import torch
    from safetensors.torch import save_file

    from subclassbench.encoders.base import load_encoder

    model = load_encoder("builtin:digits_mlp", num_classes=5).model
    if seed is not None:  # drawn from the seed itself: load_encoder reseeds torch's global generator
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def add_train_split_and_transfer(task_file, expected_count: int | None = None) -> dict:
    """Give the tiny image task a train split and a transfer block (cat, car → dog, truck)."""
    raw = add_transfer(yaml.safe_load(task_file.read_text()), expected_count)
    task_file.write_text(yaml.safe_dump(raw))
    return raw


@pytest.fixture(scope="module")
def digits():
    from subclassbench.tasks.task import load_task

    return load_task("digits-5")


@pytest.fixture(scope="module")
def digits_train():
    from subclassbench.tasks.task import load_task

    return load_task("digits-5").load_split("train")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, digits) -> list[Path]:
    """Two digits_mlp runs (seeds 0 and 1, two epochs) with their test and train correctness logs."""
    from subclassbench.training.trainer import Recipe, train

    root = tmp_path_factory.mktemp("v2runs")
    out = []
    for seed in (0, 1):
        run = root / f"mlp-s{seed}"
        train(digits, "digits_mlp", "superclass", run, Recipe(epochs=2, batch_size=128, seed=seed), progress=False)
        out.append(run)
    return out


def without_run(result) -> dict:
    """A result (a Result or its document) minus its run metadata (time, durations, memory) and the name of its
    per-sample file (which follows the result's own; its sha256 stays compared)."""
    doc = getattr(result, "doc", result)
    out = {k: v for k, v in doc.items() if k != "run"}
    if "samples" in out:
        out["samples"] = {k: v for k, v in out["samples"].items() if k != "file"}
    return out


requires_shared = pytest.mark.skipif(not (SHARED / "data").is_dir(), reason="optional: ../shared not present")


# The files that take minutes start first. pytest-xdist hands out whole files (--dist loadfile) in collection
# order, so these, collected last alphabetically, used to start when the other workers were nearly done and
# kept one or two of them busy alone for minutes at the end. A stable sort: every other file keeps its order.
SLOW_FIRST = (
    "tests/reproductions/test_claims.py",
    "tests/training/test_trainer.py",
    "tests/reproductions/test_harness.py",
    "tests/test_readme.py",
    "tests/leaderboard/test_site.py",
    "tests/test_ray.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
