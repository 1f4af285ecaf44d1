"""Encoder registry: ``source:name`` specs → a model, its preprocessing and its layers.

Sources:

* ``builtin:<arch>[.<tag>]`` — reference architectures (``architectures.py``);
  a tag names weights packaged with subclassbench (``subclassbench/weights``).
* ``timm:<model>[.<pretrained tag>]`` — any timm model; pretrained weights from
  the local cache, the hub when online, or ``--weights FILE``.
* ``open_clip:<arch>[@<pretrained tag>]`` — an OpenCLIP image tower.
* ``hf:<org>/<name>[@<revision>]`` — a Hugging Face ``transformers`` vision model.
* ``module:<name>`` — a Python ``nn.Module`` handed to :func:`subclassbench.evaluate`.
* any source another package declares under the ``subclassbench.encoder_sources``
  entry point (:mod:`subclassbench.core.registry`).

Hub weights (``hf:``, and ``timm:``/``open_clip:`` tags whose weights live on the
Hugging Face Hub) take a trailing ``@<revision>`` (branch, tag or commit); the
commit it resolves to and the files' sha256 are recorded (:mod:`subclassbench.encoders.hub`).

Every encoder exposes an ordered list of layers, input side first, ending with
``embedding`` (the representation fed to the classifier head). Intermediate
layers are captured by forward hooks, so one forward pass yields all of them.
"""

from __future__ import annotations

import inspect
import json
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from subclassbench.core.files import inside
from subclassbench.core.hashing import sha256_file
from subclassbench.core.registry import Registry
from subclassbench.encoders import architectures
from subclassbench.encoders.hub import LOCAL_REVISION, HubFiles, check_revision, resolve
from subclassbench.encoders.preprocessing import Preprocessing
from subclassbench.errors import SubclassbenchError, closest, first_line

EMBEDDING = "embedding"
PACKAGED_PREFIX = "package:"  # how results name weights packaged with subclassbench (machine-independent)

# Block-level modules, tried in order; the first pattern that matches any module wins.
BLOCK_PATTERNS = (
    r"layer\d+\.\d+",  # torchvision/timm ResNets, OpenCLIP ModifiedResNet
    r"stages\.\d+\.blocks\.\d+",  # ConvNeXt, many timm hierarchical nets
    r"layers\.\d+\.blocks\.\d+",  # Swin
    r"transformer\.resblocks\.\d+",  # OpenCLIP ViT
    r"blocks\.\d+\.\d+",  # EfficientNet / MobileNet stages of blocks
    r"blocks\.\d+",  # timm ViT, DeiT, MLP-Mixer
    r"s\d+\.b\d+",  # timm RegNet
    r"(encoder\.)?layers?\.\d+",  # transformers ViT, DeiT, BEiT, DINOv2
    r"encoder\.stages\.\d+\.layers\.\d+",  # transformers ResNet, ConvNeXt
    r"stages\.\d+",
    r"features\.\d+",
)
MIN_LAYERS = 3  # with the embedding: fewer cannot show how structure changes with depth
STEM_CANDIDATES = ("stem", "patch_embed", "maxpool", "act1", "conv1", "conv_stem", "embeddings", "embedder")


