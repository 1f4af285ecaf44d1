"""tasks, tasks show and tasks build-breeds."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Annotated

import typer

from subclassbench.cli import (
    tasks_app,
    user_errors,
)


@tasks_app.callback()
@user_errors
def tasks(ctx: typer.Context) -> None:
    """List the tasks (built-in and those in $SUBCLASSBENCH_TASKS)."""
    if ctx.invoked_subcommand is not None:
        return
    from tabulate import tabulate

    from subclassbench.tasks.task import list_tasks, load_task

    rows = []
    for name in list_tasks():
        task = load_task(name)
        first = " ".join(task.description.split(". ")[0].split())
        # At a word, and never inside a hyphenated one ("out-of-distribution").
        brief = textwrap.TextWrapper(width=70, max_lines=1, placeholder=" …", break_on_hyphens=False).fill(first)
        rows.append([name, task.version, task.data["source"], len(task.superclasses), task.n_subclasses, brief])
    typer.echo(tabulate(rows, headers=["task", "version", "source", "superclasses", "subclasses", "description"]))


@tasks_app.command("show")
@user_errors
def tasks_show(
    name: Annotated[str, typer.Argument(help="Task name or task file path.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the resolved task as JSON.")] = False,
    data: Annotated[
        str | None,
        typer.Option(help="Data path, to include content hashes in the fingerprint. [default: definition only]"),
    ] = None,
) -> None:
    """Show a resolved task: hierarchy, splits and fingerprint."""
    from subclassbench.tasks.task import load_task

    task = load_task(name)
    summary = task.summary(task.load_split(data_path=data) if not task.needs_data_path or data else None)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    hashed = "" if summary["data_hashed"] else " (definition only: pass --data to hash the images)"
    typer.echo(f"{task.name} v{task.version}  fingerprint {summary['fingerprint']}{hashed}")
    typer.echo(task.description)
    for sup in summary["superclasses"]:
        members = ", ".join(f"{n} ({i})" for n, i in zip(sup["subclass_names"], sup["subclasses"], strict=True))
        typer.echo(f"  {sup['id']}: {sup['name']}  ←  {members}")
    typer.echo("splits: " + ", ".join(f"{k}={v}" for k, v in summary["splits"].items()))


@tasks_app.command("build-breeds")
@user_errors
def tasks_build_breeds(
    hierarchy: Annotated[
        Path, typer.Option(help="Folder with dataset_class_info.json, class_hierarchy.txt and node_names.txt.")
    ],
    preset: Annotated[
        str | None,
        typer.Option(
            help="A published task: living17, entity30, entity13 or nonliving26. [default: none: give --level]"
        ),
    ] = None,
    level: Annotated[
        int | None, typer.Option(help="Superclass depth below the root (root = 0). [default: the preset's]")
    ] = None,
    subclasses: Annotated[
        int | None,
        typer.Option(help="Subclasses per superclass (even for split tasks). [default: the preset's, else all]"),
    ] = None,
    ancestor: Annotated[
        str | None,
        typer.Option(help="Only superclasses inside this node's subtree. [default: the preset's, else the root's]"),
    ] = None,
    split: Annotated[str, typer.Option(help="Source/target split: rand, good, bad or none.")] = "rand",
    seed: Annotated[
        int, typer.Option(min=0, max=2**32 - 1, help="numpy RandomState seed (2 for every published task).")
    ] = 2,
    shuffled: Annotated[bool, typer.Option("--shuffled", help="Build the shuffled control instead.")] = False,
    root: Annotated[str, typer.Option(help="The hierarchy's root node (level 0).")] = "n00001740",
    name: Annotated[str | None, typer.Option(help="Task name (default: breeds-<preset>[-shuffled]).")] = None,
    out: Annotated[Path | None, typer.Option(help="Output task file (default: ./<name>.yaml; '-' prints).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    classes: Annotated[
        Path | None,
        typer.Option(
            help="Only these classes (a file of WNIDs, one per line, e.g. Tiny ImageNet's wnids.txt). "
            "[default: every class of the hierarchy]"
        ),
    ] = None,
    image_size: Annotated[
        int, typer.Option(help="Side of the images in the data (64 for Tiny ImageNet: read at that size, uncropped).")
    ] = 224,
    val_fraction: Annotated[
        float, typer.Option(help="Share of each class's training images held out as 'val' (layer commitment).")
    ] = 0.04,
    description: Annotated[
        str | None, typer.Option(help="The task's description. [default: generated from the options]")
    ] = None,
    cite: Annotated[
        str | None,
        typer.Option(help="Added to the BREEDS citation, e.g. the dataset of the images. [default: nothing added]"),
    ] = None,
    ood_set: Annotated[
        list[str] | None,
        typer.Option(help="An OOD-set task for the transfer probes (repeatable). [default: none]"),
    ] = None,
) -> None:
    """Derive a BREEDS task from the hierarchy files and write it as a frozen task file."""
    from subclassbench.tasks.breeds import BuildOptions, build_task_file, write_task_file

    options = BuildOptions(
        preset, level, subclasses, ancestor, split, seed, shuffled, root, name,
        None if classes is None else str(classes), image_size, val_fraction, description, cite,
        tuple(ood_set or ()),
    )  # fmt: skip
    text = build_task_file(hierarchy, options)
    if out is not None and str(out) == "-":
        typer.echo(text, nl=False)
        return
    path = write_task_file(text, out or Path(f"{options.task_name()}.yaml"), force)
    typer.echo(f"wrote {path}")
