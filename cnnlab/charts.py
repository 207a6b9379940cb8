"""Plotly figures for the app: training curves, class probabilities, shapes through the network.

Figures only; the page decides where they go.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import checks, i18n
from .errors import LabError
from .layer_table import LayerTable
from .training import Progress

PALETTE = ("#3b6ea5", "#d1495b", "#66a182", "#edae49", "#8d6a9f", "#00798c", "#6c757d")
MAX_POINTS = 600  # per curve; a browser redrawing every second should not carry thousands
MAX_TILE_PIXELS = 2**24  # a tiled picture larger than this (4096x4096) is refused before it is drawn


def training_curves(series: Sequence[tuple[str, Sequence[Progress], Sequence[Progress]]], lang: str = "en",
                    points: int = MAX_POINTS, references: Sequence[tuple[str, int, Mapping]] = (),
                    colours: Sequence[int] | None = None) -> go.Figure:
    """Accuracy and loss against epochs: a line per run for training (running mean over the epoch,
    after every batch, at most `points` of them) and markers for validation (after every epoch).

    `references` are recorded runs drawn beside them as dashed lines: (label, the colour index of the
    run they go with, per-epoch lists "test_accuracy" and "train_loss"). `colours`: each series'
    colour index, where they are not simply in order."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=(_t("accuracy_title", lang), _t("loss_title", lang)),
                        horizontal_spacing=0.1)
    for i, (label, batches, epochs) in enumerate(series):
        colour = PALETTE[(colours[i] if colours is not None else i) % len(PALETTE)]
        batches = _thin(list(batches), points)
        x = [p.epoch - 1 + p.step / p.steps for p in batches]
        x_val = [float(p.epoch) for p in epochs]
        for col, train_key, val_key in ((1, "accuracy", "val_accuracy"), (2, "loss", "val_loss")):
            fig.add_trace(go.Scatter(x=x, y=[getattr(p, train_key) for p in batches], mode="lines",
                                     name=_t("training_line", lang, run=label), legendgroup=label, showlegend=col == 1,
                                     line=dict(color=colour, width=2)), row=1, col=col)
            fig.add_trace(go.Scatter(x=x_val, y=[getattr(p, val_key) for p in epochs], mode="lines+markers",
                                     name=_t("validation_line", lang, run=label), legendgroup=label,
                                     showlegend=col == 1, line=dict(color=colour, dash="dot"), marker=dict(size=8)),
                          row=1, col=col)
    for label, colour_index, run in references:
        colour = PALETTE[colour_index % len(PALETTE)]
        for col, key in ((1, "test_accuracy"), (2, "train_loss")):
            values = list(run.get(key) or [])
            fig.add_trace(go.Scatter(x=list(range(1, len(values) + 1)), y=values, mode="lines", name=label,
                                     legendgroup=f"reference-{label}", showlegend=col == 1, opacity=0.7,
                                     line=dict(color=colour, dash="dash", width=1.5)), row=1, col=col)
    fig.update_xaxes(title_text=_t("epoch", lang), rangemode="tozero")
    fig.update_yaxes(range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.2))
    return fig


def learning_rate_curve(epochs: Sequence[float], rates: Sequence[float], lang: str = "en") -> go.Figure:
    """The learning rate over a run, against epochs (cnnlab.training.learning_rates gives both)."""
    epochs, rates = np.asarray(epochs, dtype=np.float64), np.asarray(rates, dtype=np.float64)
    if epochs.ndim != 1 or epochs.shape != rates.shape or not len(rates) or len(rates) > 10 * MAX_POINTS \
            or not (np.isfinite(epochs).all() and np.isfinite(rates).all()):
        raise LabError("charts.rate_curve", most=str(10 * MAX_POINTS))
    fig = go.Figure(go.Scatter(x=epochs, y=rates, mode="lines", line=dict(color=PALETTE[0], width=2)))
    fig.update_xaxes(title_text=_t("epoch", lang), rangemode="tozero")
    fig.update_yaxes(title_text=_t("learning_rate", lang), rangemode="tozero", tickformat="~g")
    fig.update_layout(height=220, margin=dict(l=10, r=10, t=10, b=10), showlegend=False)
    return fig


