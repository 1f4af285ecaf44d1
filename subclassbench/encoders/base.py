"""The encoder interface and the source registry: ``source:name`` specs → a model, its preprocessing and its layers.

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

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from subclassbench.core.registry import Registry
from subclassbench.encoders.hub import check_revision
from subclassbench.encoders.layers import MIN_LAYERS
from subclassbench.encoders.preprocessing import Preprocessing
from subclassbench.encoders.weights import metadata_mismatches, weights_metadata
from subclassbench.errors import SubclassbenchError, first_line

EMBEDDING = "embedding"
PACKAGED_PREFIX = "package:"  # how results name weights packaged with subclassbench (machine-independent)


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
    # Constructor arguments the model was built with (builtin switches such as ``norm``, timm's ``pad_type``):
    # they decide the features, so they key the cache and are recorded. None: a model card's, if any.
    arch_kwargs: dict[str, Any] | None = None
    # The preprocessing fields a user replaced (``--preprocess``), recorded beside the preprocessing itself.
    preprocessing_overrides: dict[str, Any] = field(default_factory=dict)
    # Why this encoder's features cannot be identified for the feature cache (a module whose code cannot be
    # fingerprinted); None: they can. Such an evaluation neither reads nor fills the cache.
    uncacheable: str | None = None
    # What the loader noticed but could not fix (weights metadata that disagrees with the run): printed and noted.
    warnings: list[str] = field(default_factory=list)

    @property
    def constructor_args(self) -> dict[str, Any]:
        if self.arch_kwargs is not None:
            return dict(self.arch_kwargs)
        return dict((self.card or {}).get("arch_kwargs") or {})

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
            "arch_kwargs": self.constructor_args,
            "hub_library": source.hub_library(self.pretrained, weights_sha256),
        }
        plugin = ENCODER_SOURCES.plugins.get(self.source)
        if plugin is not None:  # a plug-in's code decides its features: a new release is a new model
            identity["plugin"] = plugin
        return identity

    def info(self) -> dict[str, Any]:
        """The result's ``encoder`` record."""
        plugin = ENCODER_SOURCES.plugins.get(self.source)
        overrides = self.preprocessing_overrides
        return (
            ({"plugin": plugin} if plugin else {})
            | {
                "spec": self.spec,
                "source": self.source,
                "arch": self.arch,
                "tag": self.tag,
                "pretrained": self.pretrained,
                "weights": None if self.weights is None else dict(self.weights),
                "n_params": self.n_params,
                "preprocessing": self.preprocessing.to_dict(),
                "prefix_tokens": self.prefix_tokens,
                "arch_kwargs": self.constructor_args,
                "layers": self.layer_names,
            }
            | ({"preprocessing_overrides": _jsonable(overrides)} if overrides else {})
        )


def _jsonable(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, tuple) else value for key, value in fields.items()}


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
    # Whether ``--model-arg KEY=VALUE`` reaches the model's constructor (builtin switches, timm kwargs).
    constructor_args: bool = False
    usage: str = ""

    def hub_library(self, pretrained: bool, weights_sha256: str | None) -> str | None:
        """``dist==version`` for hub weights resolved by a library (no file hash to identify them)."""
        if weights_sha256 is not None or not pretrained or self.hub_distribution is None:
            return None
        from importlib import metadata

        return f"{self.hub_distribution}=={metadata.version(self.hub_distribution)}"


ENCODER_SOURCES: Registry[EncoderSource] = Registry(
    "model source", plugin_group="subclassbench.encoder_sources", plugin_type=EncoderSource
)


def load_encoder(
    spec: str,
    weights: str | Path | None = None,
    sample_shape: tuple[int, ...] | None = None,
    num_classes: int = 10,
    pretrained: bool = True,
    arch_kwargs: dict[str, Any] | None = None,
    init_seed: int = 0,
    preprocess: dict[str, Any] | None = None,
) -> Encoder:
    """Build an encoder from a spec; ``sample_shape`` is the task's native C×H×W (or D).

    ``arch_kwargs`` are constructor arguments: builtin architecture switches
    (e.g. ``norm``; a model card next to the weights supplies them too) or a
    timm model's (e.g. ``pad_type="same"``). ``preprocess`` replaces fields of
    the encoder's own preprocessing (mean, std, input_size, interpolation,
    crop_pct). Models are built under ``torch.manual_seed(init_seed)``, so
    random-init encoders are reproducible.
    """
    parsed = EncoderSpec.parse(spec)
    source = ENCODER_SOURCES.get(parsed.source)
    if not source.takes_vectors and sample_shape is not None and len(sample_shape) != 3:
        raise SubclassbenchError(
            f"{spec} takes images but the task's samples are vectors of shape {tuple(sample_shape)}; "
            "use builtin:mlp or builtin:identity"
        )
    torch.manual_seed(init_seed)
    if arch_kwargs and not source.constructor_args:
        raise SubclassbenchError(
            f"{parsed.source}: models take no constructor arguments here; drop --model-arg "
            f"({', '.join(sorted(arch_kwargs))})"
        )
    request = LoadRequest(parsed, weights, sample_shape, num_classes, pretrained, arch_kwargs or {})
    encoder = _load_with(source, parsed.source, request)
    if preprocess:
        encoder.preprocessing = encoder.preprocessing.with_overrides(preprocess)
        encoder.preprocessing_overrides = {key: getattr(encoder.preprocessing, key) for key in sorted(preprocess)}
    if encoder.weights is not None and encoder.weights.get("path"):
        metadata = weights_metadata(encoder.weights["path"])
        encoder.warnings.extend(
            metadata_mismatches(metadata, encoder.spec, encoder.preprocessing.to_dict(), encoder.constructor_args)
        )
    encoder.model.eval()
    return encoder


def _load_with(source: EncoderSource, name: str, request: LoadRequest) -> Encoder:
    """``source.load(request)``; a plug-in's failure (an exception, ``sys.exit``, something other than an
    Encoder) is one line naming the plug-in's release. Built-in sources' errors are ours and stay bugs."""
    origin = ENCODER_SOURCES.plugins.get(name)
    if origin is None:
        return source.load(request)
    try:
        encoder = source.load(request)
    except SubclassbenchError:
        raise
    except (Exception, SystemExit) as exc:
        raise SubclassbenchError(
            f"plug-in model source '{name}' ({origin}) failed to build {request.spec} ({type(exc).__name__}: "
            f"{first_line(exc, 160)}); report it to the plug-in's authors or pin another release"
        ) from exc
    if not isinstance(encoder, Encoder):
        raise SubclassbenchError(
            f"plug-in model source '{name}' ({origin}) returned a {type(encoder).__name__} for "
            f"{request.spec}, not an Encoder; report it to the plug-in's authors"
        )
    # A plug-in may build on another source's loader and hand back its Encoder as it came: the result must still
    # say which code ran (source, plug-in release) and the cache must not file it under the other source.
    encoder.source, encoder.spec = name, str(request.spec)
    return encoder
