"""The ``timm:`` source: any timm model, with weights from a file, the local cache or the hub."""

from __future__ import annotations

from typing import Any, Protocol, cast

import torch

from subclassbench.encoders.base import ENCODER_SOURCES, Encoder, EncoderSource, LoadRequest
from subclassbench.encoders.hub import HubFiles, resolve_first
from subclassbench.encoders.layers import discover_layers
from subclassbench.encoders.preprocessing import Preprocessing
from subclassbench.encoders.weights import check_one_weights_source, weights_record
from subclassbench.errors import SubclassbenchError, closest, first_line


class TimmClassifier(Protocol):
    """The two methods of a timm classifier that give its embedding (the input of its head)."""

    def forward_features(self, x: torch.Tensor) -> torch.Tensor: ...

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor: ...


TIMM_WEIGHTS = ("model.safetensors", "pytorch_model.bin")  # what timm reads from a hub repository, in order


def _timm_hub_files(timm: Any, name: str, revision: str | None) -> HubFiles | None:
    """timm weights that live on the Hugging Face Hub, resolved to a commit and hashed; None for URL weights."""
    cfg = timm.models.get_pretrained_cfg(name)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        if revision:
            raise SubclassbenchError(
                f"timm:{name} has no Hugging Face Hub weights (they come from a URL); drop @{revision} "
                "or pass --weights FILE"
            )
        return None  # identified by timm's version (hub_library), as before hub pinning
    repo, _, pinned = hub_id.partition("@")
    filename = getattr(cfg, "hf_hub_filename", None)
    return resolve_first(repo, revision or pinned or None, (filename,) if filename else TIMM_WEIGHTS)


def _load_timm(request: LoadRequest) -> Encoder:
    parsed, weights, pretrained = request.spec, request.weights, request.pretrained
    import timm
    from timm.data.config import resolve_data_config

    name = parsed.name + (f".{parsed.tag}" if parsed.tag else "")
    if not timm.is_model(parsed.name):
        raise SubclassbenchError(
            f"unknown timm model '{parsed.name}'; close matches: {closest(parsed.name, timm.list_models())}"
        )
    meta = weights_record(weights)
    check_one_weights_source(parsed, meta)
    kwargs: dict[str, Any] = {}
    if meta is None and pretrained:
        hub_files = _timm_hub_files(timm, name, parsed.revision)
        if hub_files is not None:
            meta = hub_files.record()
            kwargs["pretrained_cfg_overlay"] = {"file": str(hub_files.main_file)}
    elif meta is not None:
        kwargs["pretrained_cfg_overlay"] = {"file": meta["path"]}
        pretrained = True
    try:
        model = timm.create_model(name, pretrained=pretrained, **kwargs)
    except Exception as exc:  # hub errors, missing files, mismatched checkpoints
        first = first_line(exc, 120)
        raise SubclassbenchError(
            f"cannot load timm:{name} weights ({first}); pass --weights FILE, or --random-init for an untrained model"
        ) from None
    cfg = resolve_data_config({}, model=model)  # type: ignore[no-untyped-call]  # timm leaves it unannotated
    preprocessing = Preprocessing(
        input_size=tuple(cfg["input_size"]),
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
        interpolation=cfg.get("interpolation", "bilinear"),
        crop_pct=float(cfg.get("crop_pct", 1.0)),
    )

    net = cast(TimmClassifier, model)  # timm.create_model is typed as returning a plain nn.Module

    def embed(x: torch.Tensor) -> torch.Tensor:
        return net.forward_head(net.forward_features(x), pre_logits=True)

    return Encoder(
        spec=f"timm:{name}" + (f"@{parsed.revision}" if parsed.revision else ""),
        source="timm",
        arch=parsed.name,
        tag=parsed.tag,
        model=model,
        embed=embed,
        layer_modules=discover_layers(model),
        discovered=True,
        preprocessing=preprocessing,
        prefix_tokens=int(getattr(model, "num_prefix_tokens", 0)),
        channels_last_maps=getattr(model, "output_fmt", "NCHW") == "NHWC",
        weights=meta,
        pretrained=pretrained,
    )


ENCODER_SOURCES.register(
    "timm",
    EncoderSource(
        "timm",
        _load_timm,
        hub_distribution="timm",
        revisions=True,
        usage="timm:<model>[.<tag>]       any timm model (pretrained weights local/online, or --weights)",
    ),
)
