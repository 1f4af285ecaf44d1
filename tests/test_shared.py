"""Optional extras on ../shared (pretrained CIFAR ResNets, real CIFAR-10 JPEG copies).

Skipped on a fresh machine without ../shared; the core suite never needs it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from subclassbench.encoders.base import load_encoder
from subclassbench.evaluation.pipeline import evaluate
from subclassbench.evaluation.request import EvaluationRequest
from subclassbench.tasks.task import load_task
from tests.conftest import SHARED, requires_shared

pytestmark = [pytest.mark.shared, requires_shared]
WEIGHTS = SHARED / "weights" / "resnet20-12fca82f.th"
TEST_NPZ = SHARED / "data" / "cifar10_test.npz"


def test_pretrained_resnet20_reproduces_its_documented_accuracy():
    # ../shared/weights/README.md: 81.03 % 10-way accuracy on the JPEG test copies.
    split = load_task("cifar10-5").load_split(data_path=TEST_NPZ)
    encoder = load_encoder("builtin:cifar_resnet20", weights=WEIGHTS)
    with torch.inference_mode():
        logits = torch.cat(
            [
                encoder.model(encoder.preprocessing(split.images.load(np.arange(s, min(s + 1000, len(split))))))
                for s in range(0, len(split), 1000)
            ]
        )
    accuracy = float((logits.argmax(1).numpy() == split.images.labels).mean())
    assert accuracy == pytest.approx(0.8103, abs=0.002)


def test_fine_trained_resnet20_last_layer_recovers_subclasses():
    result = evaluate(
        EvaluationRequest(
            model="builtin:cifar_resnet20",
            weights=str(WEIGHTS),
            task="cifar10-5",
            data=str(TEST_NPZ),
            layers=["stem", "embedding"],
            progress=False,
        )
    )
    stem, last = (layer["clusterability"] for layer in result["layers"])
    assert result["task"]["n_samples"] == 10_000
    assert last["within_superclass_acc"] > 0.9 > stem["within_superclass_acc"]
    assert last["ami"] > stem["ami"] + 0.3
