"""The Python API: subclassbench.evaluate(model=spec or nn.Module) runs the CLI's pipeline and returns a Result
whose to_pandas() is one row per layer; a module is identified by its content."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import subclassbench
from subclassbench.cli import app
from subclassbench.encoders.module import module_fingerprint
from subclassbench.errors import SubclassbenchError
from subclassbench.results.result import Result
from tests.conftest import without_run

FAST = {"metrics": ["clusterability"], "bootstrap": 0}


class SmallCNN(nn.Module):
    """Convolutions and ReLUs in one Sequential (names that match single operations) and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


def small_cnn(seed: int = 0) -> SmallCNN:
    torch.manual_seed(seed)
    return SmallCNN()


def test_a_spec_through_python_equals_the_cli(tmp_path: Path):
    out = tmp_path / "cli.json"
    cli = CliRunner().invoke(
        app, ["evaluate", "--metrics", "clusterability", "--bootstrap", "0", "--out", str(out), "--quiet"]
    )
    assert cli.exit_code == 0, cli.output
    result = subclassbench.evaluate("builtin:digits_cnn.digits5_coarse", "digits-5", **FAST)
    written = json.loads(out.read_text())
    del written["samples"]  # the per-sample file's record is added when a result is written
    assert without_run(result) == without_run(written)


def test_an_nn_module_is_evaluated_with_traced_layers_and_its_head_input_as_embedding():
    result = subclassbench.evaluate(small_cnn(), "digits-5", name="small-cnn", **FAST)
    assert isinstance(result, Result)
    encoder = result.encoder
    assert encoder["spec"] == "module:small-cnn" and encoder["source"] == "module"
    assert encoder["arch"].endswith("SmallCNN")
    # Stage ends: the ReLU before each pooling, and the last map (the 1×1 global pool is the embedding's).
    assert result.layer_names == ["features.1", "features.4", "features.7", "embedding"]
    assert encoder["weights"]["embedding"] == "input of fc"
    assert result.layers[-1]["dim"] == 16  # the head's input, not its 5 logits
    frame = result.to_pandas()
    assert list(frame["layer"]) == result.layer_names
    np.testing.assert_allclose(frame["ami"], [layer["clusterability"]["ami"] for layer in result.layers])
    assert frame["committed"].sum() == 1
    assert frame.loc[frame["committed"], "layer"].item() == result.summary["committed_layer"]


def test_to_pandas_carries_intervals_when_the_result_has_them():
    result = subclassbench.evaluate("builtin:digits_cnn.digits5_coarse", metrics=["clusterability"], bootstrap=20)
    frame = result.to_pandas()
    assert {"ami_low", "ami_high"} <= set(frame.columns)
    assert (frame["ami_low"] <= frame["ami"]).all() and (frame["ami"] <= frame["ami_high"]).all()


def test_a_module_is_identified_by_its_content():
    a, b = small_cnn(0), small_cnn(0)
    assert module_fingerprint(a) == module_fingerprint(b)
    with torch.no_grad():
        b.fc.bias[0] += 1e-3  # one changed weight is another model
    assert module_fingerprint(a) != module_fingerprint(b)
    first = subclassbench.evaluate(a, **FAST)
    second = subclassbench.evaluate(b, **FAST)
    assert first.encoder["weights"]["sha256"] != second.encoder["weights"]["sha256"]
    again = subclassbench.evaluate(small_cnn(0), **FAST)  # the same content reads the cached features
    assert again["run"]["feature_cache"]["hits"] > 0
    assert without_run(again) == without_run(first)


def test_preprocess_and_explicit_layers_and_embed():
    model = small_cnn()
    result = subclassbench.evaluate(
        model,
        layers=["features.0", "features.4"],
        preprocess={"input_size": [1, 16, 16], "mean": [0.5], "std": [0.25]},
        embed=lambda x: model.pool(model.features(x)).flatten(1),
        **FAST,
    )
    assert result.layer_names == ["features.0", "features.4"]
    assert result.encoder["preprocessing"]["input_size"] == [1, 16, 16]
    assert result.encoder["weights"]["embedding"] == "embed function"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: subclassbench.evaluate(object()), "model must be a torch nn.Module or a spec string"),
        (lambda: subclassbench.evaluate(small_cnn(), bogus=1), "unknown option 'bogus'"),
        (lambda: subclassbench.evaluate(small_cnn(), preprocess={"size": 3}), "preprocess: .*use input_size"),
        (lambda: subclassbench.evaluate(small_cnn(), name="../x"), "cannot name a model"),
        (lambda: subclassbench.evaluate(small_cnn(), weights="w.safetensors"), "load the weights into your module"),
        (lambda: subclassbench.evaluate("builtin:digits_cnn", embed=len), "applies to a model passed as an nn"),
        (lambda: subclassbench.evaluate("builtin:digits_cnn", preprocess={"size": 3}), "unknown preprocessing field"),
        (lambda: subclassbench.evaluate("builtin:digits_cnn", preprocess={"std": 0}), "std needs one positive"),
        (lambda: subclassbench.evaluate("builtin:digits_cnn", model_args={"bogus": 1}), "does not apply to"),
        (lambda: subclassbench.evaluate("builtin:digits_cnn", name="x"), "name= names an nn.Module"),
        (
            lambda: subclassbench.evaluate(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), **FAST),
            "cannot trace Sequential on one task sample",
        ),
    ],
)
def test_api_misuse_is_one_clear_error(call, message):
    with pytest.raises(SubclassbenchError, match=message):
        call()


def test_module_spec_on_the_command_line_points_to_the_python_api():
    result = CliRunner().invoke(app, ["evaluate", "--model", "module:Net"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: module: encoders are Python objects")
