"""The ``open_clip:`` source: an OpenCLIP image tower, with weights from a file, a tag or the hub."""

from __future__ import annotations

from typing import Any

import torch

from subclassbench.encoders.base import ENCODER_SOURCES, Encoder, EncoderSource, LoadRequest
from subclassbench.encoders.hub import resolve_first
from subclassbench.encoders.layers import discover_layers
from subclassbench.encoders.preprocessing import Preprocessing
from subclassbench.encoders.weights import check_one_weights_source, weights_record
from subclassbench.errors import SubclassbenchError, first_line, nearest

OPEN_CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def _load_open_clip(request: LoadRequest) -> Encoder:
    parsed, weights, pretrained = request.spec, request.weights, request.pretrained
    import open_clip

    if parsed.name not in open_clip.list_models():
        raise SubclassbenchError(
            f"unknown open_clip architecture '{parsed.name}'; "
            f"closest: {nearest(parsed.name, open_clip.list_models())}"
        )
    meta = weights_record(weights)
    check_one_weights_source(parsed, meta)
    source: str | None = meta["path"] if meta else (parsed.tag if pretrained else None)
    options: dict[str, Any] = {}
    cfg = open_clip.get_pretrained_cfg(parsed.name, parsed.tag) if meta is None and pretrained and parsed.tag else {}
    if cfg and cfg.get("hf_hub"):
        # Hub weights: resolve and hash the file ourselves, then build the model exactly as the tag would.
        repo_path = cfg["hf_hub"].strip("/").split("/")
        candidates = (repo_path[2],) if len(repo_path) > 2 else OPEN_CLIP_WEIGHTS
        hub_files = resolve_first("/".join(repo_path[:2]), parsed.revision, candidates)
        meta, source = hub_files.record(), str(hub_files.main_file)
        options = {
            "force_quick_gelu": bool(cfg.get("quick_gelu", False)),
            "force_preprocess_cfg": {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in cfg},
        }
    elif parsed.revision:
        raise SubclassbenchError(
            f"{parsed}: only Hugging Face Hub weights take an @revision; this tag has none on the hub"
        )
    try:
        model = open_clip.create_model(parsed.name, pretrained=source, **options)
    except Exception as exc:
        first = first_line(exc, 120)
        raise SubclassbenchError(
            f"cannot load open_clip:{parsed.name} weights ({first}); pass --weights FILE or drop the @tag"
        ) from None
    visual = model.visual
    cfg = getattr(visual, "preprocess_cfg", {}) or {}
    size = visual.image_size if isinstance(visual.image_size, tuple | list) else (visual.image_size,) * 2
    preprocessing = Preprocessing(
        input_size=(3, int(size[0]), int(size[1])),
        mean=tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)),
        std=tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD)),
        interpolation=cfg.get("interpolation", "bicubic"),
    )
    prefix = 0 if getattr(visual, "class_embedding", None) is None else 1

    def embed(x: torch.Tensor) -> torch.Tensor:
        image_embedding: torch.Tensor = model.encode_image(x)
        return image_embedding

    return Encoder(
        spec=str(parsed),
        source="open_clip",
        arch=parsed.name,
        tag=parsed.tag,
        model=visual,
        embed=embed,
        layer_modules=discover_layers(visual),
        discovered=True,
        preprocessing=preprocessing,
        prefix_tokens=prefix,
        weights=meta,
        pretrained=source is not None,
    )


ENCODER_SOURCES.register(
    "open_clip",
    EncoderSource(
        "open_clip",
        _load_open_clip,
        tag_separator="@",
        revisions=True,
        hub_distribution="open_clip_torch",
        usage="open_clip:<arch>[@<tag>]   any OpenCLIP image tower",
    ),
)
