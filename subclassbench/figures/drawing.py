"""Every figure subclassbench draws: per-layer AMI curves, layer×layer heatmaps, the agreement plot.

One module owns the drawing so that every figure follows the same rules:

* PNG (200 dpi), SVG and PDF, written side by side, byte-identical for the
  same inputs (fixed SVG hash salt, no dates or version strings in the
  metadata, the Agg canvas) so a rebuild of the leaderboard changes nothing;
* a model's colour and marker come from a hash of its name into fixed
  palettes, never from its position in a list, so adding a row to a board
  leaves every other row's colour as it was;
* the label granularity a model was trained with is its line style;
* heatmap colour ranges follow the data (CKA between layers of one network
  spans 0.75–0.95, which a 0–1 scale would flatten);
* titles are wrapped to the figure's width and legends sit outside the axes (the per-layer figure's under them)
  under constrained layout, so nothing is cut off.

Figures are built on :class:`matplotlib.figure.Figure` with an Agg canvas,
not through pyplot: no global backend switch and no figure registry to leak.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from subclassbench.core.hashing import canonical_json, sha256_text
from subclassbench.errors import SubclassbenchError

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.typing import RcKeyType


class Result(Protocol):
    """What the figures read of a result (:class:`subclassbench.results.Result` has it all). A protocol, not an
    import: figures sit below results, so that ``Result.plot()`` can draw with them."""

    @property
    def encoder(self) -> Any: ...
    @property
    def task(self) -> Any: ...
    @property
    def task_name(self) -> str: ...
    @property
    def layers(self) -> Any: ...
    @property
    def summary(self) -> Any: ...
    @property
    def committed_layers(self) -> list[str]: ...
    @property
    def limited(self) -> bool: ...
    @property
    def weights_sha256(self) -> str | None: ...


# Part of every figure's data digest: a change to how figures are drawn must rewrite the committed ones,
# which the leaderboard's skip-unchanged check (it compares digests, not pixels) would otherwise keep.
# Bump it with any change to the drawing code (the style constants below are digested by themselves).
FIGURES_VERSION = "3"  # 3: legend under the axes; colour from the model (spec and weights)
FORMATS = ("png", "svg", "pdf")
PNG_DPI = 200
DIGEST_MARKER = b"subclassbench-data:"

# Colour-blind-aware qualitative colours, each dark enough to read as a thin line on white: Paul Tol's
# "muted" set without its pale sand, cyan and grey, the Okabe–Ito colours without yellow and black (black
# edges the committed-layer stars), and two of Tol's darker tones to make up 15. A model's colour is fixed
# by its name; two models may share a colour, so the marker, drawn from other bits of the same hash, tells
# them apart (15 colours × 9 markers).
PALETTE = (
    "#332288",
    "#117733",
    "#44AA99",
    "#999933",
    "#CC6677",
    "#882255",
    "#AA4499",
    "#E69F00",
    "#56B4E9",
    "#009E73",
    "#0072B2",
    "#D55E00",
    "#CC79A7",
    "#661100",
    "#6699CC",
)
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "<", ">")  # not "*": that one marks the committed layer
COMMITTED_MARKER = "*"

# model.yaml's training.labels (subclassbench.leaderboard.submissions.LABELS) → line style and legend text.
GRANULARITY: dict[str | None, tuple[Any, str]] = {
    "fine": ("-", "fine: trained on the subclass labels"),
    "superclass": ("--", "superclass: trained on the superclass labels"),
    "self-supervised": ("-.", "self-supervised"),
    "text-supervised": ((0, (3, 1, 1, 1, 1, 1)), "text-supervised"),
    "none": (":", "none: no training labels (e.g. untrained)"),
    None: ((0, (10, 3)), "label granularity not recorded"),
}

# Applied while a figure is built and saved, so the bytes do not depend on the user's matplotlibrc.
_RC: dict[RcKeyType, Any] = {
    "svg.hashsalt": "subclassbench",  # else SVG element ids are random per process
    "svg.fonttype": "path",  # glyphs as outlines: the SVG looks the same without the fonts installed
    "pdf.fonttype": 42,  # TrueType, not Type 3: what publishers ask for, and text stays selectable
    "pdf.compression": 6,
    "font.family": "DejaVu Sans",  # shipped with matplotlib: the same glyphs on every machine
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "figure.dpi": 100,
    "savefig.dpi": PNG_DPI,
    "savefig.bbox": None,  # constrained layout fits everything; a tight bbox would change the size per label
    "path.simplify": True,
}
_METADATA: dict[str, dict[str, str | None]] = {
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": None},
    "pdf": {"CreationDate": None, "ModDate": None, "Creator": None, "Producer": None},
}
_DESCRIPTION_KEY = {"png": "Description", "svg": "Description", "pdf": "Subject"}


@contextmanager
def _style() -> Iterator[None]:
    import matplotlib

    with matplotlib.rc_context(_RC):
        yield


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # the one canvas every format is laid out with
    return fig


# Public names for figures drawn elsewhere (the reproductions' reports) in the same style and layout.
style = _style
blank_figure = _figure


def _title(target: Any, text: str, width_in: float) -> None:
    """A title wrapped to ``width_in`` inches (≈ 0.55 em per character at 10 pt): on a figure (suptitle) or
    on one axes, which keeps it clear of a legend placed outside the axes."""
    size = 10.0
    wrapped = textwrap.fill(text, max(20, int(width_in * 72 / (0.55 * size))))
    if hasattr(target, "suptitle"):
        target.suptitle(wrapped, fontsize=size)
    else:
        target.set_title(wrapped, fontsize=size)


def _wrap(text: str, chars: int) -> str:
    """Wrap at spaces and after punctuation: encoder specs and submission names have no spaces to break at."""
    lines = [""]
    for part in re.findall(r"[^-_.:/ ]+[-_.:/ ]*|[-_.:/ ]+", text):
        if lines[-1] and len(lines[-1]) + len(part.rstrip()) > chars:
            lines.append("")
        lines[-1] += part
    return "\n".join(line.strip() for line in lines)


# --------------------------------------------------------------------------- writing


def data_digest(payload: Any) -> str:
    """The digest of what a figure shows and of how it is drawn (:data:`FIGURES_VERSION`, the palettes, line
    styles and rc settings), carried in its metadata: a new palette rewrites the figures by itself."""
    style = [FIGURES_VERSION, PNG_DPI, PALETTE, MARKERS, COMMITTED_MARKER, sorted(map(repr, GRANULARITY.items()))]
    return sha256_text(canonical_json([style, sorted(_RC.items()), payload]))


def read_digest(data: bytes) -> str | None:
    """The data digest a figure file carries (any of the three formats), or None."""
    at = data.find(DIGEST_MARKER)
    if at < 0:
        return None
    return data[at + len(DIGEST_MARKER) : at + len(DIGEST_MARKER) + 64].decode("ascii", "replace")


def render(fig: Figure, digest: str | None = None) -> dict[str, bytes]:
    """``{suffix: bytes}`` for PNG (200 dpi), SVG and PDF; the same figure gives the same bytes every time.

    ``digest`` (from :func:`data_digest`) rides in each file's metadata in
    plain text, so a reader can tell whether a file shows the same data
    without comparing pixels, which differ across FreeType builds.
    """
    out: dict[str, bytes] = {}
    with _style():
        for suffix in FORMATS:
            metadata = dict(_METADATA[suffix])
            if digest is not None:
                metadata[_DESCRIPTION_KEY[suffix]] = f"{DIGEST_MARKER.decode()}{digest}"
            buffer = io.BytesIO()
            fig.savefig(buffer, format=suffix, dpi=PNG_DPI, metadata=metadata)
            out[suffix] = buffer.getvalue()
    return out


def write_figure(files: dict[str, bytes], stem: Path) -> list[Path]:
    """Write ``stem.png``, ``stem.svg`` and ``stem.pdf`` all or nothing."""
    from subclassbench.core.files import atomic_write_many

    return atomic_write_many({stem.with_name(f"{stem.name}.{suffix}"): data for suffix, data in files.items()})


# --------------------------------------------------------------------------- per-layer curves


def model_key(spec: str, weights_sha256: str | None) -> str:
    """What identifies a model across figures: its spec and its weights (a submission's name or a result's
    file name is not the model: the board and ``evaluate --plot`` name the same network differently)."""
    return f"{spec}|{weights_sha256 or ''}"


def model_style(key: str) -> tuple[str, str]:
    """A model's (colour, marker), from its :func:`model_key` alone: the same in every figure (its own
    ``--plot``, ``subclassbench plot``, the board), whatever else is drawn."""
    value = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    return PALETTE[value % len(PALETTE)], MARKERS[(value // len(PALETTE)) % len(MARKERS)]


@dataclass(frozen=True)
class Curve:
    """One model's AMI per layer on one task, as a per-layer figure draws it."""

    name: str
    layers: tuple[str, ...]
    depths: tuple[float, ...]
    ami: tuple[float, ...]
    bands: tuple[tuple[float, float], ...] | None  # each layer's 95% interval, when every layer has one
    committed: tuple[str, ...]  # the committed layer; several when a row's training seeds chose differently
    labels: str | None  # the label granularity it was trained with (model.yaml training.labels); None: unknown
    key: str = ""  # the model's identity (model_key), which picks its colour; "" falls back to the name

    def payload(self) -> list[Any]:
        return [self.name, self.layers, self.depths, self.ami, self.bands, self.committed, self.labels, self.key]

    @property
    def style(self) -> tuple[str, str]:
        return model_style(self.key or self.name)


