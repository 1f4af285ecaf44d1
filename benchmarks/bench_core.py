"""Side-by-side ratios for the core pipeline (run: python benchmarks/bench_core.py).

End-to-end ratio script (ratios measured side by side in one run), not a pytest-benchmark micro-benchmark:
pytest does not collect it; run it directly, ``python benchmarks/bench_core.py`` (``--help`` lists its
options). The micro-benchmarks, with saved baselines, are benchmarks/test_micro.py (docs/benchmarks.md).

1. Feature extraction overhead: ``extract_features`` (hooks on every layer,
   on-the-fly pooling, preprocessing, copies to numpy) vs a bare forward pass
   over the same preprocessed images. Target: ratio ≤ 1.25.
2. k-means: faiss vs scikit-learn at equal settings (n_init 10, 100
   iterations, all points), against scikit-learn's identical algorithm (Lloyd,
   random init) and its default (k-means++ init). Target: ≥ 3× faster, AMI
   within 0.01.

Timings alternate the two contenders and report medians, so load from other
processes on this shared machine hits both alike. Prints ratios, not
absolute times, as the headline numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from subclassbench.encoders.base import load_encoder
from subclassbench.features.extraction import extract_features
from subclassbench.metrics.clustering import kmeans_faiss, kmeans_sklearn, l2_normalize
from subclassbench.metrics.partition import cluster_scores
from subclassbench.tasks.datasources import ArrayImageSet

SHARED_TEST = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "cifar10_test.npz"


def images(n: int) -> tuple[ArrayImageSet, str]:
    """Real CIFAR-10 test images when ../shared is present, else seeded noise images."""
    if SHARED_TEST.exists():
        with np.load(SHARED_TEST) as data:
            pick = np.random.RandomState(0).choice(len(data["labels"]), n, replace=False)
            array, labels = data["images"][pick], data["labels"][pick]
        source = "cifar10_test.npz"
    else:
        array = np.random.RandomState(0).randint(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        labels, source = np.zeros(n, dtype=np.int64), "random uint8 images"
    return ArrayImageSet(array, labels, [str(i) for i in range(n)], scale=1 / 255), source


def alternate(a: Callable[[], object], b: Callable[[], object], repeats: int) -> tuple[float, float]:
    ta, tb = [], []
    for _ in range(repeats):
        for fn, bucket in ((a, ta), (b, tb)):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return statistics.median(ta), statistics.median(tb)


def bench_extraction(model: str, n: int, batch_size: int, repeats: int) -> None:
    data, source = images(n)
    encoder = load_encoder(model, sample_shape=data.sample_shape)
    encoder.model.eval()
    batches = [np.arange(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    preprocessed = [encoder.preprocessing(data.load(b)) for b in batches]

    def bare() -> None:
        with torch.inference_mode():
            for x in preprocessed:
                encoder.embed(x)

    def full() -> None:
        extract_features(encoder, data, batch_size=batch_size, progress=False)

    full()  # warm-up (allocator, first-call overheads)
    t_full, t_bare = alternate(full, bare, repeats)
    print(
        f"extraction  {model}: {len(encoder.layer_names)} layers, {n} images ({source}), batch {batch_size}, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"  bare forward {t_bare:.3f} s | extract_features {t_full:.3f} s | ratio {t_full / t_bare:.3f} (target ≤ 1.25)"
    )


def bench_kmeans(n: int, dim: int, k: int, repeats: int, label: str) -> None:
    """faiss (the protocol's k-means) vs scikit-learn, on one superclass-sized problem.

    Two scikit-learn references: the identical algorithm (Lloyd, random init,
    n_init 10, max_iter 100; scikit-learn may stop early on convergence while
    faiss always runs every iteration), and scikit-learn's default KMeans
    (k-means++ init) with the same n_init and max_iter.
    """
    rng = np.random.RandomState(0)
    centres = rng.randn(k, dim) * 0.2
    truth = rng.randint(0, k, n)
    x = l2_normalize(centres[truth] + rng.randn(n, dim) * 3 / np.sqrt(dim))
    settings = {"n_init": 10, "max_iter": 100, "seed": 0}
    labels: dict[str, np.ndarray] = {}

    def run_faiss() -> None:
        labels["faiss"] = kmeans_faiss(x, k, **settings)

    def run_same() -> None:
        labels["same"] = kmeans_sklearn(x, k, **settings)

    def run_default() -> None:
        from sklearn.cluster import KMeans

        labels["default"] = KMeans(n_clusters=k, n_init=10, max_iter=100, random_state=0).fit_predict(x)

    t_faiss, t_same = alternate(run_faiss, run_same, repeats)
    _, t_default = alternate(run_faiss, run_default, repeats)
    ami = {name: cluster_scores(truth, pred)["ami"] for name, pred in labels.items()}
    print(f"k-means     {label}: {n}×{dim}, k={k}")
    print(
        f"  faiss {t_faiss:.4f} s | sklearn same algorithm {t_same:.4f} s → speed-up {t_same / t_faiss:.2f}× | "
        f"sklearn default (k-means++) {t_default:.4f} s → speed-up {t_default / t_faiss:.2f}× (target ≥ 3)"
    )
    print(
        f"  AMI faiss {ami['faiss']:.4f}, same {ami['same']:.4f}, default {ami['default']:.4f}; "
        f"max |Δ| {max(abs(ami['faiss'] - ami['same']), abs(ami['faiss'] - ami['default'])):.4f} (target ≤ 0.01)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:cifar_resnet56")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch/faiss threads (0: leave default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        import faiss

        faiss.omp_set_num_threads(args.threads)
    print(f"cpu count {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}")
    bench_extraction(args.model, args.images, args.batch_size, args.repeats)
    # Superclass-sized problems that protocol v1 meets.
    bench_kmeans(2000, 64, 2, args.repeats, "CIFAR-10 superclass, ResNet width")
    bench_kmeans(200, 768, 4, args.repeats, "BREEDS living17 superclass, ViT-B width")
    bench_kmeans(1000, 2048, 20, args.repeats, "BREEDS entity13 superclass, ResNet-50 width")


if __name__ == "__main__":
    main()
