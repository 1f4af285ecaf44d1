"""subclassbench reproduce's harness (subclassbench.reproductions.harness): plans shared across claims, bad
requests, stages, and Yang et al.'s claim end to end on digits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.errors import SubclassbenchError
from subclassbench.reproductions import claims as claims_module
from subclassbench.reproductions.harness import (
    RunRecord,
    Runs,
    control_verdicts,
    dry_run,
    get_claim,
    plan_runs,
    reproduce,
)
from subclassbench.reproductions.plan import CONTROLS, Claim, Condition, Plan, control_of, with_controls
from subclassbench.reproductions.report import Findings
from subclassbench.reproductions.stats import NOT_REPRODUCED, PARTLY, REPRODUCED
from subclassbench.results.result import Result

runner = CliRunner()

# --------------------------------------------------------------------------- plans


def test_claims_share_a_run_when_they_train_the_same_network(tmp_path):
    data = {"cifar10": "/data"}
    yang = plan_runs(get_claim("yang2023").plan("cpu"), tmp_path, data)
    shuffled = plan_runs(get_claim("nguyen2023-shuffled").plan("cpu"), tmp_path, {**data, "tiny-imagenet": "/t"})
    assert yang[("cifar_resnet20 coarse", 0)] == shuffled[("cifar10-5 (random pairs)", 0)]
    assert yang[("cifar_resnet20 coarse, natural pairs", 1)] == shuffled[("cifar10-5-semantic (natural pairs)", 1)]
    assert yang[("cifar_resnet20 coarse", 0)].data == "/data"
    # The schedule grid's default-weight-decay cell is Yang et al.'s network itself; a recipe change is a
    # different run, in its own folder.
    paper = plan_runs(get_claim("yang2023").plan("paper"), tmp_path, data)
    grid = plan_runs(get_claim("yang2023-schedule").plan("paper"), tmp_path, data)
    plan = get_claim("yang2023-schedule").plan("paper")
    folders = [run.out for (name, _), run in grid.items() if plan.condition(name).control is None]
    assert len(set(folders)) == len(folders)
    # Every cell's untrained control is the one initialisation per architecture and seed: trained once.
    untrained = {run.out for (name, _), run in grid.items() if plan.condition(name).control == "untrained"}
    assert len(untrained) == len(plan.seeds) * len({c.arch for c in plan.arms.conditions})
    assert grid[("resnet18_small coarse, 200 epochs, wd 0.0005, lr 0.1", 0)] == paper[("resnet18_small coarse", 0)]
    assert grid[("resnet18_small fine, 200 epochs, wd 0.0005, lr 0.1", 2)] == paper[("resnet18_small fine", 2)]
    assert (
        grid[("resnet18_small coarse, 200 epochs, wd 0.005, lr 0.1", 0)].out != paper[("resnet18_small coarse", 0)].out
    )
    assert (
        grid[("resnet18_small coarse, 200 epochs, wd 0.0005, lr 0.01", 0)].out
        != paper[("resnet18_small coarse", 0)].out
    )
    # On digits, the 10-epoch cell is the network the concept claim trains.
    cells = plan_runs(get_claim("yang2023-schedule").plan("cpu"), tmp_path, {})
    concepts = plan_runs(get_claim("vielhaben2025").plan("cpu"), tmp_path, {})
    assert cells[("digits_cnn coarse, 10 epochs, wd 0.0005", 1)] == concepts[("digits_cnn", 1)]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: get_claim("nope"), "unknown claim 'nope'"),
        (lambda: get_claim("nguyen2023-shuffled").plan("smoke"), "has no 'smoke' scale"),
        (lambda: get_claim("yang2023").plan("huge"), "unknown scale 'huge'"),
        (lambda: plan_runs(get_claim("yang2023").plan("cpu"), Path("x"), {}), "--data cifar10=PATH"),
        (
            lambda: plan_runs(get_claim("nguyen2023-shuffled").plan("cpu"), Path("x"), {"cifar10": "c"}),
            "trains on breeds-tiny16-shuffled.*--data tiny-imagenet=PATH",
        ),
    ],
)
def test_bad_requests_name_the_fix(call, match):
    with pytest.raises(SubclassbenchError, match=match):
        call()


def test_later_stages_need_the_earlier_ones(tmp_path):
    with pytest.raises(SubclassbenchError, match=r"holds no finished training run.*run the train stage"):
        reproduce("yang2023", "smoke", tmp_path / "runs", tmp_path / "docs", stages=["report"], progress=False)
    assert not (tmp_path / "docs").exists()


def test_a_run_that_cannot_train_is_reported_with_its_folder(tmp_path):
    missing = {"cifar10": str(tmp_path / "no-such-folder")}
    with pytest.raises(SubclassbenchError, match=r"27 training run\(s\) failed, first .*run the same command again"):
        reproduce("yang2023", "cpu", tmp_path / "runs", tmp_path / "docs", missing, stages=["train"], progress=False)
    assert not (tmp_path / "docs").exists()


# --------------------------------------------------------------------------- end to end on digits


@pytest.fixture(scope="module")
def yang_smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("reproduce")
    done = reproduce("yang2023", "smoke", root / "runs", root / "docs", progress=False)
    return root, done


def test_yang_smoke_trains_scores_and_reports(yang_smoke):
    root, done = yang_smoke
    # 3 seeds × (coarse, fine) + the coarse arm's three negative controls
    assert done.runs == 15 and done.verdict in (REPRODUCED, PARTLY, NOT_REPRODUCED)
    doc = json.loads((root / "docs" / "yang2023.json").read_text())
    arm = doc["numbers"]["digits_cnn coarse"]
    assert len(arm["reconstruction_acc"]["values"]) == 3 and len(arm["fine_net_acc"]["values"]) == 3
    # The report's numbers are the result files' and the training cards'.
    results = sorted((root / "runs" / "smoke" / "results").glob("digits-5-digits_cnn-superclass-s?-epochs2.*.json"))
    assert len(results) == 3
    recon = [Result.read(p).summary["last_reconstruction_acc"] for p in results]
    assert arm["reconstruction_acc"]["values"] == pytest.approx(recon)
    cards = sorted((root / "runs" / "smoke").glob("digits-5-digits_cnn-subclass-*/card.json"))
    assert arm["fine_net_acc"]["values"] == pytest.approx([json.loads(c.read_text())["final_test_acc"] for c in cards])
    text = (root / "docs" / "yang2023.md").read_text()
    assert "93 %" in text and f"**Verdict (smoke scale): {done.verdict}.**" in text
    assert (root / "docs" / "figures" / "yang2023-reconstruction.png").read_bytes()[:4] == b"\x89PNG"
    assert "--scale paper" in text and "--gpus-per-task 1" in text
    # Each negative control is judged by the claim's own rule, in place of the coarse arm, and shown.
    assert set(doc["controls"]) == {"untrained", "permuted labels", "raw pixels"}
    for kind, control in doc["controls"].items():
        assert control["stands_for"] == ["digits_cnn coarse"] and control["verdict"]
        assert control["rule_broken"] == (control["verdict"] not in ("not reproduced", "not applicable"))
        assert f"| {kind} | digits_cnn coarse | {control['verdict']}" in text
    # Run folders hold only what train writes: a second claim can train into them (resume) unhindered.
    assert not list((root / "runs" / "smoke").glob("*/result*"))


def test_a_dry_run_lists_what_is_there_and_what_is_left(yang_smoke, tmp_path):
    root, _ = yang_smoke
    done = dry_run("yang2023", "smoke", root / "runs")
    assert len(done) == 15 and {r.status for r in done} == {"trained"} and sum(r.to_score for r in done) == 0
    # A trained run whose result is gone is to score again; a run with only a resumable state is started.
    copy = tmp_path / "runs" / "smoke"
    copy.mkdir(parents=True)
    coarse = [r for r in done if r.arms == ("digits_cnn coarse",)]
    (copy / coarse[0].folder.name).mkdir()
    (copy / coarse[0].folder.name / "last.pt").write_bytes(b"")
    (copy / coarse[1].folder.name).mkdir()
    (copy / coarse[1].folder.name / "card.json").write_bytes((coarse[1].folder / "card.json").read_bytes())
    partial = dry_run("yang2023", "smoke", tmp_path / "runs")
    status = {(r.arms, r.seed): (r.status, r.to_score) for r in partial}
    assert status[(("digits_cnn coarse",), coarse[0].seed)] == ("started", 1)
    assert status[(("digits_cnn coarse",), coarse[1].seed)] == ("trained", 1)
    assert status[(("digits_cnn fine",), 1)] == ("to train", 0)  # fine arms are not scored
    assert sum(r.epochs for r in partial) == 9 * 2  # coarse, fine and permuted-labels runs train 2 epochs


def test_a_dry_run_needs_no_data_and_writes_nothing(tmp_path):
    result = runner.invoke(
        app, ["reproduce", "yang2023", "--scale", "paper", "--dry-run", "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 0, result.output
    assert (
        "48 training runs, 0 trained, 48 to train or finish (6000 epochs at most); 42 results to score" in result.output
    )
    assert "to train" in result.output and not (tmp_path / "r").exists()
    # Arms on one network are one run, listed once with every arm; two arms scored on the same task share
    # one result file, an arm scored on another task needs its own.
    twins = (
        Condition("a", "digits-5", "digits_cnn"),
        Condition("b", "digits-5", "digits_cnn"),
        Condition("c", "digits-5", "digits_cnn", score_task="digits-ood5"),
    )
    plan = Plan("smoke", twins, (0,), (), "none")
    claims_module.CLAIMS["twin-test"] = Claim("twin-test", "p", "t", "s", "f", {"smoke": plan}, lambda *_: None)
    try:
        (twin,) = dry_run("twin-test", "smoke", tmp_path / "r")
    finally:
        del claims_module.CLAIMS["twin-test"]
    assert twin.arms == ("a", "b", "c") and twin.to_score == 2 and twin.epochs == 30


def test_a_second_report_from_the_same_runs_is_byte_identical(yang_smoke):
    root, _ = yang_smoke
    files = ["yang2023.md", "yang2023.json", "figures/yang2023-reconstruction.png"]
    before = {f: (root / "docs" / f).read_bytes() for f in files}
    reproduce("yang2023", "smoke", root / "runs", root / "docs", stages=["report"], progress=False)
    assert {f: (root / "docs" / f).read_bytes() for f in files} == before


def test_a_hand_edited_result_is_scored_again_not_trusted(yang_smoke, tmp_path):
    root, _ = yang_smoke
    path = sorted((root / "runs" / "smoke" / "results").glob("digits-5-digits_cnn-superclass-s0-*.json"))[0]
    honest = json.loads(path.read_text())["summary"]["last_reconstruction_acc"]
    doc = json.loads(path.read_text())
    doc["summary"]["last_reconstruction_acc"] = 0.999
    path.write_text(json.dumps(doc))
    # The report stage alone refuses it; the evaluate stage scores it again.
    with pytest.raises(SubclassbenchError, match="missing or stale; run the evaluate stage"):
        reproduce("yang2023", "smoke", root / "runs", tmp_path / "docs", stages=["report"], progress=False)
    reproduce("yang2023", "smoke", root / "runs", tmp_path / "docs", stages=["evaluate", "report"], progress=False)
    assert Result.read(path).summary["last_reconstruction_acc"] == honest


# --------------------------------------------------------------------------- negative controls


def _judge_by_folder(plan, runs):
    """A claim whose rule passes when the arm's runs are trained ones (their folder says so)."""
    folders = [r.folder.name for c in plan.conditions for r in runs.of(c.name)]
    verdict = REPRODUCED if all(f.startswith("trained") for f in folders) else NOT_REPRODUCED
    return Findings(verdict, f"read {', '.join(folders)}")


