"""encoders/fingerprint.py: a module's code, attributes and embed function key its cached features."""

from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

import subclassbench
from subclassbench.encoders.fingerprint import behaviour_fingerprint
from subclassbench.errors import SubclassbenchError


class Scaled(nn.Module):
    """Its forward depends on a plain attribute, which no state dict holds."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3)
        self.block = nn.Sequential(nn.Conv2d(6, 6, 3, padding=1), nn.ReLU())
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.block(self.conv(x)).mean((2, 3)) * self.scale)


def _net(scale: float = 1.0) -> Scaled:
    torch.manual_seed(0)
    return Scaled(scale)


def _evaluate(model: nn.Module, cache_dir, **kw):
    return subclassbench.evaluate(
        model, task="digits-5", metrics=["clusterability"], bootstrap=0, cache_dir=cache_dir,
        layers=["conv", "block", "embedding"], **kw,
    )  # fmt: skip


def _cache(result) -> tuple[int, int]:
    stats = result["run"]["feature_cache"]
    return stats["hits"], stats["misses"]


def _maps(net: Scaled, x: torch.Tensor) -> torch.Tensor:
    return net.block(net.conv(x))


def test_another_embed_function_never_reads_the_first_ones_features(tmp_path):
    net = _net()
    first = _evaluate(net, tmp_path, embed=lambda x: _maps(net, x).mean((2, 3)))
    second = _evaluate(net, tmp_path, embed=lambda x: _maps(net, x).amax((2, 3)))
    assert _cache(second)[0] == 0  # nothing served from the first run
    assert first["layers"][-1]["clusterability"] != second["layers"][-1]["clusterability"]
    again = _evaluate(net, tmp_path, embed=lambda x: _maps(net, x).amax((2, 3)))
    assert _cache(again) == (_cache(second)[1], 0)  # the same function (same code) is the same model
    assert again["layers"] == second["layers"]


def test_a_plain_attribute_keys_the_features(tmp_path):
    _evaluate(_net(1.0), tmp_path)
    other = _evaluate(_net(3.0), tmp_path)
    assert _cache(other)[0] == 0
    assert behaviour_fingerprint(_net(1.0)) == behaviour_fingerprint(_net(1.0))
    assert behaviour_fingerprint(_net(1.0)) != behaviour_fingerprint(_net(3.0))


def _class_with_forward(body: str) -> type:
    """Two classes with one name, one structure and one repr, differing only in their forward's code."""
    scope: dict[str, object] = {"nn": nn, "torch": torch, "__name__": "__main__"}
    source = f"class Net(nn.Module):\n    def forward(self, x):\n        return {body}\n"
    exec(compile(source, "<notebook cell>", "exec"), scope)
    return scope["Net"]  # type: ignore[return-value]


def test_edited_forward_code_is_a_new_model():
    one, two = _class_with_forward("x * 2")(), _class_with_forward("x * 3")()
    assert repr(one) == repr(two)
    assert behaviour_fingerprint(one).digest != behaviour_fingerprint(two).digest
    assert behaviour_fingerprint(one).digest == behaviour_fingerprint(_class_with_forward("x * 2")()).digest


def test_a_helper_the_embed_function_calls_is_part_of_it():
    def make(helper_body: str):
        scope: dict[str, object] = {}
        exec(f"def helper(x):\n    return {helper_body}\ndef embed(x):\n    return helper(x)\n", scope)
        return scope["embed"]

    assert behaviour_fingerprint(make("x + 1")).digest != behaviour_fingerprint(make("x + 2")).digest
    offset = 1.0
    assert behaviour_fingerprint(lambda x: x + offset).unreliable is None  # closures over plain values are fine


def test_a_model_that_cannot_be_fingerprinted_bypasses_the_cache_unless_keyed(tmp_path):
    lock = threading.Lock()  # an object whose state no hash can vouch for
    net = _net()

    def embed(x: torch.Tensor) -> torch.Tensor:
        with lock:
            return _maps(net, x).mean((2, 3))

    assert "cannot be fingerprinted" in (behaviour_fingerprint(embed).unreliable or "")
    result = _evaluate(net, tmp_path, embed=embed)
    assert _cache(result) == (0, 0)  # neither read nor filled
    assert any(note.startswith("features were not cached") and "cache_key=" in note for note in result["notes"])
    with pytest.raises(SubclassbenchError, match="pass cache_key="):
        _evaluate(net, tmp_path, embed=embed, cache="only")
    keyed = _evaluate(net, tmp_path, embed=embed, cache_key="mean-pool v1")
    hits, misses = _cache(keyed)
    assert hits == 0 and misses > 0
    assert _cache(_evaluate(net, tmp_path, embed=embed, cache_key="mean-pool v1")) == (misses, 0)
    with pytest.raises(SubclassbenchError, match=r"cache_key= applies to a model passed as an nn\.Module"):
        subclassbench.evaluate("builtin:digits_cnn", cache_key="x")


def test_an_embed_function_that_skips_the_model_is_one_error(tmp_path):
    with pytest.raises(SubclassbenchError, match="did not run in the forward pass; the embed function must run"):
        _evaluate(_net(), tmp_path, embed=lambda x: x.mean((2, 3)))


def test_the_same_module_always_has_the_same_fingerprint():
    """Containers built while hashing (a module's parameter dict) must not lend their freed ids to the next one:
    a timm network fingerprinted twice once gave two digests, so its features were never read back."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False).eval()
    assert len({behaviour_fingerprint(model).digest for _ in range(3)}) == 1
