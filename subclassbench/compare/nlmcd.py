"""Non-linear manifold concept discovery (NLMCD) and cross-model concept matching.

After Vielhaben et al., "Beyond scalars: concept-based alignment analysis in
vision transformers" (NeurIPS 2025): a concept is a region of a layer's
*token* space, found without fixing the number of concepts in advance.

1. **Tokens.** Transformer outputs ``B×T×D``: the prefix (class / register)
   tokens are dropped and the patch tokens, laid out on their square grid,
   are average-pooled in 4×4 windows, so one token summarises a 4×4 block of
   patches. CNN maps ``B×C×H×W``: each spatial position is a token with C
   features, pooled in the same 4×4 windows. This is our choice for CNNs (the
   method is defined for transformers): a position of a feature map is what a
   patch token is in a ViT — a local descriptor of one image region — and
   pooling both the same way keeps their token counts comparable. Grids whose
   side is not a multiple of 4 keep a smaller last window; a grid smaller than
   4 collapses to one token. Image-level vectors ``B×D`` are one token each,
   so the method also runs on pooled features. Token sequences that are not a
   square grid are used unpooled.
2. **Embedding.** Tokens are L2-normalised (neighbours by cosine similarity,
   so the scale of a layer does not matter), their exact 15 nearest
   neighbours are found (scikit-learn) and handed to UMAP (umap-learn) as a
   precomputed kNN graph, which embeds them in 50 dimensions
   (``min_dist=0``, ``random_state=seed``).
3. **Concepts.** HDBSCAN (the ``hdbscan`` package, ``prediction_data=True``)
   clusters the embedding; the number of concepts is whatever it finds.
   ``all_points_membership_vectors`` gives every token a soft membership per
   concept (rows sum to the token's probability of being in any concept, ≤ 1).
4. **Matching.** Token memberships are averaged over each image's tokens,
   giving image × concept memberships on the samples both models saw. Their
   concept-pair distance D and Hungarian matching come from
   :func:`subclassbench.metrics.similarity.concept_pair_alignment`. A matched pair is
   *universal* when its D is below ``ratio`` (default ½) of the mean D of
   concept a to all concepts of B — the same rule as the GMM baseline in
   :mod:`subclassbench.compare.representations` — and universal pairs are ranked by D. Every
   other concept, matched-but-far or unmatched, is *unique* and listed with
   its nearest partner on the other side.

The same inputs and seed give the same output (UMAP runs single-threaded
when seeded; the kNN search and HDBSCAN are deterministic). umap-learn and
hdbscan are imported only when NLMCD runs.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from subclassbench.errors import SubclassbenchError

POOL = 4  # 4×4 average pooling over the patch / position grid
UMAP_DIMS = 50
UMAP_NEIGHBOURS = 15
UNIVERSAL_RATIO = 0.5
MAX_TOKENS = 20_000  # default cap on the tokens clustered: about 1.5 CPU-minutes of (single-threaded) UMAP
MIN_TOKENS = 10
PROTOTYPES = 5


@dataclass(frozen=True, eq=False)
class Tokens:
    """One layer's tokens on a set of images."""

    values: np.ndarray  # n_tokens × d, float32
    image: np.ndarray  # n_tokens: the index of the image each token comes from
    n_images: int
    per_image: int  # tokens each image contributes (after any subsampling)
    pooling: str


@dataclass(frozen=True, eq=False)
class ConceptSet:
    """The concepts HDBSCAN found in one layer's tokens."""

    memberships: np.ndarray  # n_tokens × n_concepts soft memberships, rows sum to ≤ 1
    labels: np.ndarray  # hard HDBSCAN labels per token, −1 for noise
    image_memberships: np.ndarray  # n_images × n_concepts: token memberships averaged per image
    tokens: Tokens
    umap_dims: int
    min_cluster_size: int

    @property
    def n_concepts(self) -> int:
        return int(self.memberships.shape[1])

    def summary(self) -> dict[str, Any]:
        return {
            "n_concepts": self.n_concepts,
            "n_tokens": int(self.labels.shape[0]),
            "tokens_per_image": self.tokens.per_image,
            "pooling": self.tokens.pooling,
            "umap_dims": self.umap_dims,
            "min_cluster_size": self.min_cluster_size,
            "noise_share": float(np.mean(self.labels < 0)),
            "concept_share": self.image_memberships.mean(axis=0).tolist(),
            # The images most inside each concept (positions among the compared images): what to look at.
            "prototypes": [
                np.argsort(-column, kind="stable")[:PROTOTYPES].tolist() for column in self.image_memberships.T
            ],
        }


# --------------------------------------------------------------------------- tokens


