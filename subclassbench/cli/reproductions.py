"""reproduce: re-run one of the papers' findings with the benchmark and write its report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from subclassbench.cli import (
    QuietOption,
    RayCpusOption,
    app,
    gpus_option,
    named_paths,
    split_list,
    user_errors,
)
from subclassbench.evaluation.request import MAX_SCORE_WORKERS


@app.command()
@user_errors
def reproduce(
    claim: Annotated[
        str,
        typer.Argument(
            help="yang2023, yang2023-schedule, nguyen2023-shuffled, nguyen2023-architecture, harun2024, "
            "pliushch2022 or vielhaben2025."
        ),
    ],
    scale: Annotated[
        str, typer.Option(help="paper (the papers' recipes; a GPU), cpu (shortened schedules) or smoke (digits).")
    ] = "cpu",
    data: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=PATH for image data that is not packaged: cifar10=FOLDER, tiny-imagenet=FOLDER. "
            "[default: none; a claim that needs one stops and names it]"
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder of run folders (shared by claims: a run trains once).")] = Path(
        "runs/reproduce"
    ),
    report_dir: Annotated[Path, typer.Option(help="Where <claim>.md, <claim>.json and figures/ go.")] = Path(
        "docs/reproductions"
    ),
    device: Annotated[str, typer.Option(help="torch device for training and scoring, e.g. cpu or cuda.")] = "cpu",
    executor: Annotated[str, typer.Option(help="local (one run after another) or ray.")] = "local",
    threads: Annotated[int, typer.Option(min=1, help="torch threads (and Ray CPUs) per training run.")] = 1,
    gpus_per_task: Annotated[float, gpus_option("GPUs per training run on Ray (1: one run per GPU).")] = 0.0,
    workers: RayCpusOption = None,
    score_workers: Annotated[
        int, typer.Option(min=0, max=MAX_SCORE_WORKERS, help="Processes scoring clusterability (0: one per core).")
    ] = 1,
    stages: Annotated[
        str, typer.Option(help="Comma-separated stages to run: train, evaluate, report (each resumes).")
    ] = "train,evaluate,report",
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="List the runs this would train and score, and what is already there; trains, scores and "
            "writes nothing (no --data needed).",
        ),
    ] = False,
    quiet: QuietOption = False,
) -> None:
    """Train, score under the protocol and report one paper's finding: docs/reproductions/<claim>.md."""
    from subclassbench.reproductions.harness import reproduce as run
    from subclassbench.reproductions.plan import DATASETS

    if dry_run:
        _print_dry_run(claim, scale, out)
        return
    done = run(
        claim,
        scale,
        out,
        report_dir,
        named_paths(data, "--data", f"NAME one of {', '.join(DATASETS)}", DATASETS),
        device,
        executor,
        threads,
        gpus_per_task,
        workers,
        score_workers,
        split_list([stages]) or [],
        progress=not quiet,
    )
    typer.echo(f"{done.claim} ({done.scale} scale, {done.runs} runs)" + (f": {done.verdict}" if done.verdict else ""))
    for path in done.written:
        typer.echo(f"wrote {path}")


def _print_dry_run(claim: str, scale: str, out: Path) -> None:
    from subclassbench.reproductions.harness import dry_run

    planned = dry_run(claim, scale, out)
    for run in planned:
        typer.echo(f"{run.status:<8}  {run.epochs:>4} epochs  {run.folder}  ({'; '.join(run.arms)})")
    pending = [r for r in planned if r.status != "trained"]
    typer.echo(
        f"{claim} ({scale} scale): {len(planned)} training runs, {len(planned) - len(pending)} trained, "
        f"{len(pending)} to train or finish ({sum(r.epochs for r in pending)} epochs at most); "
        f"{sum(r.to_score for r in planned)} results to score"
    )
