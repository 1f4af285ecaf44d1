"""A researcher's own ``nn.Module`` as an encoder (the Python API's ``evaluate(model=module)``).

No spec can rebuild such a model, so it is identified by content: its class,
its structure (``repr``) and the bytes of every parameter and buffer hash into
the ``weights.sha256`` that keys the feature cache and goes into the result.
Two modules with the same architecture and weights share cache entries; a
changed weight or layer never reads another model's features. Code counts
too: the module's classes, its plain attributes and the ``embed`` function
are fingerprinted (:mod:`subclassbench.encoders.fingerprint`); where that
cannot be done reliably the cache is bypassed unless the caller names the
model's state with ``cache_key=``.

The embedding (the representation a classifier head reads) is, in order of
preference: an ``embed`` function given by the caller; timm's
``forward_features`` + ``forward_head(pre_logits=True)``; the input of the
model's linear head (``fc``, ``head``, ``classifier`` or ``last_linear``);
else the model's own output.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable, Mapping, Set
from typing import Any, cast

import torch
from torch import nn

from subclassbench.encoders.base import ENCODER_SOURCES, Encoder, EncoderSource, LoadRequest
from subclassbench.encoders.fingerprint import behaviour_fingerprint
from subclassbench.encoders.layers import discover_layers
from subclassbench.encoders.preprocessing import Preprocessing
from subclassbench.encoders.timm import TimmClassifier
from subclassbench.errors import SubclassbenchError

MODULE_SOURCE = "module"
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # a module's name in its spec, result and paths
HEAD_NAMES = ("fc", "head", "classifier", "last_linear")
# Leaf modules whose outputs are a hidden layer of a network of fully connected layers.
ACTIVATIONS = (nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.Mish, nn.Hardswish)


def module_fingerprint(model: nn.Module, extra: Mapping[str, Any] | None = None) -> str:
    """sha256 of a module's class, structure and every parameter and buffer (name, dtype, shape, bytes)."""
    digest = hashlib.sha256()
    cls = type(model)
    digest.update(f"{cls.__module__}.{cls.__qualname__}\n{model!r}\n".encode())
    for name, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}\n".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    if extra:
        digest.update(repr(sorted(extra.items())).encode())
    return digest.hexdigest()


def _head(model: nn.Module) -> tuple[str, nn.Module] | None:
    """The model's classifier head, when it has a conventionally named linear one."""
    for name in HEAD_NAMES:
        head = getattr(model, name, None)
        last = head[-1] if isinstance(head, nn.Sequential) and len(head) else head
        if isinstance(last, nn.Linear):
            return name, cast(nn.Module, head)  # a Linear, or a Sequential ending in one
    return None


def _embedding(model: nn.Module) -> tuple[Callable[[torch.Tensor], torch.Tensor], str, set[str]]:
    """The embedding function, how it was chosen (recorded) and module names it excludes from the layers."""
    if callable(getattr(model, "forward_features", None)) and callable(getattr(model, "forward_head", None)):

        def timm_embed(x: torch.Tensor) -> torch.Tensor:
            net = cast(TimmClassifier, model)  # it has both methods (checked above)
            return net.forward_head(net.forward_features(x), pre_logits=True)

        return timm_embed, "forward_head(pre_logits=True)", set()
    found = _head(model)
    if found is not None:
        name, head = found

        def head_input(x: torch.Tensor) -> torch.Tensor:
            captured: list[torch.Tensor] = []
            handle = head.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
            try:
                model(x)
            finally:
                handle.remove()
            if not captured:
                raise SubclassbenchError(f"the model never called its head '{name}'; pass embed=FUNCTION")
            return captured[-1]

        return head_input, f"input of {name}", {name}
    return model, "output", set()


def stage_layers(model: nn.Module, example: torch.Tensor, exclude: Set[str] = frozenset()) -> list[str]:
    """Layers of a model no name pattern fits, from one traced forward pass of ``example``.

    Every leaf module's call order and output shape are recorded. For feature
    maps, the last module before each change of spatial resolution ends a
    stage (VGG's and DenseNet's stage outputs); for vectors, every activation
    is a hidden layer. Modules are hooked, so call order is the forward order
    even where modules are registered out of order.
    """
    calls: list[tuple[str, tuple[int, ...], nn.Module]] = []
    handles = []
    for name, module in model.named_modules():
        if name and not any(True for _ in module.children()) and name.split(".")[0] not in exclude:
            handles.append(
                module.register_forward_hook(
                    lambda m, _i, out, name=name: (
                        calls.append((name, tuple(out.shape), m)) if isinstance(out, torch.Tensor) else None
                    )
                )
            )
    try:
        with torch.no_grad():
            model(example)
    except Exception as exc:  # a model that cannot run on the task's samples: say so, with the fix
        raise SubclassbenchError(
            f"cannot trace {type(model).__name__} on one task sample ({type(exc).__name__}: {exc}); "
            "pass preprocess= with the input size the model takes, or layers="
        ) from None
    finally:
        for handle in handles:
            handle.remove()
    seen: dict[str, tuple[tuple[int, ...], nn.Module]] = {}
    for name, shape, module in calls:
        seen.setdefault(name, (shape, module))  # a module called twice counts where it first ran
    order = list(seen)
    # Feature maps; a 1×1 map is a global pool, which the embedding already reads.
    maps = [n for n in order if len(seen[n][0]) == 4 and seen[n][0][2] * seen[n][0][3] > 1]
    if len(maps) >= 2:
        ends = [a for a, b in itertools.pairwise(maps) if seen[a][0][2:] != seen[b][0][2:]]
        return [*ends, maps[-1]]
    return [n for n in order if isinstance(seen[n][1], ACTIVATIONS)]