def _pool_grid(grid: np.ndarray, size: int) -> np.ndarray:
    """Average ``size × size`` windows of a B×H×W×D grid; edge windows average what they cover."""
    _, h, w, _ = grid.shape
    rows, cols = np.arange(0, h, size), np.arange(0, w, size)
    sums = np.add.reduceat(np.add.reduceat(grid, rows, axis=1), cols, axis=2)
    counts = np.outer(np.diff([*rows, h]), np.diff([*cols, w]))
    pooled: np.ndarray = sums / counts[None, :, :, None]
    return pooled


def tokens_from_output(
    output: np.ndarray, prefix_tokens: int = 0, channels_last: bool = False
) -> tuple[np.ndarray, str]:
    """One layer's batch output as B×T×D tokens (see the module docstring), and how they were made."""
    arr = np.asarray(output, dtype=np.float32)
    if arr.ndim == 2:
        return arr[:, None, :], "image"
    if arr.ndim == 4:
        grid = arr if channels_last else arr.transpose(0, 2, 3, 1)
        what = "positions"
    elif arr.ndim == 3:
        patches = arr[:, prefix_tokens:]
        side = math.isqrt(patches.shape[1])
        if patches.shape[1] == 0:
            raise SubclassbenchError("the layer has no patch tokens after its prefix tokens; pick another --pair layer")
        if side * side != patches.shape[1]:  # not a square grid: no neighbourhood to pool over
            return patches, f"tokens_unpooled_excl_{prefix_tokens}_prefix"
        grid = patches.reshape(arr.shape[0], side, side, arr.shape[2])
        what = f"tokens_excl_{prefix_tokens}_prefix"
    else:
        raise SubclassbenchError(
            f"NLMCD needs image vectors, token sequences or feature maps, got outputs of shape {arr.shape}; "
            "pick another --pair layer"
        )
    pooled = _pool_grid(grid, POOL)
    pooling = f"{what}_avg_pool_{POOL}x{POOL}_of_{grid.shape[1]}x{grid.shape[2]}"
    return pooled.reshape(arr.shape[0], -1, grid.shape[-1]), pooling


