"""The bootstrap's calibration and its two designs, measured (run: python benchmarks/bench_bootstrap.py).

End-to-end ratio script (coverage rates and cost ratios, measured in one run), not a pytest-benchmark
micro-benchmark: pytest does not collect it; run it directly, ``python benchmarks/bench_bootstrap.py``
(``--help`` lists its options). The micro-benchmarks, with saved baselines, are benchmarks/test_micro.py
(docs/benchmarks.md).

1. Coverage: on synthetic hierarchies with known population values
   (``subclassbench.uncertainty.calibration``), how often the nominal 95% interval holds
   the population value, over many seeded draws. Target: 92–98%.
2. Refit vs reuse, on real features of one layer: the committed-AMI interval
   when k-means is refit on every resample, against re-scoring the stored
   assignments (the protocol's choice), with the cost of each side by side.

Both print ratios and rates; times are this machine's and only compared
within one run.

    python benchmarks/bench_bootstrap.py --draws 1000 --resamples 1000
    python benchmarks/bench_bootstrap.py --skip-refit --compare-centring --draws 300 --resamples 300
    python benchmarks/bench_bootstrap.py --skip-coverage --model builtin:cifar_resnet20 \\
        --weights ../shared/weights/resnet20-12fca82f.th --task cifar10-5 --data ../shared/data --layer layer3.2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import adjusted_mutual_info_score

from subclassbench.metrics.clustering import kmeans_faiss, l2_normalize
from subclassbench.scoring.clusterability import PARAMS, cluster_layer
from subclassbench.uncertainty.bootstrap import cluster_replicates, interval, stratified_counts, with_estimate
from subclassbench.uncertainty.calibration import HIERARCHIES, measure


def coverage(draws: int, resamples: int, names: list[str], compare_centring: bool) -> None:
    for name in names:
        hierarchy = HIERARCHIES[name]
        started = time.perf_counter()
        for centred in (True, False) if compare_centring else (True,):
            label = "" if not compare_centring else (" centred" if centred else " uncentred")
            for c in measure(hierarchy, draws, resamples, centre_ami=centred):
                if compare_centring and c.metric != "ami":
                    continue
                print(
                    f"coverage {name} (population AMI {hierarchy.population_ami():.4f}){label} {c.metric:9s}: "
                    f"{c.rate:.1%} of {c.draws} draws (mean width {c.mean_width:.4f})",
                    flush=True,
                )
        print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)


def refit_vs_reuse(args: argparse.Namespace) -> None:
    from subclassbench.evaluation.pipeline import prepare
    from subclassbench.evaluation.request import EvaluationRequest
    from subclassbench.features.extraction import extract_cached

    request = EvaluationRequest(
        model=args.model, task=args.task, weights=args.weights, data=args.data, metrics=["clusterability"]
    )
    prepared = prepare(request)
    split = next(iter(prepared.splits.values()))
    layers = extract_cached(request.context(prepared.encoder, split, prepared.layers), request.feature_cache(), None)
    layer = next(f for f in layers if f.name == (args.layer or layers[-1].name))
    counts = with_estimate(stratified_counts(split.superclass, args.resamples, 0, "evaluation"))

    started = time.perf_counter()
    assigned = cluster_layer(layer.features, split, with_ward=False).kmeans
    reuse = cluster_replicates(counts, split.superclass, split.subclass, assigned).ami
    reuse_s = time.perf_counter() - started

    started = time.perf_counter()
    x = l2_normalize(layer.features)
    refit = np.empty(args.refits + 1)
    for b in range(args.refits + 1):
        amis = []
        for s in np.unique(split.superclass):
            rows = np.flatnonzero(split.superclass == s)
            drawn = np.repeat(rows, counts[b, rows])
            k = len(np.unique(split.subclass[rows]))
            labels = kmeans_faiss(
                x[drawn], k, n_init=PARAMS["n_init"], max_iter=PARAMS["max_iter"], seed=PARAMS["seed"]
            )
            amis.append(adjusted_mutual_info_score(split.subclass[drawn], labels))
        refit[b] = np.mean(amis)
    refit_s = time.perf_counter() - started
    low, high = interval(reuse)
    r_low, r_high = interval(refit)
    sub = reuse[: args.refits + 1]
    s_low, s_high = interval(sub)
    print(f"{args.model} on {args.task}, layer {layer.name}: AMI {reuse[0]:.4f}")
    print(f"  reuse  (B={args.resamples}): [{low:.4f}, {high:.4f}] width {high - low:.4f}  ({reuse_s:.1f} s)")
    print(f"  reuse  (B={args.refits}):  [{s_low:.4f}, {s_high:.4f}] width {s_high - s_low:.4f}")
    print(f"  refit  (B={args.refits}):  [{r_low:.4f}, {r_high:.4f}] width {r_high - r_low:.4f}  ({refit_s:.1f} s)")
    print(f"  width refit / reuse at equal B: {(r_high - r_low) / (s_high - s_low):.2f}")
    print(f"  cost per resample refit / reuse: {(refit_s / (args.refits + 1)) / (reuse_s / (args.resamples + 1)):.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--refits", type=int, default=200)
    parser.add_argument("--skip-coverage", action="store_true")
    parser.add_argument("--hierarchies", nargs="+", choices=list(HIERARCHIES), default=list(HIERARCHIES))
    parser.add_argument(
        "--compare-centring", action="store_true", help="AMI coverage with and without centring, same draws"
    )
    parser.add_argument("--skip-refit", action="store_true")
    parser.add_argument("--model", default="builtin:digits_cnn.digits5_coarse")
    parser.add_argument("--weights")
    parser.add_argument("--task", default="digits-5")
    parser.add_argument("--data")
    parser.add_argument("--layer")
    args = parser.parse_args()
    if not args.skip_coverage:
        coverage(args.draws, args.resamples, args.hierarchies, args.compare_centring)
    if not args.skip_refit:
        refit_vs_reuse(args)


if __name__ == "__main__":
    main()
