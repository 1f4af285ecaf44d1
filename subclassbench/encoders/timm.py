"""The ``timm:`` source: any timm model, with weights from a file, the local cache or the hub."""

from __future__ import annotations

from typing import Any, Protocol, cast

import torch

from subclassbench.encoders.base import ENCODER_SOURCES, Encoder, EncoderSource, LoadRequest
from subclassbench.encoders.hub import HubFiles, resolve_first
from subclassbench.encoders.layers import discover_layers
from subclassbench.encoders.preprocessing import Preprocessing
from subclassbench.encoders.weights import check_one_weights_source, weights_record
from subclassbench.errors import SubclassbenchError, first_line, nearest


class TimmClassifier(Protocol):
    """The two methods of a timm classifier that give its embedding (the input of its head)."""

    def forward_features(self, x: torch.Tensor) -> torch.Tensor: ...

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor: ...


TIMM_WEIGHTS = ("model.safetensors", "pytorch_model.bin")  # what timm reads from a hub repository, in order
# Constructor arguments that would change where weights come from or what the model returns: not a user's to set.
RESERVED_ARGS = frozenset(
    {"pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path", "cache_dir", "features_only",
     "out_indices", "feature_cfg", "model_name"}
)  # fmt: skip
MAX_ARGS = 32


def check_constructor_args(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """``--model-arg`` values for ``timm.create_model``: identifiers mapped to plain scalars (or lists of them)."""
    if len(args) > MAX_ARGS:
        raise SubclassbenchError(f"{len(args)} --model-arg values; at most {MAX_ARGS}")
    for key, value in args.items():
        if not isinstance(key, str) or not key.isidentifier() or key.startswith("_"):
            raise SubclassbenchError(f"--model-arg name {key!r} is not a keyword argument name; use KEY=VALUE")
        if key in RESERVED_ARGS:
            raise SubclassbenchError(
                f"--model-arg {key} is set by subclassbench (weights come from --weights or the spec); drop it"
            )
        items = value if isinstance(value, list) else [value]
        if not all(item is None or isinstance(item, str | int | float | bool) for item in items):
            raise SubclassbenchError(f"--model-arg {key} must be a number, string, true/false or a list of them")
    return dict(args)


def create_model(name: str, pretrained: bool, args: dict[str, Any], overlay: dict[str, Any] | None = None) -> Any:
    """``timm.create_model`` with the user's constructor arguments; an argument the model lacks is one line."""
    import timm

    try:
        return timm.create_model(name, pretrained=pretrained, **args, **(overlay or {}))
    except TypeError as exc:  # a constructor argument this model does not take
        raise SubclassbenchError(
            f"timm:{name} does not take the constructor argument(s) {', '.join(sorted(args))} "
            f"({first_line(exc, 100)}); check --model-arg"
        ) from None


def _with_untrained_residuals(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments for a random-init model whose residual branches are not zeroed.

    timm's ResNets (and a few others) zero-initialise each block's last
    normalisation (``zero_init_last``), which makes every untrained block an
    identity map: consecutive layers are then equal, and an "untrained"
    baseline measures the stem alone. Random-init models are built with
    ``zero_init_last=False`` where the model has that switch; the result
    records it among the constructor arguments.
    """
    if "zero_init_last" in args:
        return args
    with torch.random.fork_rng():  # the probe must not move the seeded initialisation of the real model
        probe = create_model(name, False, args)
    if any(callable(getattr(module, "zero_init_last", None)) for module in probe.modules()):
        return {**args, "zero_init_last": False}
    return args


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
            f"unknown timm model '{parsed.name}'; closest: {nearest(parsed.name, timm.list_models())}; "
            "every name: python -c 'import timm; print(timm.list_models())'"
        )
    meta = weights_record(weights)
    check_one_weights_source(parsed, meta)
    args = check_constructor_args(name, request.arch_kwargs)
    kwargs: dict[str, Any] = {}
    if meta is None and pretrained:
        hub_files = _timm_hub_files(timm, name, parsed.revision)
        if hub_files is not None:
            meta = hub_files.record()
            kwargs["pretrained_cfg_overlay"] = {"file": str(hub_files.main_file)}
    elif meta is not None:
        # timm reads the file: safetensors, or a torch checkpoint with weights_only=True (no pickled code runs).
        kwargs["pretrained_cfg_overlay"] = {"file": meta["path"]}
        pretrained = True
    if not pretrained:
        args = _with_untrained_residuals(name, args)
    try:
        model = create_model(name, pretrained, args, kwargs)
    except SubclassbenchError:
        raise
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
        arch_kwargs=args,
    )


ENCODER_SOURCES.register(
    "timm",
    EncoderSource(
        "timm",
        _load_timm,
        hub_distribution="timm",
        revisions=True,
        constructor_args=True,
        usage="timm:<model>[.<tag>]       any timm model (pretrained weights local/online, or --weights)",
    ),
)
