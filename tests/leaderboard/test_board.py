"""The leaderboard built from submissions (subclassbench.leaderboard.board): deterministic and ranked, the
--check of a hand edit, an invalid submission stopping the build, rows without a curve, the changelog, figures
rewritten only when their data changed, and OOD sets seen in training marked."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.errors import SubclassbenchError
from subclassbench.figures import drawing as figures
from subclassbench.leaderboard.board import LEADERBOARD_VERSION, build
from subclassbench.leaderboard.cells import committed_cell, labels_cell, md
from tests.figures.test_drawing import ROWS, _curves

runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_leaderboard_build_is_deterministic_and_ranked(made, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    build(made, first)
    build(made, second)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    v = f"v{LEADERBOARD_VERSION}"
    figures = [f"{v}/digits-5.pdf", f"{v}/digits-5.png", f"{v}/digits-5.svg"]
    site = ["site/app.js", "site/index.html", "site/style.css"]
    assert [str(f) for f in files] == ["CHANGELOG.md", "README.md", "leaderboard.json", *site, *figures]
    for f in files:
        assert (first / f).read_bytes() == (second / f).read_bytes(), f
    rows = json.loads((first / "leaderboard.json").read_text())["tasks"]["digits-5"]
    assert [r["rank"] for r in rows] == [1, 2]
    assert rows[0]["committed_ami"] >= rows[1]["committed_ami"]
    assert re.search(r"^\| rank +\| encoder", (first / "README.md").read_text(), re.M)
    assert build(made, first) == []  # nothing to rewrite, and no second changelog entry
    assert (first / "CHANGELOG.md").read_text().count(f"## v{LEADERBOARD_VERSION}") == 1


def test_check_catches_a_hand_edit(made, tmp_path):
    out = tmp_path / "lb"
    assert cli("leaderboard", "build", "--submissions", made, "--out", out).exit_code == 0
    ok = cli("leaderboard", "build", "--check", "--submissions", made, "--out", out)
    assert ok.exit_code == 0 and "up to date" in ok.output
    readme = out / "README.md"
    readme.write_text(readme.read_text().replace("cnn-coarse", "cnn-coarse-best", 1))
    bad = cli("leaderboard", "build", "--check", "--submissions", made, "--out", out)
    assert bad.exit_code == 2 and "README.md" in bad.output and "out of date" in bad.output
    (out / f"v{LEADERBOARD_VERSION}" / "old-task.png").write_bytes(b"\x89PNG")
    (out / f"v{LEADERBOARD_VERSION}" / "old-task.svg").write_bytes(b"<svg/>")
    assert cli("leaderboard", "build", "--submissions", made, "--out", out).exit_code == 0
    stale = out / f"v{LEADERBOARD_VERSION}"
    assert not (stale / "old-task.png").exists() and not (stale / "old-task.svg").exists()
    assert cli("leaderboard", "build", "--check", "--submissions", made, "--out", out).exit_code == 0


def test_an_invalid_submission_stops_the_build_and_writes_nothing(subs, tmp_path):
    (subs / "cnn-coarse" / "model.yaml").write_text("name: [unclosed\n")
    out = cli("leaderboard", "build", "--submissions", subs, "--out", tmp_path / "lb")
    assert out.exit_code == 2 and out.output.startswith("error: cannot build the leaderboard")
    assert not (tmp_path / "lb").exists()


def test_a_transfer_only_result_is_listed_without_a_curve(subs, tmp_path):
    meta = ["--training-data", "none", "--license", "MIT", "--citation", "This test suite.", "--labels", "none"]
    out = cli(
        "submit",
        "--name",
        "cnn-transfer",
        "--model",
        "builtin:digits_cnn",
        "--task",
        "digits-5",
        "--metrics",
        "transfer",
        "--submissions",
        subs,
        "--quiet",
        *meta,
    )
    assert out.exit_code == 0, out.output
    build(subs, tmp_path / "lb")
    rows = json.loads((tmp_path / "lb" / "leaderboard.json").read_text())["tasks"]["digits-5"]
    assert rows[-1]["submission"] == "cnn-transfer" and rows[-1]["committed_ami"] is None
    assert rows[-1]["subpop_retained"] is not None  # digits-5's transfer is a subpopulation shift
    assert rows[-1]["ood_retained"] is None and rows[-1]["tunnel"] is None  # … and no OOD set


def test_changelog_lists_what_changed(subs, tmp_path):
    out = tmp_path / "lb"
    build(subs, out)
    shutil.rmtree(subs / "mlp-random")
    build(subs, out)
    log = (out / "CHANGELOG.md").read_text()
    assert log.count(f"## v{LEADERBOARD_VERSION}") == 2
    newest = log.split(f"## v{LEADERBOARD_VERSION}")[1]
    assert "- removed digits-5: mlp-random" in newest and "- changed digits-5: cnn-coarse (rank 1" in newest


# --------------------------------------------------------------------------- figures kept when unchanged


def test_leaderboard_skips_a_figure_only_when_its_digest_matches(tmp_path):
    from subclassbench.leaderboard.board import _same

    files = figures.curve_files(_curves(ROWS), "t")
    other = figures.curve_files(_curves([ROWS[1]]), "t")
    for suffix, data in files.items():
        path = tmp_path / f"task.{suffix}"
        path.write_bytes(data + b"\n")
        assert _same(path, data)  # same plotted data: kept even where the bytes differ (another font build)
        assert not _same(path, other[suffix])
        path.write_bytes(b"\x89PNG no digest")
        assert not _same(path, data)


# --------------------------------------------------------------------------- OOD sets seen in training


def test_the_leaderboard_marks_ood_sets_seen_in_training(tmp_path):
    """A digits-5-trained encoder submitted on digits-id5 saw digits-ood5's classes: its row says so."""
    from subclassbench.leaderboard.board import build
    from subclassbench.leaderboard.submissions import SubmitRequest, submit

    subs = tmp_path / "submissions"
    subs.mkdir()
    submit(
        SubmitRequest(
            name="coarse-on-id5",
            model="builtin:digits_cnn.digits5_coarse",
            tasks=["digits-id5"],
            submissions=subs,
            labels="superclass",
            label_task="digits-5",
            training_data="digits-5 train split",
            license="MIT",
            citation="This test suite.",
            progress=False,
        )
    )
    build(subs, tmp_path / "lb")
    row = json.loads((tmp_path / "lb" / "leaderboard.json").read_text())["tasks"]["digits-id5"][0]
    assert row["ood_seen_in_training"] == ["digits-ood5"] and row["ood_sets"] == ["digits-ood5"]
    assert "(seen in training)" in (tmp_path / "lb" / "README.md").read_text()


