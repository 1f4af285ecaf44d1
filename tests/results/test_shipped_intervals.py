"""Every interval the repository ships contains its own estimate.

An interval that excludes the number it surrounds is a bug in how it was made (the within-superclass accuracy's
replicates once re-matched clusters per resample and the untrained breeds-tiny16 row read 0.350 [0.345, 0.345]).
Reads the shipped results only: on a fresh clone this checks exactly what the leaderboard shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from subclassbench.results.result import Result

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p for p in (ROOT / "submissions").glob("*/results/*.json"))
ROUNDING = 1e-12  # a perfect AMI averaged over two halves reads 1.0000000000000002 beside an interval of [1.0, 1.0]


def _headline(result: Result, key: str) -> float | None:
    """The estimate a ``summary.ci95`` key surrounds."""
    summary: dict[str, Any] = dict(result.summary)
    transfer = summary.get("transfer") or {}
    if key in summary:
        return summary[key]
    if key in ("ood_retained", "ood_retained_mean_curve"):  # v3: Harun's per-set mean, and the mean curve's
        return transfer.get(key)
    if key.startswith("subpop_"):
        curve = (transfer.get("subpopulation_shift") or {}).get(key.removesuffix("_retained"))
        return None if curve is None else curve["retained"]
    if key == "committed_ward_ami":
        return (result.committed_ward or {}).get("ami")
    raise KeyError(key)


def _layer_value(layer: dict[str, Any], key: str) -> float | None:
    for part in ("clusterability", "transfer"):
        if key in (layer.get(part) or {}):
            return layer[part][key]
    raise KeyError(key)


def test_the_repository_ships_results():
    assert len(SHIPPED) >= 20


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_every_shipped_interval_contains_its_estimate(path):
    result = Result.read(path)
    outside = []
    for key, (low, high) in (result.summary.get("ci95") or {}).items():
        value = _headline(result, key)
        if value is not None and not low - ROUNDING <= value <= high + ROUNDING:
            outside.append(f"summary.{key} = {value} outside [{low}, {high}]")
    for layer in result.layers:
        for key, (low, high) in (layer.get("ci95") or {}).items():
            value = _layer_value(layer, key)
            if value is not None and not low - ROUNDING <= value <= high + ROUNDING:
                outside.append(f"layer {layer['name']} {key} = {value} outside [{low}, {high}]")
    assert not outside, outside
