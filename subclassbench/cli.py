"""Command line: ``subclassbench evaluate | tasks | encoders | layers``.

User errors (:class:`SubclassbenchError`) become one line on stderr and exit
code 2; nothing is written when a command fails.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from subclassbench.errors import SubclassbenchError

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    help="Score every layer of an encoder for subclass clusterability (protocol v1).",
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
)
tasks_app = typer.Typer(help="List tasks, or show one resolved task.", invoke_without_command=True)
app.add_typer(tasks_app, name="tasks")


def user_errors(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SubclassbenchError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _split_list(values: list[str] | None) -> list[str] | None:
    """Comma-separated or repeated option values as one list."""
    if not values:
        return None
    return [name.strip() for item in values for name in item.split(",") if name.strip()]


def _write_and_report(result: dict[str, Any], out: Path | None, quiet: bool, header: bool) -> None:
    """Write a result (``out`` or the default path) and print its table and summary (evaluate, score)."""
    from subclassbench.evaluate import default_output_path
    from subclassbench.results import format_summary, format_table, write_result

    path = write_result(result, out or default_output_path(result))
    if not quiet:
        if header:
            typer.echo(
                f"{result['encoder']['spec']} on {result['task']['name']} ({result['task']['n_samples']} samples, "
                f"protocol v{result['protocol']['version']})"
            )
        typer.echo(format_table(result))
        for line in format_summary(result):
            typer.echo(line)
    typer.echo(f"wrote {path}")


@app.command()
@user_errors
def evaluate(
    model: Annotated[str, typer.Option(help="Encoder spec: builtin:ARCH[.TAG], timm:NAME, open_clip:ARCH[@TAG].")] = (
        "builtin:digits_cnn.digits5_coarse"
    ),
    task: Annotated[str, typer.Option(help="Task name (see `subclassbench tasks`) or task file path.")] = "digits-5",
    weights: Annotated[str | None, typer.Option(help="Weights file: .safetensors or a torch checkpoint.")] = None,
    data: Annotated[
        str | None,
        typer.Option(help="Image data: .npz, a folder of *_<split>.npz, an image-folder tree or a saved HF dataset."),
    ] = None,
    layers: Annotated[list[str] | None, typer.Option(help="Layers to score (comma-separated or repeated).")] = None,
    split: Annotated[str | None, typer.Option(help="Split to score (default: the task's evaluation split).")] = None,
    out: Annotated[Path | None, typer.Option(help="Result JSON path (default: results/<model>/<task>.json).")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 256,
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
    cache_dir: Annotated[
        str | None, typer.Option(help="Feature cache folder (default: ~/.cache/subclassbench).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or table.")] = False,
) -> None:
    """Score every layer of MODEL on TASK and write a schema-checked result JSON."""
    import torch

    from subclassbench.evaluate import evaluate as run
    from subclassbench.results import check_output_path

    try:
        torch_device = torch.device(device)
    except RuntimeError:
        raise SubclassbenchError(f"unknown device '{device}'; use cpu, cuda or cuda:N") from None
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise SubclassbenchError(f"device '{device}' is not available here; use --device cpu")
    if out is not None:
        check_output_path(out)
    request = _request_from(
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
        pretrained=not random_init,
        image_preprocessing=image_preprocessing,
        cache="off" if no_cache else "use",
    )
    if image_preprocessing not in ("task", "encoder"):
        raise SubclassbenchError(f"unknown --image-preprocessing '{image_preprocessing}'; use task or encoder")
    _write_and_report(run(request), out, quiet, header=True)


@app.command()
@user_errors
def train(
    task: Annotated[str, typer.Option(help="Task whose train split is used.")],
    arch: Annotated[str, typer.Option(help="Builtin architecture (see `subclassbench encoders`).")],
    out: Annotated[Path, typer.Option(help="Run folder: weights, card, correctness log, resume state.")],
    labels: Annotated[str, typer.Option(help="coarse (superclass) or fine (subclass) labels.")] = "coarse",
    epochs: Annotated[int, typer.Option(min=0, help="0 writes the seeded random initialisation.")] = 30,
    seed: Annotated[int, typer.Option()] = 0,
    lr: Annotated[float, typer.Option()] = 0.05,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    weight_decay: Annotated[float, typer.Option()] = 5e-4,
    momentum: Annotated[float, typer.Option()] = 0.9,
    augment: Annotated[str, typer.Option(help="auto, none or crop_flip.")] = "auto",
    norm: Annotated[str | None, typer.Option(help="cifar_resnet*: bn, ln or none.")] = None,
    checkpoint_every: Annotated[int, typer.Option(min=0, help="Keep weights every k epochs (0: never).")] = 0,
    data: Annotated[str | None, typer.Option(help="Image data folder holding the train and test splits.")] = None,
    threads: Annotated[int, typer.Option(min=0, help="torch threads (0: default); recorded in the card.")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run found in --out.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Train a builtin architecture on TASK's superclass or subclass labels."""
    import torch

    from subclassbench.tasks import load_task
    from subclassbench.training import Recipe
    from subclassbench.training import train as run_training

    if threads:
        torch.set_num_threads(threads)
    recipe = Recipe(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        augment=augment,
        seed=seed,
        checkpoint_every=checkpoint_every,
    )
    card = run_training(
        load_task(task),
        arch,
        labels,
        out,
        recipe,
        data=data,
        arch_kwargs={"norm": norm} if norm else None,
        resume=resume,
        progress=not quiet,
    )
    acc = card["final_test_acc"]
    typer.echo(
        f"{arch} on {task} ({labels} labels, seed {seed}, {epochs} epochs): test accuracy "
        + ("n/a" if acc is None else f"{acc:.4f}")
        + f"; weights sha256 {card['weights_sha256'][:12]}…"
    )
    typer.echo(
        f"wrote {out}/model.safetensors and {out}/card.json; evaluate with --model builtin:{arch} --weights {out}"
    )