@dataclass
class Encoder:
    """A frozen model plus everything needed to read its layers reproducibly."""

    spec: str
    source: str
    arch: str
    tag: str | None
    model: nn.Module
    embed: Callable[[torch.Tensor], torch.Tensor]
    layer_modules: dict[str, nn.Module]
    preprocessing: Preprocessing
    prefix_tokens: int = 0
    # The stem precedes the class token (ViT patch embeddings): pool all of its tokens.
    no_prefix_layers: frozenset[str] = frozenset({"stem"})
    # Feature maps laid out B×H×W×C (timm's Swin family) rather than B×C×H×W.
    channels_last_maps: bool = False
    weights: dict[str, Any] | None = None
    pretrained: bool = False
    card: dict[str, Any] | None = field(default=None, repr=False)
    # Layers found by discover_layers (timm, OpenCLIP), not declared by the architecture (builtins, whose
    # declared list may rightly be just the embedding: the identity / raw-pixel baseline).
    discovered: bool = False

    @property
    def layer_names(self) -> list[str]:
        return [*self.layer_modules, EMBEDDING]

    def prefix_for(self, layer: str) -> int:
        return 0 if layer in self.no_prefix_layers else self.prefix_tokens

    def select_layers(self, requested: list[str] | None) -> list[str]:
        """Validate ``--layers``; keep encoder order so depth stays meaningful.

        Without ``--layers`` the discovered layers are used, and an encoder where
        fewer than :data:`MIN_LAYERS` were found is an error (never a silent
        two-point curve). ``--layers`` may also name any module of the model
        (``subclassbench layers MODEL --all`` lists them); those join the layers.
        """
        valid = self.layer_names
        if not requested:
            if self.discovered and len(valid) < MIN_LAYERS:
                raise SubclassbenchError(
                    f"found only {len(valid)} layers of {self.spec} ({', '.join(valid)}); name the modules to read "
                    "with --layers (`subclassbench layers MODEL --all` lists every module)"
                )
            return valid
        modules = dict(self.model.named_modules())
        unknown = [name for name in requested if name not in valid and (not name or name not in modules)]
        if unknown:
            raise SubclassbenchError(
                f"unknown layer '{unknown[0]}' for {self.spec}; valid layers: {', '.join(valid)} "
                "(or any module name from `subclassbench layers MODEL --all`)"
            )
        extra = {name for name in requested if name not in valid}
        if extra:  # named modules join the layers in the model's own (forward) order
            chosen = set(self.layer_modules) | extra
            self.layer_modules = {name: module for name, module in modules.items() if name in chosen}
        return [name for name in self.layer_names if name in set(requested)]

    def depth(self, layer: str) -> float:
        """Relative depth in [0, 1]: the layer's position among all of the encoder's layers."""
        names = self.layer_names
        return names.index(layer) / (len(names) - 1) if len(names) > 1 else 1.0

    @cached_property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @cached_property
    def identity(self) -> dict[str, Any]:
        """What identifies this encoder's features in the cache: weights by content, never by name alone."""
        weights_sha256 = None if self.weights is None else self.weights.get("sha256")
        source = ENCODER_SOURCES.get(self.source)
        identity = {
            "spec": self.spec,
            "pretrained": self.pretrained,
            "weights_sha256": weights_sha256,
            "arch_kwargs": (self.card or {}).get("arch_kwargs") or {},
            "hub_library": source.hub_library(self.pretrained, weights_sha256),
        }
        plugin = ENCODER_SOURCES.plugins.get(self.source)
        if plugin is not None:  # a plug-in's code decides its features: a new release is a new model
            identity["plugin"] = plugin
        return identity

    def info(self) -> dict[str, Any]:
        """The result's ``encoder`` record."""
        plugin = ENCODER_SOURCES.plugins.get(self.source)
        return ({"plugin": plugin} if plugin else {}) | {
            "spec": self.spec,
            "source": self.source,
            "arch": self.arch,
            "tag": self.tag,
            "pretrained": self.pretrained,
            "weights": None if self.weights is None else dict(self.weights),
            "n_params": self.n_params,
            "preprocessing": self.preprocessing.to_dict(),
            "prefix_tokens": self.prefix_tokens,
            "arch_kwargs": (self.card or {}).get("arch_kwargs") or {},
            "layers": self.layer_names,
        }


@dataclass(frozen=True)
class EncoderSpec:
    source: str
    name: str
    tag: str | None
    revision: str | None = None  # a pinned hub revision (``@<branch, tag or commit>``)

    @classmethod
    def parse(cls, spec: str) -> EncoderSpec:
        if ":" not in spec:
            raise SubclassbenchError(
                f"model spec '{spec}' needs a source prefix: one of "
                f"{', '.join(s + ':' for s in ENCODER_SOURCES.names())} "
                "(e.g. builtin:cifar_resnet20, timm:resnet18, open_clip:ViT-B-32)"
            )
        source_name, _, rest = spec.partition(":")
        source = ENCODER_SOURCES.get(source_name, f" in '{spec}'")
        revision = None
        if source.revisions and "@" in rest:
            # The last '@' pins a revision, unless it is open_clip's only '@' (its tag separator).
            head, _, last = rest.rpartition("@")
            if source.tag_separator != "@" or "@" in head:
                rest, revision = head, last
                check_revision(revision)
        name, _, tag = rest.partition(source.tag_separator) if source.tag_separator else (rest, "", "")
        if not name:
            raise SubclassbenchError(f"model spec '{spec}' has no model name after '{source_name}:'")
        return cls(source_name, name, tag or None, revision)

    def __str__(self) -> str:
        separator = ENCODER_SOURCES.get(self.source).tag_separator
        text = f"{self.source}:{self.name}" + (f"{separator}{self.tag}" if self.tag else "")
        return text + (f"@{self.revision}" if self.revision else "")