def test_a_control_stands_in_for_its_arm_seed_for_seed_and_is_judged_by_the_same_rule():
    arm = Condition("coarse", "digits-5", "digits_cnn")
    plan = with_controls(Plan("smoke", (arm,), (0, 1), (), ""), ("coarse",), ("untrained", "permuted labels"))
    assert plan.arms.conditions == (arm,) and plan.control_kinds == ("untrained", "permuted labels")
    untrained = plan.condition("coarse [untrained]")
    assert untrained.recipe == (("epochs", 0),) and untrained.stands_for == "coarse"
    assert plan.condition("coarse [permuted labels]").labels == "permuted"
    assert control_of(Condition("fine", "digits-5", "digits_cnn", "subclass"), "permuted labels").labels == (
        "permuted-subclass"
    )
    raw = control_of(arm, "raw pixels")
    assert raw.arch == "identity" and raw.norm is None and raw.control == "raw pixels"
    records = [
        RunRecord(c, seed, Path(f"{'trained' if c.control is None else c.control}-s{seed}"), {})
        for c in plan.conditions
        for seed in plan.seeds
    ]
    runs = Runs(records)
    swapped = runs.substituted("untrained")
    assert [r.folder.name for r in swapped.of("coarse")] == ["untrained-s0", "untrained-s1"]
    assert [r.folder.name for r in swapped.control("coarse", "permuted labels")] == [
        "permuted labels-s0", "permuted labels-s1"
    ]  # the other controls stay, for rules that compare against them
    claim = Claim("toy", "p", "t", "s", "f", {"smoke": plan}, _judge_by_folder)
    assert claim.analyse(plan.arms, runs).verdict == REPRODUCED
    verdicts = {v.kind: v for v in control_verdicts(claim, plan, runs)}
    assert set(verdicts) == {"untrained", "permuted labels"}
    assert verdicts["untrained"].verdict == NOT_REPRODUCED and not verdicts["untrained"].passes
    assert "untrained-s0" in verdicts["untrained"].why and verdicts["untrained"].stands_for == ["coarse"]