def class_probabilities(probabilities: np.ndarray, class_names: Sequence[str], true_class: int | None = None,
                        lang: str = "en") -> go.Figure:
    """A bar per class; the predicted class stands out, the true class is outlined."""
    probabilities = checks.numbers(probabilities, "probabilities", finite=False)
    class_names = list(class_names) if isinstance(class_names, (Sequence, np.ndarray)) else None
    if class_names is None:
        raise LabError("charts.bars_no_names", shape=str(probabilities.shape))
    if probabilities.ndim != 1 or len(probabilities) == 0 or len(class_names) != len(probabilities):
        raise LabError("charts.bars", shape=str(probabilities.shape), names=str(len(class_names)))
    if true_class is not None and not checks.is_whole(true_class):
        raise LabError("charts.true_class", value=checks.shown(true_class))
    predicted = int(np.argmax(probabilities))
    colours = [PALETTE[0] if i == predicted else "#b8c4d6" for i in range(len(class_names))]
    widths = [3 if i == true_class else 0 for i in range(len(class_names))]
    fig = go.Figure(go.Bar(x=list(class_names), y=list(map(float, probabilities)), marker_color=colours,
                           marker_line=dict(color=PALETTE[2], width=widths),
                           text=[f"{p:.1%}" for p in probabilities], textposition="outside"))
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10),
                      yaxis=dict(range=[0, 1.1], title=_t("probability", lang)),
                      xaxis=dict(type="category", title=_t("class", lang)))
    return fig


def shapes_through_depth(table: LayerTable, lang: str = "en") -> go.Figure:
    """Feature-map side (pixels) and channels after every layer that keeps a spatial map."""
    rows = [r for r in table.rows if len(r.output_shape) == 3]
    names = [r.name for r in rows]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Bar(x=names, y=[r.output_shape[-1] for r in rows], name=_t("channels", lang),
                         marker_color="#b8c4d6"), secondary_y=True)
    fig.add_trace(go.Scatter(x=names, y=[r.output_shape[0] for r in rows], name=_t("side", lang),
                             mode="lines+markers", line=dict(color=PALETTE[0], width=3)), secondary_y=False)
    fig.update_yaxes(title_text=_t("map_side", lang), rangemode="tozero", secondary_y=False)
    fig.update_yaxes(title_text=_t("channels", lang), rangemode="tozero", secondary_y=True, showgrid=False)
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.3),
                      xaxis=dict(type="category", tickangle=-45))
    return fig


def class_distribution(counts: Sequence[int], class_names: Sequence[str], lang: str = "en") -> go.Figure:
    fig = go.Figure(go.Bar(x=list(class_names), y=list(map(int, counts)), marker_color=PALETTE[0],
                           text=list(map(int, counts)), textposition="outside"))
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=30, b=10), xaxis=dict(type="category"),
                      yaxis=dict(title=_t("images", lang)))
    return fig


def _thin(points: list, most: int = MAX_POINTS) -> list:
    if len(points) <= most:
        return points
    keep = np.linspace(0, len(points) - 1, most).round().astype(int)
    return [points[i] for i in keep]


def confusion_heatmap(confusion: np.ndarray, class_names: Sequence[str], lang: str = "en") -> go.Figure:
    """Rows: the true class; columns: what the model said. Counts written in every cell."""
    names = list(class_names)
    fig = go.Figure(go.Heatmap(z=confusion, x=names, y=names, colorscale="Blues", text=confusion,
                               texttemplate="%{text}", hovertemplate=_t("confusion_hover", lang, true="%{y}",
                                                                         predicted="%{x}", count="%{z}")
                               + "<extra></extra>"))
    fig.update_layout(height=480, margin=dict(l=10, r=10, t=30, b=10),
                      xaxis=dict(title=_t("predicted_class", lang), type="category", side="top"),
                      yaxis=dict(title=_t("true_class", lang), type="category", autorange="reversed"))
    return fig