@dataclass(frozen=True)
class LoadRequest:
    """What a source's loader gets: the parsed spec and the evaluation's context."""

    spec: EncoderSpec
    weights: str | Path | None
    sample_shape: tuple[int, ...] | None  # the task's native C×H×W (or D)
    num_classes: int  # the task's superclasses (heads of builtin nets)
    pretrained: bool
    arch_kwargs: dict[str, Any]


@dataclass(frozen=True)
class EncoderSource:
    """One ``source:`` prefix of encoder specs and everything that differs between sources."""

    name: str
    load: Callable[[LoadRequest], Encoder]
    tag_separator: str = "."  # "" for sources without tags
    # Whether specs may pin a hub revision with a trailing ``@<revision>``.
    revisions: bool = False
    # Hub weights without a weights file are identified by this library's version (the cache identity).
    hub_distribution: str | None = None
    # Whether ``--random-init`` applies (builtin nets are untrained unless weights are given).
    random_init: bool = True
    # Whether the source has encoders for vector (non-image) samples.
    takes_vectors: bool = False
    # Whether its weights come with model cards (packaged tags, `subclassbench train` folders).
    model_cards: bool = False
    usage: str = ""

    def hub_library(self, pretrained: bool, weights_sha256: str | None) -> str | None:
        """``dist==version`` for hub weights resolved by a library (no file hash to identify them)."""
        if weights_sha256 is not None or not pretrained or self.hub_distribution is None:
            return None
        from importlib import metadata

        return f"{self.hub_distribution}=={metadata.version(self.hub_distribution)}"


def load_encoder(
    spec: str,
    weights: str | Path | None = None,
    sample_shape: tuple[int, ...] | None = None,
    num_classes: int = 10,
    pretrained: bool = True,
    arch_kwargs: dict[str, Any] | None = None,
    init_seed: int = 0,
) -> Encoder:
    """Build an encoder from a spec; ``sample_shape`` is the task's native C×H×W (or D).

    ``arch_kwargs`` are builtin architecture switches (e.g. ``norm``); a model
    card next to the weights supplies them too. Models are built under
    ``torch.manual_seed(init_seed)``, so random-init encoders are reproducible.
    """
    parsed = EncoderSpec.parse(spec)
    source = ENCODER_SOURCES.get(parsed.source)
    if not source.takes_vectors and sample_shape is not None and len(sample_shape) != 3:
        raise SubclassbenchError(
            f"{spec} takes images but the task's samples are vectors of shape {tuple(sample_shape)}; "
            "use builtin:mlp or builtin:identity"
        )
    torch.manual_seed(init_seed)
    encoder = source.load(LoadRequest(parsed, weights, sample_shape, num_classes, pretrained, arch_kwargs or {}))
    encoder.model.eval()
    return encoder


# --------------------------------------------------------------------------- weights files


