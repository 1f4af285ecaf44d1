"""encoders/convert.py: foreign state dicts renamed onto timm models by position, deterministic safetensors, the
conversion check; and the weights reader refusing pickled code. Needs neither ../shared nor the network."""

from __future__ import annotations

import importlib.util
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from subclassbench.core.hashing import sha256_file
from subclassbench.encoders.convert import (
    CheckPreprocessing,
    conversion_check,
    convert_checkpoint,
    imagenet_indices,
    is_batch_counter,
    load_converted,
    rename_by_position,
    safetensors_bytes,
)
from subclassbench.encoders.weights import read_state_dict, weights_metadata
from subclassbench.errors import SubclassbenchError

REPO = Path(__file__).resolve().parent.parent.parent
SMALL = "test_efficientnet"  # timm's own test model: 88 tensors, 13 of them BatchNorm counters


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(arch: str = SMALL, seed: int = 0) -> nn.Module:
    import timm

    torch.manual_seed(seed)
    model = timm.create_model(arch, pretrained=False).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so a misplaced one changes the output
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model


def _foreign(state: dict[str, torch.Tensor], counters: bool = True) -> dict[str, torch.Tensor]:
    """The same tensors in the same order under unrelated names, as another codebase would save them."""
    return {
        f"_net.{i:03d}.{key.rpartition('.')[2]}": value.clone()
        for i, (key, value) in enumerate(state.items())
        if counters or not is_batch_counter(key)
    }


@pytest.mark.parametrize("arch", [SMALL, "tf_efficientnet_lite0"])
def test_renamed_state_dict_loads_back_to_identical_outputs(arch):
    original = _model(arch, seed=1)
    foreign = _foreign(original.state_dict())
    fresh = _model(arch, seed=2)
    renamed = rename_by_position(foreign, fresh.state_dict())
    assert list(renamed) == list(fresh.state_dict())
    fresh.load_state_dict(renamed, strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(fresh(x), original(x))
    assert all(
        torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), original.state_dict().values(), strict=True)
    )


