"""Time and memory of the representation-comparison metrics at n = 20,000 (run: python benchmarks/bench_similarity.py).

End-to-end script (time and memory at full size, in one run), not a pytest-benchmark micro-benchmark: pytest
does not collect it; run it directly, ``python benchmarks/bench_similarity.py [--n N]`` (``--help`` lists its
options). The micro-benchmarks, with saved baselines, are benchmarks/test_micro.py (docs/benchmarks.md).

Random soft memberships (Dirichlet, c = 10) and Gaussian features; prints wall
time, tracemalloc peak and the process's peak RSS after each call. The point
is the absence of any n × n matrix: memory must stay far below n² floats
(3.2 GB at n = 20,000).
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc
from collections.abc import Callable

import numpy as np

from subclassbench.metrics.similarity import (
    concept_pair_alignment,
    generalized_rand_index,
    linear_cka,
    soft_assignments,
)


def run(name: str, fn: Callable[[], object]) -> None:
    tracemalloc.start()
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{name:38s} {seconds:7.2f} s  peak {peak / 2**20:7.1f} MiB  max RSS {rss:6.0f} MiB  -> {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--concepts", type=int, default=10)
    args = parser.parse_args()
    n, c = args.n, args.concepts
    rng = np.random.default_rng(0)
    a = rng.dirichlet(np.full(c, 0.5), size=n)
    b = rng.dirichlet(np.full(c, 0.5), size=n)
    x = rng.normal(size=(n, 512)).astype(np.float32)
    y = (x @ rng.normal(size=(512, 512)) + rng.normal(size=(n, 512))).astype(np.float32)
    f = rng.normal(size=(n, 2048)).astype(np.float32)
    hard_a, hard_b = np.eye(c)[rng.integers(0, c, n)], np.eye(c)[rng.integers(0, c, n)]
    run(f"linear_cka n={n} p=q=512", lambda: round(linear_cka(x, y), 6))
    run("generalized_rand_index one-hot", lambda: round(generalized_rand_index(hard_a, hard_b), 6))
    run(f"concept_pair_alignment soft c={c}", lambda: float(concept_pair_alignment(a, b).matched_distance.sum()))
    run(f"generalized_rand_index soft c={c}", lambda: round(generalized_rand_index(a, b), 6))
    run(f"soft_assignments d=2048 k={c}", lambda: soft_assignments(f, c).shape)


if __name__ == "__main__":
    main()