def check_model_name(label: str) -> str:
    """The name a module's results go under (``module:<name>``), or a one-line error."""
    if not MODEL_NAME.fullmatch(label):
        raise SubclassbenchError(f"name {label!r} cannot name a model; use letters, digits, '-', '_' and '.'")
    return label


def wrap_module(
    model: nn.Module,
    *,
    name: str | None = None,
    sample_shape: tuple[int, ...] | None = None,
    preprocess: Preprocessing | Mapping[str, Any] | None = None,
    embed: Callable[[torch.Tensor], torch.Tensor] | None = None,
    cache_key: str | None = None,
) -> Encoder:
    """An :class:`Encoder` for ``model``: layers found by name patterns, timm's ``feature_info``, or a traced
    forward pass on one sample of the task's native shape (after ``preprocess``)."""
    if not isinstance(model, nn.Module):
        raise SubclassbenchError(
            f"model must be a torch nn.Module or a spec string such as builtin:cifar_resnet20, "
            f"got {type(model).__name__}"
        )
    if isinstance(preprocess, Mapping):
        try:
            preprocess = Preprocessing.from_dict(preprocess)
        except TypeError as exc:
            raise SubclassbenchError(f"preprocess: {exc}; use input_size, mean, std, interpolation, crop_pct") from None
    if preprocess is None:  # the task's samples as they come: [0, 1] at their native size
        image = sample_shape is not None and len(sample_shape) == 3
        size = (sample_shape[0], sample_shape[1], sample_shape[2]) if sample_shape is not None and image else None
        preprocess = Preprocessing(input_size=size)
    model.eval()
    embed_fn, embedding, exclude = (embed, "embed function", set()) if embed is not None else _embedding(model)
    dtype, warnings = _parameter_dtype(model), []
    if dtype is not None and dtype != torch.float32:  # a float64 or float16 model gets its own dtype in
        embed_fn = _cast_input(embed_fn, dtype)
        warnings.append(
            f"the module's parameters are {str(dtype).removeprefix('torch.')}: its forward pass runs in that "
            "precision (features are stored as float32); the protocol's reference is float32"
        )
    layers = {n: m for n, m in discover_layers(model).items() if n.split(".")[0] not in exclude}
    blocks = [m for n, m in layers.items() if n != "stem"]
    # Too few blocks, or names that matched single operations (a Sequential of convs and ReLUs): trace instead.
    if sample_shape is not None and (len(blocks) < 2 or not all(any(True for _ in m.children()) for m in blocks)):
        example = preprocess(torch.rand(1, *sample_shape, generator=torch.Generator().manual_seed(0)))
        example = example if dtype is None else example.to(dtype)
        modules = dict(model.named_modules())
        layers = {n: modules[n] for n in stage_layers(model, example, exclude)}
    cls = type(model)
    label = check_model_name(name or cls.__name__)
    # Code and plain attributes decide the features as much as the weights do (a changed embed function or
    # self.scale must never read the last run's features); the caller's cache_key vouches where we cannot.
    behaviour = behaviour_fingerprint(model, embed)
    if cache_key is not None and (not isinstance(cache_key, str) or not cache_key.strip() or len(cache_key) > 200):
        raise SubclassbenchError("cache_key= must be a non-empty string of at most 200 characters")
    extra = {"embedding": embedding, "preprocessing": preprocess.to_dict(), "behaviour": behaviour.digest}
    sha256 = module_fingerprint(model, extra | ({"cache_key": cache_key} if cache_key is not None else {}))
    encoder = Encoder(
        spec=f"{MODULE_SOURCE}:{label}",
        source=MODULE_SOURCE,
        arch=f"{cls.__module__}.{cls.__qualname__}",
        tag=None,
        model=model,
        embed=embed_fn,
        layer_modules=layers,
        discovered=True,
        preprocessing=preprocess,
        prefix_tokens=int(getattr(model, "num_prefix_tokens", 0)),
        weights={"sha256": sha256, "format": "module", "embedding": embedding},
        pretrained=True,
        uncacheable=None if cache_key is not None else behaviour.unreliable,
    )
    encoder.warnings.extend(warnings)
    return encoder


def _parameter_dtype(model: nn.Module) -> torch.dtype | None:
    """The one floating dtype of a module's parameters and buffers, or None when it has none or several."""
    dtypes = {t.dtype for t in itertools.chain(model.parameters(), model.buffers()) if t.is_floating_point()}
    return dtypes.pop() if len(dtypes) == 1 else None


def _cast_input(embed: Callable[[torch.Tensor], Any], dtype: torch.dtype) -> Callable[[torch.Tensor], Any]:
    """``embed`` on images cast to the model's dtype (preprocessing gives float32)."""

    def cast_embed(x: torch.Tensor) -> Any:
        return embed(x.to(dtype))

    return cast_embed


def _module_only(request: LoadRequest) -> Encoder:
    raise SubclassbenchError(
        "module: encoders are Python objects; evaluate one with subclassbench.evaluate(model=<nn.Module>, ...), "
        "or make it loadable by name with a plug-in (docs/encoders.md)"
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
