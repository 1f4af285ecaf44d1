"""Figures (subclassbench.figures.drawing): stable model colours, data-driven heatmap ranges, the committed layer
marked, label granularity as line style, clipped agreement bands, PNG/SVG/PDF byte-identical on every call,
and `evaluate --plot`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_hex
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.errors import SubclassbenchError
from subclassbench.figures import drawing as figures
from subclassbench.figures.drawing import Curve, curve_figure, heatmap_figure, model_style
from subclassbench.results.result import read_result
from tests.conftest import REPO

LAYERS = ("stem", "block1", "block2", "embedding")


def _row(name: str, labels: str, committed: str, ami: list[float], bands: bool = True) -> dict[str, Any]:
    """A leaderboard row as collect() makes it (only the fields a figure reads)."""
    curve = []
    for i, (layer, value) in enumerate(zip(LAYERS, ami, strict=True)):
        point: dict[str, Any] = {"layer": layer, "depth": i / 3, "ami": value}
        if bands:
            point["ci95"] = [value - 0.05, value + 0.04]
        curve.append(point)
    return {"submission": name, "labels": labels, "committed_layer": committed, "curve": curve}


ROWS = [
    _row("alpha-fine", "fine", "embedding", [0.1, 0.5, 0.8, 0.9]),
    _row("beta-coarse", "superclass", "block2", [0.2, 0.6, 0.7, 0.5]),
]


def _lines(fig: Any) -> dict[str, Any]:
    return {line.get_gid(): line for line in fig.axes[0].get_lines() if line.get_gid()}


def _curves(rows: list[dict[str, Any]]) -> list[Curve]:
    return [figures.curve_from_row(r) for r in rows]


def test_a_model_keeps_its_colour_when_a_row_is_added():
    before = _lines(curve_figure(_curves(ROWS), "t"))
    # A new row ranked first: with colours taken by position, every other row's colour would shift.
    added = [_row("aardvark-new", "none", "stem", [0.3, 0.3, 0.3, 0.3]), *ROWS]
    after = _lines(curve_figure(_curves(added), "t"))
    for row in ROWS:
        key = f"curve:{row['submission']}"
        assert to_hex(after[key].get_color()) == to_hex(before[key].get_color())
        assert after[key].get_marker() == before[key].get_marker()
        assert to_hex(before[key].get_color()) == model_style(row["submission"])[0].lower()
    # The style is a function of the name alone, not of Python's per-process string hash.
    code = "from subclassbench.figures.drawing import model_style; print(model_style('alpha-fine'))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert other.stdout.strip() == str(model_style("alpha-fine"))


def test_label_granularity_is_the_line_style_and_explained_in_the_legend():
    fig = curve_figure(_curves(ROWS), "t")
    lines = _lines(fig)
    fine, coarse = lines["curve:alpha-fine"], lines["curve:beta-coarse"]
    assert fine.get_linestyle() == "-" and coarse.get_linestyle() == "--"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert figures.GRANULARITY["fine"][1] in legend and figures.GRANULARITY["superclass"][1] in legend
    assert figures.GRANULARITY["none"][1] not in legend  # only the granularities that are drawn


def test_the_committed_layer_is_marked_on_its_point():
    fig = curve_figure(_curves(ROWS), "t")
    lines = _lines(fig)
    star = lines["committed:beta-coarse:block2"]
    assert star.get_marker() == figures.COMMITTED_MARKER
    assert list(star.get_xdata()) == pytest.approx([2 / 3]) and list(star.get_ydata()) == pytest.approx([0.7])
    assert to_hex(star.get_markerfacecolor()) == model_style("beta-coarse")[0].lower()
    assert "committed:alpha-fine:embedding" in lines
    assert len([k for k in lines if k.startswith("committed:")]) == 2
    # A row over training seeds that committed different layers: each is marked, hollow.
    varies = _row("gamma-seeds", "fine", "varies: block1, embedding", [0.1, 0.5, 0.8, 0.9])
    hollow = _lines(curve_figure(_curves([varies]), "t"))
    marks = sorted(k for k in hollow if k.startswith("committed:"))
    assert marks == ["committed:gamma-seeds:block1", "committed:gamma-seeds:embedding"]
    assert all(to_hex(hollow[k].get_markerfacecolor()) == "#ffffff" for k in marks)


def test_interval_bands_are_drawn_only_when_the_result_has_them():
    with_bands = curve_figure(_curves(ROWS), "t")
    without = curve_figure(_curves([_row("delta", "fine", "stem", [0.1, 0.2, 0.3, 0.4], bands=False)]), "t")
    assert len([c for c in with_bands.axes[0].collections if isinstance(c, PolyCollection)]) == 2
    assert not [c for c in without.axes[0].collections if isinstance(c, PolyCollection)]


def test_heatmap_colour_range_follows_the_data_and_names_the_models():
    matrix = [[0.95, 0.8, 0.76], [0.82, 0.9, 0.75]]
    fig = heatmap_figure(matrix, ["l1", "l2"], ["a", "b", "c"], "linear CKA", "model-A", "model-B")
    ax = fig.axes[0]
    assert ax.images[0].get_clim() == pytest.approx((0.75, 0.95))
    assert "model-A" in ax.get_ylabel() and "model-B" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["l1", "l2"]
    assert len(fig.axes) == 2  # the colour bar
    assert figures.heatmap_limits([[0.3, np.nan], [0.4, 0.35]]) == pytest.approx((0.3, 0.4))
    low, high = figures.heatmap_limits([[1.0, 1.0], [1.0, 1.0]])  # constant: a range around it
    assert low < 1.0 < high


def _agreement_doc() -> dict[str, Any]:
    mean = [0.6, 0.9, 0.98]
    part = {
        "n_samples": 10,
        "agreement": [0.4, 0.8, 0.95],
        "agreement_lower_bound": [0.2, 0.8, 0.94],
        "agreement_upper_bound": [0.55, 0.88, 0.97],
        "agreement_if_independent": [0.3, 0.82, 0.945],
        "accuracy_mean": mean,
        "accuracy_std": [0.5, 0.05, 0.04],  # mean ± std runs past 0 and 1
    }
    return {"epochs": 3, "runs": ["a", "b"], **part, "train": dict(part)}


def test_agreement_band_stays_within_0_and_1_and_the_axis_is_labelled():
    doc = _agreement_doc()
    low, high = figures.accuracy_band(doc)
    assert low.min() >= 0.0 and high.max() <= 1.0 and high[-1] == 1.0 and low[0] == pytest.approx(0.1)
    fig = figures.agreement_figure(doc)
    assert len(fig.axes) == 2 and fig.axes[0].get_ylabel() == "agreement, accuracy"
    for ax in fig.axes:  # agreement, its two bounds, the independence baseline, mean accuracy
        assert {line.get_label() for line in ax.get_lines()} >= {"independent runs", "lower bound"}
    for ax in fig.axes:
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert bands
        y = np.concatenate([p.vertices[:, 1] for c in bands for p in c.get_paths()])
        assert y.min() >= 0.0 and y.max() <= 1.0


def test_every_format_is_written_and_byte_identical_on_a_second_call(tmp_path):
    first = figures.curve_files(_curves(ROWS), "digits-5: subclass AMI per layer")
    second = figures.curve_files(_curves(ROWS), "digits-5: subclass AMI per layer")
    assert set(first) == {"png", "svg", "pdf"} and first == second
    assert first["png"].startswith(b"\x89PNG") and b"<svg" in first["svg"] and first["pdf"].startswith(b"%PDF")
    assert b"CreationDate" not in first["pdf"] and b"<dc:date>" not in first["svg"]
    digests = {figures.read_digest(data) for data in first.values()}
    assert len(digests) == 1 and None not in digests
    changed = figures.curve_files(_curves([ROWS[0]]), "digits-5: subclass AMI per layer")
    assert figures.read_digest(changed["svg"]) not in digests
    # Another process (another string-hash seed, fresh SVG ids) gives the same bytes.
    code = (
        "import sys; from tests.figures.test_drawing import ROWS, _curves; "
        "from subclassbench.figures import drawing as figures; "
        "sys.stdout.buffer.write(figures.curve_files(_curves(ROWS), 'digits-5: subclass AMI per layer')['svg'])"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=REPO, check=True)
    assert other.stdout == first["svg"]
    heat = [[0.9, 0.8], [0.7, 0.85]]
    assert figures.heatmap_files(heat, ["a", "b"], ["c", "d"], "GRI", "A", "B") == figures.heatmap_files(
        heat, ["a", "b"], ["c", "d"], "GRI", "A", "B"
    )
    assert figures.agreement_files(_agreement_doc()) == figures.agreement_files(_agreement_doc())


def test_evaluate_plot_writes_the_curve_beside_the_result(tmp_path):
    runner = CliRunner()
    out = tmp_path / "run" / "digits.json"
    args = ["evaluate", "--metrics", "clusterability", "--bootstrap", "0", "--out", str(out), "--quiet", "--plot"]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    paths = [out.with_suffix(f".{suffix}") for suffix in ("png", "svg", "pdf")]
    assert all(p.is_file() for p in paths) and all(f"wrote {p}" in done.output for p in paths)
    result = read_result(out)
    curve = figures.curve_from_result(result)
    # The packaged digits5_coarse weights' card says superclass; the committed layer is the result's.
    assert curve.labels == "superclass" and curve.committed == (result.summary["committed_layer"],)
    title = f"{result.encoder['spec']} on digits-5: subclass AMI per layer"
    expected = figures.curve_files([curve], title, result.task["split"])
    assert {p.suffix[1:]: p.read_bytes() for p in paths} == expected
    refused = runner.invoke(app, ["evaluate", "--metrics", "transfer", "--out", str(tmp_path / "t.json"), "--plot"])
    assert refused.exit_code == 2 and "--plot" in refused.output
    assert not (tmp_path / "t.json").exists()  # refused before any work


# --------------------------------------------------------------------------- subclassbench plot, Result.plot


@pytest.fixture(scope="module")
def digits_results(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("plot")
    paths = {}
    for name, model in (("coarse", "builtin:digits_cnn.digits5_coarse"), ("mlp", "builtin:digits_mlp")):
        paths[name] = folder / f"{name}.json"
        out = CliRunner().invoke(app, ["evaluate", "-q", "--model", model, "--bootstrap", "20", "--out", paths[name]])
        assert out.exit_code == 0, out.output
    return paths


def test_plot_overlays_results_with_bands_and_the_legend_under_the_axes(digits_results, tmp_path):
    out = CliRunner().invoke(app, ["plot", str(digits_results["coarse"]), str(digits_results["mlp"]), "--out",
                                   str(tmp_path / "cmp")])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert {p.name for p in tmp_path.iterdir()} == {"cmp.png", "cmp.svg", "cmp.pdf"}
    coarse, mlp = (read_result(digits_results[k]) for k in ("coarse", "mlp"))
    fig = coarse.plot(mlp)
    lines = _lines(fig)
    assert {"curve:builtin:digits_cnn.digits5_coarse", "curve:builtin:digits_mlp"} <= set(lines)
    assert len(fig.axes[0].collections) >= 2  # one 95% band per result
    fig.canvas.draw()
    legend, axes = fig.legends[0].get_window_extent(), fig.axes[0].get_window_extent()
    assert legend.y1 <= axes.y0 and legend.width > 0.5 * axes.width  # below the axes, across them


def test_a_model_has_one_colour_in_its_own_plot_and_on_the_board(digits_results):
    result = read_result(digits_results["coarse"])
    from_result = figures.curve_from_result(result)
    row = {**_row("my-submission", "superclass", "embedding", [0.1, 0.2, 0.3, 0.4]),
           "encoder": result.encoder["spec"], "weights_sha256": result.weights_sha256}  # fmt: skip
    from_board = figures.curve_from_row(row)
    assert from_board.name != from_result.name and from_board.style == from_result.style
    other = {**row, "weights_sha256": "0" * 64}  # the same architecture with other weights is another model
    assert figures.curve_from_row(other).key != from_board.key


def test_plot_refuses_results_on_different_tasks_in_one_line(digits_results, tmp_path):
    with pytest.raises(SubclassbenchError, match="different tasks or splits"):
        figures.results_curves([read_result(digits_results["coarse"]), read_result(digits_results["coarse"]),
                                _task_renamed(read_result(digits_results["mlp"]))])  # fmt: skip
    out = CliRunner().invoke(app, ["plot", str(tmp_path / "missing.json")])
    assert out.exit_code == 2 and out.output.startswith("error:")


def _task_renamed(result: Any) -> Any:
    result.doc["task"]["name"] = "digits-id5"
    return result