def curve_from_row(row: dict[str, Any]) -> Curve:
    """A leaderboard row (:func:`subclassbench.leaderboard.board.collect`) as a curve."""
    points = row["curve"]
    committed = row.get("committed_layer") or ""
    # A row averaged over training seeds whose committed layers differ reads "varies: a, b".
    # Under protocol v3 a layer entry may read "a / b": the two halves' cross-fitted choices.
    parts = committed.removeprefix("varies: ").split(", ") if committed else []
    layers = list(dict.fromkeys(n for part in parts for n in part.split(" / ")))
    return Curve(
        name=row["submission"],
        layers=tuple(p["layer"] for p in points),
        depths=tuple(float(p["depth"]) for p in points),
        ami=tuple(float(p["ami"]) for p in points),
        bands=tuple((float(p["ci95"][0]), float(p["ci95"][1])) for p in points)
        if points and all("ci95" in p for p in points)
        else None,
        committed=tuple(layers),
        labels=row.get("labels"),
        key=model_key(row["encoder"], row.get("weights_sha256")) if row.get("encoder") else "",
    )


def curve_from_result(result: Result) -> Curve:
    """One result's clusterability curve (its label granularity from :func:`training_labels`)."""
    layers = [layer for layer in result.layers if "clusterability" in layer]
    if not layers:
        raise SubclassbenchError(
            f"{result.encoder['spec']} on {result.task_name}: the result has no per-layer AMI to plot "
            "(evaluate with --metrics clusterability)"
        )
    bands = [layer.get("ci95", {}).get("ami") for layer in layers]
    return Curve(
        name=result.encoder["spec"],
        layers=tuple(layer["name"] for layer in layers),
        depths=tuple(float(layer["depth"]) for layer in layers),
        ami=tuple(float(layer["clusterability"]["ami"]) for layer in layers),
        bands=tuple((float(b[0]), float(b[1])) for b in bands if b is not None) if None not in bands else None,
        committed=tuple(result.committed_layers),
        labels=training_labels(result),
        key=model_key(result.encoder["spec"], result.weights_sha256),
    )


