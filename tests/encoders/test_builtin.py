"""encoders/builtin.py: packaged reference weights and their cards, builtin input sizes."""

from __future__ import annotations

import json

import pytest
import torch

from subclassbench.core.hashing import sha256_file
from subclassbench.encoders.base import load_encoder
from subclassbench.encoders.builtin import list_builtin, packaged_weights_dir
from subclassbench.errors import SubclassbenchError


def test_packaged_reference_weights_match_their_card():
    for spec in list_builtin():
        if "." not in spec:
            continue
        arch_tag = spec.removeprefix("builtin:")
        card = json.loads((packaged_weights_dir() / f"{arch_tag}.json").read_text())
        assert sha256_file(packaged_weights_dir() / f"{arch_tag}.safetensors") == card["weights_sha256"]
        shape = (1, 8, 8) if card["task"] == "digits-5" else (3, 32, 32)
        encoder = load_encoder(spec, sample_shape=shape)
        assert encoder.weights["sha256"] == card["weights_sha256"]
        assert card["labels"] in {"superclass", "subclass"} and 0.5 < card["final_test_acc"] <= 1.0
        if card.get("correctness_file"):
            assert (packaged_weights_dir() / card["correctness_file"]).is_file()


def test_tampered_packaged_weights_fail_their_hash(tmp_path, monkeypatch):
    import shutil

    for suffix in (".safetensors", ".json"):
        shutil.copy(packaged_weights_dir() / f"digits_cnn.digits5_coarse{suffix}", tmp_path)
    card_path = tmp_path / "digits_cnn.digits5_coarse.json"
    card = json.loads(card_path.read_text())
    card["weights_sha256"] = "0" * 64
    card_path.write_text(json.dumps(card))
    monkeypatch.setattr("subclassbench.encoders.builtin.packaged_weights_dir", lambda: tmp_path)
    with pytest.raises(SubclassbenchError, match="fail the sha256 check"):
        load_encoder("builtin:digits_cnn.digits5_coarse", sample_shape=(1, 8, 8))


def test_packaged_weights_path_is_machine_independent():
    encoder = load_encoder("builtin:digits_cnn.digits5_coarse", sample_shape=(1, 8, 8))
    assert encoder.weights["path"] == "package:subclassbench/weights/digits_cnn.digits5_coarse.safetensors"


def test_image_mlp_takes_its_own_input_size():
    encoder = load_encoder("builtin:digits_mlp", sample_shape=(3, 32, 32))
    x = encoder.preprocessing(torch.rand(2, 3, 32, 32))  # resized to 1×8×8
    assert encoder.model.forward_features(x).shape == (2, 64)
