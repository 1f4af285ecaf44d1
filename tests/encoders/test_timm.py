"""encoders/timm.py: timm models' layers, preprocessing and weights files."""

from __future__ import annotations

import pytest
import torch

from subclassbench.core.hashing import sha256_file
from subclassbench.encoders.base import load_encoder
from subclassbench.errors import SubclassbenchError


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


def test_constructor_arguments_reach_timm_and_are_recorded():
    from timm.layers import Conv2dSame

    encoder = load_encoder("timm:mobilenetv2_050", pretrained=False, arch_kwargs={"pad_type": "same"})
    assert any(isinstance(m, Conv2dSame) for m in encoder.model.modules())
    assert encoder.info()["arch_kwargs"] == {"pad_type": "same"} == encoder.identity["arch_kwargs"]
    plain = load_encoder("timm:mobilenetv2_050", pretrained=False)
    assert not any(isinstance(m, Conv2dSame) for m in plain.model.modules())
    assert plain.identity != encoder.identity  # the cache tells the two apart


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"no_such_argument": 1}, "does not take the constructor argument"),
        ({"pretrained_cfg_overlay": "x"}, "set by subclassbench"),
        ({"checkpoint_path": "/etc/passwd"}, "set by subclassbench"),
        ({"pad type": "same"}, "not a keyword argument name"),
        ({"pad_type": {"nested": 1}}, "must be a number, string"),
    ],
)
def test_bad_constructor_arguments_are_one_line(args, message):
    with pytest.raises(SubclassbenchError, match=message) as caught:
        load_encoder("timm:mobilenetv2_050", pretrained=False, arch_kwargs=args)
    assert "\n" not in str(caught.value)


def test_random_init_resnets_have_live_residual_branches():
    """timm zero-initialises each block's last BatchNorm: every untrained block would be an identity map."""
    import timm

    encoder = load_encoder("timm:resnet18", pretrained=False, init_seed=4)
    assert encoder.constructor_args == {"zero_init_last": False}
    net = encoder.model
    assert all(float(block.bn2.weight.detach().abs().sum()) > 0 for block in (net.layer1[0], net.layer4[1]))
    torch.manual_seed(4)  # the probe that detects the switch leaves the seeded initialisation alone
    reference = timm.create_model("resnet18", pretrained=False, zero_init_last=False)
    ours, theirs = net.state_dict(), reference.state_dict()
    assert list(ours) == list(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        first = net.layer1[0](net.maxpool(net.act1(net.bn1(net.conv1(x)))))
        second = net.layer1[1](first)
    assert not torch.allclose(first, second)  # consecutive layers differ
    vit = load_encoder("timm:vit_tiny_patch16_224", pretrained=False)
    assert vit.constructor_args == {}  # no such switch: nothing recorded


def _save_with_metadata(tmp_path, metadata):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model("mobilenetv2_050", pretrained=False, pad_type="same")
    path = tmp_path / "mnv2.safetensors"
    save_file(model.state_dict(), str(path), metadata=metadata)
    return path


def test_weights_metadata_disagreeing_with_the_run_is_a_warning(tmp_path):
    """A weights file that says how it must be used (the Coral MobileNets do) is checked against the run."""
    path = _save_with_metadata(
        tmp_path, {"arch": "timm:mobilenetv2_050", "pad_type": "same", "mean": "0.5,0.5,0.5", "std": "0.5,0.5,0.5"}
    )
    careless = load_encoder("timm:mobilenetv2_050", weights=path)
    assert len(careless.warnings) == 3
    assert any("--model-arg pad_type=same" in w for w in careless.warnings)
    assert any("--preprocess mean=0.5,0.5,0.5" in w for w in careless.warnings)
    right = load_encoder(
        "timm:mobilenetv2_050", weights=path, arch_kwargs={"pad_type": "same"}, preprocess={"mean": 0.5, "std": 0.5}
    )
    assert right.warnings == []
    other = load_encoder("timm:mobilenetv2_100", pretrained=False)
    assert other.warnings == []  # no weights file, nothing to check


def test_weights_metadata_names_another_architecture(tmp_path):
    path = _save_with_metadata(tmp_path, {"arch": "timm:mobilenetv1_100"})
    encoder = load_encoder("timm:mobilenetv2_050", weights=path, arch_kwargs={"pad_type": "same"})
    assert encoder.warnings == [
        "the weights file says it is for timm:mobilenetv1_100, but the model is timm:mobilenetv2_050; check --model"
    ]


def test_plain_tensor_state_dict_loads_with_weights_only(tmp_path):
    import timm

    torch.manual_seed(1)
    model = timm.create_model("mobilenetv2_050", pretrained=False)
    path = tmp_path / "plain.pth"
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}, path)
    encoder = load_encoder("timm:mobilenetv2_050", weights=path)
    assert encoder.model.conv_stem.weight.dtype == torch.float32  # float16 tensors cast into the float model
    assert torch.allclose(encoder.model.conv_stem.weight, model.conv_stem.weight.half().float())
