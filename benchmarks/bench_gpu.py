"""Side-by-side throughput on one node, GPU or CPU (run: python benchmarks/bench_gpu.py [--device cuda]).

End-to-end ratio script (ratios measured side by side in one run), not a pytest-benchmark micro-benchmark:
pytest does not collect it; run it directly, ``python benchmarks/bench_gpu.py [--device cuda]`` (``--help``
lists its options). The micro-benchmarks, with saved baselines, are benchmarks/test_micro.py
(docs/benchmarks.md).

Every ratio below is measured in one run, on the same machine, with the same images:

1. **Extraction** (``features.extract_features``: loader processes, every layer hooked and pooled)
   on a generated ImageNet-like JPEG tree (500×375 photos-like JPEGs, resize 256, centre crop 224),
   against its limits: the loader's decoding rate alone (PIL in the same worker processes), GPU JPEG
   decoding (``torchvision.io.decode_jpeg`` on the device; only on cuda), and the bare forward pass
   on device-resident tensors (fp32, and bf16 + channels_last). Target on a GPU node: extraction ≥
   0.8 × min(decoding limit, forward limit) in the same precision.
2. **Probes**: every layer's probes in one batched program (``probes.fit_probes``) vs the loop the
   project ran before (one ``nn.Linear`` probe per layer, reproduced here as the reference).
   Target: ≥ 10× less time, accuracies within 0.005.
3. **Training**: ``training.train`` img/s vs a bare loop (same model, batch, optimizer, augmentation
   off, no evaluation). Target on a GPU node: ≥ 0.7.

``--cifar`` adds the CPU target: a full evaluate (clusterability + transfer) of ResNet-56 on
cifar10-5-semantic vs the bare forward pass over the same images (needs ../shared; target ≤ 2.5), with
``--score-workers`` processes scoring (default: one per core); then the same cached features re-scored in
one process and in ``--score-workers`` processes, side by side, and whether the results are equal.
Sizes default small on CPU so the run takes minutes; pass --images/--layers to scale up.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from subclassbench.core.workerpool import available_cores
from subclassbench.encoders.base import load_encoder
from subclassbench.features.extraction import default_workers, extract_features, iterate_batches
from subclassbench.scoring.probes import ProbeRecipe, fit_probes
from subclassbench.tasks.datasources import FileImageSet


def jpeg_tree(folder: Path, n: int, seed: int = 0) -> FileImageSet:
    """``n`` 500×375 JPEGs with smooth structure and noise (JPEG sizes like photographs), 10 class folders."""
    from PIL import Image

    rng = np.random.RandomState(seed)
    paths, labels = [], []
    yy, xx = np.mgrid[0:375, 0:500]
    for i in range(n):
        label = i % 10
        phase = rng.rand(3) * 6.28
        base = np.stack(
            [np.sin(xx / (20 + 5 * label) + p) + np.cos(yy / (30 + 3 * c) - p) for c, p in enumerate(phase)]
        )
        pixels = np.clip((base.transpose(1, 2, 0) + 2) * 60 + rng.randn(375, 500, 3) * 12, 0, 255).astype(np.uint8)
        target = folder / f"n{label:08d}" / f"img_{i:05d}.JPEG"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(target, quality=90)
        paths.append(target)
        labels.append(label)
    return FileImageSet(paths, np.asarray(labels), [p.name for p in paths], (3, 224, 224), resize=256)


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_extraction(images: FileImageSet, model: str, device: str, batch: int, repeats: int) -> None:
    n = len(images)
    workers = default_workers(images)
    encoder = load_encoder(model, sample_shape=(3, 224, 224), pretrained=False)
    pin = device.startswith("cuda")

    def decode_only() -> None:
        for _ in iterate_batches(images, batch, workers, pin_memory=pin):
            pass

    decoding = rate(n, timed(decode_only, repeats))
    limits = {f"loader decoding (PIL, {workers} workers)": decoding}
    if device.startswith("cuda"):
        from torchvision.io import decode_jpeg
        from torchvision.transforms.v2 import functional as tvf

        encoded = [torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8) for p in images.paths]

        def gpu_decode() -> None:
            for start in range(0, n, batch):
                decoded = decode_jpeg(encoded[start : start + batch], device=device)
                for image in decoded:
                    tvf.center_crop(tvf.resize(image, [256], antialias=True), [224, 224])

        limits["GPU JPEG decoding (nvjpeg + resize)"] = rate(n, timed(gpu_decode, repeats))
    model_on = encoder.model.to(device).eval()
    x = torch.randn(batch, 3, 224, 224, device=device)
    forward = {}
    for dtype, layout in (("fp32", False), ("bf16", True)):
        inputs = x.contiguous(memory_format=torch.channels_last) if layout else x
        if layout:
            model_on.to(memory_format=torch.channels_last)

        def bare(inputs: torch.Tensor = inputs, dtype: str = dtype) -> None:
            with torch.inference_mode(), torch.autocast(x.device.type, torch.bfloat16, enabled=dtype == "bf16"):
                for _ in range(-(-n // batch)):
                    model_on(inputs)

        model_on(inputs[:2])  # warm-up (cuDNN autotuning, lazy init)
        forward[dtype] = rate(n, timed(bare, repeats))
        model_on.to(memory_format=torch.contiguous_format)
    extraction = {}
    for dtype, layout in (("fp32", False), ("bf16", True)):
        extraction[dtype] = rate(n, timed(lambda d=dtype, c=layout: extract_features(
            encoder, images, None, batch, device, False, d, c), repeats))  # fmt: skip
    print(f"\n## Extraction: {model}, {n} JPEGs 500×375 → 224, batch {batch}, {device}")
    for name, value in limits.items():
        print(f"  {name:<40} {value:9.1f} img/s")
    for dtype in ("fp32", "bf16"):
        print(f"  {'bare forward ' + dtype + (' + channels_last' if dtype == 'bf16' else ''):<40} "
              f"{forward[dtype]:9.1f} img/s")  # fmt: skip
    best_decoding = max(limits.values())
    for dtype in ("fp32", "bf16"):
        bound = min(best_decoding, forward[dtype])
        print(f"  extraction {dtype:<29} {extraction[dtype]:9.1f} img/s  = {extraction[dtype] / bound:.2f} × "
              f"min(decoding, forward) (target ≥ 0.8 on a GPU node)")  # fmt: skip


def reference_loop(x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray, classes: int) -> float:
    """The per-layer probe the project ran before batching (nn.Linear, AdamW, one layer at a time)."""
    from subclassbench.scoring.probes import holdout_rows

    recipe = ProbeRecipe()
    held = holdout_rows(y, recipe.holdout_fraction, recipe.seed)
    mean, std = x[~held].mean(axis=0, dtype=np.float64), x[~held].std(axis=0, dtype=np.float64)
    std[std < 1e-8] = 1.0  # as the recipe: constant units stay at zero
    train_x, hold_x, test_x = (torch.from_numpy(((a - mean) / std).astype(np.float32)) for a in (x[~held], x[held], xt))
    train_y = torch.from_numpy(y[~held])
    probe = nn.Linear(x.shape[1], classes)
    nn.init.zeros_(probe.weight)
    nn.init.zeros_(probe.bias)
    optimizer = torch.optim.AdamW(probe.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    generator = torch.Generator().manual_seed(recipe.seed)
    best, best_state = -1.0, None
    for _ in range(recipe.epochs):
        order = torch.randperm(len(train_x), generator=generator)
        for start in range(0, len(order), recipe.batch_size):
            idx = order[start : start + recipe.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(probe(train_x[idx]), train_y[idx]).backward()
            optimizer.step()
        with torch.inference_mode():
            acc = float((probe(hold_x).argmax(1).numpy() == y[held]).mean())
        if acc >= best:
            best, best_state = acc, {k: v.clone() for k, v in probe.state_dict().items()}
    probe.load_state_dict(best_state)
    with torch.inference_mode():
        return float((probe(test_x).argmax(1).numpy() == yt).mean())


def bench_probes(n: int, layers: int, device: str, base: int) -> None:
    rng = np.random.RandomState(0)
    classes = 17
    y, yt = rng.randint(0, classes, n), rng.randint(0, classes, n // 4)
    widths = [base * 2 ** min(3, i * 4 // layers) for i in range(layers)]  # base … 8 × base, like ResNet stages
    xs, xts = [], []
    for width in widths:
        means = rng.randn(classes, width) * 0.3
        xs.append((means[y] + rng.randn(n, width)).astype(np.float32))
        xts.append((means[yt] + rng.randn(len(yt), width)).astype(np.float32))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the reference ran: one thread per probe
    start = time.perf_counter()
    looped = [reference_loop(x, y, xt, yt, classes) for x, xt in zip(xs, xts, strict=True)]
    loop_s = time.perf_counter() - start
    torch.set_num_threads(threads)
    start = time.perf_counter()
    fits = fit_probes(xs, y, {"test": (xts, yt)}, classes, device=device)
    batched_s = time.perf_counter() - start
    diff = max(abs(f.scores["test"].acc - a) for f, a in zip(fits, looped, strict=True))
    print(f"\n## Probes: {layers} layers (widths {min(widths)}–{max(widths)}), {n} rows, {classes} classes, {device}")
    print(f"  previous loop (nn.Linear per layer, cpu) {loop_s:8.1f} s")
    print(f"  batched (fit_probes)                     {batched_s:8.1f} s  = {loop_s / batched_s:.1f}× less time "
          f"(target ≥ 10); largest accuracy difference {diff:.4f} (target ≤ 0.005)")  # fmt: skip


def bench_training(device: str, n: int, epochs: int, batch: int) -> None:
    import yaml

    from subclassbench.tasks.task import load_task
    from subclassbench.training.trainer import Recipe, train

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rng = np.random.RandomState(0)
        labels = np.arange(n) % 10
        images = rng.randint(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        np.savez(folder / "bench_train.npz", images=images, labels=labels)
        np.savez(folder / "bench_test.npz", images=images[:256], labels=labels[:256])
        task = {
            "name": "bench-train", "version": 1, "description": "Generated images.", "citation": "bench_gpu.py",
            "data": {"source": "image_classification", "image_shape": [3, 32, 32],
                     "class_names": [str(i) for i in range(10)]},
            "hierarchy": {"superclasses": [{"id": s, "name": f"s{s}", "subclasses": [{"id": s}, {"id": s + 5}]}
                                           for s in range(5)]},
            "evaluation_split": "test",
            "splits": {"train": {"source_split": "train", "select": "all"},
                       "test": {"source_split": "test", "select": "all"}},
        }  # fmt: skip
        (folder / "bench-train.yaml").write_text(yaml.safe_dump(task))
        loaded = load_task(str(folder / "bench-train.yaml"))
        recipe = Recipe(epochs=epochs, batch_size=batch, augment="none")
        start = time.perf_counter()
        train(loaded, "cifar_resnet20", "subclass", folder / "run", recipe, str(folder), progress=False, device=device)
        ours = rate(n * epochs, time.perf_counter() - start)
        split = loaded.load_split("train", str(folder), primary=False)
        x_all = split.images.load(np.arange(n)).to(device)
        y_all = torch.from_numpy(split.global_subclass).to(device)
        model = load_encoder("builtin:cifar_resnet20", sample_shape=(3, 32, 32), num_classes=10).model.to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
        model.train()
        start = time.perf_counter()
        for _ in range(epochs):
            for begin in range(0, n, batch):
                loss = nn.functional.cross_entropy(model(x_all[begin : begin + batch]), y_all[begin : begin + batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        bare = rate(n * epochs, time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(epochs):  # what train adds per epoch: the train and test splits classified (agreement logs)
            model.eval()
            with torch.inference_mode():
                for begin in range(0, n, 1024):
                    model(x_all[begin : begin + 1024]).argmax(1).cpu()
                model(x_all[:256]).argmax(1).cpu()
        logging = time.perf_counter() - start
        with_logs = rate(n * epochs, n * epochs / bare + logging)
    print(f"\n## Training: cifar_resnet20, {n} images × {epochs} epochs, batch {batch}, {device}")
    print(f"  bare loop {bare:9.1f} img/s; subclassbench train {ours:9.1f} img/s = {ours / bare:.2f} × (target ≥ 0.7)")
    print(
        f"  bare loop + train's per-epoch classification of the train and test splits {with_logs:9.1f} img/s; "
        f"train = {ours / with_logs:.2f} × that"
    )


def _scores(result: object) -> dict:
    """A result without what differs between identical runs (its run block and per-sample file name)."""
    doc = {k: v for k, v in result.doc.items() if k != "run"}  # type: ignore[attr-defined]
    doc["samples"] = {k: v for k, v in doc.get("samples", {}).items() if k != "file"}
    return doc


def bench_cifar(shared: Path, score_workers: int) -> None:
    """The CPU target: full evaluate of ResNet-56 on cifar10-5-semantic vs a bare forward pass over its images;
    then the same features re-scored from the cache in this process and in ``score_workers`` processes."""
    from subclassbench.evaluation.pipeline import evaluate
    from subclassbench.evaluation.request import EvaluationRequest

    weights = sorted((shared / "weights").glob("resnet56-*.th"))
    if not weights or not (shared / "data").is_dir():
        print(f"\n## CIFAR evaluate: skipped (no {shared}/weights/resnet56-*.th or {shared}/data)")
        return
    with tempfile.TemporaryDirectory() as cache:
        request = EvaluationRequest(
            model="builtin:cifar_resnet56", task="cifar10-5-semantic", weights=str(weights[0]),
            data=str(shared / "data"), metrics=["clusterability", "transfer"], cache_dir=cache, progress=False,
            score_workers=score_workers,
        )  # fmt: skip
        start = time.perf_counter()
        result = evaluate(request)  # a fresh cache: extraction, then scoring
        full = time.perf_counter() - start
        rescored = {}
        for workers in (1, score_workers):
            start = time.perf_counter()
            doc = evaluate(dataclasses.replace(request, cache="only", score_workers=workers, bootstrap=0))
            rescored[workers] = (time.perf_counter() - start, doc)
    from subclassbench.evaluation.pipeline import prepare

    prepared = prepare(request)
    n = sum(len(d) for d in (*prepared.splits.values(), *prepared.extra_splits.values()))
    model = prepared.encoder.model.eval()
    start = time.perf_counter()
    with torch.inference_mode():
        for data in (*prepared.splits.values(), *prepared.extra_splits.values()):
            for begin in range(0, len(data), 256):
                model(prepared.encoder.preprocessing(data.images.load(np.arange(begin, min(begin + 256, len(data))))))
    bare = time.perf_counter() - start
    timing = result["run"]["timing_s"]
    print(f"\n## CIFAR evaluate: ResNet-56 on cifar10-5-semantic, clusterability + transfer, cpu, {n} images")
    print(f"  full evaluate with {score_workers} score worker(s) {full:.0f} s (extract {timing['extract']:.0f}, "
          f"score {timing['score']:.0f}, bootstrap {timing['bootstrap']:.0f}); bare forward {bare:.0f} s")  # fmt: skip
    print(f"  ratio {full / bare:.2f} (target ≤ 2.5)")
    one, many = rescored[1], rescored[score_workers]
    same = _scores(one[1]) == _scores(many[1])
    print(f"  re-scored from the cache: 1 process {one[0]:.0f} s, {score_workers} score workers {many[0]:.0f} s "
          f"= {one[0] / many[0]:.2f}× faster; {'the same' if same else 'DIFFERENT'} result")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cuda = torch.cuda.is_available()
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--images", type=int, default=4096 if cuda else 128, help="JPEGs generated")
    parser.add_argument("--model", default="timm:resnet50" if cuda else "timm:resnet18")
    parser.add_argument("--batch", type=int, default=256 if cuda else 32)
    parser.add_argument("--probe-rows", type=int, default=88_000 if cuda else 4000)
    parser.add_argument("--layers", type=int, default=18)
    parser.add_argument("--train-images", type=int, default=50_000 if cuda else 2048)
    parser.add_argument("--repeats", type=int, default=3 if cuda else 1)
    parser.add_argument("--cifar", action="store_true", help="also the CPU evaluate target (needs ../shared)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["extraction", "probes", "training"])
    parser.add_argument("--score-workers", type=int, default=available_cores(), help="for --cifar's scoring")
    args = parser.parse_args()
    print(f"# bench_gpu on {args.device}" + (f" ({torch.cuda.get_device_name()})" if cuda else "")
          + f", torch {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
    if "extraction" not in args.skip:
        with tempfile.TemporaryDirectory() as tmp:
            images = jpeg_tree(Path(tmp), args.images)
            bench_extraction(images, args.model, args.device, args.batch, args.repeats)
    if "probes" not in args.skip:
        for base in (16, 64):  # CIFAR ResNet widths (16–128), ImageNet ResNet widths (64–512)
            bench_probes(args.probe_rows, args.layers, args.device, base)
    if "training" not in args.skip:
        bench_training(args.device, args.train_images, 2, 128)
    if args.cifar:
        bench_cifar(Path(__file__).resolve().parents[1].parent / "shared", args.score_workers)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