def per_class_bars(values: np.ndarray, class_names: Sequence[str], lang: str = "en") -> go.Figure:
    fig = go.Figure(go.Bar(x=list(class_names), y=[float(v) for v in np.nan_to_num(values)], marker_color=PALETTE[2],
                           text=[f"{v:.0%}" for v in np.nan_to_num(values)], textposition="outside"))
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=30, b=10),
                      yaxis=dict(range=[0, 1.1], title=_t("accuracy", lang)), xaxis=dict(type="category"))
    return fig


def tile(images: np.ndarray, columns: int = 8, scale: int = 1, gap: int = 1) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) values in [0, 1] as one uint8 picture of `columns` per row."""
    try:
        images = np.asarray(images)
    except (TypeError, ValueError):
        images = np.asarray(None)
    if images.dtype.kind not in "biuf":
        raise LabError("charts.tile_pictures", dtype=str(images.dtype))
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3) or 0 in images.shape:
        raise LabError("charts.tile_shape", shape=str(images.shape))
    columns, scale = checks.whole(columns, "columns", 0), checks.whole(scale, "scale", 1)
    gap = checks.whole(gap, "gap", 0)
    n, h, w = images.shape[:3]
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    cell_h, cell_w = h * scale + gap, w * scale + gap
    if (rows * cell_h - gap) * (columns * cell_w - gap) > MAX_TILE_PIXELS:
        raise LabError("charts.tile_too_big", height=str(rows * cell_h - gap), width=str(columns * cell_w - gap),
                       most=f"{MAX_TILE_PIXELS:,}")
    images = np.clip(np.nan_to_num(images.astype(np.float64)), 0, 1).astype(np.float32)
    sheet = np.ones((rows * cell_h - gap, columns * cell_w - gap) + images.shape[3:], dtype=np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        big = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
        sheet[r * cell_h: r * cell_h + h * scale, c * cell_w: c * cell_w + w * scale] = big
    return (sheet * 255).astype(np.uint8)


def zoo_scatter(rows: Sequence[dict], x: str, x_title: str, lang: str = "en") -> go.Figure:
    """ImageNet top-1 accuracy against a cost (parameters, time), one labelled point per model, log x axis."""
    shown = sorted((r for r in rows if r.get(x) is not None), key=lambda r: r[x])
    low, high = (math.log10(min(r[x] for r in shown)), math.log10(max(r[x] for r in shown))) if shown else (0, 1)
    fig = go.Figure(go.Scatter(
        x=[r[x] for r in shown], y=[r["top1"] for r in shown], mode="markers+text", text=[r["model"] for r in shown],
        textposition=["top center" if i % 2 else "bottom center" for i in range(len(shown))],  # neighbours alternate
        textfont=dict(size=10), marker=dict(size=9, color=PALETTE[0]),
        hovertemplate=_t("zoo_hover", lang, model="%{text}", cost=x_title, x="%{x}", top1="%{y}") + "<extra></extra>"))
    pad = 0.08 * (high - low or 1)
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=30, b=10), showlegend=False,
                      xaxis=dict(type="log", title=x_title, range=[low - pad, high + pad]),
                      yaxis=dict(title=_t("top1", lang)))
    return fig


def top_classes_bars(classes: Sequence[tuple[str, float]], lang: str = "en") -> go.Figure:
    """Horizontal bars for a model's most likely classes, the most likely on top."""
    names, probabilities = [c for c, _ in classes][::-1], [p for _, p in classes][::-1]
    fig = go.Figure(go.Bar(x=probabilities, y=names, orientation="h", marker_color=PALETTE[0],
                           text=[f"{p:.1%}" for p in probabilities], textposition="outside"))
    fig.update_layout(height=60 + 40 * len(names), margin=dict(l=10, r=10, t=10, b=10),
                      xaxis=dict(range=[0, 1.15], title=_t("probability", lang)))
    return fig


