"""Command line: each command parses its options, calls one library function and prints what it returned.

User errors (:class:`SubclassbenchError`) become one ``error:`` line on
stderr and exit code 2; nothing is written when a command fails.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from subclassbench.errors import SubclassbenchError

if TYPE_CHECKING:
    from subclassbench.evaluate import EvaluationRequest
    from subclassbench.results import Result

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    help="Score every layer of an encoder for subclass clusterability and transfer.",
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
)
tasks_app = typer.Typer(help="List tasks, or show one resolved task.", invoke_without_command=True)
app.add_typer(tasks_app, name="tasks")
cache_app = typer.Typer(help="Inspect or prune the feature cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")
leaderboard_app = typer.Typer(help="Build or check the leaderboard from submissions/.", no_args_is_help=True)
app.add_typer(leaderboard_app, name="leaderboard")


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


def _report(result: Result, path: Path, quiet: bool, header: bool) -> None:
    """Print a written result's table and summary (evaluate, score)."""
    from subclassbench.results import format_summary, format_table

    if not quiet:
        if header:
            task = result.task
            typer.echo(
                f"{result.encoder['spec']} on {task['name']} ({task['n_samples']} samples, "
                f"protocol v{result['protocol']['version']})"
            )
        typer.echo(format_table(result))
        for line in format_summary(result):
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
    **extra: Any,
) -> EvaluationRequest:
    from subclassbench.evaluate import EvaluationRequest

    request = EvaluationRequest(
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
    request.check()
    return request


# Options that evaluate, extract and score share (the cache key is built from the same request fields).
ModelOption = Annotated[
    str, typer.Option(help="Encoder spec: builtin:ARCH[.TAG], timm:NAME, open_clip:ARCH[@TAG].")
]
TaskOption = Annotated[str, typer.Option(help="Task name (see `subclassbench tasks`) or task file path.")]
WeightsOption = Annotated[str | None, typer.Option(help="Weights file: .safetensors or a torch checkpoint.")]
DataOption = Annotated[
    str | None,
    typer.Option(help="Image data: .npz, a folder of *_<split>.npz, an image-folder tree or a saved HF dataset."),
]
LayersOption = Annotated[list[str] | None, typer.Option(help="Layers to score (comma-separated or repeated).")]
SplitOption = Annotated[str | None, typer.Option(help="Split to score (default: the task's evaluation split).")]
CacheDirOption = Annotated[str | None, typer.Option(help="Feature cache folder (default: ~/.cache/subclassbench).")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or table.")]
DEFAULT_MODEL = "builtin:digits_cnn.digits5_coarse"


@app.command()
@user_errors
def evaluate(
    model: ModelOption = DEFAULT_MODEL,
    task: TaskOption = "digits-5",
    weights: WeightsOption = None,
    data: DataOption = None,
    layers: LayersOption = None,
    split: SplitOption = None,
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
    cache_dir: CacheDirOption = None,
    quiet: QuietOption = False,
) -> None:
    """Score every layer of MODEL on TASK and write a schema-checked result JSON."""
    from subclassbench.evaluate import evaluate_to_file

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
        pretrained=not random_init,
        image_preprocessing=image_preprocessing,
        cache="off" if no_cache else "use",
    )
    result, path = evaluate_to_file(request, out)
    _report(result, path, quiet, header=True)


@app.command()
@user_errors
def train(
    task: Annotated[str, typer.Option(help="Task whose train split is used.")],
    arch: Annotated[str, typer.Option(help="Builtin architecture (see `subclassbench encoders`).")],
    out: Annotated[Path, typer.Option(help="Run folder: weights, card, correctness log, resume state.")],
    labels: Annotated[str, typer.Option(help="superclass or subclass labels (coarse/fine are aliases).")] = (
        "superclass"
    ),
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
    quiet: QuietOption = False,
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
    arch_kwargs = {"norm": norm} if norm else {}
    card = run_training(load_task(task), arch, labels, out, recipe, data, arch_kwargs, resume, not quiet)
    acc = card["final_test_acc"]
    typer.echo(
        f"{arch} on {task} ({card['labels']} labels, seed {seed}, {epochs} epochs): test accuracy "
        + ("n/a" if acc is None else f"{acc:.4f}")
        + f"; weights sha256 {card['weights_sha256'][:12]}…"
    )
    typer.echo(
        f"wrote {out}/model.safetensors and {out}/card.json; evaluate with --model builtin:{arch} --weights {out}"
    )


@tasks_app.callback()
@user_errors
def tasks(ctx: typer.Context) -> None:
    """List the tasks (built-in and those in $SUBCLASSBENCH_TASKS)."""
    if ctx.invoked_subcommand is not None:
        return
    from tabulate import tabulate

    from subclassbench.tasks import list_tasks, load_task

    rows = []
    for name in list_tasks():
        task = load_task(name)
        brief = task.description.split(". ")[0][:70]
        rows.append([name, task.version, task.data["source"], len(task.superclasses), task.n_subclasses, brief])
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
    from subclassbench.breeds import BuildOptions, build_task_file, write_task_file

    options = BuildOptions(preset, level, subclasses, ancestor, split, seed, shuffled, root, name)
    text = build_task_file(hierarchy, options)
    if out is not None and str(out) == "-":
        typer.echo(text, nl=False)
        return
    path = write_task_file(text, out or Path(f"{options.task_name()}.yaml"), force)
    typer.echo(f"wrote {path}")


@app.command()
@user_errors
def encoders() -> None:
    """List builtin encoders (with packaged weights tags) and the other sources."""
    from subclassbench.architectures import ARCHITECTURES
    from subclassbench.encoders import ENCODER_SOURCES, packaged_tags

    for arch, info in ARCHITECTURES.items():
        tags = packaged_tags(arch)
        tag_text = f"  [weights: {', '.join(tags)}]" if tags else ""
        typer.echo(f"builtin:{arch:<16} {info.description}{tag_text}")
    for name, source in ENCODER_SOURCES:
        if name != "builtin":  # listed architecture by architecture above
            typer.echo(source.usage)


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
    quiet: QuietOption = False,
) -> None:
    """Evaluate MODEL on TASK(s) and create or update submissions/NAME (model.yaml + results/)."""
    from subclassbench.submissions import SubmitRequest
    from subclassbench.submissions import submit as run

    report = run(
        SubmitRequest(
            name=name,
            model=model,
            tasks=_split_list(task) or [],
            weights=weights,
            data=data,
            labels=labels,
            label_task=label_task,
            training_data=training_data,
            license=license,
            citation=citation,
            description=description,
            data_note=data_note,
            random_init=random_init,
            metrics=_split_list(metrics),
            submissions=submissions,
            batch_size=batch_size,
            progress=not quiet,
        )
    )
    for line in report.errors + report.stale:
        typer.echo(line)
    if report.errors:
        raise typer.Exit(2)
    typer.echo(f"{report.folder}: {len(report.results)} result(s) valid; run `subclassbench leaderboard build` next")


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
    quiet: QuietOption = False,
) -> None:
    """Re-run a submission's results and compare them within the documented tolerances."""
    from subclassbench.submissions import verify as run

    outcomes = run(path, data, _split_list(task), progress=not quiet)
    for o in outcomes:
        typer.echo(f"{o.task}: {o.status.upper() if o.status != 'skipped' else 'skipped'} ({o.detail})")
        for d in o.differences[:10]:
            typer.echo(f"  {d}")
    if any(o.status == "fail" for o in outcomes):
        raise typer.Exit(1)
    if not any(o.status == "ok" for o in outcomes):
        typer.echo("nothing verified: no result had its data available")


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


