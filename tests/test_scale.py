"""Scale features: --limit subsets, loader processes, bf16 / channels_last extraction (issue 16)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.encoders.base import load_encoder
from subclassbench.errors import SubclassbenchError
from subclassbench.features.extraction import ExtractionContext, extract_features, iterate_batches
from subclassbench.tasks.task import load_task

runner = CliRunner()


def cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def digits_train():
    return load_task("digits-5").load_split("train")


def test_limit_is_a_seeded_stratified_subset(digits_train):
    part = digits_train.limited(100)
    assert len(part) == 100 and part.limit == {"n": 100, "seed": 0, "of": len(digits_train)}
    assert part.canonical is False and part.record()["limit"]["n"] == 100
    counts = np.bincount(part.global_subclass, minlength=10)
    full = np.bincount(digits_train.global_subclass, minlength=10)
    assert (counts >= 2).all() and np.abs(counts - full * 100 / len(digits_train)).max() <= 1.0  # each its share
    assert part.images.ids == digits_train.limited(100).images.ids  # seeded: the same try twice
    position = {sample: i for i, sample in enumerate(digits_train.images.ids)}
    assert [position[i] for i in part.images.ids] == sorted(position[i] for i in part.images.ids)  # manifest order
    assert part.fingerprint != digits_train.fingerprint  # features of the subset never pass for the full split's
    assert len(digits_train.limited(10**6)) == len(digits_train)  # a limit above the size keeps everything
    with pytest.raises(SubclassbenchError, match="use --limit 20 or more"):
        digits_train.limited(19)


def test_limit_never_exceeds_n_when_floors_bind(digits_train):
    """Nine subclasses of 3 samples and one of ~170: their floors of 2 would keep 18 + a share of the big
    one; the subset still holds exactly n samples, at least 2 of each subclass."""
    strata = digits_train.global_subclass
    big = int(np.bincount(strata).argmax())
    rows = np.sort(np.concatenate([np.flatnonzero(strata == v)[: (10**6 if v == big else 3)] for v in range(10)]))
    skewed = digits_train.subset(rows)
    for n in (20, 25, 30, 60):
        part = skewed.limited(n)
        counts = np.bincount(part.global_subclass, minlength=10)
        assert len(part) == n and (counts >= 2).all(), (n, counts)


def test_a_limited_result_is_marked_and_never_a_submission(tmp_path):
    out = tmp_path / "quick.json"
    done = cli("evaluate", "--task", "digits-5", "--limit", "60", "--metrics", "clusterability", "--out", out, "-q")
    assert done.exit_code == 0, done.output
    doc = json.loads(out.read_text())
    assert all(s["canonical"] is False and s["limit"]["n"] == 60 for s in doc["task"]["splits"].values())
    assert doc["task"]["n_samples"] == 60 and any("never ranked" in note for note in doc["notes"])
    # Hand it in as if it were the submission's result: validation refuses it, in one line.
    subs = tmp_path / "submissions"
    made = cli(
        "submit", "--name", "quick", "--model", "builtin:digits_cnn.digits5_coarse", "--task", "digits-5",
        "--metrics", "clusterability", "--submissions", subs, "--training-data", "digits-5 train split",
        "--license", "MIT", "--citation", "This test suite.", "--labels", "superclass", "--label-task", "digits-5",
        "--quiet",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    target = subs / "quick" / "results" / "digits-5.json"
    shutil.copy(out, target)
    shutil.copy(out.with_name("quick.samples.npz"), target.with_name("digits-5.samples.npz"))
    doc["samples"]["file"] = "digits-5.samples.npz"
    target.write_text(json.dumps(doc))
    checked = cli("validate", subs)
    assert checked.exit_code == 2
    assert "--limit subset" in checked.output


def test_limit_below_two_per_subclass_is_one_line():
    done = cli("evaluate", "--task", "digits-5", "--limit", "5", "-q")
    assert done.exit_code == 2 and "use --limit 20 or more" in done.output and "Traceback" not in done.output


def test_loader_processes_give_the_features_of_an_in_process_load(tiny_image_folder, tiny_image_task):
    from subclassbench.tasks.task import load_task as load

    split = load(str(tiny_image_task)).load_split("test", str(tiny_image_folder))
    assert split.images.decodes
    encoder = load_encoder("builtin:cifar_resnet20", sample_shape=(3, 16, 16))
    inline = extract_features(encoder, split.images, batch_size=16, progress=False, workers=0)
    parallel = extract_features(encoder, split.images, batch_size=16, progress=False, workers=2)
    for a, b in zip(inline, parallel, strict=True):
        assert np.array_equal(a.features, b.features)


def test_a_corrupt_image_in_a_loader_process_is_one_line(tiny_image_folder, tiny_image_task):
    from subclassbench.tasks.task import load_task as load

    split = load(str(tiny_image_task)).load_split("test", str(tiny_image_folder))
    split.images.paths[5].write_bytes(b"not an image")
    with pytest.raises(SubclassbenchError, match="cannot decode image") as caught:
        list(iterate_batches(split.images, 8, workers=2))
    assert "\n" not in str(caught.value)


def test_bf16_and_channels_last_key_the_cache_and_stay_close(digits_train):
    encoder = load_encoder("builtin:cifar_resnet20", sample_shape=(1, 8, 8))
    images = digits_train.images.subset(np.arange(64))
    reference = extract_features(encoder, images, progress=False)
    layout = extract_features(encoder, images, progress=False, channels_last=True)
    half = extract_features(encoder, images, progress=False, dtype="bf16")
    for ref, nhwc, bf in zip(reference, layout, half, strict=True):
        np.testing.assert_allclose(nhwc.features, ref.features, rtol=1e-4, atol=1e-5)
        scale = np.abs(ref.features).max() + 1e-6
        assert np.abs(bf.features - ref.features).max() / scale < 0.05  # bf16 keeps ~3 significant digits
    assert not any(np.array_equal(r.features, b.features) for r, b in zip(reference, half, strict=True))
    keys = {
        ExtractionContext.create(encoder, digits_train, None, dtype=d, channels_last=c).key("embedding")
        for d, c in (("fp32", False), ("bf16", False), ("fp32", True))
    }
    assert len(keys) == 3
    # The fp32 reference's key has no compute field, so caches filled before these options stay valid.
    assert "compute" not in ExtractionContext.create(encoder, digits_train, None).fields("embedding")


def test_unknown_dtype_is_one_line():
    done = cli("evaluate", "--task", "digits-5", "--dtype", "fp8", "-q")
    assert done.exit_code == 2 and "use fp32 or bf16" in done.output


def test_batched_crop_flip_draws_and_crops_as_the_per_image_loop():
    """The vectorised augmentation (one gather, any device) equals a per-image reference from the same draws."""
    import torch

    from subclassbench.training.trainer import crop_flip

    x = torch.rand(16, 3, 8, 8)
    reference_rng, rng = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    offsets = torch.randint(0, 9, (16, 2), generator=reference_rng)
    flips = torch.rand(16, generator=reference_rng) < 0.5
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    expected = torch.stack([
        padded[i, :, t : t + 8, s : s + 8].flip(-1) if f else padded[i, :, t : t + 8, s : s + 8]
        for i, ((t, s), f) in enumerate(zip(offsets.tolist(), flips.tolist(), strict=True))
    ])  # fmt: skip
    assert torch.equal(crop_flip(x, rng), expected)


def test_train_precision_is_recorded_and_fp32_keeps_earlier_identities(tmp_path):
    from subclassbench.training.trainer import Recipe

    assert "precision" not in Recipe().to_dict()  # runs made before --precision keep their config hash
    done = cli(
        "train", "--task", "digits-5", "--arch", "digits_mlp", "--epochs", "1", "--precision", "bf16",
        "--out", tmp_path / "run", "-q",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    card = json.loads((tmp_path / "run" / "card.json").read_text())
    assert card["recipe"]["precision"] == "bf16" and card["environment"]["device"] == "cpu"
    bad = cli("train", "--task", "digits-5", "--arch", "digits_mlp", "--precision", "fp8", "--out", tmp_path / "x")
    assert bad.exit_code == 2 and "--precision must be one of fp32, bf16" in bad.output
    absent = cli("train", "--task", "digits-5", "--arch", "digits_mlp", "--device", "cuda:7", "--out", tmp_path / "y")
    assert absent.exit_code == 2 and "not available here" in absent.output


def test_file_hashes_are_memoised_by_path_size_and_mtime(tmp_path, monkeypatch):
    import os

    from subclassbench.core import hashing

    files = []
    for i in range(5):
        path = tmp_path / f"f{i}.bin"
        path.write_bytes(bytes([i]) * (1000 + i))
        files.append(path)
    index = tmp_path / "index" / "file-hashes.sqlite"
    calls: list[Path] = []
    real = hashing.sha256_file
    monkeypatch.setattr(hashing, "sha256_file", lambda p: calls.append(Path(p)) or real(p))
    first = hashing.sha256_files(files, index)
    assert first == [real(p) for p in files] and len(calls) == 5
    calls.clear()
    assert hashing.sha256_files(files, index) == first and calls == []  # a re-run reads no file
    files[2].write_bytes(b"changed")
    os.utime(files[3], ns=(1, 1))  # same content, other mtime: hashed again (cheap, and safe)
    again = hashing.sha256_files(files, index)
    assert sorted(calls) == [files[2], files[3]] and again[2] == real(files[2]) and again[3] == first[3]
    index.write_bytes(b"not a database")  # damaged: everything is hashed again and the index is rebuilt
    calls.clear()
    assert hashing.sha256_files(files, index) == again and len(calls) == 5
    calls.clear()
    assert hashing.sha256_files(files, index) == again and calls == []


# --------------------------------------------------------------------------- --decoder torchvision


def _jpegs(folder: Path) -> list[Path]:
    from PIL import Image

    rng = np.random.RandomState(0)
    paths = []
    for i, (w, h) in enumerate([(40, 30), (33, 50), (64, 64), (16, 16), (300, 200)]):
        ramp = np.linspace(0, 1, w)[None, :, None] * 200
        pixels = np.clip(ramp + rng.rand(h, w, 3) * 55, 0, 255).astype(np.uint8)
        paths.append(folder / f"{i}.jpg")
        Image.fromarray(pixels).save(paths[-1], quality=90)
    return paths


@pytest.mark.parametrize(("resize", "interpolation"), [(None, "bilinear"), (28, "bilinear"), (28, "bicubic")])
def test_torchvision_decoding_is_pillows_within_one_grey_level(tmp_path, resize, interpolation):
    """Decoded on the device (batched nvJPEG on a GPU, libjpeg-turbo here), resized with antialiasing and
    rounded to grey levels, each pixel is Pillow's within one level of 255; an image at its size is identical."""
    import torch

    from subclassbench.tasks.datasources import Decoding, EncodedBatch, decode_image

    paths = _jpegs(tmp_path)
    decoding = Decoding((3, 16, 16) if resize is None else (3, 24, 24), resize, interpolation)
    reference = torch.stack([decode_image(p, decoding, str(p)) for p in paths])
    batch = EncodedBatch([p.read_bytes() for p in paths], [str(p) for p in paths], decoding)
    decoded = batch.decode(torch.device("cpu"))
    levels = (decoded - reference).abs() * 255
    assert decoded.shape == reference.shape and float(levels.max()) <= 1.0 + 1e-4
    assert float(levels.mean()) < 0.3
    if resize is None:
        assert float(levels[3].max()) == 0.0  # the 16×16 image is not resized: the same decoder, the same pixels


