"""The ``builtin:`` source: reference architectures, packaged weights with model cards, ``train`` folders."""

from __future__ import annotations

import inspect
import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from subclassbench.core.files import inside
from subclassbench.encoders import architectures
from subclassbench.encoders.base import (
    ENCODER_SOURCES,
    PACKAGED_PREFIX,
    Encoder,
    EncoderSource,
    EncoderSpec,
    LoadRequest,
)
from subclassbench.encoders.preprocessing import Preprocessing
from subclassbench.encoders.weights import apply_state_dict, read_state_dict
from subclassbench.errors import SubclassbenchError, closest, first_line


def packaged_weights_dir() -> Path:
    return Path(str(resources.files("subclassbench").joinpath("weights")))


def packaged_tags(arch: str) -> list[str]:
    folder = packaged_weights_dir()
    return sorted(p.name[len(arch) + 1 : -len(".safetensors")] for p in folder.glob(f"{arch}.*.safetensors"))


def list_builtin() -> list[str]:
    names = []
    for arch in architectures.ARCHITECTURES:
        names.append(f"builtin:{arch}")
        names.extend(f"builtin:{arch}.{tag}" for tag in packaged_tags(arch))
    return names


def _build_arch(info: architectures.ArchInfo, **kwargs: Any) -> architectures.FeatureModel:
    """The architecture with the keyword arguments its builder accepts (every builtin is a FeatureModel)."""
    accepted = inspect.signature(info.build).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    model = info.build(**kwargs)
    if not isinstance(model, architectures.FeatureModel):  # a registry entry that breaks the builtin contract
        raise TypeError(f"builtin architecture {info.build!r} built a {type(model).__name__}, not a FeatureModel")
    return model


def _head_name(model: nn.Module) -> str:
    head: object = model.head  # builtin architectures name their classifier head
    name: str = next(name for name, module in model.named_modules() if module is head)
    return name


