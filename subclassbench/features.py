"""Feature extraction: every requested layer from one forward pass per batch.

Intermediate outputs are captured by forward hooks and pooled on the fly, so
memory is O(batch × layers × width) plus the pooled N × width matrices that
form the cacheable boundary between *extract* and *score*.

Pooling (protocol v1): CNN maps ``B×C×H×W`` → global average pool; token
sequences ``B×T×D`` → mean of the patch tokens, prefix (class/register)
tokens excluded; vectors ``B×D`` are kept as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from subclassbench.datasources import ImageSet
from subclassbench.encoders import EMBEDDING, Encoder


@dataclass
class LayerFeatures:
    name: str
    depth: float
    pooling: str
    features: np.ndarray  # N × D float32


def pool(
    output: torch.Tensor | tuple | list, prefix_tokens: int, channels_last: bool = False
) -> tuple[torch.Tensor, str]:
    """Reduce one layer's output to a B×D matrix; returns it and the pooling used."""
    if isinstance(output, tuple | list):  # some blocks return (tensor, extras)
        output = output[0]
    if output.ndim == 4:
        return output.mean(dim=(1, 2) if channels_last else (2, 3)), "global_avg_pool"
    if output.ndim == 3:
        return output[:, prefix_tokens:].mean(dim=1), f"mean_tokens_excl_{prefix_tokens}_prefix"
    if output.ndim == 2:
        return output, "none"
    return output.flatten(1), "flatten"


def extract_features(
    encoder: Encoder,
    images: ImageSet,
    layers: list[str] | None = None,
    batch_size: int = 256,
    device: str = "cpu",
    progress: bool = True,
) -> list[LayerFeatures]:
    """Run the encoder once over ``images`` and return pooled features per layer."""
    names = encoder.select_layers(layers)
    all_names = encoder.layer_names
    depth = {n: (all_names.index(n) / (len(all_names) - 1) if len(all_names) > 1 else 1.0) for n in names}
    captured: dict[str, torch.Tensor] = {}
    pooling: dict[str, str] = {}

    def hook_for(name: str):  # noqa: ANN202 - torch hook signature
        def hook(_module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> None:
            captured[name], pooling[name] = pool(output, encoder.prefix_for(name), encoder.channels_last_maps)

        return hook

    handles = [encoder.layer_modules[n].register_forward_hook(hook_for(n)) for n in names if n != EMBEDDING]
    encoder.model.to(device).eval()
    out: dict[str, np.ndarray] = {}
    n = len(images)
    try:
        with torch.inference_mode():
            bar = tqdm(total=n, desc=f"extract {encoder.spec}", unit="img", disable=not progress or None, leave=False)
            for start in range(0, n, batch_size):
                index = np.arange(start, min(start + batch_size, n))
                x = encoder.preprocessing(images.load(index)).to(device)
                embedding = encoder.embed(x)
                if EMBEDDING in names:
                    captured[EMBEDDING], pooling[EMBEDDING] = pool(embedding, encoder.prefix_tokens)
                for name in names:
                    batch = captured.pop(name).float().cpu().numpy()
                    if name not in out:
                        out[name] = np.empty((n, batch.shape[1]), dtype=np.float32)
                    out[name][start : start + len(index)] = batch
                bar.update(len(index))
            bar.close()
    finally:
        for handle in handles:
            handle.remove()
    return [LayerFeatures(name, depth[name], pooling[name], out[name]) for name in names]
