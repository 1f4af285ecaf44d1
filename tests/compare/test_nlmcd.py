"""NLMCD concept discovery (`subclassbench compare --concepts nlmcd`): tokens, concepts, matching, bad input."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from subclassbench.cli import app
from subclassbench.compare.nlmcd import Tokens, discover_concepts, make_tokens, nlmcd, tokens_from_output
from subclassbench.errors import SubclassbenchError

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- tokens


def test_feature_map_positions_are_pooled_4x4():
    maps = np.arange(2 * 3 * 8 * 8, dtype=np.float32).reshape(2, 3, 8, 8)  # N × C × H × W
    tokens, pooling = tokens_from_output(maps)
    assert tokens.shape == (2, 4, 3) and pooling == "positions_avg_pool_4x4_of_8x8"
    np.testing.assert_allclose(tokens[1, 0], maps[1, :, :4, :4].mean(axis=(1, 2)))
    np.testing.assert_allclose(tokens[0, 3], maps[0, :, 4:, 4:].mean(axis=(1, 2)))
    last, _ = tokens_from_output(maps.transpose(0, 2, 3, 1), channels_last=True)
    np.testing.assert_allclose(last, tokens)


def test_transformer_tokens_drop_the_prefix_and_pool_the_patch_grid():
    rng = np.random.default_rng(0)
    seq = rng.normal(size=(2, 1 + 36, 5)).astype(np.float32)  # class token + a 6 × 6 patch grid
    seq[:, 0] = 1e6  # a class token that leaked in would dominate every mean
    tokens, pooling = tokens_from_output(seq, prefix_tokens=1)
    assert tokens.shape == (2, 4, 5) and "excl_1_prefix" in pooling
    grid = seq[:, 1:].reshape(2, 6, 6, 5)
    np.testing.assert_allclose(tokens[0, 0], grid[0, :4, :4].mean(axis=(0, 1)), rtol=1e-5)
    np.testing.assert_allclose(tokens[1, 3], grid[1, 4:, 4:].mean(axis=(0, 1)), rtol=1e-5)  # a 2 × 2 edge window
    small, _ = tokens_from_output(seq[:, :5], prefix_tokens=1)  # a 2 × 2 grid: one token
    np.testing.assert_allclose(small[:, 0], seq[:, 1:5].mean(axis=1), rtol=1e-5)
    odd, how = tokens_from_output(seq[:, :8], prefix_tokens=1)  # 7 patches: no grid
    assert odd.shape == (2, 7, 5) and how.startswith("tokens_unpooled")


def test_image_vectors_are_one_token_each_and_caps_keep_every_image():
    vectors = make_tokens(np.ones((6, 3)))
    assert vectors.values.shape == (6, 3) and vectors.per_image == 1 and vectors.pooling == "image"
    maps = np.random.default_rng(1).normal(size=(10, 2, 16, 16))  # 16 tokens per image after pooling
    capped = make_tokens(maps, max_tokens=50, seed=3)
    assert capped.per_image == 5 and capped.values.shape == (50, 2)
    np.testing.assert_array_equal(np.bincount(capped.image), [5] * 10)
    np.testing.assert_array_equal(make_tokens(maps, max_tokens=50, seed=3).values, capped.values)


# --------------------------------------------------------------------------- concepts


def _blobs(groups: np.ndarray, dims: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(groups.max() + 1, dims)) * 4.0
    return centres[groups] + rng.normal(size=(len(groups), dims)) * 0.3


# 90 images: both models see groups 0 (images 0–29) and 1 (30–59) as clusters; on images 60–89,
# A sees one cluster and B two halves, so that concept of A has no close partner in B.
GROUP_A = np.repeat([0, 1, 2], 30)
GROUP_B = np.repeat([0, 1, 2, 3], [30, 30, 15, 15])


@pytest.fixture(scope="module")
def shared_two_of_three():
    a, b = _blobs(GROUP_A, 8, 0), _blobs(GROUP_B, 12, 1)
    return a, b, nlmcd(a, b, seed=0)


def _group_of(prototypes: list[int], groups: np.ndarray) -> int:
    found = set(groups[prototypes].tolist())
    assert len(found) == 1, f"a concept's prototypes span groups {found}"
    return found.pop()


def test_shared_concepts_are_universal_and_the_differing_one_unique(shared_two_of_three):
    _, _, doc = shared_two_of_three
    assert doc["a"]["n_concepts"] == 3 and doc["b"]["n_concepts"] == 4  # HDBSCAN finds the number itself
    pa, pb = doc["a"]["prototypes"], doc["b"]["prototypes"]
    pairs = {(_group_of(pa[u["a"]], GROUP_A), _group_of(pb[u["b"]], GROUP_B)) for u in doc["universal"]}
    assert pairs == {(0, 0), (1, 1)}
    distances = [u["distance"] for u in doc["universal"]]
    assert distances == sorted(distances)
    assert [_group_of(pa[u["concept"]], GROUP_A) for u in doc["unique_a"]] == [2]
    assert sorted(_group_of(pb[u["concept"]], GROUP_B) for u in doc["unique_b"]) == [2, 3]
    assert max(distances) < min(u["distance"] for u in doc["unique_a"] + doc["unique_b"])
    assert np.asarray(doc["distance"]).shape == (3, 4)
    # The ranking (the paper's reading) puts the shared pairs first, the differing concept's pair last.
    ranked = [(_group_of(pa[r["a"]], GROUP_A), _group_of(pb[r["b"]], GROUP_B)) for r in doc["ranking"]]
    assert set(ranked[:2]) == {(0, 0), (1, 1)} and ranked[2][0] == 2


def test_same_input_gives_the_same_output(shared_two_of_three):
    a, b, doc = shared_two_of_three
    again = nlmcd(a.copy(), b.copy(), seed=0)
    assert json.dumps(again, sort_keys=True) == json.dumps(doc, sort_keys=True)


def test_a_model_compared_with_itself_shares_every_concept(shared_two_of_three):
    a, _, _ = shared_two_of_three
    doc = nlmcd(a, a, seed=0)
    assert len(doc["universal"]) == doc["a"]["n_concepts"] == 3 and not doc["unique_a"] and not doc["unique_b"]
    assert [r["rank"] for r in doc["ranking"]] == [1, 2, 3]
    assert all(u["distance"] == pytest.approx(0.0, abs=1e-12) for u in doc["universal"])


def test_soft_memberships_are_valid(shared_two_of_three):
    a, _, _ = shared_two_of_three
    found = discover_concepts(make_tokens(a), seed=0)
    m = found.memberships
    assert m.shape == (90, 3) and np.all(m >= 0) and np.all(m.sum(axis=1) <= 1 + 1e-9)
    np.testing.assert_allclose(found.image_memberships, m)  # one token per image


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "features, kwargs, match",
    [
        (np.ones((6, 4)), {}, "at least 10 tokens"),
        (np.ones((40, 4)), {"min_cluster_size": 25}, "at least 50 tokens"),
        (np.ones((40, 4)), {"min_cluster_size": 1}, "--min-cluster-size must be ≥ 2"),
        (np.where(np.eye(40, 4) > 0, np.nan, 1.0), {}, "NaN or infinite"),
        (np.full((40, 4), np.inf), {}, "NaN or infinite"),
        (np.ones((40, 4)), {"seed": -1}, "--seed"),
    ],
)
def test_bad_features_are_user_errors(features, kwargs, match):
    with pytest.raises(SubclassbenchError, match=match):
        discover_concepts(make_tokens(features), **kwargs)


def test_bad_shapes_are_user_errors():
    with pytest.raises(SubclassbenchError, match="shape"):
        make_tokens(np.ones((4, 2, 2, 2, 2)))
    with pytest.raises(SubclassbenchError, match="at least one image"):
        make_tokens(np.ones((0, 3)))
    with pytest.raises(SubclassbenchError, match="same samples"):
        nlmcd(np.ones((20, 3)), np.ones((21, 3)))
    one_image = Tokens(np.random.default_rng(0).normal(size=(16, 3)), np.zeros(16, dtype=int), 1, 16, "x")
    with pytest.raises(SubclassbenchError, match="at least 2 images"):
        discover_concepts(one_image)


def test_cli_rejects_a_bad_concepts_choice_before_loading_anything(tmp_path):
    bad = runner.invoke(app, ["compare", "--model", "builtin:digits_mlp", "--concepts", "kmeans", "--out", tmp_path])
    assert bad.exit_code == 2 and "--concepts must be gmm or nlmcd" in bad.output
    stray = runner.invoke(app, ["compare", "--model", "builtin:digits_mlp", "--min-cluster-size", "5"])
    assert stray.exit_code == 2 and "--concepts nlmcd only" in stray.output


def test_cli_nlmcd_on_a_feature_map_layer(tmp_path):
    args = ["compare", "--model", "builtin:digits_cnn.digits5_coarse", "--task", "digits-5", "--max-samples", 60]
    args += ["--k", 3, "--concepts", "nlmcd", "--pair", "stem,stem", "--quiet", "--out", tmp_path]
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    concepts = json.loads((tmp_path / "compare.json").read_text())["concepts"]
    assert concepts["method"] == "nlmcd" and concepts["a"]["pooling"] == "positions_avg_pool_4x4_of_8x8"
    assert concepts["a"]["n_tokens"] == 240 and concepts["a"]["tokens_per_image"] == 4
    assert len(concepts["universal"]) == concepts["a"]["n_concepts"] > 0  # one layer compared with itself
    assert all(isinstance(i, str) for p in concepts["a"]["prototypes"] for i in p)  # image ids of the split


def test_umap_and_hdbscan_are_imported_only_for_nlmcd():
    # Module-level imports only: the packages load inside discover_concepts, nlmcd inside the nlmcd branch.
    modules = ("compare/nlmcd.py", "compare/representations.py", "cli/compare.py")
    for module in modules:
        tree = ast.parse((ROOT / "subclassbench" / module).read_text())
        names = {alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
        names |= {node.module or "" for node in tree.body if isinstance(node, ast.ImportFrom)}
        assert not {"umap", "hdbscan", "subclassbench.compare.nlmcd"} & names, module