# `subclassbench train`'s label names (a model card's "labels") → model.yaml's granularity names.
_CARD_LABELS = {"subclass": "fine", "fine": "fine", "superclass": "superclass", "coarse": "superclass"}


def training_labels(result: Result) -> str | None:
    """What a result's encoder was trained on, in model.yaml's terms, where it can be known without a
    submission: an encoder without weights was not trained ("none"); packaged builtin weights and weights
    from a ``subclassbench train`` folder have a model card that says, trusted only when the card's
    weights digest is the result's. Anything else (timm, open_clip, a bare weights file): None."""
    import json

    encoder = result.encoder
    if not encoder.get("pretrained", True):
        return "none"
    weights = encoder.get("weights") or {}
    from subclassbench.encoders.base import ENCODER_SOURCES
    from subclassbench.encoders.builtin import packaged_weights_dir

    source = encoder.get("source")
    cards = source is not None and source in ENCODER_SOURCES and ENCODER_SOURCES.get(source).model_cards
    card_path: Path | None = None
    if cards and encoder.get("tag"):
        card_path = packaged_weights_dir() / f"{encoder['arch']}.{encoder['tag']}.json"
    elif cards and weights.get("path"):
        card_path = Path(weights["path"]).parent / "card.json"
    if card_path is None or not card_path.is_file():
        return None
    try:
        card = json.loads(card_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(card, dict) or card.get("weights_sha256") != weights.get("sha256"):
        return None
    return _CARD_LABELS.get(str(card.get("labels")))


def _relative(depths: Sequence[float]) -> list[float]:
    top = max(depths) or 1.0
    return [d / top for d in depths]


def _y_limits(curves: Sequence[Curve]) -> tuple[float, float]:
    """From the chance level (AMI 0, or below it when the data is) to just above the highest point or band."""
    values = [v for c in curves for v in c.ami] + [v for c in curves for band in c.bands or () for v in band]
    low, high = min([0.0, *values]), max([0.0, *values])
    pad = 0.06 * max(high - low, 0.05)
    return (low - pad if low < 0 else 0.0), high + pad


def curve_figure(curves: Sequence[Curve], title: str, split: str = "test") -> Figure:
    """AMI per layer, one line per model: colour and marker from its name, line style from its label
    granularity, its 95% band shaded, its committed layer a black-edged star."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    drawn = [c for c in curves if c.ami]  # a transfer-only result has no clusterability curve
    with _style():
        fig = _figure(8.0, 4.4)
        ax = fig.add_subplot()
        shared = len({c.layers for c in drawn}) == 1
        for curve in drawn:
            colour, marker = curve.style
            style, _ = GRANULARITY.get(curve.labels, GRANULARITY[None])
            x = _relative(curve.depths)
            ax.plot(
                x, curve.ami, color=colour, linestyle=style, linewidth=1.5, marker=marker, markersize=4,
                gid=f"curve:{curve.name}",
            )  # fmt: skip
            if curve.bands is not None:
                low, high = zip(*curve.bands, strict=True)
                ax.fill_between(x, low, high, color=colour, alpha=0.18, linewidth=0)
            for name in curve.committed:
                if name in curve.layers:
                    i = curve.layers.index(name)
                    ax.plot(
                        [x[i]],
                        [curve.ami[i]],
                        linestyle="none",
                        marker=COMMITTED_MARKER,
                        markersize=13,
                        markerfacecolor=colour if len(curve.committed) == 1 else "white",
                        markeredgecolor="black",
                        markeredgewidth=0.8,
                        zorder=5,
                        gid=f"committed:{curve.name}:{name}",  # found again by tests, and in the SVG
                    )
        ax.axhline(0.0, color="0.6", linewidth=0.6, zorder=0)  # AMI 0: chance agreement with the subclasses
        ax.set_ylim(*_y_limits(drawn))
        ax.set_xlim(-0.03, 1.03)
        if shared and drawn:  # one architecture: the layers themselves can name the ticks
            names = drawn[0].layers
            step = max(1, math.ceil(len(names) / 30))
            ticks = _relative(drawn[0].depths)
            ax.set_xticks(ticks[::step], names[::step], rotation=90 if len(names) > 6 else 0)
            ax.set_xlabel("layer (placed at its relative depth)")
        else:
            ax.set_xlabel("relative depth (layer depth / deepest layer)")
        ax.set_ylabel(f"subclass AMI ({split} split)")
        ax.grid(alpha=0.3, linewidth=0.5)
        _title(ax, title, 0.95 * fig.get_figwidth())  # the legend sits under the axes

        handles: list[Any] = []
        labels: list[str] = []
        headers: list[int] = []

        def header(text: str) -> None:
            headers.append(len(labels))
            handles.append(Line2D([], [], linestyle="none"))
            labels.append(text)

        header("model")
        for curve in drawn:
            colour, marker = curve.style
            style, _ = GRANULARITY.get(curve.labels, GRANULARITY[None])
            handles.append(Line2D([], [], color=colour, linestyle=style, marker=marker, markersize=4, linewidth=1.5))
            labels.append(_wrap(curve.name, 44))
        columns = [len(labels)]
        header("trained with (line style)")
        for key in dict.fromkeys(c.labels for c in drawn):
            style, text = GRANULARITY.get(key, GRANULARITY[None])
            handles.append(Line2D([], [], color="0.25", linestyle=style, linewidth=1.5))
            labels.append(text if key in GRANULARITY else f"{key} (unknown granularity)")
        header("marks")

        def star(face: str) -> Line2D:
            return Line2D(
                [], [], markerfacecolor=face, linestyle="none", marker=COMMITTED_MARKER, markersize=11,
                markeredgecolor="black",
            )  # fmt: skip

        if any(len(c.committed) == 1 for c in drawn):
            handles.append(star("0.6"))
            labels.append("committed layer\n(best on validation split)")
        if any(len(c.committed) > 1 for c in drawn):
            handles.append(star("white"))
            labels.append("committed by some\ntraining seeds")
        if any(c.bands is not None for c in drawn):
            handles.append(Patch(color="0.5", alpha=0.3, linewidth=0))
            labels.append(f"95% interval ({split}\nimages resampled)")
        # Below the axes, one column per group (models; line styles and marks): the curves keep the full width.
        groups = [list(range(0, columns[0])), list(range(columns[0], len(labels)))]
        depth = max(len(g) for g in groups)
        blank = Line2D([], [], linestyle="none")
        order = [i for g in groups for i in g + [-1] * (depth - len(g))]
        legend = fig.legend(
            [handles[i] if i >= 0 else blank for i in order], [labels[i] if i >= 0 else "" for i in order],
            loc="outside lower center", ncol=len(groups), frameon=False, handlelength=2.6, columnspacing=3.0,
        )  # fmt: skip
        for position, i in enumerate(order):
            if i in headers:
                legend.get_texts()[position].set_fontweight("bold")
        fig.set_figheight(4.4 + 0.2 * depth)  # room for the legend under the axes
    return fig


def curve_payload_digest(curves: Sequence[Curve], title: str, split: str = "test") -> str:
    """The digest :func:`curve_files` writes into the figure, without drawing it."""
    return data_digest([title, split, [c.payload() for c in curves]])


def curve_files(curves: Sequence[Curve], title: str, split: str = "test") -> dict[str, bytes]:
    """The per-layer figure as ``{suffix: bytes}``, carrying the digest of what it shows."""
    return render(curve_figure(curves, title, split), curve_payload_digest(curves, title, split))


def result_figure_stem(path: Path) -> Path:
    """Where ``evaluate --plot`` puts a result's figure: beside its JSON, with the JSON's stem."""
    return path.with_suffix("")


def write_result_figure(result: Result, path: Path) -> list[Path]:
    """The per-layer AMI figure of one result file, as ``<stem>.png``, ``.svg`` and ``.pdf`` beside it."""
    return write_figure(results_files([result]), result_figure_stem(path))


def results_curves(results: Sequence[Result]) -> tuple[list[Curve], str, str]:
    """Results on one task as curves (labelled apart where two share a spec), a title and the split shown."""
    if not results:
        raise SubclassbenchError("nothing to plot: give one or more result files")
    tasks = sorted({r.task_name for r in results})
    splits = sorted({str(r.task.get("split", "test")) for r in results})
    if len(tasks) > 1 or len(splits) > 1:
        raise SubclassbenchError(
            f"the results are on different tasks or splits ({', '.join(tasks + splits)}): AMI is compared within "
            "one task's split; plot each task separately"
        )
    curves = [curve_from_result(r) for r in results]
    specs = [r.encoder["spec"] for r in results]
    for i, (curve, result) in enumerate(zip(curves, results, strict=True)):
        name = curve.name
        if specs.count(name) > 1:  # the same architecture with other weights: say which
            name += f" ({(result.weights_sha256 or 'no weights')[:8]})"
        if result.limited:  # a quick try must not pass for a full result once the figure travels alone
            name += " (--limit quick try)"
        curves[i] = replace(curve, name=name)
    if len(results) == 1:
        title = f"{results[0].encoder['spec']} on {tasks[0]}: subclass AMI per layer"
    else:
        title = f"subclass AMI per layer on {tasks[0]}: {len(results)} results"
    if any(r.limited for r in results):
        title += " (--limit quick try: a subset of the images)"
    return curves, title, splits[0]


def results_figure(results: Sequence[Result]) -> Figure:
    """Per-layer AMI curves of results on one task, with their bands and committed layers (``Result.plot``)."""
    curves, title, split = results_curves(results)
    return curve_figure(curves, title, split)


def results_files(results: Sequence[Result]) -> dict[str, bytes]:
    """:func:`results_figure` as ``{suffix: bytes}`` (``subclassbench plot``, ``evaluate --plot``)."""
    curves, title, split = results_curves(results)
    return curve_files(curves, title, split)


# --------------------------------------------------------------------------- heatmaps


def heatmap_limits(matrix: Any) -> tuple[float, float]:
    """The colour range of a heatmap: the data's own minimum and maximum (widened a hair when they meet)."""
    values = np.asarray(matrix, dtype=float)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    if high - low < 1e-6:  # a constant matrix still needs a range to map onto
        return low - 0.005, high + 0.005
    return low, high


def heatmap_figure(
    matrix: Any, rows: Sequence[str], cols: Sequence[str], metric: str, label_a: str, label_b: str
) -> Figure:
    """A layer×layer matrix: rows are ``label_a``'s layers (first at the bottom), columns ``label_b``'s."""
    values = np.asarray(matrix, dtype=float)
    vmin, vmax = heatmap_limits(values)
    n_rows, n_cols = len(rows), len(cols)
    longest = max([len(s) for s in [*rows, *cols]] or [1])
    cell = 0.26 if max(n_rows, n_cols) <= 30 else 0.16
    margin = 1.3 + 0.06 * min(longest, 24)  # room for the tick labels and the axis label
    with _style():
        fig = _figure(
            min(16.0, max(4.8, margin + 1.4 + cell * n_cols)), min(16.0, max(4.2, margin + 0.9 + cell * n_rows))
        )
        ax = fig.add_subplot()
        image = ax.imshow(values, vmin=vmin, vmax=vmax, cmap="viridis", origin="lower", aspect="auto")
        size = 8 if max(n_rows, n_cols) <= 16 else 7 if max(n_rows, n_cols) <= 30 else 6
        step_r, step_c = max(1, math.ceil(n_rows / 40)), max(1, math.ceil(n_cols / 40))
        upright = n_cols <= 8 and max([len(c) for c in cols] or [0]) <= 10  # short names fit across a cell
        ax.set_xticks(range(0, n_cols, step_c), list(cols)[::step_c], rotation=0 if upright else 90, fontsize=size)
        ax.set_yticks(range(0, n_rows, step_r), list(rows)[::step_r], fontsize=size)
        ax.set_xlabel(f"layer of {_wrap(label_b, 60)}")
        ax.set_ylabel(f"layer of {_wrap(label_a, 60)}")
        if n_rows <= 12 and n_cols <= 12:  # few cells: print the values, in black on light cells
            middle = (vmin + vmax) / 2
            digits = 3 if vmax - vmin < 0.1 else 2  # a narrow range needs the third digit to tell cells apart
            for i in range(n_rows):
                for j in range(n_cols):
                    v = values[i, j]
                    colour = "black" if v > middle else "white"
                    ax.text(j, i, f"{v:.{digits}f}", ha="center", va="center", fontsize=6.5, color=colour)
        bar = fig.colorbar(image, ax=ax, shrink=0.9, aspect=30)
        bar.set_label(f"{metric} (colour range: data min to max)")
        _title(fig, f"{metric}: {label_a} (rows) vs {label_b} (columns)", fig.get_figwidth())
    return fig


def heatmap_files(
    matrix: Any, rows: Sequence[str], cols: Sequence[str], metric: str, label_a: str, label_b: str
) -> dict[str, bytes]:
    digest = data_digest([metric, label_a, label_b, list(rows), list(cols), np.asarray(matrix).tolist()])
    return render(heatmap_figure(matrix, rows, cols, metric, label_a, label_b), digest)


# --------------------------------------------------------------------------- agreement


def accuracy_band(part: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Mean accuracy ± one std across runs, clipped to [0, 1]: an accuracy outside it is not a reading."""
    mean, std = np.asarray(part["accuracy_mean"], dtype=float), np.asarray(part["accuracy_std"], dtype=float)
    return np.clip(mean - std, 0.0, 1.0), np.clip(mean + std, 0.0, 1.0)


def agreement_figure(doc: dict[str, Any]) -> Figure:
    """Per-epoch agreement of training runs (``compare.agreement_over_runs``): one panel per split."""
    from matplotlib.ticker import MaxNLocator

    epochs = np.arange(1, doc["epochs"] + 1)
    panels = [("test", doc)] + ([("train", doc["train"])] if doc.get("train") else [])
    agreement_colour, accuracy_colour = "#0072B2", "#D55E00"  # Okabe–Ito blue and vermillion
    with _style():
        fig = _figure(4.6 * len(panels) + 1.9, 3.6)
        axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
        for ax, (name, part) in zip(axes, panels, strict=True):
            low, high = accuracy_band(part)
            ax.fill_between(epochs, low, high, color=accuracy_colour, alpha=0.22, linewidth=0, label="accuracy ± std")
            ax.plot(epochs, part["accuracy_mean"], color=accuracy_colour, label="accuracy (mean of runs)")
            ax.plot(epochs, part["agreement"], color=agreement_colour, label="agreement (all right ÷ any right)")
            ax.plot(epochs, part["agreement_lower_bound"], color=agreement_colour, linestyle="--", label="lower bound")
            if "agreement_upper_bound" in part:
                ax.plot(
                    epochs,
                    part["agreement_upper_bound"],
                    color=agreement_colour,
                    linestyle=":",
                    label="upper bound (lowest ÷ highest accuracy)",
                )
            if "agreement_if_independent" in part:
                ax.plot(
                    epochs,
                    part["agreement_if_independent"],
                    color="0.45",
                    linestyle="-.",
                    label="independent runs",
                )
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylim(0.0, 1.02)  # a little above 1: a line at 1.0 (all right) stays whole
            ax.margins(x=0.02)
            ax.set_title(f"{name} split ({part['n_samples']} samples)")
            ax.grid(alpha=0.3, linewidth=0.5)
        axes[0].set_ylabel("agreement, accuracy")
        handles, labels = axes[0].get_legend_handles_labels()
        # Centred on the right: a legend at the top corner would run into the figure title.
        fig.legend(handles, labels, loc="outside right center", frameon=False)
        _title(
            fig, f"agreement of {len(doc['runs'])} training runs per epoch (Pliushch et al., 2022)", fig.get_figwidth()
        )
    return fig


def agreement_files(doc: dict[str, Any]) -> dict[str, bytes]:
    keys = (
        "epochs",
        "runs",
        "agreement",
        "agreement_lower_bound",
        "agreement_upper_bound",
        "agreement_if_independent",
        "accuracy_mean",
        "accuracy_std",
        "train",
    )
    return render(agreement_figure(doc), data_digest({k: doc.get(k) for k in keys}))
