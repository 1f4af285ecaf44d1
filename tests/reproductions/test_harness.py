"""subclassbench reproduce: plans, the statistics across seeds, every claim's analysis on digits, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats as scipy_stats
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.errors import SubclassbenchError
from subclassbench.reproductions import claims as claims_module
from subclassbench.reproductions.harness import dry_run, get_claim, plan_runs, reproduce
from subclassbench.reproductions.plan import Claim, Condition, Plan
from subclassbench.reproductions.stats import (
    NOT_REPRODUCED,
    PARTLY,
    REPRODUCED,
    cliffs_delta,
    combine,
    direction_verdict,
    image_statistics,
    learned_at,
    paired,
    seed_summary,
    spearman,
)
from subclassbench.results.result import Result
from subclassbench.tasks.task import builtin_tasks_dir

runner = CliRunner()

# --------------------------------------------------------------------------- statistics


def test_seed_summary_is_mean_sample_std_and_a_t_interval():
    s = seed_summary([0.1, 0.2, 0.6])
    assert s.mean == pytest.approx(0.3)
    assert s.std == pytest.approx(np.std([0.1, 0.2, 0.6], ddof=1))
    low, high = scipy_stats.t.interval(0.95, 2, loc=0.3, scale=s.std / np.sqrt(3))
    assert (s.low, s.high) == (pytest.approx(low), pytest.approx(high))
    one = seed_summary([0.4])
    assert (one.std, one.low, one.high) == (0.0, 0.4, 0.4)
    assert "1 seed" in one.text()


def test_cliffs_delta_counts_pairs():
    assert cliffs_delta([3, 4], [1, 2]) == 1.0
    assert cliffs_delta([1, 2], [3, 4]) == -1.0
    assert cliffs_delta([1, 2], [1, 2]) == 0.0
    a, b = [1.0, 5.0, 3.0], [2.0, 2.0, 4.0]
    brute = np.mean([np.sign(x - y) for x in a for y in b])
    assert cliffs_delta(a, b) == pytest.approx(brute)


def test_paired_uses_the_exact_wilcoxon_test():
    a, b = [0.5, 0.6, 0.7, 0.8, 0.9], [0.4, 0.45, 0.52, 0.71, 0.6]
    p = paired(a, b)
    assert p.wilcoxon_p == pytest.approx(scipy_stats.wilcoxon(a, b, method="exact").pvalue)
    assert p.difference.mean == pytest.approx(np.mean(np.subtract(a, b)))
    assert paired([1, 2], [1, 2]).wilcoxon_p is None  # no differences: no test
    with pytest.raises(ValueError, match="one value per seed"):
        paired([1, 2, 3], [1, 2])


@pytest.mark.parametrize(
    ("diffs", "sign", "verdict"),
    [
        ([0.1, 0.12, 0.11], +1, REPRODUCED),
        ([-0.1, -0.12, -0.11], -1, REPRODUCED),
        ([0.1, 0.2, -0.01], +1, PARTLY),  # a seed goes the other way
        ([0.01, 0.3, 0.02], +1, PARTLY),  # all positive, but the interval of the mean holds 0
        ([-0.1, -0.12, -0.11], +1, NOT_REPRODUCED),
        ([0.0, 0.0, 0.0], +1, NOT_REPRODUCED),
    ],
)
def test_the_verdict_rule(diffs, sign, verdict):
    assert direction_verdict(seed_summary(diffs), sign)[0] == verdict


def test_learned_at_is_the_first_epoch_from_which_a_sample_stays_right():
    log = np.array(
        [  # epochs × samples
            [1, 0, 1, 0, 1],
            [1, 1, 0, 0, 1],
            [1, 1, 1, 0, 0],
        ],
        dtype=bool,
    )
    assert learned_at(log).tolist() == [1, 2, 3, 4, 4]  # 4 = never (wrong at the end)


def test_image_statistics_invariances():
    rng = np.random.default_rng(0)
    flat = np.full((1, 1, 8, 8), 0.5)
    noise = rng.random((1, 1, 8, 8))
    blocks = ((np.indices((8, 8)) // 2).sum(axis=0) % 2).astype(float)[None, None]  # 2×2-pixel checkerboard
    step = np.zeros((1, 1, 8, 8))
    step[..., 4:] = 1.0  # one vertical edge
    images = np.concatenate([flat, noise, blocks, step])
    s = image_statistics(images)
    assert s["entropy"][0] == 0 and s["edges"][0] == 0 and s["contrast"][0] == 0
    assert s["edges"][2] > s["edges"][3] > 0  # the checkerboard is edges everywhere, the step in one column
    assert s["entropy"][1] > s["entropy"][2] == s["entropy"][3] == 1.0  # noise: many grey levels; two: 1 bit
    again = image_statistics(images * 7.0 + 3.0)  # an affine change of the whole set's range changes nothing
    for name in s:
        np.testing.assert_allclose(again[name], s[name], atol=1e-12)
    rgb = image_statistics(np.repeat(images, 3, axis=1))  # grey images in three channels: the same
    for name in s:
        np.testing.assert_allclose(rgb[name], s[name], atol=1e-12)


def test_spearman_is_none_for_a_constant_side():
    assert spearman(np.array([1, 1, 1]), np.array([1, 2, 3])) is None
    assert spearman(np.array([1, 2, 3]), np.array([3, 2, 1])) == pytest.approx(-1.0)


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
    folders = [run.out for run in grid.values()]
    assert len(set(folders)) == len(folders)
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


def test_every_claim_has_a_paper_and_a_cpu_scale_with_at_least_three_seeds():
    assert set(claims_module.CLAIMS) == {
        "yang2023",
        "yang2023-schedule",
        "nguyen2023-shuffled",
        "nguyen2023-architecture",
        "harun2024",
        "pliushch2022",
        "vielhaben2025",
    }
    for claim in claims_module.CLAIMS.values():
        for scale in ("paper", "cpu"):
            plan = claim.plan(scale)
            assert len(plan.seeds) >= 3 and plan.shortened
    assert len(get_claim("pliushch2022").plan("cpu").seeds) >= 5


def test_the_cli_help_names_every_claim():
    text = " ".join(runner.invoke(app, ["reproduce", "--help"], env={"COLUMNS": "200"}).output.split())
    for name in claims_module.CLAIMS:
        assert name in text


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
    with pytest.raises(SubclassbenchError, match=r"9 training run\(s\) failed, first .*run the same command again"):
        reproduce("yang2023", "cpu", tmp_path / "runs", tmp_path / "docs", missing, stages=["train"], progress=False)
    assert not (tmp_path / "docs").exists()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["reproduce", "nope"], "unknown claim"),
        (["reproduce", "yang2023", "--scale", "paper"], "--data cifar10=PATH"),
        (["reproduce", "yang2023", "--data", "../etc=/x"], "NAME=PATH"),
        (["reproduce", "yang2023", "--data", "cifar10"], "NAME=PATH"),
        (["reproduce", "yang2023", "--data", "imagenet=/x"], "NAME one of cifar10, tiny-imagenet"),
        (["reproduce", "yang2023", "--data", "cifar10=/a", "--data", "cifar10=/b"], "names 'cifar10' twice"),
        (["reproduce", "yang2023", "--scale", "smoke", "--stages", "train,deploy"], "unknown stage 'deploy'"),
        (["reproduce", "yang2023", "--scale", "smoke", "--device", "tpu"], "device"),
        (["reproduce", "nope", "--dry-run"], "unknown claim 'nope'"),
        (["reproduce", "nguyen2023-shuffled", "--scale", "smoke", "--dry-run"], "has no 'smoke' scale"),
    ],
)
def test_cli_bad_input_is_one_error_line(tmp_path, args, match):
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "runs"), "--report-dir", str(tmp_path / "docs")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0], result.output
    assert not (tmp_path / "docs").exists()


# --------------------------------------------------------------------------- end to end on digits


@pytest.fixture(scope="module")
def yang_smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("reproduce")
    done = reproduce("yang2023", "smoke", root / "runs", root / "docs", progress=False)
    return root, done


def test_yang_smoke_trains_scores_and_reports(yang_smoke):
    root, done = yang_smoke
    assert done.runs == 6 and done.verdict in (REPRODUCED, PARTLY, NOT_REPRODUCED)
    doc = json.loads((root / "docs" / "yang2023.json").read_text())
    arm = doc["numbers"]["digits_cnn coarse"]
    assert len(arm["reconstruction_acc"]["values"]) == 3 and len(arm["fine_net_acc"]["values"]) == 3
    # The report's numbers are the result files' and the training cards'.
    results = sorted((root / "runs" / "smoke" / "results").glob("digits-5-digits_cnn-superclass-*.json"))
    assert len(results) == 3
    recon = [Result.read(p).summary["last_reconstruction_acc"] for p in results]
    assert arm["reconstruction_acc"]["values"] == pytest.approx(recon)
    cards = sorted((root / "runs" / "smoke").glob("digits-5-digits_cnn-subclass-*/card.json"))
    assert arm["fine_net_acc"]["values"] == pytest.approx([json.loads(c.read_text())["final_test_acc"] for c in cards])
    text = (root / "docs" / "yang2023.md").read_text()
    assert "93 %" in text and f"**Verdict (smoke scale): {done.verdict}.**" in text
    assert (root / "docs" / "figures" / "yang2023-reconstruction.png").read_bytes()[:4] == b"\x89PNG"
    assert "--scale paper" in text and "--gpus-per-task 1" in text
    # Run folders hold only what train writes: a second claim can train into them (resume) unhindered.
    assert not list((root / "runs" / "smoke").glob("*/result*"))


def test_a_dry_run_lists_what_is_there_and_what_is_left(yang_smoke, tmp_path):
    root, _ = yang_smoke
    done = dry_run("yang2023", "smoke", root / "runs")
    assert len(done) == 6 and {r.status for r in done} == {"trained"} and sum(r.to_score for r in done) == 0
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
    assert sum(r.epochs for r in partial) == 6 * 2


def test_a_dry_run_needs_no_data_and_writes_nothing(tmp_path):
    result = runner.invoke(
        app, ["reproduce", "yang2023", "--scale", "paper", "--dry-run", "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 0, result.output
    assert (
        "18 training runs, 0 trained, 18 to train or finish (3600 epochs at most); 12 results to score" in result.output
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
    if claim == "yang2023-schedule":
        _check_schedule_numbers(doc["numbers"], tmp_path / "runs" / "smoke")


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
        return claims_module._schedule_arm("digits_cnn", "coarse", cell["epochs"], cell["weight_decay"])

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
