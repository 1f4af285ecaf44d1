"""results: one table across result files (printed, or as CSV, Parquet or JSON)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from subclassbench.cli import app, user_errors
from subclassbench.core.files import atomic_path, check_file_name, check_writable_folder
from subclassbench.errors import SubclassbenchError

if TYPE_CHECKING:
    import pandas as pd

STDOUT = "-"  # a table file name meaning standard output


@app.command()
@user_errors
def results(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Result JSON files or folders holding them (default: results/).")
    ] = None,
    csv: Annotated[
        Path | None, typer.Option("--csv", help="Also write the table as CSV to this file. [default: none]")
    ] = None,
    parquet: Annotated[
        Path | None, typer.Option("--parquet", help="Also write it as Parquet to this file. [default: none]")
    ] = None,
    json: Annotated[
        Path | None, typer.Option("--json", help="Also write it as JSON records to this file. [default: none]")
    ] = None,
) -> None:
    """One row per result file: model, task, committed layer, AMI and reconstruction accuracy with their 95%
    intervals, % OOD retained, tunnel."""
    from subclassbench.results.tables import format_results, load_results

    outputs: list[tuple[Path | None, Callable[[pd.DataFrame, Path], object]]] = [
        (csv, lambda f, p: f.to_csv(p, index=False)),
        (parquet, lambda f, p: f.to_parquet(p, index=False)),
        (json, lambda f, p: f.to_json(p, orient="records", indent=2)),
    ]
    writers = [(target, write) for target, write in outputs if target is not None]
    to_stdout = [target for target, _ in writers if str(target) == STDOUT]
    if len(to_stdout) > 1 or (to_stdout and parquet is not None and str(parquet) == STDOUT):
        raise SubclassbenchError(
            "only one of --csv - and --json - can go to standard output (Parquet is binary: give a file)"
        )
    for target, _ in writers:  # before any reading: a bad target fails first and writes nothing
        if str(target) == STDOUT:
            continue
        if target.is_dir():
            raise SubclassbenchError(f"{target} is a folder; give a file path")
        check_file_name(target, "the table file")
        check_writable_folder(target.parent, "the table file")
    frame = load_results(paths or [Path("results")])
    if not to_stdout:  # standard output carries the table file alone, so a pipe reads only it
        typer.echo(format_results(frame))
    for target, write in writers:
        if str(target) == STDOUT:  # `--csv -`: standard output, as in Unix tools
            text = frame.to_csv(index=False) if target is csv else frame.to_json(orient="records", indent=2)
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
            continue
        with atomic_path(target) as tmp:  # never a half-written table
            write(frame, tmp)
        typer.echo(f"wrote {target}", err=bool(to_stdout))


@app.command()
@user_errors
def intervals(
    paths: Annotated[list[Path], typer.Argument(help="Result JSON files or folders holding them.")],
    check: Annotated[
        bool, typer.Option("--check", help="Only list results with outdated intervals; exit 1 if there are any.")
    ] = False,
) -> None:
    """Recompute results' 95% intervals under the current bootstrap method, from their per-sample files alone
    (no model, data or features); each outdated result and its per-sample file are rewritten together."""
    from subclassbench.results.intervals import refresh_file
    from subclassbench.results.tables import result_files

    outdated = 0
    for path in result_files(paths):
        status = refresh_file(path, check=check)
        outdated += status == "outdated"
        typer.echo(f"{path}: {status}")
    if outdated:
        typer.echo(f"{outdated} result(s) have intervals from an earlier method: run `subclassbench intervals` on them")
        raise typer.Exit(1)


@app.command()
@user_errors
def plot(
    paths: Annotated[list[Path], typer.Argument(help="Result JSON files on one task (each with per-layer AMI).")],
    out: Annotated[
        Path, typer.Option(help="Figure path: <stem>.png, .svg and .pdf are written. [default: ami-per-layer]")
    ] = Path("ami-per-layer"),
) -> None:
    """Overlay results' subclass AMI per layer, with 95% bands and committed layers (one task)."""
    from subclassbench.figures.drawing import results_files, write_figure
    from subclassbench.results.result import Result

    stem = out.with_suffix("")
    check_file_name(stem, "--out")
    check_writable_folder(stem.parent, "--out")
    results = [Result.read(path) for path in paths]
    for written in write_figure(results_files(results), stem):
        typer.echo(f"wrote {written}")
