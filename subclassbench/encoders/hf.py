"""The ``hf:`` source: a Hugging Face ``transformers`` vision model, safetensors only, no remote code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from subclassbench.encoders.base import ENCODER_SOURCES, Encoder, EncoderSource, EncoderSpec, LoadRequest
from subclassbench.encoders.hub import LOCAL_REVISION, resolve
from subclassbench.encoders.layers import discover_layers
from subclassbench.encoders.preprocessing import Preprocessing
from subclassbench.errors import SubclassbenchError, first_line

HF_CONFIG_FILES = ("config.json", "preprocessor_config.json")
RESAMPLE = {2: "bilinear", 3: "bicubic"}  # PIL resample codes in preprocessor_config.json


def _hf_preprocessing(folder: Path, config: Any) -> Preprocessing:
    """The model's own eval transform from its ``preprocessor_config.json`` (else its config's image size)."""
    path = folder / "preprocessor_config.json"
    try:
        pre = json.loads(path.read_text()) if path.is_file() else {}
        if not isinstance(pre, dict):
            raise ValueError("not a JSON object")
        size = pre.get("size", config.image_size)
        crop = pre.get("crop_size") if pre.get("do_center_crop") else None

        def hw(value: Any) -> tuple[int, int] | None:
            if isinstance(value, int):
                return value, value
            if isinstance(value, dict) and "height" in value:
                return int(value["height"]), int(value["width"])
            return None

        short = size.get("shortest_edge") if isinstance(size, dict) else None
        shape = hw(crop) or hw(size)
        if shape is None:
            if short is None:
                raise ValueError("no image size")
            shape = (int(short), int(short))
        height, width = shape
        crop_pct = height / int(short) if crop is not None and short else 1.0
        return Preprocessing(
            input_size=(int(getattr(config, "num_channels", 3)), height, width),
            mean=tuple(float(v) for v in pre.get("image_mean", (0.5, 0.5, 0.5))),
            std=tuple(float(v) for v in pre.get("image_std", (0.5, 0.5, 0.5))),
            interpolation=RESAMPLE.get(pre.get("resample", 2), "bilinear"),
            crop_pct=crop_pct,
        )
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise SubclassbenchError(f"{path}: cannot read the image preprocessing ({first_line(exc)})") from None


def _load_hf(request: LoadRequest) -> Encoder:
    """A ``transformers`` vision backbone (``AutoModel``), safetensors weights only and no remote code."""
    parsed = request.spec
    if request.weights is not None:
        raise SubclassbenchError(f"{parsed}: hf: weights come from the hub repository; pin them with @REVISION")
    patterns = [*HF_CONFIG_FILES, "model.safetensors"] if request.pretrained else list(HF_CONFIG_FILES)
    snapshot = resolve(parsed.name, parsed.revision, patterns, weights=request.pretrained)
    if request.pretrained and "model.safetensors" not in snapshot.files:  # pickled .bin weights could run code
        raise SubclassbenchError(f"{parsed} has no model.safetensors; only safetensors weights are read")
    hub_files = snapshot if request.pretrained else None
    folder = snapshot.folder
    try:
        import transformers
    except ImportError:
        raise SubclassbenchError("hf: encoders need transformers; pip install 'subclassbench[hf]'") from None

    # subclassbench reports its own progress (transformers leaves these two functions unannotated)
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # unannotated there
    try:
        config = transformers.AutoConfig.from_pretrained(folder, trust_remote_code=False)
        if hub_files is not None:
            model = transformers.AutoModel.from_pretrained(folder, use_safetensors=True, trust_remote_code=False)
        else:
            # from_config is unannotated in transformers
            model = transformers.AutoModel.from_config(config, trust_remote_code=False)  # type: ignore[no-untyped-call]  # as above
    except Exception as exc:  # unknown architecture, malformed config, mismatched weights
        raise SubclassbenchError(
            f"cannot load {parsed} with transformers {transformers.__version__} ({first_line(exc, 120)}); "
            "check the repository holds a vision model with config.json and model.safetensors"
        ) from None
    if not hasattr(config, "image_size") and not (folder / "preprocessor_config.json").is_file():
        raise SubclassbenchError(f"{parsed} is not an image model (no image_size, no preprocessor_config.json)")
    cls_token = getattr(getattr(model, "embeddings", None), "cls_token", None) is not None
    prefix = int(cls_token) + int(getattr(config, "num_register_tokens", 0) or 0)

    def embed(x: torch.Tensor) -> torch.Tensor:
        out = model(pixel_values=x)
        hidden: torch.Tensor = out.last_hidden_state
        if cls_token:  # ViT-style models classify from the class token
            return hidden[:, 0]
        pooled: torch.Tensor | None = getattr(out, "pooler_output", None)
        if pooled is not None:  # convolutional models: their own global pooling
            return pooled.flatten(1)
        return hidden.mean(dim=1) if hidden.ndim == 3 else hidden.mean(dim=(2, 3))

    # Untrained models carry no weights to hash: the resolved commit of their config names the architecture.
    commit = None if snapshot.revision == LOCAL_REVISION else snapshot.revision
    revision = parsed.revision if hub_files is not None else (commit or parsed.revision)
    return Encoder(
        spec=str(EncoderSpec("hf", parsed.name, None, revision)),
        source="hf",
        arch=type(model).__name__,
        tag=None,
        model=model,
        embed=embed,
        layer_modules=discover_layers(model),
        discovered=True,
        preprocessing=_hf_preprocessing(folder, config),
        prefix_tokens=prefix,
        weights=None if hub_files is None else hub_files.record(),
        pretrained=hub_files is not None,
    )


ENCODER_SOURCES.register(
    "hf",
    EncoderSource(
        "hf",
        _load_hf,
        tag_separator="",
        revisions=True,
        usage="hf:<org>/<name>[@<rev>]    a Hugging Face transformers vision model (safetensors, no remote code)",
    ),
)