@tasks_app.callback()
@user_errors
def tasks(ctx: typer.Context) -> None:
    """List the shipped tasks."""
    if ctx.invoked_subcommand is not None:
        return
    from tabulate import tabulate

    from subclassbench.tasks import list_tasks, load_task

    rows = []
    for name in list_tasks():
        task = load_task(name)
        rows.append(
            [
                name,
                task.version,
                task.data["source"],
                len(task.superclasses),
                task.n_subclasses,
                task.description.split(". ")[0][:70],
            ]
        )
    typer.echo(tabulate(rows, headers=["task", "version", "source", "superclasses", "subclasses", "description"]))


@tasks_app.command("show")
@user_errors
def tasks_show(
    name: Annotated[str, typer.Argument(help="Task name or task file path.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the resolved task as JSON.")] = False,
    data: Annotated[str | None, typer.Option(help="Data path, to include content hashes in the fingerprint.")] = None,
) -> None:
    """Show a resolved task: hierarchy, splits and fingerprint."""
    from subclassbench.tasks import load_task

    task = load_task(name)
    split = None
    if not task.needs_data_path or data is not None:
        split = task.load_split(data_path=data)
    summary = task.summary(split)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(
        f"{task.name} v{task.version}  fingerprint {summary['fingerprint']}"
        + ("" if split else " (definition only: pass --data to hash the images)")
    )
    typer.echo(task.description)
    for sup in summary["superclasses"]:
        members = ", ".join(f"{n} ({i})" for n, i in zip(sup["subclass_names"], sup["subclasses"], strict=False))
        typer.echo(f"  {sup['id']}: {sup['name']}  ←  {members}")
    typer.echo("splits: " + ", ".join(f"{k}={v}" for k, v in summary["splits"].items()))


