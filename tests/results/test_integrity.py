"""results/integrity.py: a result's numbers must follow from its per-layer data and per-sample file, to the last
digit that can matter; a hand edit far below what a reader would notice is still refused."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from subclassbench.errors import SubclassbenchError
from subclassbench.results.integrity import sample_problems, summary_problems
from subclassbench.results.result import read_result
from tests.results.conftest import loaded


def _edited(path: Path, edit) -> Path:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    return path


def _refusal(path: Path) -> str:
    with pytest.raises(SubclassbenchError) as caught:
        read_result(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_the_copy_reads_before_any_edit(copy):
    assert read_result(copy).summary["committed_ami"] is not None


def test_a_committed_ami_edited_by_half_a_hundredth_is_refused(copy):
    def nudge(doc: dict) -> None:
        doc["summary"]["committed_ami"] += 0.005

    assert "committed_ami" in _refusal(_edited(copy, nudge))


def test_an_interval_endpoint_edited_by_a_ten_thousandth_is_refused(copy):
    def nudge(doc: dict) -> None:
        doc["summary"]["ci95"]["committed_ami"][0] += 1e-4

    assert "ci95" in _refusal(_edited(copy, nudge))


def test_a_layer_ami_edited_by_a_millionth_is_refused(copy):
    def nudge(doc: dict) -> None:
        doc["layers"][0]["clusterability"]["ami"] += 1e-6

    assert "ami" in _refusal(_edited(copy, nudge))


# --------------------------------------------------------------------------- each check, by its own message
# The checks above go through read_result, which reports the first problem only and turns a crash inside a check
# into "malformed": a check that broke would still refuse. These call the two checks directly, on results of both
# families, and name the problem each edit must raise.


def test_untouched_results_of_both_families_have_no_problem(shifted, ood):
    for path in (shifted, ood):
        doc, samples = loaded(path)
        assert doc["summary"]["selection"]["method"] == "crossfit" and doc["summary"]["transfer"]
        assert summary_problems(doc) == [] and sample_problems(doc, samples) == []
        # Every layer names the same transfer scores, a subpopulation shift or not (null where there is none).
        shift = [f"subpop_{kind}_acc{end}" for kind in ("shift", "refit") for end in ("", "_final")]
        keys = {"id_acc", "id_acc_final", "id_epoch", "ood", "ood_mean_acc", "same_as_next", "effective_rank",
                "numerical_rank", "alignment_subpop_shift", "alignment_subpop_refit", *shift}  # fmt: skip
        assert all(set(layer["transfer"]) == keys for layer in doc["layers"])
        assert all(layer["transfer"][k] is None for layer in doc["layers"] for k in shift) == (path == ood)


def test_ward_overclustering_edits_are_named(shifted):
    doc, _ = loaded(shifted)
    layer = doc["layers"][1]
    where = f"layer {layer['name']} clusterability"
    layer["clusterability"]["ward"]["overcluster"][0]["ami"] += 0.01
    assert summary_problems(doc) == [f"{where}: Ward AMI at factor 1 differs from the Ward AMI"]
    layer["clusterability"]["ward"]["overcluster"][1]["factor"] = 7
    factors = f"{where}: Ward overclustering factors are [1, 7, 3, 4, 5], the protocol's are 1-5"
    assert summary_problems(doc) == [factors]
    doc, _ = loaded(shifted)
    doc["layers"][1]["clusterability"]["nmi"] += 0.01
    assert summary_problems(doc)[0].startswith(f"{where}.nmi is ")


def test_transfer_summary_edits_are_named(shifted, ood):
    doc, _ = loaded(ood)
    doc["layers"][0]["transfer"]["ood_mean_acc"] += 0.01
    assert summary_problems(doc)[0].startswith("a layer's transfer.ood_mean_acc is ")
    doc, _ = loaded(ood)
    best = doc["summary"]["transfer"]["best_id_layer"]
    doc["summary"]["transfer"]["best_id_layer"] = "stem" if best != "stem" else "block1"
    assert summary_problems(doc) == [
        f"summary.transfer.best_id_layer is {doc['summary']['transfer']['best_id_layer']!r} but its data gives {best!r}"
    ]
    doc, _ = loaded(ood)
    doc["summary"]["transfer"]["ood_retained_mean_curve"] -= 1.0
    assert summary_problems(doc)[0].startswith("summary.transfer.ood_retained_mean_curve is ")
    doc, _ = loaded(ood)
    doc["summary"]["pearson_id_ood"] += 0.01  # the headline copy only
    problems = summary_problems(doc)
    assert problems[0].startswith("summary.pearson_id_ood is ") and "but its data gives" in problems[0]
    assert problems[1].startswith("summary.pearson_id_ood is ")
    assert "but summary.transfer.pearson_id_ood is" in problems[1]
    doc, _ = loaded(ood)
    doc["summary"]["transfer"]["pearson_id_ood"] += 0.01
    assert summary_problems(doc)[0].startswith("summary.transfer.pearson_id_ood is ")


def test_per_sample_transfer_edits_are_named(shifted, ood):
    for key in ("id_acc", "subpop_shift_acc", "subpop_refit_acc"):
        doc, samples = loaded(shifted)
        layer = doc["layers"][2]
        layer["transfer"][key] += 1e-3
        expected = f"layer {layer['name']} transfer (per-sample file).{key} is "
        assert sample_problems(doc, samples)[0].startswith(expected)
    doc, samples = loaded(ood)
    layer = doc["layers"][2]
    layer["transfer"]["ood"]["digits-ood5"]["acc"] += 1e-3
    expected = f"layer {layer['name']} OOD set digits-ood5 (per-sample file).acc is "
    assert sample_problems(doc, samples)[0].startswith(expected)


def test_per_sample_head_edits_are_named(shifted):
    doc, samples = loaded(shifted)
    layer = doc["layers"][1]
    layer["clusterability"]["head_reconstruction_acc"] += 1e-3
    expected = f"layer {layer['name']} clusterability (per-sample file).head_reconstruction_acc is "
    assert sample_problems(doc, samples)[0].startswith(expected)
    doc, samples = loaded(shifted)
    doc["summary"]["head_superclass_acc"] -= 1e-3
    expected = "summary (the head's superclass, from the per-sample file).head_superclass_acc is "
    assert sample_problems(doc, samples)[0].startswith(expected)


def test_a_per_sample_file_of_other_layers_is_named(shifted):
    doc, samples = loaded(shifted)
    other = dataclasses.replace(samples, layers=list(reversed(samples.layers)))
    assert sample_problems(doc, other) == ["its per-sample file lists other layers than the result"]


def test_a_protocol_v2_selection_is_checked_by_its_own_rule(shifted):
    """v2 chose the layer on a validation split's per-layer AMIs: the committed numbers are that layer's."""
    doc, _ = loaded(shifted)
    layers, summary = doc["layers"], doc["summary"]
    per_layer = [0.1, 0.4, 0.3, 0.2]  # v2's validation AMIs: block1 is chosen
    chosen = layers[1]["clusterability"]
    summary["selection"] = {"split": "val", "per_layer_ami": per_layer, "ami": 0.4}
    summary.update(
        committed_layer=layers[1]["name"],
        committed_ami=chosen["ami"],
        committed_within_superclass_acc=chosen["within_superclass_acc"],
        committed_reconstruction_acc=chosen["reconstruction_acc"],
        committed_superclass_acc=chosen["superclass_acc"],
        committed_gap=max(layer["clusterability"]["ami"] for layer in layers) - chosen["ami"],
    )
    assert summary_problems(doc) == []
    summary["selection"]["ami"] = 0.41
    assert summary_problems(doc) == ["summary.selection.ami is 0.41 but its data gives 0.4"]
    summary["selection"]["ami"], summary["committed_ami"] = 0.4, chosen["ami"] + 0.005
    assert summary_problems(doc)[0].startswith("summary.committed_ami is ")