def channel_values(values: np.ndarray, lang: str = "en") -> go.Figure:
    """A layer whose maps are one pixel each (LeNet's C5: 120 channels of 1x1): a bar per channel, its value."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    fig = go.Figure(go.Bar(x=np.arange(len(values)), y=values, marker_color=PALETTE[0],
                           hovertemplate=_t("channel_hover", lang, channel="%{x}", value="%{y:.3g}")
                           + "<extra></extra>"))
    fig.update_layout(height=220, margin=dict(l=10, r=10, t=10, b=10), bargap=0.1,
                      xaxis=dict(title=_t("channel", lang)), yaxis=dict(title=_t("activation", lang)))
    return fig


def number_grid(values: np.ndarray, lang: str = "en", padding: np.ndarray | None = None, signed: bool = False,
                mark: tuple[int, int] | None = None, height: int = 260) -> go.Figure:
    """A small grid of numbers (a patch, a kernel, their products, a pooling window), each written in its
    cell; `padding` cells (outside the input) are shown empty, `mark` (row, col) is outlined."""
    values = np.asarray(values, dtype=np.float64)
    shown = np.where(padding, np.nan, values) if padding is not None else values
    text = [["" if np.isnan(v) else f"{v + 0.0:.3g}" for v in row] for row in shown]  # + 0.0: no "-0"
    fig = go.Figure(go.Heatmap(z=shown, text=text, texttemplate="%{text}", textfont=dict(size=10),
                               colorscale="RdBu" if signed else "Greys", reversescale=not signed,
                               zmid=0 if signed else None, zmin=None if signed else float(np.nanmin(shown)),
                               showscale=False, hovertemplate=_t("grid_hover", lang, row="%{y}", col="%{x}",
                                                                 value="%{z:.4g}") + "<extra></extra>"))
    if mark is not None:
        fig.add_shape(type="rect", x0=mark[1] - 0.5, x1=mark[1] + 0.5, y0=mark[0] - 0.5, y1=mark[0] + 0.5,
                      line=dict(color=PALETTE[1], width=3))
    fig.update_layout(height=height, margin=dict(l=4, r=4, t=4, b=4), xaxis=dict(visible=False, constrain="domain"),
                      yaxis=dict(visible=False, autorange="reversed", scaleanchor="x"))
    return fig


def picture_with_boxes(values: np.ndarray, boxes: Sequence[tuple[int, int, int, int]] = (), lang: str = "en",
                       clickable: bool = False, height: int = 300) -> go.Figure:
    """A map or an image (h, w) or (h, w, 3) with rectangles (top, left, bottom, right, inclusive) drawn on
    it: the patch a kernel reads, the cell it writes, the region a deep cell sees. With `clickable`, a
    click (or a tap) on a cell selects it: a point at every cell's centre, x its column and y its row."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 3:
        low, high = values.min(), values.max()
        trace = go.Image(z=np.round((values - low) / max(high - low, 1e-12) * 255).astype(np.uint8))
    else:
        trace = go.Heatmap(z=values, colorscale="Greys", reversescale=True, showscale=False,
                           hovertemplate=_t("grid_hover", lang, row="%{y}", col="%{x}", value="%{z:.4g}")
                           + "<extra></extra>")
    fig = go.Figure(trace)
    h, w = values.shape[:2]
    if clickable:
        rows, cols = np.mgrid[0:h, 0:w]
        cell = dict(size=max(4, 300 // max(h, w)), opacity=0.01, symbol="square", color="#000")
        fig.add_trace(go.Scatter(x=cols.ravel(), y=rows.ravel(), mode="markers", marker=cell, showlegend=False,
                                 hovertemplate=_t("cell_hover", lang, row="%{y}", col="%{x}") + "<extra></extra>"))
    for i, (top, left, bottom, right) in enumerate(boxes):
        fig.add_shape(type="rect", x0=left - 0.5, x1=right + 0.5, y0=top - 0.5, y1=bottom + 0.5,
                      line=dict(color=PALETTE[(1 + i) % len(PALETTE)], width=2 if i else 3))
    fig.update_layout(height=height, margin=dict(l=4, r=4, t=4, b=4), clickmode="event+select", dragmode=False,
                      xaxis=dict(visible=False, range=[-0.5, w - 0.5], constrain="domain"),
                      yaxis=dict(visible=False, range=[h - 0.5, -0.5], scaleanchor="x"))
    return fig


def _t(key: str, lang: str, **values) -> str:
    return i18n.text(f"charts.{key}", lang, **values)

