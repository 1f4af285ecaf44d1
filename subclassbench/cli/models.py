"""train, encoders and layers: the commands about encoders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from subclassbench.cli import (
    QuietOption,
    RayAddressOption,
    RayCpusOption,
    app,
    gpus_option,
    seed_option,
    user_errors,
)
from subclassbench.errors import SubclassbenchError


@app.command()
@user_errors
def train(
    task: Annotated[str, typer.Option(help="Task whose train split is used.")],
    arch: Annotated[str, typer.Option(help="Builtin architecture (see `subclassbench encoders`).")],
    out: Annotated[Path, typer.Option(help="Run folder: weights, card, correctness log, resume state.")],
    labels: Annotated[
        str,
        typer.Option(
            help="superclass or subclass labels (coarse/fine are aliases), or permuted: the superclass labels "
            "shuffled among the training images, a negative control."
        ),
    ] = "superclass",
    epochs: Annotated[int, typer.Option(min=0, help="0 writes the seeded random initialisation.")] = 30,
    seed: Annotated[int, seed_option("Seed of the initialisation, the batch order and the augmentation.")] = 0,
    lr: Annotated[float, typer.Option(help="SGD learning rate at the start of the schedule.")] = 0.05,
    batch_size: Annotated[int, typer.Option(min=1, help="Training images per SGD step.")] = 64,
    weight_decay: Annotated[float, typer.Option(help="SGD weight decay (L2).")] = 5e-4,
    momentum: Annotated[float, typer.Option(help="SGD momentum (Nesterov when > 0).")] = 0.9,
    augment: Annotated[str, typer.Option(help="auto, none or crop_flip.")] = "auto",
    norm: Annotated[
        str | None, typer.Option(help="cifar_resnet*: bn, ln or none. [default: the architecture's own (bn)]")
    ] = None,
    checkpoint_every: Annotated[int, typer.Option(min=0, help="Keep weights every k epochs (0: never).")] = 0,
    data: Annotated[
        str | None,
        typer.Option(help="Image data folder holding the train and test splits. [default: the task's own source]"),
    ] = None,
    threads: Annotated[int, typer.Option(min=0, help="torch threads (0: default); recorded in the card.")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run found in --out.")] = True,
    device: Annotated[
        str, typer.Option(help="torch device, e.g. cpu or cuda; in-memory data is held on it whole.")
    ] = "cpu",
    precision: Annotated[
        str, typer.Option(help="fp32, or bf16 autocast for the forward pass (mixed precision); recorded.")
    ] = "fp32",
    quiet: QuietOption = False,
) -> None:
    """Train a builtin architecture on TASK's superclass or subclass labels."""
    import torch

    from subclassbench.evaluation.request import check_device
    from subclassbench.tasks.task import load_task
    from subclassbench.training.trainer import Recipe
    from subclassbench.training.trainer import train as run_training

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
        precision=precision,
    )
    check_device(device)
    arch_kwargs = {"norm": norm} if norm else {}
    card = run_training(load_task(task), arch, labels, out, recipe, data, arch_kwargs, resume, not quiet, device=device)
    acc = card["final_test_acc"]
    typer.echo(
        f"{arch} on {task} ({card['labels']} labels, seed {seed}, {epochs} epochs): test accuracy "
        + ("n/a" if acc is None else f"{acc:.4f}")
        + f"; weights sha256 {card['weights_sha256'][:12]}…"
    )
    typer.echo(
        f"wrote {out}/model.safetensors and {out}/card.json; evaluate with --model builtin:{arch} --weights {out}"
    )


@app.command("train-runs")
@user_errors
def train_runs_command(
    runs: Annotated[Path, typer.Option(help="YAML list of runs: - task, arch (lists expand), labels, seed, recipe.")],
    out: Annotated[Path, typer.Option(help="Folder of run folders: <out>/<task>-<arch>-<labels>-s<seed>.")],
    executor: Annotated[str, typer.Option(help="local (one run after another) or ray.")] = "local",
    device: Annotated[
        str | None, typer.Option(help="torch device of every run. [default: cuda with --gpus-per-task, else cpu]")
    ] = None,
    threads: Annotated[int, typer.Option(min=1, help="torch threads (and Ray CPUs) per run.")] = 1,
    gpus_per_task: Annotated[float, gpus_option("GPUs per run on Ray: 1 trains one run per GPU, 0.5 two.")] = 0.0,
    address: RayAddressOption = None,
    workers: RayCpusOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the runs' outcomes as one JSON document.")] = False,
    quiet: QuietOption = False,
) -> None:
    """Train every run of a runs file, one after another or one per GPU on Ray; interrupted runs resume."""
    from subclassbench.training.runs import load_runs, train_runs

    report = train_runs(
        load_runs(runs, out), executor, device, threads, gpus_per_task, address, workers, progress=not quiet
    )
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for o in report.outcomes:
            detail = (
                f"test accuracy {o.final_test_acc}, {o.train_seconds} s on {o.device}"
                if o.status == "done"
                else f"{o.error} (after {o.attempts} attempts)"
            )
            typer.echo(f"{o.status:6} {o.run}: {detail}")
    if report.failed:
        typer.echo(f"{len(report.failed)} of {len(report.outcomes)} runs failed", err=True)
        raise typer.Exit(1)


@app.command()
@user_errors
def encoders() -> None:
    """List builtin encoders (with packaged weights tags) and the other sources."""
    from subclassbench.encoders.architectures import ARCHITECTURES
    from subclassbench.encoders.base import ENCODER_SOURCES
    from subclassbench.encoders.builtin import packaged_tags

    for arch, info in ARCHITECTURES.items():
        tags = packaged_tags(arch)
        tag_text = f"  [weights: {', '.join(tags)}]" if tags else ""
        typer.echo(f"builtin:{arch:<16} {info.description}{tag_text}")
    for name in ENCODER_SOURCES.names()[1:]:  # builtin: listed architecture by architecture above
        try:
            source = ENCODER_SOURCES.get(name)
        except SubclassbenchError as exc:  # a broken plug-in is listed with its error, not a failed listing
            typer.echo(f"{name}:  {exc}")
            continue
        origin = ENCODER_SOURCES.plugins.get(name)
        typer.echo(source.usage + (f"  [plug-in {origin}]" if origin else ""))


@app.command()
@user_errors
def layers(
    model: Annotated[str, typer.Argument(help="Encoder spec.")],
    weights: Annotated[
        str | None,
        typer.Option(help="Weights file, as for evaluate. [default: the spec's own]"),
    ] = None,
    random_init: Annotated[
        bool, typer.Option("--random-init", help="timm/open_clip: do not download pretrained weights.")
    ] = False,
    all_modules: Annotated[
        bool, typer.Option("--all", help="Every named module (any of them may be passed to --layers).")
    ] = False,
) -> None:
    """List the layers of MODEL that `evaluate --layers` accepts, input side first."""
    from subclassbench.encoders.base import load_encoder

    encoder = load_encoder(model, weights=weights, sample_shape=(3, 32, 32), pretrained=not random_init)
    names = [n for n, _ in encoder.model.named_modules() if n] if all_modules else encoder.layer_names
    for name in names:
        typer.echo(name)