def resolve_trained_weights(weights: str | Path) -> tuple[Path, dict[str, Any] | None]:
    """``--weights`` may be a weights file, a model card (``card.json``) or a ``train`` output folder."""
    path = Path(weights).expanduser()
    card_path = None
    if path.is_dir():
        card_path = path / "card.json"
    elif path.suffix == ".json":
        card_path = path
    if card_path is None:
        return path, None
    if not card_path.is_file():
        raise SubclassbenchError(
            f"no model card at {card_path}; pass the weights file or a `subclassbench train` folder"
        )
    try:
        card = json.loads(card_path.read_text())
        name = card["weights_file"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise SubclassbenchError(f"model card {card_path} is malformed ({first_line(exc)}); re-run training") from None
    if not isinstance(card, dict) or not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
        raise SubclassbenchError(
            f"model card {card_path}: weights_file must be a file name beside the card, got {name!r}"
        )
    return inside(card_path.parent, card_path.parent / name, "the card's weights_file"), card


def _display_name(module_name: str) -> str:
    name = module_name.removeprefix("net.")
    return "stem" if name in ("act1", "patch_embed") else name


def _builtin_weights(
    parsed: EncoderSpec, weights: str | Path | None
) -> tuple[str | Path | None, dict[str, Any] | None, bool]:
    """The weights file, its model card and whether it is packaged: a tag names packaged weights."""
    if parsed.tag and weights is None:
        packaged = packaged_weights_dir() / f"{parsed.name}.{parsed.tag}.safetensors"
        if not packaged.exists():
            tags = packaged_tags(parsed.name)
            raise SubclassbenchError(
                f"builtin:{parsed.name} has no packaged weights '{parsed.tag}'; "
                f"available: {', '.join(tags) or 'none'} (or pass --weights FILE)"
            )
        return packaged, json.loads(packaged.with_suffix(".json").read_text()), True
    if weights is None:
        return None, None, False
    resolved, card = resolve_trained_weights(weights)
    if card is not None and card.get("arch") != parsed.name:
        raise SubclassbenchError(
            f"the model card says arch '{card.get('arch')}' but --model is builtin:{parsed.name}; "
            f"use --model builtin:{card.get('arch')}"
        )
    return resolved, card, False


def _load_builtin(request: LoadRequest) -> Encoder:
    parsed, weights, sample_shape = request.spec, request.weights, request.sample_shape
    info = architectures.ARCHITECTURES.get(parsed.name)
    if info is None:
        raise SubclassbenchError(
            f"unknown builtin architecture '{parsed.name}'; "
            f"valid: {closest(parsed.name, list(architectures.ARCHITECTURES))}"
        )
    weights, card, packaged = _builtin_weights(parsed, weights)

    shape = tuple(sample_shape or (1, 8, 8))
    vector_model = info.input_size == (0, 0, 0)
    if not vector_model and len(shape) != 3:
        raise SubclassbenchError(
            f"builtin:{parsed.name} takes images but the task's samples are vectors of shape {shape}; "
            "use builtin:mlp or builtin:identity"
        )
    # Size-flexible architectures (H = W = 0 in the registry) take the task's native size.
    input_size = info.input_size
    if not vector_model and input_size[1] == 0:
        input_size = (input_size[0], shape[-2] if len(shape) == 3 else 32, shape[-1] if len(shape) == 3 else 32)
    switches = {
        **architectures.check_switches(parsed.name, (card or {}).get("arch_kwargs") or {}),
        **architectures.check_switches(parsed.name, request.arch_kwargs),
    }
    kwargs: dict[str, Any] = {
        "num_classes": request.num_classes,
        "in_features": int(np.prod(shape if vector_model else input_size)),
        "in_chans": input_size[0] or 1,
        "img_size": input_size[1] or 32,
        **switches,
    }
    meta = None
    if weights is not None:
        state, meta = read_state_dict(weights)
        if card is not None and card.get("weights_sha256") != meta["sha256"]:
            raise SubclassbenchError(
                f"weights {meta['path']} fail the sha256 check of their model card; "
                + ("reinstall subclassbench" if packaged else "re-run training or restore the file")
            )
        if packaged:  # a machine-independent name keeps results from different installs identical
            meta["path"] = f"{PACKAGED_PREFIX}subclassbench/weights/{Path(meta['path']).name}"
        model = _build_arch(info, **kwargs)
        head_weight = state.get(f"{_head_name(model)}.weight")
        if head_weight is not None and head_weight.shape[0] != kwargs["num_classes"]:
            model = _build_arch(info, **{**kwargs, "num_classes": head_weight.shape[0]})
        apply_state_dict(model, state, meta["path"], f"builtin:{parsed.name}")
    else:
        model = _build_arch(info, **kwargs)  # seeded by load_encoder: a reproducible baseline
    modules = dict(model.named_modules())
    # Wrapped timm nets name their modules net.*; users see timm's block names and "stem".
    layers = {_display_name(name): modules[name] for name in model.feature_layers()}
    if vector_model:
        preprocessing = Preprocessing(input_size=None)
    else:
        preprocessing = Preprocessing(input_size=input_size, mean=info.mean, std=info.std)
    return Encoder(
        spec=f"builtin:{parsed.name}" + (f".{parsed.tag}" if parsed.tag else ""),
        source="builtin",
        arch=parsed.name,
        tag=parsed.tag,
        model=model,
        embed=model.forward_features,
        layer_modules=layers,
        preprocessing=preprocessing,
        prefix_tokens=int(getattr(model, "num_prefix_tokens", 0)),
        weights=meta,
        pretrained=weights is not None,
        card=card,
        arch_kwargs=switches,
    )


ENCODER_SOURCES.register(
    "builtin",
    EncoderSource(
        "builtin",
        _load_builtin,
        random_init=False,
        takes_vectors=True,
        model_cards=True,
        constructor_args=True,
        usage="builtin:<arch>[.<tag>]    reference architectures; a tag names packaged weights",
    ),
)
