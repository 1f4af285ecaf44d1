"""Reconstruction through the encoder's own head (subclassbench.evaluation.head; protocol v3 §3.3): the head applied
to the cached embedding is the network's own prediction, the result reports it beside the probe's, and a head
trained on another task's superclasses is never used."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from subclassbench.encoders.base import load_encoder
from subclassbench.errors import SubclassbenchError
from subclassbench.evaluation.head import head_predictions, head_task, superclass_head
from subclassbench.evaluation.pipeline import evaluate
from subclassbench.evaluation.request import EvaluationRequest
from subclassbench.features.extraction import LayerFeatures
from subclassbench.results.result import Result, read_result
from subclassbench.tasks.task import load_task


def test_the_head_on_the_embedding_is_the_networks_own_prediction():
    encoder = load_encoder("builtin:digits_cnn", num_classes=5, init_seed=3)
    x = torch.randn(64, 1, 8, 8)
    with torch.inference_mode():
        own = encoder.model(x).argmax(dim=1).numpy()
        embedding = encoder.embed(x).numpy()
    layers = [LayerFeatures("embedding", 1.0, "none", embedding)]
    head = encoder.model.head
    assert isinstance(head, torch.nn.Linear)
    assert np.array_equal(head_predictions(head, layers), own)
    assert next(encoder.model.parameters()).dtype == torch.float32  # the encoder's module is left as it was


@pytest.mark.parametrize(
    ("declared", "card", "expected"),
    [
        ("digits-5", None, "digits-5"),
        (None, {"labels": "superclass", "task": "digits-5"}, "digits-5"),
        (None, {"labels": "permuted", "task": "digits-5"}, None),  # a permuted-label head predicts nothing real
        (None, {"labels": "subclass", "task": "digits-5"}, None),
        (None, None, None),
    ],
)
def test_which_task_the_head_was_trained_on(declared, card, expected):
    assert head_task(declared, card) == expected


def test_a_head_for_another_task_or_shape_is_not_used():
    task = load_task("digits-5")
    encoder = load_encoder("builtin:digits_cnn", num_classes=5)
    assert superclass_head(encoder, task, "digits-5")[0] is encoder.model.head
    assert superclass_head(encoder, task, "digits-id5") == (None, None)  # other superclasses: silently not used
    assert superclass_head(encoder, task, None) == (None, None)
    wide = load_encoder("builtin:digits_cnn", num_classes=10)
    head, why = superclass_head(wide, task, "digits-5")
    assert head is None and why is not None and "10 outputs" in why


@pytest.fixture(scope="module")
def coarse(tmp_path_factory) -> Path:
    """The packaged superclass-trained digits CNN on digits-5: its card names digits-5's superclasses."""
    out = tmp_path_factory.mktemp("head") / "coarse.json"
    evaluate(EvaluationRequest(model="builtin:digits_cnn.digits5_coarse", task="digits-5", progress=False)).write(out)
    return out


def test_the_result_reports_reconstruction_through_the_head_beside_the_probes(coarse):
    result = read_result(coarse)
    samples, summary = result.samples, result.summary
    assert samples is not None and samples.head_superclass_pred is not None
    # The head's superclass, recomputed from the network itself on the test images.
    assert summary["head_superclass_acc"] == pytest.approx(np.mean(samples.head_superclass_pred == samples.superclass))
    assert summary["head_superclass_acc"] > 0.9  # a trained head, far from chance (0.2)
    correct = samples.head_reconstruction_correct()
    assert correct is not None
    for i, layer in enumerate(result.layers):
        scores = layer["clusterability"]
        assert scores["head_reconstruction_acc"] == pytest.approx(correct[i].mean())
        assert scores["head_reconstruction_acc"] <= summary["head_superclass_acc"] + 1e-12
        assert "head_reconstruction_acc" in layer["ci95"]
    # Where head and probe name the same superclass, both name the same subclass (the same centroids).
    same = samples.head_superclass_pred[None, :] == samples.superclass_pred
    assert np.array_equal(samples.head_reconstructed[same], samples.reconstructed[same])
    low, high = summary["ci95"]["committed_head_reconstruction_acc"]
    assert low <= summary["committed_head_reconstruction_acc"] <= high


def test_an_untrained_or_permuted_network_has_no_head_reconstruction():
    result = evaluate(EvaluationRequest(model="builtin:digits_cnn", task="digits-5", progress=False, bootstrap=0))
    assert "head_superclass_acc" not in result.summary
    assert all("head_reconstruction_acc" not in layer["clusterability"] for layer in result.layers)


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (
            lambda doc: doc["layers"][1]["clusterability"].__setitem__("head_reconstruction_acc", 0.5),
            "head_reconstruction",
        ),
        (
            lambda doc: doc["summary"].__setitem__(
                "head_superclass_acc", doc["summary"]["head_superclass_acc"] - 0.005
            ),
            "head_superclass_acc",
        ),
        (
            lambda doc: doc["summary"].__setitem__(
                "committed_head_reconstruction_acc", doc["summary"]["committed_head_reconstruction_acc"] + 0.005
            ),
            "committed_head_reconstruction_acc",
        ),
    ],
)
def test_a_hand_edited_head_number_is_refused(coarse, tmp_path, edit, fragment):
    doc = json.loads(coarse.read_text())
    edit(doc)
    for path in coarse.parent.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    (tmp_path / coarse.name).write_text(json.dumps(doc))
    with pytest.raises(SubclassbenchError) as caught:
        Result.read(tmp_path / coarse.name)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)
