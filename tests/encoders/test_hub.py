"""Hub weights tied to their bytes: hf: (transformers) and timm hub weights resolved through a local
Hugging Face cache (built here, offline) to a commit and sha256s, recorded in the result; pinned revisions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.core.hashing import sha256_file
from subclassbench.encoders.base import load_encoder
from subclassbench.errors import SubclassbenchError
from subclassbench.results.result import SCHEMA_VERSION

transformers = pytest.importorskip("transformers")
runner = CliRunner()
COMMIT_A, COMMIT_B = "a" * 40, "b" * 40


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache, used offline, as on a machine that downloaded models once."""
    import huggingface_hub.constants as constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def snapshot(cache: Path, repo: str, commit: str, branch: str | None = "main") -> Path:
    """The cache layout huggingface_hub writes: snapshots/<commit>/ and refs/<branch> naming the commit."""
    root = cache / f"models--{repo.replace('/', '--')}"
    folder = root / "snapshots" / commit
    folder.mkdir(parents=True)
    if branch:
        (root / "refs").mkdir(exist_ok=True)
        (root / "refs" / branch).write_text(commit)
    return folder


def tiny_vit(folder: Path, seed: int) -> None:
    torch.manual_seed(seed)
    config = transformers.ViTConfig(
        hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=48, image_size=16,
        patch_size=4, num_channels=3,
    )  # fmt: skip
    transformers.ViTModel(config).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(
        json.dumps({"do_resize": True, "size": {"height": 16, "width": 16}, "image_mean": [0.5, 0.5, 0.5],
                    "image_std": [0.25, 0.25, 0.25], "resample": 3})
    )  # fmt: skip


def test_hf_model_from_the_cache_records_commit_and_file_hashes(hub_cache: Path):
    folder = snapshot(hub_cache, "org/tiny-vit", COMMIT_A)
    tiny_vit(folder, seed=0)
    encoder = load_encoder("hf:org/tiny-vit", sample_shape=(3, 8, 8))
    assert encoder.layer_names == ["stem", "layers.0", "layers.1", "layers.2", "embedding"]
    assert encoder.prefix_tokens == 1  # the class token
    hub = encoder.weights["hub"]
    assert hub == {
        "repo": "org/tiny-vit",
        "revision": COMMIT_A,
        "requested": None,
        "files": {"model.safetensors": sha256_file(folder / "model.safetensors")},
    }
    assert encoder.weights["sha256"] == hub["files"]["model.safetensors"]  # the cache key is the bytes
    pre = encoder.preprocessing
    assert pre.input_size == (3, 16, 16) and pre.std == (0.25, 0.25, 0.25) and pre.interpolation == "bicubic"
    with torch.no_grad():
        assert encoder.embed(torch.rand(2, 3, 16, 16)).shape == (2, 32)


def test_a_pinned_revision_reads_that_commit_not_main(hub_cache: Path):
    tiny_vit(snapshot(hub_cache, "org/tiny-vit", COMMIT_A, branch=None), seed=0)
    tiny_vit(snapshot(hub_cache, "org/tiny-vit", COMMIT_B, branch="main"), seed=1)
    pinned = load_encoder(f"hf:org/tiny-vit@{COMMIT_A}", sample_shape=(3, 8, 8))
    latest = load_encoder("hf:org/tiny-vit", sample_shape=(3, 8, 8))
    assert pinned.weights["hub"]["revision"] == COMMIT_A and pinned.weights["hub"]["requested"] == COMMIT_A
    assert latest.weights["hub"]["revision"] == COMMIT_B
    assert pinned.weights["sha256"] != latest.weights["sha256"]
    assert pinned.identity != latest.identity  # different bytes never share cached features
    assert pinned.spec == f"hf:org/tiny-vit@{COMMIT_A}"