def _one_line_error(result) -> str:
    """validate's one error line for the one problem planted (its summary line follows)."""
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.strip().splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def test_free_text_cannot_inject_markup_into_the_board(subs):
    """A label task that tries to add a cell, a link and HTML to the markdown board is refused (it must name a
    registered task); were one printed anyway, the cell would be inert."""
    model = subs / "cnn-coarse" / "model.yaml"
    hostile = "digits-5 | injected cell [click](https://evil.example) <img src=x onerror=alert(1)>"
    text = model.read_text()
    model.write_text(text.replace("label_task: digits-5", f"label_task: '{hostile}'"))
    assert hostile in model.read_text()
    assert "is not a registered task" in _one_line_error(cli("validate", subs))
    with pytest.raises(SubclassbenchError, match="is not a registered task"):
        build(subs, subs.parent / "lb")
    row = "| " + md(labels_cell({"labels": "superclass", "label_task": hostile})) + " |"
    unescaped = re.sub(r"\\.", "", row)  # what is left once escaped characters are removed
    assert "<img" not in unescaped and "[click]" not in unescaped
    assert unescaped.count("|") == 2  # no extra cell
    assert "\\<img src=x onerror=alert(1)\\>" in row and "\\[click\\]" in row


def test_a_result_whose_layer_name_carries_markup_is_refused(subs):
    result = subs / "cnn-coarse" / "results" / "digits-5.json"
    doc = json.loads(result.read_text())
    doc["layers"][0]["name"] = "conv1|<b>bold</b>"
    result.write_text(json.dumps(doc))
    assert "does not match result schema" in _one_line_error(cli("validate", subs))