# --------------------------------------------------------------------------- comparisons


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
    quiet: QuietOption = False,
) -> None:
    """Layer×layer CKA and generalized-Rand-index (concept) alignment between two encoders."""
    from subclassbench.compare import compare as run
    from subclassbench.compare import write_comparison

    specs = _split_list(model) or []
    given = [None if w in ("-", "") else w for w in (_split_list(weights) or [])]
    if len(specs) == 1:  # one encoder compared with itself
        specs, given = specs * 2, given * 2
    if len(specs) != 2:
        raise SubclassbenchError(f"pass one or two --model options, got {len(specs)}")
    if given and len(given) != len(specs):
        raise SubclassbenchError("pass one --weights per --model ('-' for an encoder without a weights file)")
    w_a, w_b = ([*given, None, None])[:2] if given else (None, None)
    parts = [p.strip() for p in pair.split(",")] if pair else None
    if parts is not None and len(parts) != 2:
        raise SubclassbenchError(f"--pair needs LAYER_A,LAYER_B, got '{pair}'")
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
        pair=None if parts is None else (parts[0], parts[1]),
        progress=not quiet,
    )
    write_comparison(doc, out, specs[0], specs[1])
    if not quiet:
        a, best = doc["a"]["layers"], doc["gri_to_labels"]["a"]
        top = max(range(len(best)), key=best.__getitem__)
        check, c = doc["adjacent_layer_check"], doc["concepts"]
        typer.echo(f"{specs[0]} vs {specs[1]} on {task} ({doc['samples']['n']} samples, k={doc['memberships']['k']})")
        typer.echo(f"layer of A most aligned with the subclass labels: {a[top]} (GRI {best[top]:.3f})")
        typer.echo(
            f"adjacent-layer check (share of layers whose best match is a neighbour): A {check['a']}, B {check['b']}"
        )
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
    from subclassbench.compare import agreement_over_runs, write_agreement

    doc = agreement_over_runs(list(runs))
    write_agreement(doc, out)
    last = doc["epochs"] - 1
    typer.echo(
        f"{len(runs)} runs, {doc['epochs']} epochs: final agreement {doc['agreement'][last]:.3f}, "
        f"accuracy {doc['accuracy_mean'][last]:.3f} ± {doc['accuracy_std'][last]:.3f}; wrote {out}/agreement.json"
    )