@tasks_app.command("build-breeds")
@user_errors
def tasks_build_breeds(
    hierarchy: Annotated[
        Path, typer.Option(help="Folder with dataset_class_info.json, class_hierarchy.txt and node_names.txt.")
    ],
    preset: Annotated[
        str | None, typer.Option(help="A published task: living17, entity30, entity13 or nonliving26.")
    ] = None,
    level: Annotated[int | None, typer.Option(help="Superclass depth below the root (root = 0).")] = None,
    subclasses: Annotated[int | None, typer.Option(help="Subclasses per superclass (even for split tasks).")] = None,
    ancestor: Annotated[str | None, typer.Option(help="Only superclasses inside this node's subtree.")] = None,
    split: Annotated[str, typer.Option(help="Source/target split: rand, good, bad or none.")] = "rand",
    seed: Annotated[int, typer.Option(help="numpy RandomState seed (2 for every published task).")] = 2,
    shuffled: Annotated[bool, typer.Option("--shuffled", help="Build the shuffled control instead.")] = False,
    root: Annotated[str, typer.Option(help="The hierarchy's root node (level 0).")] = "n00001740",
    name: Annotated[str | None, typer.Option(help="Task name (default: breeds-<preset>[-shuffled]).")] = None,
    out: Annotated[Path | None, typer.Option(help="Output task file (default: ./<name>.yaml; '-' prints).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Derive a BREEDS task from the hierarchy files and write it as a frozen task file."""
    import yaml

    from subclassbench.breeds import build_task_file
    from subclassbench.tasks import Task

    if name is None:
        if preset is None:
            raise SubclassbenchError("pass --name for a task built without --preset")
        name = f"breeds-{preset}" + ("-shuffled" if shuffled else "")
    words = ["subclassbench tasks build-breeds"]
    if preset:
        words.append(f"--preset {preset}")
    for flag, value in (("--level", level), ("--subclasses", subclasses), ("--ancestor", ancestor)):
        if value is not None:
            words.append(f"{flag} {value}")
    if split != "rand":
        words.append(f"--split {split}")
    if seed != 2:
        words.append(f"--seed {seed}")
    if shuffled:
        words.append("--shuffled")
    if root != "n00001740":
        words.append(f"--root {root}")
    text = build_task_file(
        hierarchy, name, preset, level, ancestor, subclasses, split, seed, shuffled, " ".join(words), root
    )
    Task.from_dict(yaml.safe_load(text))  # a task that would not load is never written
    if out is not None and str(out) == "-":
        typer.echo(text, nl=False)
        return
    path = out or Path(f"{name}.yaml")
    if path.exists() and not force:
        raise SubclassbenchError(f"{path} exists; pass --force to overwrite it or --out another path")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    typer.echo(f"wrote {path}")


@app.command()
@user_errors
def encoders() -> None:
    """List builtin encoders (with packaged weights tags) and the other sources."""
    from subclassbench.architectures import ARCHITECTURES
    from subclassbench.encoders import packaged_tags

    for arch, info in ARCHITECTURES.items():
        tags = packaged_tags(arch)
        tag_text = f"  [weights: {', '.join(tags)}]" if tags else ""
        typer.echo(f"builtin:{arch:<16} {info.description}{tag_text}")
    typer.echo("timm:<model>[.<tag>]       any timm model (pretrained weights local/online, or --weights)")
    typer.echo("open_clip:<arch>[@<tag>]   any OpenCLIP image tower")


@app.command()
@user_errors
def layers(
    model: Annotated[str, typer.Argument(help="Encoder spec.")],
    weights: Annotated[str | None, typer.Option()] = None,
    random_init: Annotated[bool, typer.Option("--random-init")] = False,
) -> None:
    """List the layers of MODEL that `evaluate --layers` accepts, input side first."""
    from subclassbench.encoders import load_encoder

    encoder = load_encoder(model, weights=weights, sample_shape=(3, 32, 32), pretrained=not random_init)
    for name in encoder.layer_names:
        typer.echo(name)


# --------------------------------------------------------------------------- submissions and leaderboard


@app.command()
@user_errors
def submit(
    name: Annotated[str, typer.Option(help="Submission folder name under submissions/ (lower case, - . _).")],
    model: Annotated[str, typer.Option(help="Encoder spec, as for evaluate.")],
    task: Annotated[list[str], typer.Option(help="Task(s) to evaluate (comma-separated or repeated).")],
    weights: Annotated[
        Path | None, typer.Option(help="Weights file; stored in the submission as weights.safetensors.")
    ] = None,
    data: Annotated[str | None, typer.Option(help="Data path for tasks that need one.")] = None,
    labels: Annotated[
        str | None,
        typer.Option(help="Training label granularity: fine, superclass, self-supervised, text-supervised, none."),
    ] = None,
    label_task: Annotated[str | None, typer.Option(help="With --labels superclass: the task whose labels.")] = None,
    training_data: Annotated[str | None, typer.Option(help="What the encoder was trained on.")] = None,
    license: Annotated[str | None, typer.Option(help="License of the weights (SPDX id).")] = None,
    citation: Annotated[str | None, typer.Option(help="How to cite the encoder.")] = None,
    description: Annotated[str | None, typer.Option(help="One line about the encoder.")] = None,
    data_note: Annotated[
        str | None, typer.Option(help="Where the evaluated data came from (say if it is degraded).")
    ] = None,
    random_init: Annotated[bool, typer.Option("--random-init", help="timm/open_clip: no pretrained weights.")] = False,
    metrics: Annotated[list[str] | None, typer.Option(help="Metric families (default: all).")] = None,
    submissions: Annotated[Path, typer.Option(help="The submissions folder.")] = Path("submissions"),
    batch_size: Annotated[int, typer.Option(min=1)] = 256,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Evaluate MODEL on TASK(s) and create or update submissions/NAME (model.yaml + results/)."""
    import tempfile

    from subclassbench.evaluate import EvaluationRequest
    from subclassbench.evaluate import evaluate as run
    from subclassbench.results import write_result
    from subclassbench.submissions import (
        RESULTS_DIR,
        WEIGHTS_FILE,
        new_model_file,
        read_model_file,
        store_weights,
        validate_submission,
        write_model_file,
    )

    folder = submissions / name
    tasks_to_run = _split_list(task) or []
    if weights is not None:
        from subclassbench.encoders import resolve_trained_weights

        if not weights.exists():
            raise SubclassbenchError(f"weights {weights} do not exist; pass a .safetensors or torch checkpoint file")
        weights, card = resolve_trained_weights(weights)
        if card and card.get("arch_kwargs"):
            raise SubclassbenchError(
                f"{weights} needs architecture switches {card['arch_kwargs']}; submit it as a packaged builtin tag"
            )
    if (folder / "model.yaml").exists():
        entry = read_model_file(folder)
        if entry["encoder"]["spec"] != model:
            raise SubclassbenchError(
                f"{folder} is a submission of {entry['encoder']['spec']}, not {model}; choose another --name"
            )
        if random_init != bool(entry["encoder"].get("random_init", False)):
            raise SubclassbenchError(f"--random-init must match {folder}'s model.yaml (encoder.random_init)")
    else:
        missing = [
            f"--{n}"
            for n, v in (
                ("labels", labels),
                ("training-data", training_data),
                ("license", license),
                ("citation", citation),
            )
            if not v
        ]
        if missing:
            raise SubclassbenchError(f"a new submission needs {', '.join(missing)} (see docs/submitting.md)")
        assert labels and training_data and license and citation
        entry = new_model_file(name, model, labels, training_data, license, citation, label_task, description)
        if random_init:
            entry["encoder"]["random_init"] = True
    submissions.mkdir(parents=True, exist_ok=True)  # staging beside the target keeps the final renames atomic
    with tempfile.TemporaryDirectory(prefix=".staging-", dir=submissions) as staging:
        stage = Path(staging)
        weights_for_run: Path | None = None
        if weights is not None:
            stored = store_weights(stage, weights)
            declared = entry["encoder"]["weights"]
            if declared is not None and declared["sha256"] != stored["sha256"]:
                raise SubclassbenchError(f"{weights} differs from the weights of {folder}; choose another --name")
            entry["encoder"]["weights"] = declared or stored
            weights_for_run = stage / WEIGHTS_FILE
        elif entry["encoder"]["weights"] is not None:
            weights_for_run = folder / entry["encoder"]["weights"]["file"]
        results = {}
        for task_name in tasks_to_run:
            result = run(
                EvaluationRequest(
                    model=model,
                    task=task_name,
                    weights=None if weights_for_run is None else str(weights_for_run),
                    data=data,
                    batch_size=batch_size,
                    pretrained=not (random_init or entry["encoder"].get("random_init", False)),
                    progress=not quiet,
                    metrics=_split_list(metrics),
                )
            )
            if weights_for_run is not None:  # a portable path: where the weights live in the repository
                result["encoder"]["weights"]["path"] = f"{submissions.as_posix()}/{name}/{WEIGHTS_FILE}"
            results[result["task"]["name"]] = result
            task_key = result["task"]["name"]
            default_note = result["task"]["data_source"] if data is None else f"--data {data}"
            note = data_note or entry["evaluation_data"].get(task_key) or default_note  # keep a note on update
            entry["evaluation_data"][result["task"]["name"]] = note
        # Everything computed: now move it into place, model.yaml last.
        folder.mkdir(parents=True, exist_ok=True)
        if weights is not None and not (folder / WEIGHTS_FILE).exists():
            (stage / WEIGHTS_FILE).replace(folder / WEIGHTS_FILE)
        for task_name, result in results.items():
            write_result(result, folder / RESULTS_DIR / f"{task_name}.json")
        write_model_file(folder, entry)
    report = validate_submission(folder)
    for line in report.errors + report.stale:
        typer.echo(line)
    if report.errors:
        raise typer.Exit(2)
    typer.echo(f"{folder}: {len(report.results)} result(s) valid; run `subclassbench leaderboard build` next")


@app.command()
@user_errors
def validate(
    path: Annotated[Path, typer.Argument(help="submissions/ or one submissions/<name>.")] = Path("submissions"),
) -> None:
    """Check submissions: model.yaml schema, weights sha256, result schema, fingerprints (stale results)."""
    from subclassbench.submissions import validate_tree

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
    data: Annotated[
        str | None, typer.Option(help="Data path (default: the one the result records, if present).")
    ] = None,
    task: Annotated[list[str] | None, typer.Option(help="Only these tasks.")] = None,
) -> None:
    """Re-run a submission's results and compare them within the documented tolerances."""
    from subclassbench.evaluate import EvaluationRequest
    from subclassbench.evaluate import evaluate as run
    from subclassbench.results import read_result
    from subclassbench.submissions import (
        RESULTS_DIR,
        compare_results,
        read_model_file,
        validate_submission,
        weights_path,
    )
    from subclassbench.tasks import load_task

    report = validate_submission(path)
    if report.errors:
        raise SubclassbenchError(f"{report.errors[0]} (run `subclassbench validate {path}`)")
    entry = read_model_file(path)
    wanted = set(_split_list(task) or [])
    failed = checked = 0
    for result_path in sorted((path / RESULTS_DIR).glob("*.json")):
        submitted = read_result(result_path)
        name = submitted["task"]["name"]
        if wanted and name not in wanted:
            continue
        task_obj = load_task(name)
        source = data or submitted["task"]["data_source"]
        if task_obj.needs_data_path and not Path(source).exists():
            typer.echo(f"{name}: skipped (needs its data; pass --data)")
            continue
        file = weights_path(path, entry)
        rerun = run(
            EvaluationRequest(
                model=entry["encoder"]["spec"],
                task=name,
                weights=None if file is None else str(file),
                data=source if task_obj.needs_data_path else None,
                split=submitted["task"]["split"],
                pretrained=not entry["encoder"].get("random_init", False),
                progress=False,
                metrics=submitted["metrics"],
                cache="off",  # a verification recomputes features, never reads them back
            )
        )
        checked += 1
        if rerun["task"]["fingerprint"] != submitted["task"]["fingerprint"]:
            typer.echo(f"{name}: FAIL: the data differs from the submission's (task fingerprint)")
            failed += 1
            continue
        differences = compare_results(submitted, rerun)
        if differences:
            failed += 1
            typer.echo(f"{name}: FAIL ({len(differences)} difference(s) outside tolerance)")
            for d in differences[:10]:
                typer.echo(f"  {d}")
        else:
            typer.echo(f"{name}: OK ({len(rerun['layers'])} layers within tolerance)")
    if failed:
        raise typer.Exit(1)
    if checked == 0:
        typer.echo("nothing verified: no result had its data available")


@app.command()
@user_errors
def compare(
    model: Annotated[list[str], typer.Option(help="Two encoder specs (repeat --model); one compares it with itself.")],
    task: Annotated[str, typer.Option(help="Task whose evaluation split is compared.")] = "digits-5",
    weights: Annotated[list[str] | None, typer.Option(help="Weights per --model, in order ('-' for none).")] = None,
    data: Annotated[str | None, typer.Option(help="Data path for tasks that need one.")] = None,
    k: Annotated[
        int | None, typer.Option(help="Concepts per layer (default: the task's number of subclasses).")
    ] = None,
    max_samples: Annotated[int, typer.Option(help="Seeded subsample of the split (0: all samples).")] = 5000,
    seed: Annotated[int, typer.Option(help="Seed of the subsample and the soft clustering.")] = 0,
    pair: Annotated[
        str | None, typer.Option(help="LAYER_A,LAYER_B for the concept list (default: last layers).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Output folder: compare.json, cka.png, gri.png.")] = Path("results/compare"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Layer×layer CKA and generalized-Rand-index (concept) alignment between two encoders."""
    from subclassbench.compare import compare as run
    from subclassbench.compare import heatmap
    from subclassbench.hashing import canonical_json

    specs = _split_list(model) or []
    given = [None if w in ("-", "") else w for w in (_split_list(weights) or [])]
    if len(specs) == 1:  # one encoder compared with itself
        specs, given = specs * 2, given * 2
    if len(specs) != 2:
        raise SubclassbenchError(f"pass one or two --model options, got {len(specs)}")
    if given and len(given) != len(specs):
        raise SubclassbenchError("pass one --weights per --model ('-' for an encoder without a weights file)")
    w_a, w_b = ([*given, None, None])[:2] if given else (None, None)
    layer_pair = None
    if pair:
        parts = pair.split(",")
        if len(parts) != 2:
            raise SubclassbenchError(f"--pair needs LAYER_A,LAYER_B, got '{pair}'")
        layer_pair = (parts[0].strip(), parts[1].strip())
    if out.exists() and not out.is_dir():
        raise SubclassbenchError(f"--out {out} is a file; pass a folder")
    doc = run(
        specs[0],
        specs[1],
        task,
        w_a,
        w_b,
        data,
        k=k,
        max_samples=max_samples or None,
        seed=seed,
        pair=layer_pair,
        progress=not quiet,
    )
    out.mkdir(parents=True, exist_ok=True)
    a, b = doc["a"]["layers"], doc["b"]["layers"]
    files = {
        "compare.json": (json.dumps(json.loads(canonical_json(doc)), indent=2) + "\n").encode(),
        "cka.png": heatmap(doc["cka"], a, b, f"linear CKA: {specs[0]} (rows) vs {specs[1]}"),
        "gri.png": heatmap(doc["gri"], a, b, f"generalized Rand index: {specs[0]} (rows) vs {specs[1]}"),
    }
    for name, payload in files.items():
        tmp = out / (name + ".tmp")
        tmp.write_bytes(payload)
        tmp.replace(out / name)
    if not quiet:
        best = doc["gri_to_labels"]["a"]
        top = max(range(len(best)), key=best.__getitem__)
        typer.echo(f"{specs[0]} vs {specs[1]} on {task} ({doc['samples']['n']} samples, k={doc['memberships']['k']})")
        typer.echo(f"layer of A most aligned with the subclass labels: {a[top]} (GRI {best[top]:.3f})")
        check = doc["adjacent_layer_check"]
        typer.echo(
            f"adjacent-layer check (share of layers whose best match is a neighbour): A {check['a']}, B {check['b']}"
        )
        c = doc["concepts"]
        typer.echo(
            f"concepts at {c['layer_a']} × {c['layer_b']}: {len(c['universal'])} universal, "
            f"{len(c['unique_pairs'])} matched but unique, {len(c['unmatched_a'])}+{len(c['unmatched_b'])} unmatched"
        )
    typer.echo(f"wrote {out}/compare.json, cka.png, gri.png")


@app.command("agreement")
@user_errors
def agreement_command(
    runs: Annotated[list[Path], typer.Argument(help="Run folders written by `subclassbench train`.")],
    out: Annotated[Path, typer.Option(help="Output folder: agreement.json, agreement.png.")] = Path(
        "results/agreement"
    ),
) -> None:
    """Per-epoch agreement of several training runs (Pliushch et al. 2022), with accuracy mean and spread."""
    from subclassbench.compare import agreement_over_runs, agreement_plot

    doc = agreement_over_runs(list(runs))
    out.mkdir(parents=True, exist_ok=True)
    for name, payload in (
        ("agreement.json", (json.dumps(doc, indent=2) + "\n").encode()),
        ("agreement.png", agreement_plot(doc)),
    ):
        tmp = out / (name + ".tmp")
        tmp.write_bytes(payload)
        tmp.replace(out / name)
    last = doc["epochs"] - 1
    typer.echo(
        f"{len(runs)} runs, {doc['epochs']} epochs: final agreement {doc['agreement'][last]:.3f}, "
        f"accuracy {doc['accuracy_mean'][last]:.3f} ± {doc['accuracy_std'][last]:.3f}; wrote {out}/agreement.json"
    )


# --------------------------------------------------------------------------- extract / score / cache / run


def _request_from(
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
    **extra: Any,
) -> Any:
    from subclassbench.evaluate import EvaluationRequest

    return EvaluationRequest(
        model=model,
        task=task,
        weights=weights,
        data=data,
        layers=_split_list(layers),
        split=split,
        metrics=_split_list(metrics),
        batch_size=batch_size,
        device=device,
        cache_dir=cache_dir,
        progress=not quiet,
        **extra,
    )


# Options that extract and score share (the cache key is built from the same request fields).
ModelOption = Annotated[str, typer.Option(help="Encoder spec.")]
TaskOption = Annotated[str, typer.Option(help="Task name or file.")]
WeightsOption = Annotated[str | None, typer.Option(help="Weights file.")]
DataOption = Annotated[str | None, typer.Option(help="Data path.")]
LayersOption = Annotated[list[str] | None, typer.Option(help="Layers (default: all).")]
SplitOption = Annotated[str | None, typer.Option(help="Evaluation split (default: the task's).")]


@app.command()
@user_errors
def extract(
    model: ModelOption = "builtin:digits_cnn.digits5_coarse",
    task: TaskOption = "digits-5",
    weights: WeightsOption = None,
    data: DataOption = None,
    layers: LayersOption = None,
    split: SplitOption = None,
    metrics: Annotated[list[str] | None, typer.Option(help="Which families' splits to extract.")] = None,
    shard: Annotated[str | None, typer.Option(help="I/N: extract only the I-th of N contiguous parts.")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 256,
    device: Annotated[str, typer.Option()] = "cpu",
    cache_dir: Annotated[str | None, typer.Option(help="Feature cache folder.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Extract pooled per-layer features into the content-addressed cache (skipping cached entries)."""
    from subclassbench.evaluate import extract as run

    part = None
    if shard:
        try:
            index, count = (int(x) for x in shard.split("/"))
        except ValueError:
            raise SubclassbenchError(f"--shard needs I/N (e.g. 2/4), got '{shard}'") from None
        if not 1 <= index <= count:
            raise SubclassbenchError(f"--shard {shard}: I must be between 1 and N")
        part = (index - 1, count)
    request = _request_from(model, task, weights, data, layers, split, metrics, batch_size, device, cache_dir, quiet)
    stats = run(request, shard=part)
    typer.echo(f"{model} on {task}{f' shard {shard}' if shard else ''}: {stats.misses} extracted, {stats.hits} cached")


@app.command()
@user_errors
def score(
    model: ModelOption = "builtin:digits_cnn.digits5_coarse",
    task: TaskOption = "digits-5",
    weights: WeightsOption = None,
    data: DataOption = None,
    layers: LayersOption = None,
    split: SplitOption = None,
    metrics: Annotated[list[str] | None, typer.Option(help="clusterability and/or transfer.")] = None,
    shards: Annotated[int | None, typer.Option(help="Merge features from N cached shards.")] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="The batch size the shards were extracted with (shard borders follow it).")
    ] = 256,
    out: Annotated[Path | None, typer.Option(help="Result JSON path.")] = None,
    cache_dir: Annotated[str | None, typer.Option(help="Feature cache folder.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Score MODEL on TASK from cached features only (no forward pass); writes the result JSON."""
    from subclassbench.evaluate import evaluate as run
    from subclassbench.results import check_output_path

    if out is not None:
        check_output_path(out)
    request = _request_from(
        model,
        task,
        weights,
        data,
        layers,
        split,
        metrics,
        batch_size,
        "cpu",
        cache_dir,
        quiet,
        cache="only",
        n_shards=shards,
    )
    _write_and_report(run(request), out, quiet, header=False)


cache_app = typer.Typer(help="Inspect or prune the feature cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("ls")
@user_errors
def cache_ls(cache_dir: Annotated[str | None, typer.Option(help="Feature cache folder.")] = None) -> None:
    """One line per cached feature matrix."""
    from tabulate import tabulate

    from subclassbench.cache import FeatureCache

    cache = FeatureCache(Path(cache_dir) if cache_dir else None)
    rows = [
        [
            e["key"][:12],
            e["fields"]["encoder"]["spec"],
            e.get("task"),
            e.get("split_name"),
            e["fields"]["layer"],
            "×".join(map(str, e["shape"])),
            "all" if e["fields"]["rows"] is None else "{}:{}".format(*e["fields"]["rows"]),
            f"{e['bytes'] / 1e6:.1f} MB",
        ]
        for e in cache.entries()
    ]
    typer.echo(tabulate(rows, headers=["key", "encoder", "task", "split", "layer", "shape", "rows", "size"]))
    typer.echo(f"{len(rows)} entries in {cache.root}")


@cache_app.command("du")
@user_errors
def cache_du(cache_dir: Annotated[str | None, typer.Option(help="Feature cache folder.")] = None) -> None:
    """Number of entries and bytes on disk."""
    from subclassbench.cache import FeatureCache

    cache = FeatureCache(Path(cache_dir) if cache_dir else None)
    count, size = cache.usage()
    typer.echo(f"{count} entries, {size / 1e6:.1f} MB in {cache.root}")


@cache_app.command("prune")
@user_errors
def cache_prune(
    older_than_days: Annotated[float | None, typer.Option(help="Remove entries older than this.")] = None,
    model: Annotated[str | None, typer.Option(help="Remove entries of this encoder spec.")] = None,
    all_entries: Annotated[bool, typer.Option("--all", help="Remove everything.")] = False,
    cache_dir: Annotated[str | None, typer.Option(help="Feature cache folder.")] = None,
) -> None:
    """Remove cached features (and leftover temporary files)."""
    from subclassbench.cache import FeatureCache

    if older_than_days is None and model is None and not all_entries:
        raise SubclassbenchError("say what to prune: --older-than-days N, --model SPEC or --all")
    cache = FeatureCache(Path(cache_dir) if cache_dir else None)
    removed = cache.prune(None if older_than_days is None else older_than_days * 86400, model, all_entries)
    typer.echo(f"removed {removed} entries from {cache.root}")


@app.command("run")
@user_errors
def run_matrix_command(
    models: Annotated[Path, typer.Option(help="YAML list of models: - model: SPEC (weights: FILE).")],
    tasks: Annotated[Path, typer.Option(help="YAML list of tasks: - task: NAME (data: PATH).")],
    executor: Annotated[str, typer.Option(help="local or ray.")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster to join (default: start a local one).")] = None,
    workers: Annotated[int | None, typer.Option(help="CPUs of the local Ray cluster (default: all).")] = None,
    gpus_per_task: Annotated[float, typer.Option(help="GPUs per Ray task (extraction runs on cuda if > 0).")] = 0.0,
    shards: Annotated[int, typer.Option(help="Contiguous extraction shards per (model, task).")] = 1,
    out: Annotated[Path, typer.Option(help="Results folder.")] = Path("results"),
    cache_dir: Annotated[str | None, typer.Option(help="Feature cache folder (shared by all workers).")] = None,
) -> None:
    """Evaluate every model on every task; (model, task, shard) units run locally or on Ray."""
    from subclassbench.runner import load_matrix, run_matrix

    cells = load_matrix(models, tasks)
    report = run_matrix(cells, out, executor, shards, cache_dir, address, workers, gpus_per_task)
    for o in report.outcomes:
        detail = o.result if o.status != "failed" else f"{o.error} (after {o.attempts} attempts)"
        typer.echo(f"{o.status:7} {o.model} × {o.task}: {detail}")
    if report.failed:
        typer.echo(f"{len(report.failed)} of {len(report.outcomes)} cells failed", err=True)
        raise typer.Exit(1)


leaderboard_app = typer.Typer(help="Build or check the leaderboard from submissions/.", no_args_is_help=True)
app.add_typer(leaderboard_app, name="leaderboard")


@leaderboard_app.command("build")
@user_errors
def leaderboard_build(
    check: Annotated[bool, typer.Option("--check", help="Fail if the committed leaderboard is out of date.")] = False,
    submissions: Annotated[Path, typer.Option(help="The submissions folder.")] = Path("submissions"),
    out: Annotated[Path, typer.Option(help="The leaderboard folder.")] = Path("leaderboard"),
) -> None:
    """Regenerate leaderboard/ (README.md, leaderboard.json, per-task plots, CHANGELOG.md)."""
    from subclassbench.leaderboard import build

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


def main() -> None:
    try:
        app()
    except SubclassbenchError as exc:  # raised outside a command body (e.g. in a callback)
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