def test_json_and_yaml_with_a_key_given_twice_are_refused(subs):
    """With a duplicate key a reader sees one number and the tool another: never pick one."""
    result = subs / "cnn-coarse" / "results" / "digits-5.json"
    text = result.read_text()
    assert text.startswith("{")
    result.write_text('{"schema_version": "0.0", ' + text[1:])
    assert "appears twice" in _one_line_error(cli("validate", subs))
    result.write_text(text)
    model = subs / "cnn-coarse" / "model.yaml"
    model.write_text(model.read_text() + "license: Proprietary\n")
    assert "appears twice" in _one_line_error(cli("validate", subs))


def test_imagenet_1k_label_set_marks_tiny_imagenet_classes_as_seen():
    """Networks trained on ImageNet-1k labels saw every Tiny ImageNet class: subclasses and OOD set alike."""
    from subclassbench.leaderboard import board
    from subclassbench.leaderboard.cells import labels_cell

    assert board._in_label_set("imagenet-1k", "breeds-tiny16")
    assert board._in_label_set("imagenet-1k", "tiny-imagenet-ood16")
    assert not board._in_label_set("imagenet-1k", "digits-5")
    model = {"training": {"labels": "fine", "label_set": "imagenet-1k"}}
    assert board._seen({"name": "tiny-imagenet-ood16", "task": "tiny-imagenet-ood16"}, model)
    row = {"labels": "fine", "label_task": None, "label_set": "imagenet-1k", "subclasses_seen_in_training": True}
    assert labels_cell(row) == "fine (ImageNet-1k); subclasses seen in training"


def test_preview_lists_the_rows_a_pull_request_changes_and_writes_nothing(subs, tmp_path):
    """A pull request adds its submission only: CI shows what the board would become (its job summary), and
    main's workflow commits the regenerated board and then checks it."""
    lb = tmp_path / "lb"
    build(subs, lb)
    before = {p: p.read_bytes() for p in lb.rglob("*") if p.is_file()}
    out = cli("leaderboard", "build", "--preview", "-q", "--submissions", subs, "--out", lb)
    assert out.exit_code == 0 and "- no row changes" in out.output and "0 file(s)" in out.output
    shutil.rmtree(subs / "mlp-random")  # the pull request's change: a removed submission (an added one alike)
    out = cli("leaderboard", "build", "--preview", "-q", "--submissions", subs, "--out", lb)
    assert out.exit_code == 0, out.output
    assert out.output.startswith("### Leaderboard preview") and "- removed digits-5: mlp-random" in out.output
    assert {p: p.read_bytes() for p in lb.rglob("*") if p.is_file()} == before  # nothing written
    assert cli("leaderboard", "build", "--check", "--submissions", subs, "--out", lb).exit_code == 2
    both = cli("leaderboard", "build", "--check", "--preview", "--submissions", subs, "--out", lb)
    assert both.exit_code == 2 and "exclude each other" in both.output


def test_ci_previews_the_board_on_pull_requests_and_checks_it_on_main():
    from tests.conftest import REPO

    script = (REPO / ".ci" / "run").read_text()
    assert 'SUBCLASSBENCH_BOARD:-check}" = preview' in script and "leaderboard build --check" in script
    workflow = (REPO / ".github" / "workflows" / "ci.yml").read_text()
    test_job, board_job = workflow.split("\n  leaderboard:")
    assert "SUBCLASSBENCH_BOARD: preview" in test_job
    assert board_job.index("git push") < board_job.index("leaderboard build --check")  # commit, then check


@pytest.mark.parametrize(
    ("layer", "marked"),
    [("layer1.0", True), ("stem / layer1.0", True), ("stem / layer2.0", False), ("varies: stem, layer1.0", True)],
)
def test_a_degenerate_committed_layer_is_marked_whichever_half_chose_it(layer, marked):
    text = committed_cell({"committed_layer": layer, "degenerate_layers": {"layer1.0": ["constant"]}})
    assert text.startswith(layer) and text.endswith("(degenerate)") == marked