# --------------------------------------------------------------------------- extract / score / cache / run


@app.command()
@user_errors
def extract(
    model: ModelOption = DEFAULT_MODEL,
    task: TaskOption = "digits-5",
    weights: WeightsOption = None,
    data: DataOption = None,
    layers: LayersOption = None,
    split: SplitOption = None,
    metrics: Annotated[list[str] | None, typer.Option(help="Which families' splits to extract.")] = None,
    shard: Annotated[str | None, typer.Option(help="I/N: extract only the I-th of N contiguous parts.")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 256,
    device: Annotated[str, typer.Option()] = "cpu",
    cache_dir: CacheDirOption = None,
    quiet: QuietOption = False,
) -> None:
    """Extract pooled per-layer features into the content-addressed cache (skipping cached entries)."""
    from subclassbench.evaluate import extract as run
    from subclassbench.evaluate import parse_shard

    part = None if shard is None else parse_shard(shard)
    request = _request(model, task, weights, data, layers, split, metrics, batch_size, device, cache_dir, quiet)
    stats = run(request, shard=part)
    typer.echo(f"{model} on {task}{f' shard {shard}' if shard else ''}: {stats.misses} extracted, {stats.hits} cached")


@app.command()
@user_errors
def score(
    model: ModelOption = DEFAULT_MODEL,
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
    cache_dir: CacheDirOption = None,
    quiet: QuietOption = False,
) -> None:
    """Score MODEL on TASK from cached features only (no forward pass); writes the result JSON."""
    from subclassbench.evaluate import evaluate_to_file

    request = _request(
        model, task, weights, data, layers, split, metrics, batch_size, "cpu", cache_dir, quiet, cache="only",
        n_shards=shards,
    )  # fmt: skip
    result, path = evaluate_to_file(request, out)
    _report(result, path, quiet, header=False)


@cache_app.command("ls")
@user_errors
def cache_ls(cache_dir: CacheDirOption = None) -> None:
    """One line per cached feature matrix."""
    from tabulate import tabulate

    from subclassbench.cache import FeatureCache

    cache = FeatureCache(Path(cache_dir) if cache_dir else None)
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
    cache_dir: CacheDirOption = None,
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


def main() -> None:
    try:
        app()
    except SubclassbenchError as exc:  # raised outside a command body (e.g. in a callback)
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
