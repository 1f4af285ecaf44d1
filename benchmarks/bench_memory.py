"""Peak memory of an evaluation against its total feature bytes (issue 16, target: ≤ 25%).

End-to-end ratio script (peak memory / feature bytes, two runs side by side), not a pytest-benchmark
micro-benchmark: pytest does not collect it; run it directly,
``python benchmarks/bench_memory.py [--images N]`` (``--help`` lists its options). The micro-benchmarks, with
saved baselines, are benchmarks/test_micro.py (docs/benchmarks.md).

The stand-in: a generated 100,000-image task (90,000 train, 10,000 test; five superclasses of two
subclasses) and an 18-layer encoder whose layers have ResNet-50's widths (64 … 2048; 17,216 floats
per image, ~6.9 GB of features in all). Each layer is a fixed random projection of the 8×8 image,
so the forward pass is cheap and the features carry the classes.

Two runs, each in its own process, measured side by side:

* **streamed** (the default ``evaluate``): features go to a feature cache batch by batch and scoring
  reads one layer, or a block of rows, at a time;
* **in memory** (``--no-cache``): every layer of every split held at once.

Both run the real extraction and scoring code (clusterability with Ward and reconstruction, the
transfer probes); k-means runs 1 initialisation of 3 iterations and probes 1 epoch instead of the
protocol's 10 × 100 and 30 (iterations reuse the same buffers, so memory is the protocol's).
Peak memory is the process's peak resident set (``ru_maxrss``), also shown above its resident set
before extraction began (imports, data, model).

    python benchmarks/bench_memory.py                  # the issue's stand-in (~7 GB of disk for the cache)
    python benchmarks/bench_memory.py --images 20000   # smaller
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import yaml

WIDTHS = [64, 256, 256, 256, 512, 512, 512, 512, 1024, 1024, 1024, 1024, 1024, 1024, 2048, 2048, 2048, 2048]
SUPERCLASSES = 5


def write_task(folder: Path, n_images: int) -> Path:
    """The stand-in task and its data (``standin_train.npz``, ``standin_test.npz``): 8×8 images whose
    ten classes differ in their mean pattern."""
    rng = np.random.RandomState(0)
    patterns = rng.rand(2 * SUPERCLASSES, 8, 8)
    n_test = n_images // 10
    for split, n in (("train", n_images - n_test), ("test", n_test)):
        labels = np.arange(n) % (2 * SUPERCLASSES)
        images = np.clip(patterns[labels] * 0.6 + rng.rand(n, 8, 8) * 0.4, 0, 1)
        pixels = (images[..., None] * 255).astype(np.uint8)  # N×H×W×1
        np.savez(folder / f"standin_{split}.npz", images=pixels, labels=labels)
    names = [f"c{i}" for i in range(2 * SUPERCLASSES)]
    task = {
        "name": "memory-standin",
        "version": 1,
        "description": "Generated stand-in for the memory benchmark.",
        "citation": "benchmarks/bench_memory.py",
        "data": {"source": "image_classification", "image_shape": [1, 8, 8], "class_names": names},
        "hierarchy": {
            "superclasses": [
                {"id": s, "name": f"s{s}", "subclasses": [{"id": 2 * s + j, "name": names[2 * s + j]} for j in (0, 1)]}
                for s in range(SUPERCLASSES)
            ]
        },
        "evaluation_split": "test",
        "splits": {split: {"source_split": split, "select": "all"} for split in ("test", "train")},
        "transfer": {
            "id_train_split": "train", "id_test_split": "test", "ood_split": "test",
            "source": [2 * s for s in range(SUPERCLASSES)], "target": [2 * s + 1 for s in range(SUPERCLASSES)],
        },
    }  # fmt: skip
    path = folder / "memory-standin.yaml"
    path.write_text(yaml.safe_dump(task, sort_keys=False))
    return path


def standin_encoder() -> object:  # an Encoder; torch is imported in the child only
    import torch
    from torch import nn

    from subclassbench.encoders.base import Encoder
    from subclassbench.encoders.preprocessing import Preprocessing

    torch.manual_seed(0)
    blocks = nn.ModuleList([nn.Linear(64, width) for width in WIDTHS])

    class StandIn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = blocks

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            flat = x.flatten(1)
            out = None
            for block in self.blocks:
                out = torch.relu(block(flat))
            return out

    model = StandIn()
    modules = {f"blocks.{i}": block for i, block in enumerate(blocks[:-1])}  # the last is the embedding
    return Encoder(
        "builtin:memory_standin", "builtin", "memory_standin", None, model, model, modules, Preprocessing(None)
    )


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(task_path: Path, data: Path, cache_dir: Path | None) -> None:
    """One evaluation's extraction and scoring; prints a JSON line with its memory and times."""
    from subclassbench.evaluation.pipeline import score
    from subclassbench.evaluation.request import Prepared
    from subclassbench.features.cache import FeatureCache
    from subclassbench.features.extraction import ExtractionContext, extract_cached
    from subclassbench.scoring import clusterability, probes, transfer
    from subclassbench.tasks.task import load_task

    # Fewer iterations than the protocol; each iteration reuses the buffers of the first.
    clusterability.PARAMS = {**clusterability.PARAMS, "n_init": 1, "max_iter": 3}
    clusterability.ProbeRecipe = partial(probes.ProbeRecipe, epochs=1)  # type: ignore[misc]
    transfer.ProbeRecipe = partial(probes.ProbeRecipe, epochs=1)  # type: ignore[misc]
    task = load_task(str(task_path))
    splits = {name: task.load_split(name, str(data)) for name in ("test", "train")}
    encoder = standin_encoder()
    layers = encoder.select_layers(None)
    baseline = rss_mb()
    started = time.perf_counter()
    cache = None if cache_dir is None else FeatureCache(cache_dir)
    features = {
        name: extract_cached(ExtractionContext.create(encoder, split, layers, batch_size=256), cache)
        for name, split in splits.items()
    }
    extracted = time.perf_counter()
    after_extraction = rss_mb()
    prepared = Prepared(task, ["clusterability", "transfer"], [], splits, {}, encoder, layers, started, started)
    per_layer, _summary, _samples = score(prepared, features, progress=False)
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "baseline_mb": baseline,
                "after_extraction_mb": after_extraction,
                "peak_mb": rss_mb(),
                "extract_s": extracted - started,
                "score_s": done - extracted,
                "amis": [round(layer["clusterability"]["ami"], 4) for layer in per_layer],
            }
        )
    )