def _keep_per_image(t: int, n_images: int, max_tokens: int | None) -> int:
    if max_tokens is None:
        return t
    if max_tokens < 1:
        raise SubclassbenchError(f"--max-tokens must be ≥ 1, got {max_tokens}")
    return max(1, min(t, max_tokens // max(n_images, 1)))


def _subsample_tokens(batch: np.ndarray, keep: int, rng: np.random.RandomState) -> np.ndarray:
    """``keep`` tokens of every image (seeded, in image order, so independent of the batch size)."""
    if keep >= batch.shape[1]:
        return batch
    picks = np.stack([np.sort(rng.permutation(batch.shape[1])[:keep]) for _ in range(batch.shape[0])])
    return np.take_along_axis(batch, picks[:, :, None], axis=1)


def make_tokens(
    features: np.ndarray,
    prefix_tokens: int = 0,
    channels_last: bool = False,
    max_tokens: int | None = MAX_TOKENS,
    seed: int = 0,
) -> Tokens:
    """Tokens from a whole layer output held in memory (n × D, n × T × D or n × C × H × W).

    With more than ``max_tokens`` tokens, every image keeps the same seeded
    random share of its tokens (at least one), so every image stays represented.
    """
    arr = np.asarray(features)
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise SubclassbenchError(f"NLMCD needs features of at least one image, got shape {arr.shape}")
    tokens, pooling = tokens_from_output(arr, prefix_tokens, channels_last)
    keep = _keep_per_image(tokens.shape[1], tokens.shape[0], max_tokens)
    tokens = _subsample_tokens(tokens, keep, np.random.RandomState(seed))
    return _assemble([tokens], pooling)


def _assemble(batches: list[np.ndarray], pooling: str) -> Tokens:
    n_images = sum(b.shape[0] for b in batches)
    per_image = batches[0].shape[1]
    values = np.concatenate([b.reshape(-1, b.shape[-1]) for b in batches]).astype(np.float32, copy=False)
    return Tokens(values, np.repeat(np.arange(n_images), per_image), n_images, per_image, pooling)


def layer_tokens(
    encoder: Any,
    images: Any,
    layer: str,
    max_tokens: int | None = MAX_TOKENS,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = False,
) -> Tokens:
    """Tokens of one layer of ``encoder`` on ``images``, pooled and subsampled batch by batch.

    The pooled features of :mod:`subclassbench.features.extraction` average the tokens
    away, so NLMCD runs its own forward pass with a hook on the one layer.
    """
    import torch

    from subclassbench.core.progress import bar as progress_bar
    from subclassbench.encoders.base import EMBEDDING
    from subclassbench.features.outputs import output_tensor, run_forward

    if layer != EMBEDDING and layer not in encoder.layer_modules:
        raise SubclassbenchError(f"layer '{layer}' is not a layer of {encoder.spec}; pick one of its --pair layers")
    captured: dict[str, Any] = {}

    def hook(_module: torch.nn.Module, _inputs: object, output: Any) -> None:
        captured["out"] = output[0] if isinstance(output, tuple | list) else output

    handle = None if layer == EMBEDDING else encoder.layer_modules[layer].register_forward_hook(hook)
    prefix = encoder.prefix_tokens if layer == EMBEDDING else encoder.prefix_for(layer)
    rng = np.random.RandomState(seed)
    n, batches, pooling = len(images), [], ""
    keep: int | None = None
    encoder.model.eval()
    try:
        with torch.inference_mode():
            bar = progress_bar(n, f"tokens {encoder.spec}:{layer}", "img", progress)
            for start in range(0, n, batch_size):
                index = np.arange(start, min(start + batch_size, n))
                embedding = run_forward(encoder.spec, encoder.embed, encoder.preprocessing(images.load(index)))
                what = f"layer '{layer}' of {encoder.spec}"
                out = output_tensor(embedding if layer == EMBEDDING else captured.pop("out"), what)
                tokens, pooling = tokens_from_output(out.float().cpu().numpy(), prefix, encoder.channels_last_maps)
                keep = _keep_per_image(tokens.shape[1], n, max_tokens) if keep is None else keep
                batches.append(_subsample_tokens(tokens, keep, rng))
                bar.update(len(index))
            bar.close()
    finally:
        if handle is not None:
            handle.remove()
    if not batches:
        raise SubclassbenchError("NLMCD needs at least one image; compare more samples")
    return _assemble(batches, pooling)


# --------------------------------------------------------------------------- concepts


def default_min_cluster_size(n_tokens: int) -> int:
    """1 % of the tokens, at least 5: a concept must cover a noticeable share of what was seen."""
    return max(5, round(0.01 * n_tokens))


def discover_concepts(tokens: Tokens, seed: int = 0, min_cluster_size: int | None = None) -> ConceptSet:
    """UMAP to 50 dimensions, then HDBSCAN with soft memberships (see the module docstring)."""
    x = np.asarray(tokens.values, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] == 0:
        raise SubclassbenchError(f"NLMCD needs tokens × features, got shape {x.shape}; pick another --pair layer")
    if not np.all(np.isfinite(x)):
        raise SubclassbenchError("the features contain NaN or infinite values; check the encoder and its weights")
    if not 0 <= seed < 2**32:
        raise SubclassbenchError(f"--seed must be between 0 and 2**32 - 1, got {seed}")
    n = x.shape[0]
    size = default_min_cluster_size(n) if min_cluster_size is None else min_cluster_size
    if size < 2:
        raise SubclassbenchError(f"--min-cluster-size must be ≥ 2, got {size}")
    need = max(MIN_TOKENS, 2 * size)
    if n < need:
        raise SubclassbenchError(
            f"NLMCD needs at least {need} tokens to find concepts of ≥ {size} tokens, got {n}; "
            "compare more samples (--max-samples) or pass a smaller --min-cluster-size"
        )
    if tokens.n_images < 2:
        raise SubclassbenchError("NLMCD needs at least 2 images to compare concepts; compare more samples")

    import hdbscan
    import umap
    from sklearn.neighbors import NearestNeighbors

    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x /= np.where(norms > 0, norms, 1.0)  # all-zero tokens (dead ReLU positions) stay at the origin
    k = min(UMAP_NEIGHBOURS, n - 1)
    dims = min(UMAP_DIMS, n - 2)  # the spectral initialisation needs dims + 1 < n
    # Exact kNN handed to UMAP: its own small-data path compiles a parallel numba kernel (~10 s) on every run.
    knn_dist, knn_index = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x)
    reducer = umap.UMAP(
        n_components=dims,
        n_neighbors=k,
        min_dist=0.0,
        metric="euclidean",
        random_state=seed,
        n_jobs=1,
        precomputed_knn=(knn_index, knn_dist),
        force_approximation_algorithm=True,  # use the kNN above at every size
    )
    with warnings.catch_warnings():
        # Seeded UMAP says it runs single-threaded, and that transform() is off without a search index: both intended.
        warnings.simplefilter("ignore", UserWarning)
        embedding = reducer.fit_transform(x)
        clusterer = hdbscan.HDBSCAN(min_cluster_size=size, prediction_data=True).fit(embedding)
        soft = np.asarray(hdbscan.all_points_membership_vectors(clusterer), dtype=np.float64)
    labels = np.asarray(clusterer.labels_, dtype=np.int64)
    if soft.ndim != 2 or soft.shape[1] == 0:
        raise SubclassbenchError(
            f"HDBSCAN found no concepts among {n} tokens; compare more samples or pass a smaller --min-cluster-size"
        )
    # A token far from every exemplar can get 0/0 in hdbscan's normalisation: it belongs to no concept.
    soft = np.clip(np.nan_to_num(soft, nan=0.0, posinf=0.0, neginf=0.0), 0.0, 1.0)
    sums = soft.sum(axis=1, keepdims=True)
    soft /= np.maximum(sums, 1.0)  # float drift past 1 only; rows below 1 keep their outlier share
    counts = np.bincount(tokens.image, minlength=tokens.n_images)[:, None]
    per_image = np.zeros((tokens.n_images, soft.shape[1]))
    np.add.at(per_image, tokens.image, soft)
    return ConceptSet(soft, labels, per_image / np.maximum(counts, 1), tokens, dims, size)


def align_concepts(a: ConceptSet, b: ConceptSet, ratio: float = UNIVERSAL_RATIO) -> dict[str, Any]:
    """Universal (closely matched) and unique concepts of two concept sets on the same images."""
    from subclassbench.metrics.similarity import concept_pair_alignment

    if a.tokens.n_images != b.tokens.n_images:
        raise SubclassbenchError(
            f"the two sides cover {a.tokens.n_images} and {b.tokens.n_images} images; compare the same samples"
        )
    result = concept_pair_alignment(a.image_memberships, b.image_memberships)
    distance = result.distance
    universal, in_pair_a, in_pair_b = [], set(), set()
    for (ca, cb), d in zip(result.matching, result.matched_distance.tolist(), strict=True):
        baseline = float(distance[ca].mean())
        if d < ratio * baseline:
            universal.append({"a": int(ca), "b": int(cb), "distance": d, "baseline": baseline})
            in_pair_a.add(ca)
            in_pair_b.add(cb)
    universal.sort(key=lambda e: (e["distance"], e["a"], e["b"]))

    def unique(rows: np.ndarray, taken: set[int]) -> list[dict[str, Any]]:
        out = []
        for c in range(rows.shape[0]):
            if c not in taken:
                nearest = int(np.argmin(rows[c]))
                out.append({"concept": c, "nearest": nearest, "distance": float(rows[c, nearest])})
        return sorted(out, key=lambda e: (-e["distance"], e["concept"]))  # the most isolated first

    # Vielhaben et al. read universality off the ranking of matched pairs by distance; the ranking is the
    # primary output. The ½-of-baseline cut that labels pairs universal is ours (docs/compare.md).
    ranking = sorted(
        (
            {"a": int(ca), "b": int(cb), "distance": d}
            for (ca, cb), d in zip(result.matching, result.matched_distance.tolist(), strict=True)
        ),
        key=lambda e: (e["distance"], e["a"], e["b"]),
    )
    for rank, entry in enumerate(ranking, 1):
        entry["rank"] = rank
    return {
        "ranking": ranking,
        "universal_ratio": ratio,
        "universal": universal,
        "unique_a": unique(distance, in_pair_a),
        "unique_b": unique(distance.T, in_pair_b),
        "matching": [[int(ca), int(cb)] for ca, cb in result.matching],
        "distance": distance.tolist(),
    }


def nlmcd(
    features_a: np.ndarray | Tokens,
    features_b: np.ndarray | Tokens,
    seed: int = 0,
    min_cluster_size: int | None = None,
    max_tokens: int | None = MAX_TOKENS,
    ratio: float = UNIVERSAL_RATIO,
) -> dict[str, Any]:
    """Discover concepts in two models' features of the same images and match them (JSON-ready).

    Each side is a feature array (n × D, n × T × D without prefix tokens, or
    n × C × H × W) or :class:`Tokens` made by :func:`layer_tokens`.
    """
    sides = [
        f if isinstance(f, Tokens) else make_tokens(f, max_tokens=max_tokens, seed=seed)
        for f in (features_a, features_b)
    ]
    if sides[0].n_images != sides[1].n_images:
        raise SubclassbenchError(
            f"the two sides cover {sides[0].n_images} and {sides[1].n_images} images; compare the same samples"
        )
    first = discover_concepts(sides[0], seed=seed, min_cluster_size=min_cluster_size)
    # A layer compared with itself: the same tokens give the same concepts, so skip the second UMAP.
    same = sides[1] is sides[0] or features_b is features_a
    found = [first, first if same else discover_concepts(sides[1], seed=seed, min_cluster_size=min_cluster_size)]
    return {
        "method": "nlmcd",
        "params": {
            "pool": f"{POOL}x{POOL}",
            "normalise": "l2",
            "umap": {"n_components": UMAP_DIMS, "n_neighbors": UMAP_NEIGHBOURS, "min_dist": 0.0, "seed": seed},
            "hdbscan": {"min_cluster_size": min_cluster_size, "soft": "all_points_membership_vectors"},
            "max_tokens": max_tokens,
        },
        "a": found[0].summary(),
        "b": found[1].summary(),
        **align_concepts(found[0], found[1], ratio),
    }
