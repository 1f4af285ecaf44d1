"""The claims (subclassbench.reproductions.claims): each has a paper and a CPU scale, each runs end to end at
smoke scale, and the shuffled claim reads its pairs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from subclassbench.reproductions import claims as claims_module
from subclassbench.reproductions.harness import get_claim, reproduce
from subclassbench.reproductions.plan import Claim, Condition, Plan
from subclassbench.reproductions.stats import (
    NOT_REPRODUCED,
    PARTLY,
    REPRODUCED,
    combine,
    direction_verdict,
    seed_summary,
)
from subclassbench.tasks.task import builtin_tasks_dir


def test_every_claim_has_a_paper_and_a_cpu_scale_with_at_least_three_seeds():
    # In registration order: claims/__init__.py imports one module per claim, and each registers its claim.
    assert list(claims_module.CLAIMS) == [
        "yang2023",
        "yang2023-schedule",
        "nguyen2023-shuffled",
        "nguyen2023-architecture",
        "harun2024",
        "pliushch2022",
        "vielhaben2025",
    ]
    for claim in claims_module.CLAIMS.values():
        for scale in ("paper", "cpu"):
            plan = claim.plan(scale)
            assert len(plan.seeds) >= 3 and plan.shortened
    assert len(get_claim("pliushch2022").plan("cpu").seeds) >= 5


@pytest.mark.parametrize(
    "claim", ["yang2023-schedule", "nguyen2023-architecture", "harun2024", "pliushch2022", "vielhaben2025"]
)
def test_every_claim_runs_end_to_end_at_smoke_scale(tmp_path, claim):
    done = reproduce(claim, "smoke", tmp_path / "runs", tmp_path / "docs", progress=False)
    doc = json.loads((tmp_path / "docs" / f"{claim}.json").read_text())
    assert doc["verdict"] == done.verdict in (REPRODUCED, PARTLY, NOT_REPRODUCED)
    text = (tmp_path / "docs" / f"{claim}.md").read_text()
    assert claim in text and "## Numbers" in text
    for figure in (tmp_path / "docs" / "figures").glob("*.png"):
        assert f"figures/{figure.name}" in text
    # Every claim has negative controls, each judged by the claim's own rule; none may earn a verdict.
    assert doc["controls"] and "## Negative controls" in text
    broken = {kind: c["verdict"] for kind, c in doc["controls"].items() if c["rule_broken"]}
    assert not broken, f"a negative control passes {claim}'s rule: {broken}"
    if claim == "yang2023-schedule":
        _check_schedule_numbers(doc["numbers"], tmp_path / "runs" / "smoke")
    if claim == "nguyen2023-architecture":  # Nguyen & Kornblith's own features, shown beside the protocol's
        assert "Recorded variant" in text
        variant = doc["numbers"]["digits-5"]["flattened_variant"]
        assert 0 <= variant["flattened_best_depth_spread"] <= 1


def _check_schedule_numbers(numbers: dict, root: Path) -> None:
    """Every grid cell pairs each coarse network with the fine one of its seed and recipe; the chosen cell is
    the one with the best superclass accuracy."""
    cells = {k: v for k, v in numbers.items() if "coarse," in k}
    assert len(cells) == 4  # 2 training lengths × 2 weight decays
    for name, cell in cells.items():
        epochs = int(name.split(", ")[1].split()[0])  # "1 epoch" or "2 epochs"
        recipe = f"epochs{epochs}" + ("-weight_decay0.005" if name.endswith("wd 0.005") else "")
        fine = [
            json.loads((root / f"digits-5-digits_cnn-subclass-s{seed}-{recipe}" / "card.json").read_text())
            for seed in (0, 1)
        ]
        recon = cell["reconstruction_acc"]["values"]
        gaps = [card["final_test_acc"] - r for card, r in zip(fine, recon, strict=True)]
        assert cell["fine_minus_reconstruction"]["values"] == pytest.approx(gaps)
    best = max(cells, key=lambda k: cells[k]["superclass_acc"]["mean"])
    chosen = numbers["digits_cnn: chosen"]

    def name_of(cell: dict) -> str:
        return claims_module.schedule_arm("digits_cnn", "coarse", cell["epochs"], cell["weight_decay"])

    assert cells[best]["superclass_acc"]["mean"] == cells[name_of(chosen)]["superclass_acc"]["mean"]
    for tied in chosen["tied_with"]:  # "2 epochs, wd 0.005"
        epochs, wd = tied.split(", ")
        twin = cells[f"digits_cnn coarse, {epochs}, {wd}"]
        assert twin["superclass_acc"]["mean"] == cells[best]["superclass_acc"]["mean"]
    assert set(numbers) >= {"digits_cnn, wd 0.0005: longer training", "digits_cnn, wd 0.005: longer training"}


def test_the_shuffled_claim_reads_its_pairs(tmp_path):
    """The shuffled-superclass analysis on digits: digits-5 (pairs 0/5, 1/6, …) against a task grouping the
    same digits the other way, each network scored on its own task."""
    raw = yaml.safe_load((builtin_tasks_dir() / "digits-5.yaml").read_text())
    raw["name"] = "digits-5-regrouped"
    subs = [s for sc in raw["hierarchy"]["superclasses"] for s in sc["subclasses"]]
    subs.sort(key=lambda s: s["id"])
    for index, superclass in enumerate(raw["hierarchy"]["superclasses"]):
        superclass["subclasses"] = subs[2 * index : 2 * index + 2]
        superclass["name"] = "/".join(s["name"] for s in superclass["subclasses"])
    for key in ("transfer", "subpopulation_shift"):
        raw.pop(key, None)
    task = tmp_path / "regrouped.yaml"
    task.write_text(yaml.safe_dump(raw))
    shuffled, natural = claims_module.SHUFFLED_PAIRS[0]
    untrained = (("epochs", 0),)
    plan = Plan(
        "smoke",
        (
            Condition(shuffled, str(task), "digits_cnn"),
            Condition(natural, "digits-5", "digits_cnn"),
            Condition(shuffled + claims_module.UNTRAINED, str(task), "digits_cnn", recipe=untrained),
            Condition(natural + claims_module.UNTRAINED, "digits-5", "digits_cnn", recipe=untrained),
        ),
        (0, 1, 2),
        (("epochs", 2),),
        "digits",
    )
    claim = get_claim("nguyen2023-shuffled")
    test_claim = Claim(
        "shuffled-test", claim.paper, claim.title, claim.statement, claim.paper_figure, {"smoke": plan}, claim.analyse
    )
    claims_module.CLAIMS["shuffled-test"] = test_claim
    try:
        done = reproduce("shuffled-test", "smoke", tmp_path / "runs", tmp_path / "docs", progress=False)
    finally:
        del claims_module.CLAIMS["shuffled-test"]
    numbers = json.loads((tmp_path / "docs" / "shuffled-test.json").read_text())["numbers"]
    pair = numbers[f"{shuffled} vs {natural}"]["committed_ami"]
    diffs = np.subtract(pair["shuffled"]["values"], pair["natural"]["values"])
    assert pair["difference"]["difference"]["values"] == pytest.approx(diffs.tolist())
    # The control: the same seeds' initialisations on the same tasks, and what training added to each arm.
    control = numbers[f"{shuffled} vs {natural}"]["committed_ami_untrained"]
    gains = numbers[f"{shuffled} vs {natural}"]["committed_ami_gain"]
    shuffled_gain = np.subtract(pair["shuffled"]["values"], control["shuffled"]["values"])
    natural_gain = np.subtract(pair["natural"]["values"], control["natural"]["values"])
    assert gains["shuffled"]["values"] == pytest.approx(shuffled_gain.tolist())
    assert gains["difference"]["difference"]["values"] == pytest.approx((shuffled_gain - natural_gain).tolist())
    assert not np.allclose(control["shuffled"]["values"], pair["shuffled"]["values"])  # the control is untrained
    assert "verdict" not in control and "verdict" in gains  # the controls are shown, not judged
    verdicts = [direction_verdict(seed_summary(d), +1)[0] for d in (diffs, shuffled_gain - natural_gain)]
    assert done.verdict == combine(verdicts)
    report = (tmp_path / "docs" / "shuffled-test.md").read_text()
    assert "gained by training" in report and shuffled + claims_module.UNTRAINED in report