def measure(task_path: Path, data: Path, cache_dir: Path | None) -> dict:
    args = [sys.executable, __file__, "--child", str(task_path), str(data), str(cache_dir or "")]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"error: the measured run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        task_path, data, cache_dir = args.child
        child(Path(task_path), Path(data), Path(cache_dir) if cache_dir else None)
        return
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as scratch:
        folder = Path(scratch)
        task_path = write_task(folder, args.images)
        total = args.images * sum(WIDTHS) * 4 / 2**20
        print(f"stand-in: {args.images:,} images, {len(WIDTHS)} layers, {sum(WIDTHS):,} floats per image")
        print(f"total feature bytes: {total:,.0f} MiB")
        streamed = measure(task_path, folder, folder / "cache")
        held = measure(task_path, folder, None)
        assert streamed["amis"] == held["amis"], "streamed and in-memory features scored differently"
        print(f"{'':12} {'peak MiB':>9} {'peak/total':>11} {'(peak-base)/total':>18} {'extract s':>10} {'score s':>8}")
        for name, run in (("streamed", streamed), ("in memory", held)):
            grown = run["peak_mb"] - run["baseline_mb"]
            print(
                f"{name:12} {run['peak_mb']:9.0f} {run['peak_mb'] / total:11.3f} {grown / total:18.3f} "
                f"{run['extract_s']:10.1f} {run['score_s']:8.1f}"
            )
        print(f"streamed / in memory peak: {streamed['peak_mb'] / held['peak_mb']:.3f}   (target: peak/total ≤ 0.25)")
        print(f"baseline before extraction: {streamed['baseline_mb']:.0f} MiB (imports, data, model); scores equal")


if __name__ == "__main__":
    main()
