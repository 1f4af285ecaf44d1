"""compare and agreement: representation comparisons."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from subclassbench.cli import (
    CacheDirOption,
    QuietOption,
    app,
    seed_option,
    split_list,
    user_errors,
)
from subclassbench.core.files import check_writable_folder
from subclassbench.errors import SubclassbenchError


@app.command()
@user_errors
def compare(
    model: Annotated[list[str], typer.Option(help="Two encoder specs (repeat --model); one compares it with itself.")],
    task: Annotated[str, typer.Option(help="Task whose evaluation split is compared.")] = "digits-5",
    weights: Annotated[
        list[str] | None, typer.Option(help="Weights per --model, in order ('-' for none). [default: each spec's own]")
    ] = None,
    data: Annotated[
        str | None, typer.Option(help="Data path for tasks that need one. [default: the task's own source]")
    ] = None,
    k: Annotated[
        int | None, typer.Option(help="Concepts per layer (default: the task's number of subclasses).")
    ] = None,
    max_samples: Annotated[int, typer.Option(min=0, help="Seeded subsample of the split (0: all samples).")] = 5000,
    seed: Annotated[int, seed_option("Seed of the subsample and the soft clustering.")] = 0,
    pair: Annotated[
        str | None, typer.Option(help="LAYER_A,LAYER_B for the concept list (default: last layers).")
    ] = None,
    concepts: Annotated[
        str,
        typer.Option(
            help="Concepts of the --pair layers: gmm (baseline: the GRI's mixture memberships) or nlmcd "
            "(token-level UMAP + HDBSCAN, number of concepts found; needs umap-learn and hdbscan)."
        ),
    ] = "gmm",
    min_cluster_size: Annotated[
        int | None, typer.Option(help="nlmcd: smallest concept in tokens (default: 1% of the tokens, at least 5).")
    ] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(help="nlmcd: most tokens clustered per layer, an equal seeded share per image. [default: 20000]"),
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Output folder: compare.json, cka and gri heatmaps (.png, .svg, .pdf).")
    ] = Path("results/compare"),
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor fill the feature cache.")] = False,
    cache_dir: CacheDirOption = None,
    quiet: QuietOption = False,
) -> None:
    """Layer×layer CKA and generalized-Rand-index (concept) alignment between two encoders."""
    from subclassbench.compare.representations import compare as run
    from subclassbench.compare.representations import write_comparison
    from subclassbench.features.cache import FeatureCache

    specs = split_list(model) or []
    given = [None if w in ("-", "") else w for w in (split_list(weights) or [])]
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
    if concepts not in ("gmm", "nlmcd"):  # before any model is loaded
        raise SubclassbenchError(f"--concepts must be gmm or nlmcd, not '{concepts}'")
    if concepts != "nlmcd" and (min_cluster_size is not None or max_tokens is not None):
        raise SubclassbenchError("--min-cluster-size and --max-tokens apply to --concepts nlmcd only; drop them")
    check_writable_folder(out)  # before the comparison, not after it
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
        concepts=concepts,
        min_cluster_size=min_cluster_size,
        max_tokens=max_tokens,
        cache=None if no_cache else FeatureCache(cache_dir),
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
        if c["method"] == "nlmcd":
            typer.echo(
                f"NLMCD concepts at {c['layer_a']} × {c['layer_b']}: {c['a']['n_concepts']} in A, "
                f"{c['b']['n_concepts']} in B; {len(c['universal'])} universal, "
                f"{len(c['unique_a'])} unique to A, {len(c['unique_b'])} unique to B"
            )
        else:
            unmatched = f"{len(c['unmatched_a'])}+{len(c['unmatched_b'])}"
            typer.echo(
                f"concepts at {c['layer_a']} × {c['layer_b']}: {len(c['universal'])} universal, "
                f"{len(c['unique_pairs'])} matched but unique, {unmatched} unmatched"
            )
    typer.echo(f"wrote {out}/compare.json, cka.png, gri.png (and .svg, .pdf)")


@app.command(
    "agreement", short_help="Per-epoch agreement of training runs (Pliushch et al. 2022), its bounds and accuracy."
)
@user_errors
def agreement_command(
    runs: Annotated[list[Path], typer.Argument(help="Run folders written by `subclassbench train`.")],
    out: Annotated[Path, typer.Option(help="Output folder: agreement.json, agreement.png, .svg, .pdf.")] = Path(
        "results/agreement"
    ),
) -> None:
    """Per-epoch agreement of training runs (Pliushch et al. 2022) on test and train samples, bounds, accuracy."""
    from subclassbench.compare.representations import agreement_over_runs, write_agreement

    check_writable_folder(out)  # before reading the runs

    doc = agreement_over_runs(list(runs))
    write_agreement(doc, out)
    last = doc["epochs"] - 1
    parts = [("test", doc)] + ([("train", doc["train"])] if doc["train"] else [])
    summary = "; ".join(
        f"{name}: agreement {p['agreement'][last]:.3f} (lower bound {p['agreement_lower_bound'][last]:.3f}, "
        f"independent runs {p['agreement_if_independent'][last]:.3f}), "
        f"accuracy {p['accuracy_mean'][last]:.3f} ± {p['accuracy_std'][last]:.3f}"
        for name, p in parts
    )
    typer.echo(f"{len(runs)} runs, {doc['epochs']} epochs, final epoch — {summary}")
    if doc["train_not_recorded"]:
        runs_without = ", ".join(doc["train_not_recorded"])
        typer.echo(f"train-split agreement not reported: no train correctness log in {runs_without}")
    typer.echo(f"wrote {out}/agreement.json, agreement.png (and .svg, .pdf)")