def test_source_without_batchnorm_counters_keeps_the_targets_own():
    original, fresh = _model(seed=1), _model(seed=2)
    target = fresh.state_dict()
    foreign = _foreign(original.state_dict(), counters=False)
    assert len(foreign) == len(target) - 13
    renamed = rename_by_position(foreign, target)
    fresh.load_state_dict(renamed, strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(fresh(x), original(x))
    assert all(renamed[k] is target[k] for k in target if is_batch_counter(k))


def _one_line_error(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> str:
    with pytest.raises(SubclassbenchError) as info:
        rename_by_position(source, target)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_shape_mismatch_is_one_line_naming_both_keys_and_shapes():
    target = _model().state_dict()
    foreign = _foreign(target)
    source_keys = [k for k in foreign if not is_batch_counter(k)]
    target_keys = [k for k in target if not is_batch_counter(k)]
    i = next(i for i, k in enumerate(source_keys) if i > 5 and foreign[k].dim() == 4)
    key, target_key = source_keys[i], target_keys[i]
    foreign[key] = torch.zeros(foreign[key].shape[0] + 1, *foreign[key].shape[1:])
    message = _one_line_error(foreign, target)
    want_source = "(" + ", ".join(str(n) for n in foreign[key].shape) + ")"
    want_target = "(" + ", ".join(str(n) for n in target[target_key].shape) + ")"
    assert f"tensors #{i} differ in shape" in message
    assert f"source {key} {want_source}" in message
    assert f"target {target_key} {want_target}" in message
    assert "architecture the source was saved from" in message


def test_count_mismatch_is_one_line_naming_the_unpaired_keys():
    target = _model().state_dict()
    foreign = _foreign(target)
    last = list(foreign)[-1]
    del foreign[last]
    message = _one_line_error(foreign, target)
    assert "the source holds 74 tensors and the target 75" in message
    assert f"target {list(target)[-1]} ({target[list(target)[-1]].shape[0]})" in message
    assert "tensors #74 first unpaired: source (none left)" in message
    assert "architecture the source was saved from" in message


def test_some_but_not_all_batchnorm_counters_is_an_error():
    target = _model().state_dict()
    foreign = _foreign(target)
    del foreign[next(k for k in foreign if is_batch_counter(k))]
    assert "the source holds 12 BatchNorm num_batches_tracked buffers and the target 13" in _one_line_error(
        foreign, target
    )


def test_integer_tensor_never_stands_in_for_a_float_one():
    target = {"a.weight": torch.zeros(3), "a.bias": torch.zeros(3)}
    source = {"x.weight": torch.zeros(3), "x.bias": torch.zeros(3, dtype=torch.int64)}
    assert "tensors #1 differ in kind (torch.int64 vs torch.float32)" in _one_line_error(source, target)


class _Payload:
    """Unpickling this creates ``marker``: a stand-in for arbitrary code in a malicious checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("fmt", ["torch_zip", "plain_pickle"])
def test_reader_refuses_a_pickled_object_without_running_it(tmp_path, fmt):
    control, marker = tmp_path / "control", tmp_path / "marker"
    pickle.loads(pickle.dumps(_Payload(control))).close()  # the payload is live: unpickling it runs open()
    assert control.exists()
    path = tmp_path / "evil.pth"
    state = {"conv.weight": torch.zeros(2, 2), "extra": _Payload(marker)}
    if fmt == "torch_zip":
        torch.save(state, path)
    else:
        path.write_bytes(pickle.dumps(state))
    with pytest.raises(SubclassbenchError, match=r"weights_only=True .*convert it to \.safetensors") as info:
        read_state_dict(path)
    assert "\n" not in str(info.value)
    assert not marker.exists()


def test_safetensors_bytes_do_not_depend_on_metadata_order(tmp_path):
    from safetensors import safe_open

    tensors = {"b": torch.arange(3.0), "a": torch.ones(2, 2, dtype=torch.float16), "n": torch.tensor(4)}
    metadata = {f"key{i}": str(i) for i in range(8)}
    outputs = {safetensors_bytes(tensors, dict(reversed(metadata.items()))) for _ in range(5)}
    outputs.add(safetensors_bytes(tensors, metadata))
    assert len(outputs) == 1  # the safetensors library alone writes its metadata in a different order each call
    data = outputs.pop()
    (length,) = struct.unpack("<Q", data[:8])
    assert length % 8 == 0
    assert list(json.loads(data[8 : 8 + length])["__metadata__"]) == sorted(metadata)
    from safetensors.torch import load

    loaded = load(data)
    assert all(torch.equal(loaded[k], v) and loaded[k].dtype == v.dtype for k, v in tensors.items())
    path = tmp_path / "t.safetensors"
    path.write_bytes(data)
    with safe_open(str(path), framework="pt") as handle:
        assert handle.metadata() == metadata


@pytest.fixture
def foreign_pth(tmp_path) -> tuple[Path, nn.Module]:
    original = _model(seed=5)
    path = tmp_path / "foreign.pth"
    torch.save(_foreign(original.state_dict()), path)
    return path, original


def test_conversion_is_deterministic_and_loads_back(tmp_path, foreign_pth):
    pth, original = foreign_pth
    first = convert_checkpoint(pth, SMALL, tmp_path / "a.safetensors")
    torch.manual_seed(123)  # a differently initialised target model must not change a byte
    second = convert_checkpoint(pth, SMALL, tmp_path / "b.safetensors")
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    assert first.sha256 == second.sha256 == sha256_file(tmp_path / "a.safetensors")
    assert weights_metadata(tmp_path / "a.safetensors") == {
        "arch": f"timm:{SMALL}",
        "mean": "0.485,0.456,0.406",  # timm's pretrained configuration of the architecture
        "std": "0.229,0.224,0.225",
        "input_size": "3,160,160",
        "source_sha256": sha256_file(pth),
    }
    loaded = load_converted(tmp_path / "a.safetensors", SMALL)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), original(x))


def test_conversion_refuses_the_wrong_architecture(tmp_path, foreign_pth):
    pth, _ = foreign_pth
    with pytest.raises(SubclassbenchError, match="the source holds 75 tensors and the target 247"):
        convert_checkpoint(pth, "tf_efficientnet_lite0", tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_script_writes_the_file_and_prints_its_sha256(tmp_path, foreign_pth, capsys):
    pth, _ = foreign_pth
    spec = importlib.util.spec_from_file_location("convert_script", REPO / "scripts" / "convert_efficientnet_lite.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "s.safetensors"
    assert script.main(["--pth", str(pth), "--arch", SMALL, "--out", str(out)]) == 0
    assert f"sha256 {sha256_file(out)}" in capsys.readouterr().out
    assert script.main(["--pth", str(pth), "--arch", SMALL, "--out", str(tmp_path / "s.bin")]) == 2
    assert "must end in .safetensors" in capsys.readouterr().err


class _PixelClassifier(nn.Module):
    """Reads a solid grey image's level back and ranks a chosen class at a chosen place for it."""

    def __init__(self, ranks: dict[int, tuple[int, int]]) -> None:
        super().__init__()
        self.ranks = ranks  # grey level index → (class index, rank it gets: 0 = top-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = []
        for image in x:
            level = round(float(image[0].mean() * 0.5 + 0.5) * 255 / 40)
            label, rank = self.ranks[level]
            order = [c for c in range(1000) if c != label]
            order.insert(rank, label)
            logits = torch.empty(1000)
            logits[torch.tensor(order)] = torch.linspace(1.0, 0.0, 1000)
            rows.append(logits)
        return torch.stack(rows)


def test_conversion_check_scores_the_first_image_of_each_class(tmp_path):
    from PIL import Image

    index = imagenet_indices()
    assert len(index) == 1000 and index["n01443537"] == 1  # timm's imagenet_synsets.txt order
    wnids = ["n01443537", "n01629819", "n01641577"]  # sorted: folder k holds grey level k + 1 first
    for k, wnid in enumerate(wnids):
        folder = tmp_path / "val" / wnid
        folder.mkdir(parents=True)
        Image.fromarray(np.full((8, 8, 3), 40 * (k + 1), np.uint8)).save(folder / "val_10.png")
        Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(folder / "val_9.png")  # after val_10 by name
    ranks = {1: (index[wnids[0]], 0), 2: (index[wnids[1]], 3), 3: (index[wnids[2]], 7), 5: (0, 0)}
    prep = CheckPreprocessing((3, 16, 16), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    result = conversion_check(_PixelClassifier(ranks), prep, tmp_path / "val", batch_size=2)
    assert (result.top1, result.top5, result.images) == (pytest.approx(1 / 3), pytest.approx(2 / 3), 3)


def test_conversion_check_refuses_folders_that_are_not_imagenet_classes(tmp_path):
    (tmp_path / "val" / "cats").mkdir(parents=True)
    (tmp_path / "val" / "cats" / "a.png").write_bytes(b"")
    prep = CheckPreprocessing((3, 16, 16), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    with pytest.raises(SubclassbenchError, match="not ImageNet-1k WNIDs"):
        conversion_check(nn.Identity(), prep, tmp_path / "val")
