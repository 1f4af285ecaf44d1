"""Encoder registry: specs, layers, preprocessing and weights files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from subclassbench.core.hashing import sha256_file
from subclassbench.encoders.sources import EncoderSpec, list_builtin, load_encoder, packaged_weights_dir
from subclassbench.errors import SubclassbenchError


def save_shared_style_checkpoint(model: torch.nn.Module, path) -> None:
    """The format of the pretrained CIFAR ResNets: DataParallel keys, no num_batches_tracked."""
    state = {f"module.{k}": v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save({"state_dict": state, "best_prec1": 90.0}, path)


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("builtin:cifar_resnet20", ("builtin", "cifar_resnet20", None)),
        ("builtin:digits_cnn.digits5_coarse", ("builtin", "digits_cnn", "digits5_coarse")),
        ("timm:vit_tiny_patch16_224.augreg_in21k", ("timm", "vit_tiny_patch16_224", "augreg_in21k")),
        ("open_clip:ViT-B-32@laion2b_s34b_b79k", ("open_clip", "ViT-B-32", "laion2b_s34b_b79k")),
    ],
)
def test_spec_parsing(spec, parsed):
    p = EncoderSpec.parse(spec)
    assert (p.source, p.name, p.tag) == parsed


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("resnet20", "needs a source prefix"),
        ("keras:resnet", "unknown model source 'keras'"),
        ("builtin:cifar_resnet21", "unknown builtin architecture 'cifar_resnet21'.*cifar_resnet20"),
        ("builtin:digits_cnn.nope", "no packaged weights 'nope'.*digits5_coarse"),
        ("timm:resnet_nonexistent", "unknown timm model"),
        ("open_clip:ViT-Z-99", "unknown open_clip architecture"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(SubclassbenchError, match=message):
        load_encoder(spec, pretrained=False)


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


def test_unknown_layer_lists_valid_layers():
    encoder = load_encoder("builtin:cifar_resnet20")
    with pytest.raises(SubclassbenchError, match=r"unknown layer 'layer4.0'.*valid layers: stem, layer1.0"):
        encoder.select_layers(["layer4.0"])
    assert encoder.select_layers(["embedding", "stem"]) == ["stem", "embedding"]  # encoder order


def test_timm_cnn_layers_and_preprocessing():
    encoder = load_encoder("timm:resnet18", pretrained=False)
    assert encoder.layer_names == ["stem"] + [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)] + ["embedding"]
    assert encoder.preprocessing.input_size == (3, 224, 224)
    assert encoder.preprocessing.crop_pct == pytest.approx(0.95)


def test_timm_vit_layers_exclude_class_token():
    encoder = load_encoder("timm:vit_tiny_patch16_224", pretrained=False)
    assert encoder.layer_names == ["stem"] + [f"blocks.{i}" for i in range(12)] + ["embedding"]
    assert encoder.prefix_tokens == 1


def test_timm_pretrained_offline_is_a_clear_error():
    with pytest.raises(SubclassbenchError, match="pass --weights FILE, or --random-init"):
        load_encoder("timm:resnet18", pretrained=True)


def test_timm_local_weights_file(tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(3)
    model = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "resnet18.safetensors"
    save_file(model.state_dict(), str(path))
    encoder = load_encoder("timm:resnet18", weights=path)
    assert torch.equal(encoder.model.fc.weight, model.fc.weight)
    assert encoder.weights["sha256"] == sha256_file(path)


def test_open_clip_layers():
    encoder = load_encoder("open_clip:ViT-B-32", pretrained=False)
    assert encoder.layer_names[0] == "stem" and encoder.layer_names[-1] == "embedding"
    assert encoder.layer_names[1:-1] == [f"transformer.resblocks.{i}" for i in range(12)]
    assert encoder.prefix_tokens == 1
    assert encoder.preprocessing.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))


def test_random_init_is_reproducible():
    a = load_encoder("builtin:cifar_resnet20").model.state_dict()
    b = load_encoder("builtin:cifar_resnet20").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert np.isfinite(a["conv1.weight"].numpy()).all()


def test_tampered_packaged_weights_fail_their_hash(tmp_path, monkeypatch):
    import shutil

    for suffix in (".safetensors", ".json"):
        shutil.copy(packaged_weights_dir() / f"digits_cnn.digits5_coarse{suffix}", tmp_path)
    card_path = tmp_path / "digits_cnn.digits5_coarse.json"
    card = json.loads(card_path.read_text())
    card["weights_sha256"] = "0" * 64
    card_path.write_text(json.dumps(card))
    monkeypatch.setattr("subclassbench.encoders.sources.packaged_weights_dir", lambda: tmp_path)
    with pytest.raises(SubclassbenchError, match="fail the sha256 check"):
        load_encoder("builtin:digits_cnn.digits5_coarse", sample_shape=(1, 8, 8))


def test_packaged_weights_path_is_machine_independent():
    encoder = load_encoder("builtin:digits_cnn.digits5_coarse", sample_shape=(1, 8, 8))
    assert encoder.weights["path"] == "package:subclassbench/weights/digits_cnn.digits5_coarse.safetensors"


def test_random_init_of_hub_models_is_seeded():
    a = load_encoder("timm:resnet18", pretrained=False).model.state_dict()
    torch.rand(10)  # moving the global generator must not matter
    b = load_encoder("timm:resnet18", pretrained=False).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_init_seed_controls_every_parameter_of_a_vit():
    a = load_encoder("builtin:vit_tiny_p4", sample_shape=(3, 32, 32), init_seed=0).model
    b = load_encoder("builtin:vit_tiny_p4", sample_shape=(3, 32, 32), init_seed=1).model
    assert not torch.equal(a.net.cls_token, b.net.cls_token)
    assert not torch.equal(a.net.pos_embed, b.net.pos_embed)


def test_vector_samples_into_an_image_encoder_are_an_error():
    with pytest.raises(SubclassbenchError, match="takes images but the task's samples are vectors"):
        load_encoder("builtin:digits_cnn", sample_shape=(32,))
    with pytest.raises(SubclassbenchError, match="takes images but the task's samples are vectors"):
        load_encoder("timm:resnet18", sample_shape=(32,), pretrained=False)


def test_image_mlp_takes_its_own_input_size():
    encoder = load_encoder("builtin:digits_mlp", sample_shape=(3, 32, 32))
    x = encoder.preprocessing(torch.rand(2, 3, 32, 32))  # resized to 1×8×8
    assert encoder.model.forward_features(x).shape == (2, 64)
