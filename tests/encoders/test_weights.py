"""encoders/weights.py: safetensors and torch checkpoints, wrong or corrupt weights files."""

from __future__ import annotations

import pytest
import torch

from subclassbench.core.hashing import sha256_file
from subclassbench.encoders.base import load_encoder
from subclassbench.errors import SubclassbenchError


def save_shared_style_checkpoint(model: torch.nn.Module, path) -> None:
    """The format of the pretrained CIFAR ResNets: DataParallel keys, no num_batches_tracked."""
    state = {f"module.{k}": v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save({"state_dict": state, "best_prec1": 90.0}, path)


def test_loads_shared_style_checkpoint(tmp_path):
    torch.manual_seed(1)
    source = load_encoder("builtin:cifar_resnet20", num_classes=10).model
    path = tmp_path / "resnet20.th"
    save_shared_style_checkpoint(source, path)
    encoder = load_encoder("builtin:cifar_resnet20", weights=path, num_classes=5)
    for key, value in source.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(encoder.model.state_dict()[key], value), key
    assert encoder.weights == {"path": str(path), "sha256": sha256_file(path), "format": "torch"}
    assert encoder.model.linear.out_features == 10  # head size follows the file, not the task


def test_wrong_architecture_for_weights(tmp_path):
    path = tmp_path / "resnet32.th"
    save_shared_style_checkpoint(load_encoder("builtin:cifar_resnet32").model, path)
    with pytest.raises(SubclassbenchError, match=r"do not fit builtin:cifar_resnet20: .*unexpected keys"):
        load_encoder("builtin:cifar_resnet20", weights=path)


def test_garbage_and_missing_weights(tmp_path):
    garbage = tmp_path / "w.pt"
    garbage.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(SubclassbenchError, match="cannot read weights file"):
        load_encoder("builtin:cifar_resnet20", weights=garbage)
    bad_st = tmp_path / "w.safetensors"
    bad_st.write_bytes(b"garbage")
    with pytest.raises(SubclassbenchError, match="not a valid safetensors file"):
        load_encoder("builtin:cifar_resnet20", weights=bad_st)
    with pytest.raises(SubclassbenchError, match="not found"):
        load_encoder("builtin:cifar_resnet20", weights=tmp_path / "absent.safetensors")


def test_safetensors_round_trip(tmp_path):
    from safetensors.torch import save_file

    model = load_encoder("builtin:digits_mlp", sample_shape=(1, 8, 8)).model
    path = tmp_path / "mlp.safetensors"
    save_file(model.state_dict(), str(path))
    encoder = load_encoder("builtin:digits_mlp", weights=path, sample_shape=(1, 8, 8))
    assert encoder.weights["format"] == "safetensors"
    assert encoder.pretrained
