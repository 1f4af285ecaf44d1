"""CPU speed at ImageNet resolution, the laptop user's path (run: python benchmarks/bench_imagenet_cpu.py).

End-to-end ratio script (ratios measured side by side in one run), not a pytest-benchmark micro-benchmark:
pytest does not collect it (only ``benchmarks/test_*.py`` files are collected); run it directly, ``--help``
lists its options. Needs the Tiny ImageNet copy in ``../shared/data/tiny-imagenet`` (or ``--data``).

EfficientNet-Lite0 (``timm:tf_efficientnet_lite0``, random weights unless ``--weights FILE`` names a converted
file) reads breeds-tiny16's 64-px photographs at its 224-px input: the task's loader decodes each JPEG at 64 px
(Pillow, in the loader processes), the encoder's preprocessing resizes the batch 64 → 256 (bicubic), centre-crops
224 and normalises. One run prints, on the same images (the evaluation split, ``--limit`` of them):

1. **decoding + resizing** img/s: the loader and the encoder's preprocessing, no model (and each part alone);
2. **bare forward** img/s: the timm model on ready-made preprocessed tensors (same batch size, inference_mode,
   same memory format);
3. **extraction** img/s: ``features.extract_features`` with every layer hooked and pooled;
4. **full evaluate** (clusterability + transfer, the default bootstrap, cache off, ``--limit`` per split) against
   a bare forward pass over as many images as it forwards over all its splits (the OOD set tiny-imagenet-ood16's
   included). Target: ≤ 1.5 (the forward pass dominates at this size). The bare pass forwards each of those
   images once, about half of them before the evaluate (item 2's among them) and the rest after it, so that load
   from other processes weighs on both sides alike.

The machine's load (1-minute load average against its cores) and the CPU share this process got during each
measurement (its own and its loader processes' CPU seconds per wall second) are printed with the table: on a
shared machine the rates move with the load; the ratios, measured side by side, move less.

``--profile FILE`` runs the evaluate under cProfile (slower: its time is then not the one to compare), writes
the stats to FILE and prints where the time goes: subclassbench's functions by cumulative time (extraction, the
forward pass, clusterability, the probes, the bootstrap), then every function by own time.

``--limit`` must be at least 272: a limited split keeps 2 images of each subclass, and the OOD set has 136.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import os
import pstats
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "tiny-imagenet"
MODEL = "timm:tf_efficientnet_lite0"
TASK = "breeds-tiny16"
TARGET = 1.5
# The smallest --limit every split takes: a limited split keeps 2 images of each subclass (breeds-tiny16's splits
# hold 64 subclasses, its OOD set tiny-imagenet-ood16's 136).
MIN_LIMIT = 272


@dataclasses.dataclass
class Timed:
    seconds: float
    cpu_share: float  # CPU seconds (this process and its finished children) per wall second


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(fn: Callable[[], object]) -> Timed:
    wall, cpu = time.perf_counter(), cpu_seconds()
    fn()
    seconds = time.perf_counter() - wall
    return Timed(seconds, (cpu_seconds() - cpu) / seconds if seconds > 0 else 0.0)


def load_line(cores: int) -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {cores} cores = {one / cores:.0%} busy"


def preprocessed(encoder, images, batch: int, workers: int, channels_last: bool) -> list[torch.Tensor]:
    """Every batch of ``images`` decoded and preprocessed as extraction does it, ready for the model."""
    from subclassbench.features.extraction import iterate_batches

    out = []
    with torch.inference_mode():
        for loaded in iterate_batches(images, batch, workers):
            x = encoder.preprocessing(loaded)
            out.append(x.contiguous(memory_format=torch.channels_last) if channels_last else x)
    return out


def bare_forward(model: torch.nn.Module, batches: Iterable[torch.Tensor]) -> None:
    with torch.inference_mode():
        for x in batches:
            model(x)


def with_layout(model: torch.nn.Module, channels_last: bool) -> torch.nn.Module:
    return model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def print_profile(profile: cProfile.Profile, path: Path, total: float) -> None:
    """Where the evaluate's time went: subclassbench's functions by cumulative time, then every function by own
    time (torch, numpy, faiss and scikit-learn calls included)."""
    profile.dump_stats(str(path))
    raw = pstats.Stats(profile).stats  # type: ignore[attr-defined]  # func → (calls, prim, tottime, cumtime, …)

    def where(file: str, line: int, name: str) -> str:
        short = file.split("subclassbench/", 1)[-1] if "subclassbench/" in file else Path(file).name
        return f"{short}:{line}({name})"

    print(f"\n## Profile of the evaluate (cProfile, {total:.1f} s under the profiler; stats in {path})")
    print("  subclassbench functions by cumulative time:")
    ours = [item for item in raw.items() if "/subclassbench/" in item[0][0]]
    for (file, line, name), (calls, _prim, own, cum, _callers) in sorted(ours, key=lambda kv: -kv[1][3])[:30]:
        print(f"    {cum:8.1f} s {cum / total:6.1%} cum {own:7.1f} s own {calls:8d} calls  {where(file, line, name)}")
    print("  every function by own time:")
    for (file, line, name), (calls, _prim, own, cum, _callers) in sorted(raw.items(), key=lambda kv: -kv[1][2])[:20]:
        print(f"    {own:8.1f} s {own / total:6.1%} own {cum:7.1f} s cum {calls:8d} calls  {where(file, line, name)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Tiny ImageNet folder (default: %(default)s)")
    parser.add_argument("--weights", help="converted EfficientNet-Lite0 weights file (default: random weights)")
    parser.add_argument(
        "--limit", type=int, default=MIN_LIMIT, help="images per split (default and smallest: %(default)s)"
    )
    parser.add_argument("--batch", type=int, default=256, help="batch size, every measurement (evaluate's default)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")
    parser.add_argument("--workers", type=int, help="loader processes (default: extraction's, one per core but one)")
    parser.add_argument("--score-workers", type=int, default=1, help="evaluate's scoring processes (default 1)")
    parser.add_argument("--profile", type=Path, help="run the evaluate under cProfile and write its stats here")
    args = parser.parse_args()
    if not args.data.is_dir() or not (args.data / "val").is_dir():
        print(f"error: no Tiny ImageNet copy at {args.data} (expected val/<wnid>/*.JPEG); pass --data", file=sys.stderr)
        return 2
    if args.limit < MIN_LIMIT:
        print(f"error: --limit {args.limit} is too small: the OOD set's splits keep 2 images of each of their 136 "
              f"classes; use --limit {MIN_LIMIT} or more", file=sys.stderr)  # fmt: skip
        return 2
    if args.threads is not None:
        if args.threads < 1:
            print("error: --threads must be ≥ 1", file=sys.stderr)
            return 2
        torch.set_num_threads(args.threads)

    from subclassbench.core.workerpool import available_cores
    from subclassbench.errors import SubclassbenchError
    from subclassbench.evaluation.pipeline import evaluate, prepare
    from subclassbench.evaluation.request import EvaluationRequest
    from subclassbench.features.extraction import default_workers, extract_features, iterate_batches

    cores = available_cores()
    request = EvaluationRequest(
        model=MODEL, task=TASK, data=str(args.data), weights=args.weights, pretrained=args.weights is not None,
        metrics=["clusterability", "transfer"], cache="off", progress=False, limit=args.limit,
        batch_size=args.batch, channels_last=args.channels_last, workers=args.workers,
        score_workers=args.score_workers,
    )  # fmt: skip
    try:
        prepared = prepare(request)  # the evaluate's own splits and encoder (untimed)
    except SubclassbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    encoder = prepared.encoder
    model = encoder.model.eval()
    all_splits = {**prepared.splits, **prepared.extra_splits}
    evaluation = next(iter(prepared.splits.values()))
    images = evaluation.images
    n = len(images)
    workers = default_workers(images) if args.workers is None else args.workers
    batch = args.batch
    layout = "channels_last" if args.channels_last else "NCHW"
    weights = args.weights or "random weights"
    print(f"# bench_imagenet_cpu: {MODEL} ({weights}) on {TASK}, {layout}, batch {batch}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {workers} loader process(es), {cores} cores")  # fmt: skip
    print(f"# {load_line(cores)} (before)")

    # 1. decoding + resizing: the loader (PIL decode at 64 px in `workers` processes) and the encoder's
    # preprocessing (64 → 256 bicubic, crop 224, normalise) in this process, as extraction runs them; no model.
    def decode_only() -> None:
        for _ in iterate_batches(images, batch, workers):
            pass

    decoded = list(iterate_batches(images, batch, workers))

    def resize_only() -> None:
        with torch.inference_mode():
            for b in decoded:
                encoder.preprocessing(b)

    def decode_resize() -> None:
        with torch.inference_mode():
            for b in iterate_batches(images, batch, workers):
                encoder.preprocessing(b)

    t_decode, t_resize, t_loader = timed(decode_only), timed(resize_only), timed(decode_resize)

    # Every split the evaluate forwards (the OOD set's too), decoded and preprocessed ahead (untimed): the bare
    # forward pass runs on these ready-made tensors.
    counts = {name: len(data) for name, data in all_splits.items()}
    total = sum(counts.values())
    ready = {
        name: preprocessed(encoder, data.images, batch, workers, args.channels_last)
        for name, data in all_splits.items()
    }
    decoded.clear()

    def bare(batches: list[torch.Tensor]) -> Timed:
        with_layout(model, args.channels_last)
        try:
            return timed(lambda: bare_forward(model, batches))
        finally:
            with_layout(model, False)

    # 2. bare forward on the evaluation split's ready-made tensors (a warm-up batch first: oneDNN builds kernels).
    bare([ready[evaluation.split][0][:8]])
    t_bare = bare(ready[evaluation.split])

    # 3. extraction: every layer hooked and pooled (extract_features sets and restores the layout itself).
    t_extract = timed(
        lambda: extract_features(encoder, images, prepared.layers, batch, "cpu", False, "fp32", args.channels_last,
                                 args.workers)
    )  # fmt: skip

    # 4. full evaluate against a bare forward pass over the same images, each forwarded once: the evaluation
    # split's (item 2) and the other splits' batches, about half of all the images before the evaluate and the
    # rest after it, so that the machine's load weighs on both sides alike.
    others = [b for name, batches in ready.items() if name != evaluation.split for b in batches]
    split_at, seen = 0, n
    while split_at < len(others) and seen + len(others[split_at]) / 2 <= total / 2:
        seen += len(others[split_at])
        split_at += 1
    bare_before = bare(others[:split_at])
    n_before, n_after = seen, total - seen
    load_during = os.getloadavg()[0]
    profile = cProfile.Profile() if args.profile else None
    outcome: dict[str, object] = {}

    def run_evaluate() -> None:
        if profile is not None:
            profile.enable()
        try:
            outcome["result"] = evaluate(request)
        finally:
            if profile is not None:
                profile.disable()

    t_eval = timed(run_evaluate)
    bare_after = bare(others[split_at:])
    ready.clear()
    bare_s = t_bare.seconds + bare_before.seconds + bare_after.seconds
    timing = outcome["result"]["run"]["timing_s"]  # type: ignore[index]
    ratio = t_eval.seconds / bare_s

    def rate(t: Timed, images_n: int = n) -> str:
        return f"{images_n / t.seconds:9.1f}"

    bare_rate = n / t_bare.seconds
    print(f"\n## {TASK} evaluation split '{evaluation.split}', {n} images (64-px JPEGs → 224), img/s")
    print(f"  {'measurement':<58} {'img/s':>9}  {'× bare':>6}  {'cpu share':>9}")
    rows = [
        (f"decoding alone (PIL at 64 px, {workers} loader process(es))", t_decode),
        ("resizing alone (encoder preprocessing 64→256→224, normalise)", t_resize),
        ("1. decoding + resizing (loader + preprocessing, no model)", t_loader),
        (f"2. bare forward (timm model, ready tensors, {layout})", t_bare),
        (f"3. extraction (extract_features, {len(prepared.layers)} layers pooled)", t_extract),
    ]
    for label, t in rows:
        print(f"  {label:<58} {rate(t)}  {n / t.seconds / bare_rate:6.2f}  {t.cpu_share:9.2f}")
    split_list = ", ".join(f"{name} {count}" for name, count in counts.items())
    print(f"\n## Full evaluate (clusterability + transfer, bootstrap {request.bootstrap}, cache off, --limit "
          f"{args.limit}) vs bare forward over the same {total} images ({split_list})")  # fmt: skip
    print(f"  {'':<58} {'images':>6} {'seconds':>8} {'img/s':>6}  {'cpu share':>9}")
    profiled = " (under cProfile)" if profile is not None else ""
    for label, images_n, t in (
        ("bare forward, before the evaluate (item 2 + other splits)", n_before, None),
        ("full evaluate" + profiled, total, t_eval),
        ("bare forward, after the evaluate (the other splits' rest)", n_after, bare_after),
    ):
        if t is None:  # item 2's pass and the other splits' first part, one after the other
            seconds = t_bare.seconds + bare_before.seconds
            share = (t_bare.cpu_share * t_bare.seconds + bare_before.cpu_share * bare_before.seconds) / seconds
            t = Timed(seconds, share)
        print(f"  {label:<58} {images_n:6d} {t.seconds:8.1f} {images_n / t.seconds:6.1f}  {t.cpu_share:9.2f}")
    print(f"  {'bare forward, all':<58} {total:6d} {bare_s:8.1f} {total / bare_s:6.1f}")
    print(
        f"  evaluate's stages: load {timing['load']:.1f} s, extract {timing['extract']:.1f} s, score "
        f"{timing['score']:.1f} s, bootstrap {timing['bootstrap']:.1f} s (total {timing['total']:.1f} s)"
    )
    print(f"  beyond the bare forward pass: {t_eval.seconds - bare_s:.1f} s (the evaluate's extract stage alone: "
          f"{timing['extract'] / bare_s:.2f} × the bare pass)")  # fmt: skip
    verdict = "PASS" if ratio <= TARGET else "MISS"
    print(f"  ratio evaluate / bare forward = {ratio:.2f} (target ≤ {TARGET}): {verdict}")
    print(f"\n# {load_line(cores)} (after; {load_during:.2f} when the evaluate started)")
    if profile is not None:
        print_profile(profile, args.profile, t_eval.seconds)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
