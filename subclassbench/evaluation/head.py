"""The network's own superclass head, for reconstruction through it (Yang et al. 2023; protocol v3, §3.3).

Yang et al. predict each image's superclass with the trained network's own classifier; the protocol's
reconstruction accuracy predicts it with a linear probe on each layer, which any encoder allows (and which read
0.671 against the head's 0.626 on the yang2023 cpu networks). Where the encoder *has* a head trained on the
evaluated task's superclasses (a `subclassbench train` run with superclass labels; a submission whose model.yaml
says so), v3 reports reconstruction through that head beside the probe's.

The head is applied to the cached ``embedding`` features: every builtin network computes
``head(forward_features(x))``, and ``embedding`` is ``forward_features``' output, so no second forward pass is
needed and the features stay the cached boundary between extraction and scoring.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from subclassbench.encoders.base import Encoder
from subclassbench.features.extraction import LayerFeatures
from subclassbench.tasks.task import Task

EMBEDDING = "embedding"


def head_task(declared: str | None, card: dict[str, Any] | None) -> str | None:
    """The task whose superclasses the encoder's head was trained on: the submitter's (model.yaml labels
    superclass with label_task), else a `train` card's with superclass labels; else None."""
    if declared is not None:
        return declared
    if isinstance(card, dict) and card.get("labels") == "superclass" and isinstance(card.get("task"), str):
        return str(card["task"])
    return None


def superclass_head(encoder: Encoder, task: Task, trained_on: str | None) -> tuple[nn.Linear | None, str | None]:
    """The encoder's linear head when it predicts ``task``'s superclasses, or None and why not (None: no head
    was claimed, nothing to say)."""
    if trained_on is None:
        return None, None
    if trained_on != task.name:
        return None, None  # trained on another task's superclasses: its head predicts other classes
    head = getattr(encoder.model, "head", None)
    if not isinstance(head, nn.Linear) or EMBEDDING not in encoder.layer_names:
        return None, "no reconstruction through the head: the encoder has no linear head on its embedding"
    if head.out_features != len(task.superclasses):
        return None, (
            f"no reconstruction through the head: it has {head.out_features} outputs, "
            f"the task {len(task.superclasses)} superclasses"
        )
    return head, None


def head_predictions(head: nn.Linear, layers: list[LayerFeatures]) -> np.ndarray:
    """Each image's superclass as the head predicts it from the ``embedding`` layer's features (ties: the lower
    class, as ``argmax``)."""
    embedding = next(layer for layer in layers if layer.name == EMBEDDING)
    features = torch.from_numpy(np.ascontiguousarray(embedding.matrix.load(), dtype=np.float32))
    with torch.inference_mode():  # the head's own parameters, copied: the encoder's module stays where it is
        weight, bias = head.weight.detach().float().cpu(), head.bias
        logits = features @ weight.T
        if bias is not None:
            logits = logits + bias.detach().float().cpu()
    predicted: np.ndarray = logits.argmax(dim=1).numpy().astype(np.int64)
    return predicted