def test_hf_evaluate_writes_the_hub_record_into_the_result(hub_cache: Path, tmp_path: Path):
    tiny_vit(snapshot(hub_cache, "org/tiny-vit", COMMIT_A), seed=0)
    out = tmp_path / "r.json"
    args = ["evaluate", "--model", "hf:org/tiny-vit@main", "--metrics", "clusterability", "--bootstrap", "0"]
    result = runner.invoke(app, [*args, "--limit", "200", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["encoder"]["source"] == "hf"
    assert doc["encoder"]["weights"]["hub"]["revision"] == COMMIT_A
    assert doc["encoder"]["weights"]["hub"]["requested"] == "main"


def test_hf_random_init_names_the_config_commit(hub_cache: Path):
    tiny_vit(snapshot(hub_cache, "org/tiny-vit", COMMIT_A), seed=0)
    encoder = load_encoder("hf:org/tiny-vit", sample_shape=(3, 8, 8), pretrained=False)
    assert encoder.weights is None and not encoder.pretrained
    assert encoder.spec == f"hf:org/tiny-vit@{COMMIT_A}"  # the architecture's own revision, pinned


def test_hf_refuses_pickled_weights_and_remote_code(hub_cache: Path):
    folder = snapshot(hub_cache, "org/pickled", COMMIT_A)
    tiny_vit(folder, seed=0)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(SubclassbenchError, match=r"only safetensors weights are read|cannot get org/pickled"):
        load_encoder("hf:org/pickled", sample_shape=(3, 8, 8))
    remote = snapshot(hub_cache, "org/remote", COMMIT_A)
    tiny_vit(remote, seed=0)
    config = json.loads((remote / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "evil.EvilModel"}
    config["model_type"] = "evil-model"
    (remote / "config.json").write_text(json.dumps(config))
    (remote / "evil.py").write_text("raise SystemExit('remote code ran')\n")
    with pytest.raises(SubclassbenchError, match="cannot load hf:org/remote"):
        load_encoder("hf:org/remote", sample_shape=(3, 8, 8))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("hf:org/absent", "cannot get org/absent from the Hugging Face Hub or its local cache"),
        (f"hf:org/tiny-vit@{COMMIT_B}", "cannot get org/tiny-vit@b+ from the Hugging Face Hub"),
        ("hf:../../etc", "is not a Hugging Face repository id"),
        ("hf:org/tiny-vit@a..b", "is not a branch, tag or commit name"),
        ("timm:resnet18@v1", "timm:resnet18 has no Hugging Face Hub weights|cannot get timm/resnet18"),
        ("builtin:digits_cnn@v1", "unknown builtin architecture"),
    ],
)
def test_hub_errors_are_one_line(hub_cache: Path, spec: str, message: str):
    tiny_vit(snapshot(hub_cache, "org/tiny-vit", COMMIT_A), seed=0)
    result = runner.invoke(app, ["layers", spec])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert __import__("re").search(message, lines[0]), lines[0]


def test_timm_hub_weights_are_resolved_and_hashed(hub_cache: Path):
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    folder = snapshot(hub_cache, "timm/test_resnet.r160_in1k", COMMIT_A)
    torch.manual_seed(3)
    model = timm.create_model("test_resnet", pretrained=False)
    save_file(model.state_dict(), str(folder / "model.safetensors"))
    encoder = load_encoder("timm:test_resnet.r160_in1k", sample_shape=(3, 32, 32))
    assert encoder.weights["hub"]["repo"] == "timm/test_resnet.r160_in1k"
    assert encoder.weights["hub"]["revision"] == COMMIT_A
    assert encoder.weights["sha256"] == sha256_file(folder / "model.safetensors")
    assert encoder.identity["hub_library"] is None  # identified by the file, no longer by timm's version
    loaded = encoder.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())  # these very weights
    with pytest.raises(SubclassbenchError, match="both name the weights"):
        load_encoder(f"timm:test_resnet.r160_in1k@{COMMIT_A}", weights=folder / "model.safetensors")


def test_a_submission_of_hub_weights_pins_the_commit_and_records_the_hashes(hub_cache: Path, tmp_path: Path):
    import yaml

    tiny_vit(snapshot(hub_cache, "org/tiny-vit", COMMIT_A), seed=0)
    subs = tmp_path / "submissions"
    base = ["submit", "--name", "tiny-vit", "--task", "digits-5", "--submissions", str(subs), "--labels", "none"]
    meta = ["--description", "a tiny ViT", "--license", "MIT", "--citation", "none", "--training-data", "none", "-q"]
    unpinned = runner.invoke(app, [*base, *meta, "--model", "hf:org/tiny-vit"])
    assert unpinned.exit_code == 2
    assert f"use --model hf:org/tiny-vit@{COMMIT_A}" in unpinned.output
    assert not (subs / "tiny-vit").exists()
    pinned = runner.invoke(app, [*base, *meta, "--model", f"hf:org/tiny-vit@{COMMIT_A}"])
    assert pinned.exit_code == 0, pinned.output
    model = yaml.safe_load((subs / "tiny-vit" / "model.yaml").read_text())
    assert model["encoder"]["hub"]["revision"] == COMMIT_A
    assert set(model["encoder"]["hub"]["files"]) == {"model.safetensors"}
    # A hand edit of the recorded hashes is caught.
    model["encoder"]["hub"]["files"]["model.safetensors"] = "0" * 64
    (subs / "tiny-vit" / "model.yaml").write_text(yaml.safe_dump(model))
    checked = runner.invoke(app, ["validate", str(subs)])
    assert checked.exit_code == 2 and "hub weights differ from model.yaml" in checked.output