def _weights_meta(weights: str | Path | None) -> dict[str, Any] | None:
    """Path, sha256 and format of a weights file (recorded in results), or None."""
    if weights is None:
        return None
    path = Path(weights).expanduser()
    if not path.is_file():
        raise SubclassbenchError(f"weights file {path} not found; check the --weights path")
    fmt = "safetensors" if path.suffix == ".safetensors" else "torch"
    return {"path": str(path), "sha256": sha256_file(path), "format": fmt}


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read safetensors or a torch checkpoint (``weights_only=True``); strip DataParallel prefixes."""
    meta = _weights_meta(path)
    assert meta is not None
    path = Path(meta["path"])
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise SubclassbenchError(f"{path} is not a valid safetensors file ({exc}); re-export the weights") from None
    else:
        try:
            with warnings.catch_warnings():  # torch warns on stderr about refused globals; our error says it
                warnings.simplefilter("ignore")
                state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for foreign or unsafe files
            first = first_line(exc, 100)
            raise SubclassbenchError(
                f"cannot read weights file {path} as safetensors or as a torch checkpoint loadable with "
                f"weights_only=True ({first}); convert it to .safetensors"
            ) from None
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SubclassbenchError(f"{path} holds no state dict of tensors; save model.state_dict() instead")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    return state, meta


def apply_state_dict(model: nn.Module, state: dict[str, torch.Tensor], where: str, spec: str) -> None:
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        shape = re.search(r"size mismatch for ([^:]+)", str(exc))
        detail = f"size mismatch for {shape.group(1)}" if shape else "incompatible tensors"
        raise SubclassbenchError(
            f"weights {where} do not fit {spec} ({detail}); check --model matches the file"
        ) from None
    # Old checkpoints predate BatchNorm's num_batches_tracked buffer; it is safe to lack.
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        raise SubclassbenchError(
            f"weights {where} do not fit {spec}: {', '.join(parts)}; check --model matches the file"
        )


# --------------------------------------------------------------------------- builtin


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


def _build_arch(info: architectures.ArchInfo, **kwargs: Any) -> nn.Module:
    accepted = inspect.signature(info.build).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        return info.build(**kwargs)
    return info.build(**{k: v for k, v in kwargs.items() if k in accepted})


def _head_name(model: nn.Module) -> str:
    head = model.head  # type: ignore[attr-defined]
    return next(name for name, module in model.named_modules() if module is head)


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
    kwargs: dict[str, Any] = {
        "num_classes": request.num_classes,
        "in_features": int(np.prod(shape if vector_model else input_size)),
        "in_chans": input_size[0] or 1,
        "img_size": input_size[1] or 32,
        **architectures.check_switches(parsed.name, (card or {}).get("arch_kwargs") or {}),
        **architectures.check_switches(parsed.name, request.arch_kwargs),
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
    layers = {_display_name(name): modules[name] for name in model.feature_layers()}  # type: ignore[operator]
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
        embed=model.forward_features,  # type: ignore[arg-type]
        layer_modules=layers,
        preprocessing=preprocessing,
        prefix_tokens=int(getattr(model, "num_prefix_tokens", 0)),
        weights=meta,
        pretrained=weights is not None,
        card=card,
    )


# --------------------------------------------------------------------------- timm / open_clip


def discover_layers(root: nn.Module) -> dict[str, nn.Module]:
    """Stem plus every block, in registration (= forward) order.

    Blocks are found by name (:data:`BLOCK_PATTERNS`) when the names match
    containers — whole blocks. When they match single operations (VGG's
    ``features.N``: each conv, ReLU and pool) or too few modules (DenseNet,
    Inception), timm's ``feature_info`` — the model's own list of the
    stage outputs it exposes as features — names the layers instead.
    """
    modules = dict(root.named_modules())
    layers: dict[str, nn.Module] = {}
    for name in STEM_CANDIDATES:
        if name in modules:
            layers["stem"] = modules[name]
            break
    blocks: list[str] = []
    for pattern in BLOCK_PATTERNS:
        regex = re.compile(pattern + "$")
        blocks = [name for name in modules if regex.fullmatch(name)]
        if blocks:
            break
    whole_blocks = len(blocks) >= 2 and all(any(True for _ in modules[name].children()) for name in blocks)
    stages = [name for name in _feature_info_modules(root) if name in modules]
    if not whole_blocks and len(stages) >= 2:
        return {name: modules[name] for name in stages}
    layers.update((name, modules[name]) for name in blocks)
    return layers


def _feature_info_modules(root: nn.Module) -> list[str]:
    """Module names from timm's ``feature_info`` (a list of dicts, or a ``FeatureInfo``), else nothing."""
    info = getattr(root, "feature_info", None)
    try:
        entries = list(info) if info is not None else []
    except TypeError:
        return []
    return [e["module"] for e in entries if isinstance(e, dict) and isinstance(e.get("module"), str)]


TIMM_WEIGHTS = ("model.safetensors", "pytorch_model.bin")  # what timm reads from a hub repository, in order
OPEN_CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def _no_revision_with_file(parsed: EncoderSpec, meta: dict[str, Any] | None) -> None:
    if parsed.revision and meta is not None:
        raise SubclassbenchError(f"{parsed}: --weights FILE and a pinned @revision both name the weights; drop one")


