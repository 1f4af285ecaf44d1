"""Side-by-side ratios for the extract/score split and the Ray executor (run: python benchmarks/bench_scale.py).

End-to-end ratio script (ratios measured side by side in one run), not a pytest-benchmark micro-benchmark:
pytest does not collect it; run it directly, ``python benchmarks/bench_scale.py`` (``--help`` lists its
options). The micro-benchmarks, with saved baselines, are benchmarks/test_micro.py (docs/benchmarks.md).

1. Re-scoring from the feature cache vs a full evaluate (extraction + scoring)
   of the same encoder and task. Target: ≤ 5 % of the time.
2. A 2-model × 2-task matrix on the Ray executor with 2 workers vs 1 worker
   (fresh caches, so every cell extracts). Reports the speed-up on this
   machine's cores.

Both use generated 32×32 image tasks (seeded noise images, 10 classes in 5
superclasses), so the benchmark needs no data; the encoders are randomly
initialised CIFAR ResNets (weights do not change the cost). Timings alternate
the contenders and report medians.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from subclassbench.evaluation.matrix import load_matrix, run_matrix
from subclassbench.evaluation.pipeline import evaluate, extract
from subclassbench.evaluation.request import EvaluationRequest


def make_task(folder: Path, name: str, n: int, seed: int) -> tuple[Path, Path]:
    """A task file plus an npz of ``n`` noise images; returns (task file, data file)."""
    rng = np.random.RandomState(seed)
    labels = np.arange(n) % 10
    images = rng.randint(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    images[..., 0] = np.clip(images[..., 0].astype(int) // 2 + labels[:, None, None] * 12, 0, 255)
    data = folder / f"{name}_test.npz"
    np.savez(data, images=images, labels=labels)
    task = {
        "name": name,
        "version": 1,
        "description": "Generated noise images for benchmarking.",
        "citation": "benchmarks/bench_scale.py",
        "data": {
            "source": "image_classification",
            "image_shape": [3, 32, 32],
            "class_names": [str(i) for i in range(10)],
        },
        "hierarchy": {
            "superclasses": [{"id": s, "name": f"s{s}", "subclasses": [{"id": s}, {"id": s + 5}]} for s in range(5)]
        },
        "evaluation_split": "test",
        "splits": {"test": {"source_split": "test", "select": "all", "expected_count": n}},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(task, sort_keys=False))
    return path, data


def bench_rescore(folder: Path, model: str, n: int, repeats: int) -> None:
    task, data = make_task(folder, "bench-rescore", n, 0)
    cache = folder / f"cache-rescore-{model.replace(':', '_')}"

    def request(mode: str) -> EvaluationRequest:
        return EvaluationRequest(
            model=model,
            task=str(task),
            data=str(data),
            metrics=["clusterability"],
            progress=False,
            cache=mode,
            cache_dir=str(cache),
            pretrained=False,  # random init: the cost is the architecture's, and nothing is downloaded
        )

    extract(request("use"))
    full, rescore = [], []
    for _ in range(repeats):
        for mode, bucket in (("off", full), ("only", rescore)):
            start = time.perf_counter()
            evaluate(request(mode))
            bucket.append(time.perf_counter() - start)
    f, r = statistics.median(full), statistics.median(rescore)
    print(
        f"re-score from cache vs full evaluate ({model}, {n} images, clusterability): "
        f"{r:.2f} s vs {f:.2f} s  ratio {r / f:.3f} (target ≤ 0.05)"
    )


def bench_ray(folder: Path, n: int, repeats: int) -> None:
    tasks = []
    for i in range(2):
        task, data = make_task(folder, f"bench-ray-{i}", n, i + 1)
        tasks.append({"task": str(task), "data": str(data), "metrics": ["clusterability"]})
    (folder / "models.yaml").write_text(
        yaml.safe_dump([{"model": "builtin:cifar_resnet20"}, {"model": "builtin:cifar_resnet32"}])
    )
    (folder / "tasks.yaml").write_text(yaml.safe_dump(tasks))
    cells = load_matrix(folder / "models.yaml", folder / "tasks.yaml")
    times: dict[int, list[float]] = {1: [], 2: []}
    for r in range(repeats):
        for workers in (1, 2):
            out, cache = folder / f"out-{workers}-{r}", folder / f"cache-{workers}-{r}"
            start = time.perf_counter()
            report = run_matrix(cells, out, "ray", n_shards=2, cache_dir=str(cache), num_cpus=workers)
            times[workers].append(time.perf_counter() - start)
            assert not report.failed, report.to_dict()
            shutil.rmtree(cache)
    one, two = statistics.median(times[1]), statistics.median(times[2])
    print(
        f"ray matrix 2×2 (2 shards per cell, {n} images per task): 1 worker {one:.1f} s, 2 workers {two:.1f} s, "
        f"speed-up {one / two:.2f}× on this machine"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", action="append", help="repeatable (default: a CIFAR ResNet-56 and a ViT-Tiny)")
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for model in args.model or ["builtin:cifar_resnet56", "timm:vit_tiny_patch16_224"]:
            bench_rescore(folder, model, args.images, args.repeats)
        if not args.skip_ray:
            bench_ray(folder, args.images, max(1, args.repeats - 1))


if __name__ == "__main__":
    main()
