"""tasks/datasources.decode_image: every image mode decodes to its true values, or is refused in one line."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from subclassbench.errors import SubclassbenchError
from subclassbench.tasks.datasources import Decoding, EncodedBatch, decode_image

GREY = Decoding((1, 8, 8))
RGB = Decoding((3, 8, 8))


def _png(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def _ramp16() -> np.ndarray:
    return (np.arange(64, dtype=np.uint32).reshape(8, 8) * 1000 + 200).astype(np.uint16)  # 200 … 63,200


def test_16_bit_greyscale_keeps_its_values():
    """Pillow's convert('L') would clip every one of these to 255."""
    values = _ramp16()
    decoded = decode_image(_png(Image.fromarray(values)), GREY, "ramp.png")
    np.testing.assert_allclose(decoded[0].numpy(), values / 65535, atol=1e-6)
    rgb = decode_image(_png(Image.fromarray(values)), RGB, "ramp.png")
    assert rgb.shape == (3, 8, 8) and np.allclose(rgb[1].numpy(), values / 65535, atol=1e-6)


def test_16_bit_png_through_the_torchvision_decoder_matches_pil():
    import torch

    data = _png(Image.fromarray(_ramp16()))
    batch = EncodedBatch([data], ["ramp.png"], Decoding((1, 8, 8), decoder="torchvision"))
    on_device = batch.decode(torch.device("cpu"))
    np.testing.assert_allclose(on_device[0, 0].numpy(), _ramp16() / 65535, atol=1e-6)


@pytest.mark.parametrize("mode", ["P", "CMYK", "1", "LA", "RGBA"])
def test_8_bit_modes_decode_to_their_colours(mode):
    rng = np.random.RandomState(0)
    rgb = rng.randint(0, 256, size=(8, 8, 3)).astype(np.uint8)
    source = Image.fromarray(rgb)
    if mode == "P":
        image = source.quantize(colors=16)
        expected = np.asarray(image.convert("RGB"))
    elif mode == "CMYK":
        image = source.convert("CMYK")
        expected = np.asarray(image.convert("RGB"))
    elif mode == "1":
        image = source.convert("1")
        expected = np.asarray(image.convert("RGB"))
    else:  # fully opaque alpha: the colours are the image
        image = source.convert(mode)
        expected = np.asarray(image.convert("RGB"))
    buffer = io.BytesIO()
    image.save(buffer, format="TIFF" if mode == "CMYK" else "PNG")
    decoded = decode_image(buffer.getvalue(), RGB, f"x.{mode}")
    np.testing.assert_allclose(decoded.permute(1, 2, 0).numpy(), expected / 255, atol=1e-6)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (Image.fromarray(np.dstack([np.full((8, 8, 3), 200, np.uint8), np.eye(8, dtype=np.uint8) * 255])),
         "transparent pixels"),
        (Image.fromarray(np.full((8, 8), 2.0, np.float32), mode="F"), "values outside"),
        (Image.fromarray(np.full((8, 8), 70_000, np.int32), mode="I"), "outside 0-65535"),
    ],
)  # fmt: skip
def test_what_cannot_be_read_truthfully_is_refused(image, message):
    buffer = io.BytesIO()
    image.save(buffer, format="TIFF" if image.mode in ("F", "I") else "PNG")
    with pytest.raises(SubclassbenchError, match=message) as caught:
        decode_image(buffer.getvalue(), RGB, "odd.png")
    assert "\n" not in str(caught.value)


def test_a_transparent_palette_entry_is_refused():
    image = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).convert("P")
    with pytest.raises(SubclassbenchError, match="transparent pixels"):
        decode_image(_png(image, transparency=5), RGB, "palette.png")


@pytest.mark.parametrize("side", [40, 64])  # past Pillow's warning limit, and past its error limit (twice it)
def test_a_decompression_bomb_header_is_one_line(monkeypatch, side):
    """A small file whose header claims a huge image: refused before decoding, never a traceback."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # stands in for Pillow's 89-megapixel limit
    data = _png(Image.fromarray(np.zeros((side, side), np.uint8)))
    with pytest.raises(SubclassbenchError, match="decompression bomb") as caught:
        decode_image(data, GREY, "bomb.png")
    assert "\n" not in str(caught.value)