def test_decoder_is_recorded_and_keys_the_cache(tmp_path, tiny_image_task, tiny_image_folder):
    outs = {}
    for decoder in ("pil", "torchvision"):
        outs[decoder] = tmp_path / f"{decoder}.json"
        done = cli(
            "evaluate", "--model", "builtin:cifar_resnet20", "--task", tiny_image_task, "--data", tiny_image_folder,
            "--decoder", decoder, "--metrics", "clusterability", "--bootstrap", "0", "--out", outs[decoder], "-q",
        )  # fmt: skip
        assert done.exit_code == 0, done.output
    docs = {d: json.loads(p.read_text()) for d, p in outs.items()}
    assert docs["torchvision"]["task"]["splits"]["test"]["decoding"]["decoder"] == "torchvision"
    assert "decoder" not in docs["pil"]["task"]["splits"]["test"]["decoding"]  # the reference keeps its keys
    assert docs["torchvision"]["run"]["compute"]["decoder"] == "torchvision"
    assert docs["torchvision"]["run"]["feature_cache"]["misses"] > 0  # its own entries, never pil's
    # Lossless PNGs at their size: the two decoders see the same pixels, so the scores agree.
    assert docs["torchvision"]["layers"] == docs["pil"]["layers"]


def test_torchvision_decoder_errors_are_one_line(tmp_path, tiny_image_task, tiny_image_folder):
    from subclassbench.tasks.datasources import Decoding

    split = load_task(str(tiny_image_task)).load_split("test", str(tiny_image_folder))
    split.images.paths[5].write_bytes(b"not an image")
    images = split.images.with_decoding(Decoding((3, 16, 16), decoder="torchvision"))
    encoder = load_encoder("builtin:cifar_resnet20", sample_shape=(3, 16, 16))
    with pytest.raises(SubclassbenchError, match=r"cannot decode image .*0005") as caught:
        extract_features(encoder, images, batch_size=8, progress=False, workers=0)
    assert "\n" not in str(caught.value)
    for args, message in (
        (["--task", "digits-5", "--decoder", "torchvision"], "--decoder applies to encoded images"),
        (["--task", "digits-5", "--decoder", "nvjpeg"], "use pil or torchvision"),
    ):
        done = cli("evaluate", *args, "-q")
        assert done.exit_code == 2 and message in done.output and "Traceback" not in done.output
