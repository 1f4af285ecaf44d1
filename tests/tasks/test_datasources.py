"""Data sources (subclassbench.tasks.datasources): npz files, image folders and saved Hugging Face datasets,
missing or broken data, single-split files, and the torchvision decoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.encoders.base import load_encoder
from subclassbench.errors import SubclassbenchError
from subclassbench.features.extraction import extract_features
from subclassbench.tasks.task import Task, load_task
from tests.conftest import add_train_split_and_transfer

# --------------------------------------------------------------------------- npz, image folders, Hugging Face datasets


def test_cifar_without_data_names_the_fix():
    with pytest.raises(SubclassbenchError, match="--data PATH"):
        load_task("cifar10-5").load_split()


def test_cifar_with_incomplete_data_is_an_error(tiny_npz):
    with pytest.raises(SubclassbenchError, match="expected 10000"):
        load_task("cifar10-5").load_split(data_path=tiny_npz)


def test_npz_source(tiny_image_task, tiny_npz):
    split = load_task(tiny_image_task).load_split(data_path=tiny_npz)
    assert len(split) == 40
    assert split.images.sample_shape == (3, 16, 16)
    batch = split.images.load(np.arange(4))
    assert batch.shape == (4, 3, 16, 16) and 0.0 <= float(batch.min()) and float(batch.max()) <= 1.0
    assert np.array_equal(split.superclass, np.repeat([0, 0, 1, 1], 10))


def test_image_folder_and_npz_agree(tiny_image_task, tiny_npz, tiny_image_folder):
    task = load_task(tiny_image_task)
    from_npz = task.load_split(data_path=tiny_npz)
    from_folder = task.load_split(data_path=tiny_image_folder)
    assert np.array_equal(from_folder.superclass, from_npz.superclass)
    # PNG is lossless: the pixels are identical, only ids and content hashes (file bytes) differ.
    assert np.allclose(from_folder.images.load(np.arange(40)).numpy(), from_npz.images.load(np.arange(40)).numpy())
    assert from_folder.fingerprint != from_npz.fingerprint


def test_corrupt_image_names_the_file(tiny_image_task, tiny_image_folder):
    victim = sorted((tiny_image_folder / "test" / "dog").iterdir())[0]
    victim.write_bytes(b"not a png")
    split = load_task(tiny_image_task).load_split(data_path=tiny_image_folder)
    with pytest.raises(SubclassbenchError, match=f"cannot decode image .*{victim.name}"):
        split.images.load(np.arange(len(split)))


def test_links_within_an_image_folder_are_followed_and_links_out_are_refused(tiny_image_task, tiny_image_folder):
    """A link inside the tree is just another name for a file; a link out of it (to any file on the machine)
    and a FIFO named like an image (a read that blocks, or a sample silently skipped) are one error line."""
    task = load_task(tiny_image_task)
    dog = tiny_image_folder / "test" / "dog"
    first, second = sorted(dog.iterdir())[:2]
    reference = task.load_split(data_path=tiny_image_folder).images.load(np.arange(40)).numpy()
    second.unlink()
    second.symlink_to(first)  # within the tree: read as the file it names
    linked = task.load_split(data_path=tiny_image_folder).images.load(np.arange(40)).numpy()
    index = sorted(p.name for p in dog.iterdir()).index(second.name) + 10  # cat's 10 images come first
    assert np.array_equal(linked[index], reference[index - 1]) and len(linked) == 40
    outside = tiny_image_folder.parent / "outside.png"
    outside.write_bytes(first.read_bytes())
    second.unlink()
    second.symlink_to(outside)
    with pytest.raises(SubclassbenchError, match=r"image .* is a link to .*outside.png, outside .*copy the file"):
        task.load_split(data_path=tiny_image_folder)
    second.unlink()
    import os

    os.mkfifo(second)
    with pytest.raises(SubclassbenchError, match=r"is not a regular file \(a FIFO"):
        task.load_split(data_path=tiny_image_folder)


def test_a_fifo_named_like_a_split_file_is_refused(tiny_image_task, tmp_path):
    import os

    os.mkfifo(tmp_path / "x_test.npz")
    with pytest.raises(SubclassbenchError, match=r"data file .*x_test.npz is not a regular file"):
        load_task(tiny_image_task).load_split(data_path=tmp_path)


def test_hf_saved_dataset_source(tiny_image_task, tmp_path):
    import datasets
    from PIL import Image

    from tests.conftest import make_images

    images, labels = make_images()
    ds = datasets.Dataset.from_dict({"img": [Image.fromarray(i) for i in images], "label": labels.tolist()})
    datasets.DatasetDict({"test": ds}).save_to_disk(str(tmp_path / "hf"))
    split = load_task(tiny_image_task).load_split(data_path=tmp_path / "hf")
    assert len(split) == 40
    assert np.allclose(split.images.load(np.arange(3)).numpy() * 255, images[:3].transpose(0, 3, 1, 2))


def test_npz_without_labels(tiny_image_task, tmp_path):
    path = tmp_path / "x_test.npz"
    np.savez(path, images=np.zeros((40, 16, 16, 3), np.uint8))
    with pytest.raises(SubclassbenchError, match="must hold arrays 'images' and 'labels'"):
        load_task(tiny_image_task).load_split(data_path=path)


# --------------------------------------------------------------------------- single-split files


def test_single_file_serves_only_the_evaluated_split(tiny_image_task, tiny_npz):
    task = Task.from_dict(add_train_split_and_transfer(tiny_image_task))
    with pytest.raises(SubclassbenchError, match="holds a single split"):
        task.load_split("train", tiny_npz, primary=False)


# --------------------------------------------------------------------------- --decoder torchvision


runner = CliRunner()


def cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


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
