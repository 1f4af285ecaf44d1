"""evaluate, extract, score, cache and run: the evaluation pipeline's commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from subclassbench.cli import (
    DEFAULT_MODEL,
    BatchSizeOption,
    CacheDirOption,
    ChannelsLastOption,
    DataOption,
    DecoderOption,
    DtypeOption,
    LayersOption,
    LimitOption,
    ModelArgOption,
    ModelOption,
    OodDataOption,
    PreprocessOption,
    QuietOption,
    RayAddressOption,
    RayCpusOption,
    ScoreWorkersOption,
    SplitOption,
    TaskOption,
    WeightsOption,
    WorkersOption,
    app,
    assignments,
    cache_app,
    gpus_option,
    named_paths,
    split_list,
    user_errors,
)
from subclassbench.errors import SubclassbenchError
from subclassbench.evaluation.outputs import MAX_SHARDS

if TYPE_CHECKING:
    from subclassbench.evaluation.request import EvaluationRequest
    from subclassbench.results.result import Result


BootstrapOption = Annotated[
    int,
    typer.Option(
        min=0,
        max=100_000,
        help="Bootstrap resamples for the 95% intervals (stratified, seeded; 0: none). See docs/uncertainty.md.",
    ),
]


WideOption = Annotated[
    bool, typer.Option("--wide", help="Every per-layer column, however wide (default: the columns that fit).")
]


def _report(result: Result, path: Path, quiet: bool, header: bool, wide: bool = False) -> None:
    """Print a written result: the headline, the per-layer table, its legend and the summary (evaluate, score)."""
    from subclassbench.results.report import format_report

    if not quiet:
        if header:
            task = result.task
            typer.echo(
                f"{result.encoder['spec']} on {task['name']} ({task['n_samples']} samples, "
                f"protocol v{result['protocol']['version']})"
            )
        for line in format_report(result, wide=wide):
            typer.echo(line)
    typer.echo(f"wrote {path}")


def _request(
    model: str,
    task: str,
    weights: str | None,
    data: str | None,
    layers: list[str] | None,
    split: str | None,
    metrics: list[str] | None,
    batch_size: int,
    device: str,
    cache_dir: str | None,
    quiet: bool,
    ood_data: list[str] | None = None,
    model_arg: list[str] | None = None,
    preprocess: list[str] | None = None,
    **extra: Any,
) -> EvaluationRequest:
    from subclassbench.evaluation.request import EvaluationRequest

    return EvaluationRequest(
        model_args=assignments(model_arg, "--model-arg", "pad_type=same"),
        preprocess=assignments(preprocess, "--preprocess", "mean=0.5"),
        ood_data=named_paths(ood_data, "--ood-data", "an OOD set of the task and its data") or None,
        model=model,
        task=task,
        weights=weights,
        data=data,
        layers=split_list(layers),
        split=split,
        metrics=split_list(metrics),
        batch_size=batch_size,
        device=device,
        cache_dir=cache_dir,
        progress=not quiet,
        **extra,
    )


@app.command()
@user_errors
def evaluate(
    model: ModelOption = DEFAULT_MODEL,
    task: TaskOption = "digits-5",
    weights: WeightsOption = None,
    model_arg: ModelArgOption = None,
    preprocess: PreprocessOption = None,
    data: DataOption = None,
    ood_data: OodDataOption = None,
    layers: LayersOption = None,
    split: SplitOption = None,
    out: Annotated[Path | None, typer.Option(help="Result JSON path (default: results/<model>/<task>.json).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out even if it holds something else.")] = False,
    batch_size: BatchSizeOption = 256,
    device: Annotated[str, typer.Option(help="torch device, e.g. cpu or cuda.")] = "cpu",
    random_init: Annotated[
        bool, typer.Option("--random-init", help="timm/open_clip: skip pretrained weights.")
    ] = False,
    metrics: Annotated[
        list[str] | None, typer.Option(help="clusterability and/or transfer (default: all the task supports).")
    ] = None,
    image_preprocessing: Annotated[
        str,
        typer.Option(help="Decode encoded images with the task's resize/crop (task) or the encoder's own (encoder)."),
    ] = "task",
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor fill the feature cache.")] = False,
    bootstrap: BootstrapOption = 1000,
    limit: LimitOption = None,
    dtype: DtypeOption = "fp32",
    channels_last: ChannelsLastOption = False,
    workers: WorkersOption = None,
    decoder: DecoderOption = "pil",
    score_workers: ScoreWorkersOption = 1,
    cache_dir: CacheDirOption = None,
    plot: Annotated[
        bool,
        typer.Option(
            "--plot", help="Also draw the per-layer AMI curve beside the result: <out stem>.png, .svg and .pdf."
        ),
    ] = False,
    quiet: QuietOption = False,
    wide: WideOption = False,
) -> None:
    """Score every layer of MODEL on TASK and write a schema-checked result JSON."""
    from subclassbench.evaluation.pipeline import evaluate_to_file

    chosen = split_list(metrics)
    if plot and chosen is not None and "clusterability" not in chosen:  # before the work, not after it
        raise SubclassbenchError("--plot draws the per-layer AMI: add clusterability to --metrics, or drop --plot")

    request = _request(
        model,
        task,
        weights,
        data,
        layers,
        split,
        metrics,
        batch_size,
        device,
        cache_dir,
        quiet,
        ood_data,
        model_arg,
        preprocess,
        pretrained=not random_init,
        image_preprocessing=image_preprocessing,
        cache="off" if no_cache else "use",
        bootstrap=bootstrap,
        limit=limit,
        dtype=dtype,
        channels_last=channels_last,
        workers=workers,
        decoder=decoder,
        score_workers=score_workers,
    )
    result, path = evaluate_to_file(request, out, force)
    _report(result, path, quiet, header=True, wide=wide)
    if plot:
        from subclassbench.figures.drawing import write_result_figure

        for written in write_result_figure(result, path):
            typer.echo(f"wrote {written}")


@app.command()
@user_errors
def extract(
    model: ModelOption = DEFAULT_MODEL,
    task: TaskOption = "digits-5",
    weights: WeightsOption = None,
    model_arg: ModelArgOption = None,
    preprocess: PreprocessOption = None,
    data: DataOption = None,
    ood_data: OodDataOption = None,
    layers: LayersOption = None,
    split: SplitOption = None,
    metrics: Annotated[
        list[str] | None,
        typer.Option(
            help="Which families' splits to extract: clusterability, transfer. [default: all the task supports]"
        ),
    ] = None,
    shard: Annotated[
        str | None, typer.Option(help="I/N: extract only the I-th of N contiguous parts. [default: the whole split]")
    ] = None,
    batch_size: BatchSizeOption = 256,
    device: Annotated[str, typer.Option(help="torch device, e.g. cpu or cuda.")] = "cpu",
    limit: LimitOption = None,
    dtype: DtypeOption = "fp32",
    channels_last: ChannelsLastOption = False,
    workers: WorkersOption = None,
    decoder: DecoderOption = "pil",
    cache_dir: CacheDirOption = None,
    quiet: QuietOption = False,
) -> None:
    """Extract pooled per-layer features into the content-addressed cache (skipping cached entries)."""
    from subclassbench.evaluation.outputs import parse_shard
    from subclassbench.evaluation.pipeline import extract as run

    part = None if shard is None else parse_shard(shard)
    request = _request(
        model, task, weights, data, layers, split, metrics, batch_size, device, cache_dir, quiet, ood_data,
        model_arg, preprocess, limit=limit, dtype=dtype, channels_last=channels_last, workers=workers, decoder=decoder,
    )  # fmt: skip
    stats = run(request, shard=part)
    typer.echo(f"{model} on {task}{f' shard {shard}' if shard else ''}: {stats.misses} extracted, {stats.hits} cached")


@app.command()
@user_errors
def score(
    model: ModelOption = DEFAULT_MODEL,
    task: TaskOption = "digits-5",
    weights: WeightsOption = None,
    model_arg: ModelArgOption = None,
    preprocess: PreprocessOption = None,
    data: DataOption = None,
    ood_data: OodDataOption = None,
    layers: LayersOption = None,
    split: SplitOption = None,
    metrics: Annotated[
        list[str] | None, typer.Option(help="clusterability and/or transfer. [default: all the task supports]")
    ] = None,
    shards: Annotated[
        int | None,
        typer.Option(
            min=1, max=10_000, help="Merge features from N cached shards. [default: features of the whole split]"
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="The batch size the shards were extracted with (shard borders follow it).")
    ] = 256,
    out: Annotated[Path | None, typer.Option(help="Result JSON path. [default: results/<model>/<task>.json]")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out even if it holds something else.")] = False,
    bootstrap: BootstrapOption = 1000,
    limit: LimitOption = None,
    dtype: Annotated[str, typer.Option(help="The precision the features were extracted with.")] = "fp32",
    channels_last: Annotated[
        bool, typer.Option("--channels-last", help="The features were extracted with NHWC layout.")
    ] = False,
    device: Annotated[
        str, typer.Option(help="The device the features were extracted on (it keys the cache); probes run on it.")
    ] = "cpu",
    decoder: Annotated[str, typer.Option(help="The decoder the features were extracted with.")] = "pil",
    score_workers: ScoreWorkersOption = 1,
    cache_dir: CacheDirOption = None,
    quiet: QuietOption = False,
    wide: WideOption = False,
) -> None:
    """Score MODEL on TASK from cached features only (no forward pass); writes the result JSON."""
    from subclassbench.evaluation.pipeline import evaluate_to_file

    request = _request(
        model, task, weights, data, layers, split, metrics, batch_size, device, cache_dir, quiet, ood_data,
        model_arg, preprocess, cache="only", n_shards=shards, bootstrap=bootstrap, limit=limit, dtype=dtype,
        channels_last=channels_last, decoder=decoder, score_workers=score_workers,
    )  # fmt: skip
    result, path = evaluate_to_file(request, out, force)
    _report(result, path, quiet, header=False, wide=wide)


@cache_app.command("ls")
@user_errors
def cache_ls(cache_dir: CacheDirOption = None) -> None:
    """One line per cached feature matrix."""
    from tabulate import tabulate

    from subclassbench.features.cache import FeatureCache

    cache = FeatureCache(cache_dir)
    rows = []
    for e in cache.entries():
        rows_range = "all" if e.rows is None else "{}:{}".format(*e.rows)
        size = f"{e.bytes / 1e6:.1f} MB"
        rows.append([e.key[:12], e.spec, e.task, e.split, e.layer, "×".join(map(str, e.shape)), rows_range, size])
    typer.echo(tabulate(rows, headers=["key", "encoder", "task", "split", "layer", "shape", "rows", "size"]))
    typer.echo(f"{len(rows)} entries in {cache.root}")


@cache_app.command("du")
@user_errors
def cache_du(cache_dir: CacheDirOption = None) -> None:
    """Number of entries and bytes on disk."""
    from subclassbench.features.cache import FeatureCache

    cache = FeatureCache(cache_dir)
    count, size = cache.usage()
    typer.echo(f"{count} entries, {size / 1e6:.1f} MB in {cache.root}")


@cache_app.command("prune")
@user_errors
def cache_prune(
    older_than_days: Annotated[
        float | None, typer.Option(help="Remove entries older than this. [default: any age]")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Remove entries of this encoder spec. [default: any encoder]")
    ] = None,
    all_entries: Annotated[bool, typer.Option("--all", help="Remove everything.")] = False,
    cache_dir: CacheDirOption = None,
) -> None:
    """Remove cached features (and leftover temporary files)."""
    from subclassbench.features.cache import FeatureCache

    if older_than_days is None and model is None and not all_entries:
        raise SubclassbenchError("say what to prune: --older-than-days N, --model SPEC or --all")
    cache = FeatureCache(cache_dir)
    removed = cache.prune(None if older_than_days is None else older_than_days * 86400, model, all_entries)
    typer.echo(f"removed {removed} entries from {cache.root}")


@app.command("run")
@user_errors
def run_matrix_command(
    models: Annotated[Path, typer.Option(help="YAML list of models: - model: SPEC (weights: FILE).")],
    tasks: Annotated[Path, typer.Option(help="YAML list of tasks: - task: NAME (data: PATH).")],
    executor: Annotated[str, typer.Option(help="local or ray.")] = "local",
    address: RayAddressOption = None,
    workers: RayCpusOption = None,
    gpus_per_task: Annotated[float, gpus_option("GPUs per Ray task (extraction runs on cuda if > 0).")] = 0.0,
    shards: Annotated[
        int, typer.Option(min=1, max=MAX_SHARDS, help="Contiguous extraction shards per (model, task).")
    ] = 1,
    out: Annotated[Path, typer.Option(help="Results folder.")] = Path("results"),
    cache_dir: Annotated[
        str | None,
        typer.Option(
            help="Feature cache folder, shared by all workers "
            "(default: $SUBCLASSBENCH_CACHE or ~/.cache/subclassbench/features)."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the cells' outcomes as one JSON document instead of lines.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No per-cell progress lines on stderr.")] = False,
) -> None:
    """Evaluate every model on every task; (model, task, shard) units run locally or on Ray."""
    from subclassbench.evaluation.matrix import load_matrix, run_matrix

    cells = load_matrix(models, tasks)
    report = run_matrix(cells, out, executor, shards, cache_dir, address, workers, gpus_per_task, progress=not quiet)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for o in report.outcomes:
            detail = o.result if o.status != "failed" else f"{o.error} (after {o.attempts} attempts)"
            typer.echo(f"{o.status:7} {o.model} × {o.task}: {detail}")
    if report.failed:
        typer.echo(f"{len(report.failed)} of {len(report.outcomes)} cells failed", err=True)
        raise typer.Exit(1)
