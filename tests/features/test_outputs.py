"""User code that misbehaves inside the forward pass (issue 34, class 6): a module or embed function that raises,
returns the wrong type, the wrong number of rows or a changing width is one clear error before any row is
stored; float64 and float16 modules run in their own precision; a plug-in's failure names the plug-in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from typer.testing import CliRunner

import subclassbench
from subclassbench.cli import app
from subclassbench.encoders.base import ENCODER_SOURCES, load_encoder
from subclassbench.errors import SubclassbenchError
from subclassbench.features.outputs import BlockChecks, output_tensor
from tests.core.test_registry import _fake_dist, on_path  # noqa: F401  (the fixture, used by name)
from tests.evaluation.test_api import small_cnn
from tests.fuzzing import FUZZ

FAST = {"metrics": ["clusterability"], "bootstrap": 0, "limit": 60}
# digits-5 has 8x8 single-channel images; one layer keeps each run to a single small pass.
LAYERS = {"layers": ["features.4", "embedding"]}


def pooled(model: nn.Module) -> object:
    return lambda x: model.pool(model.features(x)).flatten(1)


def evaluate(model: nn.Module, embed: object, **extra: object) -> subclassbench.Result:
    return subclassbench.evaluate(model, embed=embed, cache_key="outputs-test", **FAST, **LAYERS, **extra)


def test_an_embed_function_that_raises_is_one_error_that_keeps_its_cause():
    def broken(_x: torch.Tensor) -> torch.Tensor:
        raise ValueError("the user's own bug")

    with pytest.raises(SubclassbenchError, match=r"forward pass of module:SmallCNN raised ValueError \(the user's"):
        evaluate(small_cnn(), broken)
    try:
        evaluate(small_cnn(), broken)
    except SubclassbenchError as exc:  # a Python caller can still find the traceback
        assert isinstance(exc.__cause__, ValueError)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda m: lambda x: {"pooled": pooled(m)(x)}, r"returned a dict \(keys 'pooled'\), not a tensor"),
        (lambda m: lambda x: pooled(m)(x).numpy(), "returned a numpy array, not a torch tensor"),
        (lambda m: lambda x: float(pooled(m)(x).sum()), "returned a float, not a tensor"),
        (lambda m: lambda x: pooled(m)(x) > 0, "returned a bool tensor; return real-valued features"),
        (lambda m: lambda x: pooled(m)(x)[:-1], r"shape 59x16 for a batch of 60 images \(batch 1\)"),
        (lambda m: lambda x: pooled(m)(x).sum(1), r"shape 60 for a batch of 60 images"),
    ],
)
def test_an_embed_function_returning_the_wrong_thing_is_refused(make, message):
    model = small_cnn()
    with pytest.raises(SubclassbenchError, match=message):
        evaluate(model, make(model))


def test_a_width_that_changes_between_batches_is_refused():
    model, calls = small_cnn(), []

    def shrinking(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return pooled(model)(x)[:, : 16 - len(calls)]

    with pytest.raises(SubclassbenchError, match=r"gave 15 features per image in batch 1 but 14 in batch 2"):
        evaluate(model, shrinking, batch_size=32)


def test_a_layer_returning_a_dict_is_refused_naming_the_layer():
    class DictBlock(nn.Module):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"out": x}

    class WithDictBlock(nn.Module):  # its own forward knows the block's dict; the benchmark cannot pool one
        def __init__(self) -> None:
            super().__init__()
            self.body, self.wrap = small_cnn(), DictBlock()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body.fc(self.body.pool(self.wrap(self.body.features(x))["out"]).flatten(1))

    with pytest.raises(SubclassbenchError, match=r"layer 'wrap' of module:WithDictBlock returned a dict \(keys 'out'"):
        subclassbench.evaluate(WithDictBlock(), layers=["wrap"], cache_key="dict-layer", **FAST)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_float64_and_float16_modules_run_in_their_own_precision(dtype):
    reference = evaluate(small_cnn(), None)
    model = small_cnn().to(dtype)
    result = subclassbench.evaluate(model, cache_key=f"dtype-{dtype}", **FAST, **LAYERS)
    assert any("float64" in n or "float16" in n for n in result.notes)  # the departure from fp32 is said
    ours = [layer["clusterability"]["ami"] for layer in result.layers]
    ref = [layer["clusterability"]["ami"] for layer in reference.layers]
    assert np.allclose(ours, ref, atol=0.05)  # the same network, in another precision


def test_output_checks_pass_what_is_right():
    tensor = torch.zeros(4, 3)
    assert output_tensor((tensor, "extras"), "x") is tensor  # blocks that return (tensor, extras)
    checks = BlockChecks("module:m")
    checks.check("a", tensor, 4, 1)
    checks.check("a", torch.zeros(2, 3), 2, 2)  # a shorter last batch, the same width
    with pytest.raises(SubclassbenchError, match="gave 3 features per image in batch 1 but 5 in batch 3"):
        checks.check("a", torch.zeros(4, 5), 4, 3)


def test_a_plugin_that_exits_at_import_is_one_line(tmp_path: Path, on_path):  # noqa: F811
    _fake_dist(tmp_path, "exiting-plugin", "exiting = broken_plugin_exit:SOURCE", "broken_plugin_exit",
               "import sys\nsys.exit(3)\n")  # fmt: skip
    on_path(tmp_path)
    result = CliRunner().invoke(app, ["evaluate", "--model", "exiting:x"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "failed to load (it called sys.exit(3))" in lines[0]


def test_a_plugin_loader_that_raises_or_returns_junk_is_one_line(tmp_path: Path, on_path):  # noqa: F811
    code = (
        "from subclassbench.encoders.base import EncoderSource, load_encoder\n"
        "def boom(request):\n    raise KeyError('width')\n"
        "def junk(request):\n    return 42\n"
        "def borrowed(request):\n    return load_encoder('builtin:digits_cnn', sample_shape=(1, 8, 8))\n"
        "BOOM = EncoderSource('boom', boom)\nJUNK = EncoderSource('junk', junk)\n"
        "BORROWED = EncoderSource('borrowed', borrowed)\n"
    )
    info = tmp_path / "broken_plugin_load-1.0.dist-info"
    _fake_dist(tmp_path, "broken-plugin-load", "boom = broken_plugin_load:BOOM", "broken_plugin_load", code)
    (info / "entry_points.txt").write_text(
        "[subclassbench.encoder_sources]\nboom = broken_plugin_load:BOOM\njunk = broken_plugin_load:JUNK\n"
        "borrowed = broken_plugin_load:BORROWED\n"
    )
    on_path(tmp_path)
    with pytest.raises(SubclassbenchError, match=r"'boom' \(broken-plugin-load==1.0\) failed to build boom:x"):
        load_encoder("boom:x", sample_shape=(1, 8, 8))
    with pytest.raises(SubclassbenchError, match=r"returned a int for junk:x, not an Encoder"):
        load_encoder("junk:x", sample_shape=(1, 8, 8))
    assert "boom" in ENCODER_SOURCES.plugins
    # A plug-in that hands back a built-in encoder still records itself, and keys its own cache entries.
    borrowed = load_encoder("borrowed:x", sample_shape=(1, 8, 8))
    assert borrowed.info()["source"] == "borrowed" and borrowed.info()["plugin"] == "broken-plugin-load==1.0"
    assert borrowed.identity["spec"] == "borrowed:x" and borrowed.identity["plugin"] == "broken-plugin-load==1.0"


# --------------------------------------------------------------------------- fuzzing the embed contract

OUTPUT_KINDS = ["rows", "map", "tokens", "short", "vector", "scalar", "dict", "ndarray", "float", "none", "tuple",
                "text", "bool", "complex"]  # fmt: skip
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64]


def _output(kind: str, rows: int, width: int, dtype: torch.dtype, seed: int) -> object:
    """One thing an embed function could return for a batch of ``rows`` images."""
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape: (torch.rand(*shape, generator=g) * 10).to(dtype)  # noqa: E731
    return {
        "rows": lambda: rand(rows, width),
        "map": lambda: rand(rows, width, 2, 2),
        "tokens": lambda: rand(rows, 3, width),
        "short": lambda: rand(max(rows - 1, 0), width),
        "vector": lambda: rand(rows),
        "scalar": lambda: rand(()),
        "dict": lambda: {"x": rand(rows, width)},
        "ndarray": lambda: rand(rows, width).float().numpy(),
        "float": lambda: 1.5,
        "none": lambda: None,
        "tuple": lambda: (rand(rows, width), "extras"),
        "text": lambda: "features",
        "bool": lambda: rand(rows, width) > 5,
        "complex": lambda: torch.complex(rand(rows, width).float(), rand(rows, width).float()),
    }[kind]()


@FUZZ
@given(data=st.data())
def test_whatever_an_embed_function_returns_is_stored_exactly_or_refused_in_one_line(data):
    """Random output types, shapes, widths and dtypes per batch: the features are exactly what was returned
    (pooled, as float32, in order) or the pass stops with one SubclassbenchError line; never anything else."""
    from subclassbench.encoders.module import wrap_module
    from subclassbench.features.extraction import extract_features, pool
    from subclassbench.tasks.datasources import ArrayImageSet

    n, batch = data.draw(st.integers(1, 7)), data.draw(st.integers(1, 4))
    images = ArrayImageSet(np.zeros((n, 4, 4, 1), dtype=np.uint8), np.zeros(n, dtype=np.int64),
                           [str(i) for i in range(n)], scale=1 / 255)  # fmt: skip
    returned: list[object] = []

    def embed(x: torch.Tensor) -> object:
        kind = data.draw(st.sampled_from(OUTPUT_KINDS), label="kind")
        width = data.draw(st.integers(1, 5), label="width")
        out = _output(kind, len(x), width, data.draw(st.sampled_from(DTYPES)), len(returned))
        returned.append(out)
        return out

    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    encoder = wrap_module(model, sample_shape=(1, 4, 4), embed=embed, cache_key="fuzz")
    try:
        [features] = extract_features(encoder, images, ["embedding"], batch_size=batch, progress=False)
    except SubclassbenchError as exc:
        assert "\n" not in str(exc) and str(exc)
        return
    expected = np.concatenate([pool(output_tensor(o, "x"), 0)[0].float().numpy() for o in returned])
    assert features.features.shape == expected.shape and features.features.shape[0] == n
    np.testing.assert_array_equal(features.features, expected.astype(np.float32))