def test_a_rule_that_a_control_passes_is_reported_as_broken():
    arm = Condition("coarse", "digits-5", "digits_cnn")
    plan = with_controls(Plan("smoke", (arm,), (0,), (), ""), ("coarse",), CONTROLS)
    runs = Runs([RunRecord(c, 0, Path(f"trained-{c.name}"), {}) for c in plan.conditions])  # every run "trained"
    claim = Claim("toy", "p", "t", "s", "f", {"smoke": plan}, _judge_by_folder)
    verdicts = control_verdicts(claim, plan, runs)
    assert [v.kind for v in verdicts] == list(CONTROLS) and all(v.passes for v in verdicts)
    assert all(v.to_dict()["rule_broken"] for v in verdicts)


def test_a_rule_that_cannot_read_a_control_says_not_applicable():
    def needs_a_card(plan, runs):
        return Findings(REPRODUCED, str([r.card["final_test_acc"] for r in runs.of("coarse")]))

    arm = Condition("coarse", "digits-5", "digits_cnn")
    plan = with_controls(Plan("smoke", (arm,), (0,), (), ""), ("coarse",), ("untrained",))
    runs = Runs([
        RunRecord(arm, 0, Path("a"), {"final_test_acc": 0.9}),
        RunRecord(plan.condition("coarse [untrained]"), 0, Path("b"), {}),
    ])
    (verdict,) = control_verdicts(Claim("toy", "p", "t", "s", "f", {"smoke": plan}, needs_a_card), plan, runs)
    assert verdict.verdict == "not applicable" and "KeyError" in verdict.why and not verdict.passes