def _hub_snapshot(repo: str, revision: str | None, candidates: tuple[str, ...]) -> HubFiles:
    """The first of ``candidates`` that the repository holds at ``revision``, resolved and hashed."""
    last: SubclassbenchError | None = None
    for name in candidates:
        try:
            return resolve(repo, revision, [name])
        except SubclassbenchError as exc:
            last = exc
    assert last is not None
    raise last


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
    return _hub_snapshot(repo, revision or pinned or None, (filename,) if filename else TIMM_WEIGHTS)


def _load_timm(request: LoadRequest) -> Encoder:
    parsed, weights, pretrained = request.spec, request.weights, request.pretrained
    import timm
    from timm.data import resolve_data_config

    name = parsed.name + (f".{parsed.tag}" if parsed.tag else "")
    if not timm.is_model(parsed.name):
        raise SubclassbenchError(
            f"unknown timm model '{parsed.name}'; close matches: {closest(parsed.name, timm.list_models())}"
        )
    meta = _weights_meta(weights)
    _no_revision_with_file(parsed, meta)
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
    cfg = resolve_data_config({}, model=model)
    preprocessing = Preprocessing(
        input_size=tuple(cfg["input_size"]),
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
        interpolation=cfg.get("interpolation", "bilinear"),
        crop_pct=float(cfg.get("crop_pct", 1.0)),
    )

    def embed(x: torch.Tensor) -> torch.Tensor:
        return model.forward_head(model.forward_features(x), pre_logits=True)

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


def _load_open_clip(request: LoadRequest) -> Encoder:
    parsed, weights, pretrained = request.spec, request.weights, request.pretrained
    import open_clip

    if parsed.name not in open_clip.list_models():
        raise SubclassbenchError(
            f"unknown open_clip architecture '{parsed.name}'; "
            f"close matches: {closest(parsed.name, open_clip.list_models())}"
        )
    meta = _weights_meta(weights)
    _no_revision_with_file(parsed, meta)
    source: str | None = meta["path"] if meta else (parsed.tag if pretrained else None)
    options: dict[str, Any] = {}
    cfg = open_clip.get_pretrained_cfg(parsed.name, parsed.tag) if meta is None and pretrained and parsed.tag else {}
    if cfg and cfg.get("hf_hub"):
        # Hub weights: resolve and hash the file ourselves, then build the model exactly as the tag would.
        repo_path = cfg["hf_hub"].strip("/").split("/")
        candidates = (repo_path[2],) if len(repo_path) > 2 else OPEN_CLIP_WEIGHTS
        hub_files = _hub_snapshot("/".join(repo_path[:2]), parsed.revision, candidates)
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
        return model.encode_image(x)

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


# --------------------------------------------------------------------------- Hugging Face transformers

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
        height, width = hw(crop) or hw(size) or (int(short), int(short))
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

    transformers.utils.logging.disable_progress_bar()  # subclassbench reports its own progress
    try:
        config = transformers.AutoConfig.from_pretrained(folder, trust_remote_code=False)
        if hub_files is not None:
            model = transformers.AutoModel.from_pretrained(folder, use_safetensors=True, trust_remote_code=False)
        else:
            model = transformers.AutoModel.from_config(config, trust_remote_code=False)
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
        hidden = out.last_hidden_state
        if cls_token:  # ViT-style models classify from the class token
            return hidden[:, 0]
        pooled = getattr(out, "pooler_output", None)
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


def _module_only(request: LoadRequest) -> Encoder:
    raise SubclassbenchError(
        "module: encoders are Python objects; evaluate one with subclassbench.evaluate(model=<nn.Module>, ...), "
        "or make it loadable by name with a plug-in (docs/encoders.md)"
    )


# --------------------------------------------------------------------------- the source registry

ENCODER_SOURCES: Registry[EncoderSource] = Registry(
    "model source", plugin_group="subclassbench.encoder_sources", plugin_type=EncoderSource
)
ENCODER_SOURCES.register(
    "builtin",
    EncoderSource(
        "builtin",
        _load_builtin,
        random_init=False,
        takes_vectors=True,
        model_cards=True,
        usage="builtin:<arch>[.<tag>]    reference architectures; a tag names packaged weights",
    ),
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
ENCODER_SOURCES.register(
    "module",
    EncoderSource(
        "module",
        _module_only,
        tag_separator="",
        random_init=False,
        takes_vectors=True,
        usage="module:<name>             an nn.Module passed to subclassbench.evaluate (Python only)",
    ),
)
