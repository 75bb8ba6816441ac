"""Figures for people who would rather look than read, drawn with matplotlib (which Ultralytics already installs).

- :func:`explain_figure`: original (with the boxes) | heatmap | overlay, with a colorbar;
- :func:`grid_figure`: one image across candidates (layers, methods): an overlay per column;
- :func:`compare_figure`: models side by side, a row per model, columns detection and heatmap.

Every panel keeps the image's aspect ratio (the figure is sized from it) and labels are drawn by matplotlib, with a
CJK-capable font added to the fallback list when the system has one, so Chinese, Japanese and Korean class names
render as text rather than boxes. Figures are built on ``matplotlib.figure.Figure`` (no pyplot, no global state) and
written atomically.
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from ._logging import LOGGER, PREFIX

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage

    from .result import CamResult

__all__ = ["cjk_font", "compare_figure", "explain_figure", "font_family", "grid_figure"]

#: Font families with CJK glyphs, the first one installed is used (Noto CJK, WenQuanYi, Source Han, macOS, Windows).
CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Noto Sans CJK TC",
    "Noto Sans CJK KR",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Droid Sans Fallback",
    "AR PL UMing CN",
    "PingFang SC",
    "Hiragino Sans GB",
    "Microsoft YaHei",
    "SimHei",
    "Malgun Gothic",
    "Yu Gothic",
)
PANEL_INCHES = 3.6  # the width of one image panel
DPI = 110


@functools.cache
def cjk_font() -> str | None:
    """The name of an installed font family with CJK glyphs, or None."""
    from matplotlib import font_manager

    def pick() -> str | None:
        installed = {f.name for f in font_manager.fontManager.ttflist}
        return next((name for name in CJK_FONTS if name in installed), None)

    found = pick()
    if found is None:  # matplotlib's font cache predates the font's installation: add the system's CJK files
        pattern = re.compile(r"(wqy|cjk|sourcehan|droidsansfallback|msyh|simhei|pingfang|hiragino|malgun|yugoth)", re.I)
        for path in font_manager.findSystemFonts():
            if pattern.search(Path(path).name):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue
        found = pick()
    return found


def font_family(texts: Sequence[str] = ()) -> list[str]:
    """The font fallback list for ``texts``: DejaVu Sans, then a CJK font when one is installed.

    Logs a warning when a text is not ASCII and no CJK font is installed, naming the packages to install.
    """
    cjk = cjk_font()
    if cjk is None and any(not t.isascii() for t in texts):
        LOGGER.warning(
            f"{PREFIX}no CJK font found for non-ASCII labels; they may show as boxes. Install one, e.g. "
            "'apt-get install fonts-noto-cjk' (or fonts-wqy-zenhei), then delete matplotlib's font cache."
        )
    return ["DejaVu Sans", cjk] if cjk else ["DejaVu Sans"]


def _rgb(bgr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(bgr[..., ::-1])


def _cmap(cam: CamResult) -> str:
    """The matplotlib colormap of the CAM's OpenCV colormap name (the two libraries share jet, turbo, viridis...)."""
    from matplotlib import colormaps

    name = str(cam.display.get("colormap", "jet")).lower().removeprefix("colormap_")
    return name if name in colormaps else "jet"


def _labels(result: Any) -> list[str]:
    cam = result.cam
    return [f"{result.names.get(int(c), str(int(c)))} {float(p):.2f}" for c, p in zip(cam.cls, cam.conf)]


def _draw_predictions(ax: Axes, result: Any) -> None:
    """Boxes (rotated for OBB) and labels drawn by matplotlib, so every script renders with the figure's fonts."""
    from matplotlib.patches import Polygon, Rectangle

    labels = _labels(result)
    if result.probs is not None:
        ax.text(4, 4, "\n".join(labels[:3]), va="top", ha="left", fontsize=8, color="white",
                bbox={"facecolor": "black", "alpha": 0.6, "pad": 2, "linewidth": 0})  # fmt: skip
        return
    if result.obb is not None:
        polys = result.obb.xyxyxyxy.cpu().numpy()
        for poly, label in zip(polys, labels):
            ax.add_patch(Polygon(poly, closed=True, fill=False, edgecolor="lime", linewidth=1.5))
            ax.text(poly[0][0], poly[0][1], label, fontsize=7, color="black", va="bottom",
                    bbox={"facecolor": "lime", "alpha": 0.8, "pad": 1, "linewidth": 0})  # fmt: skip
        return
    if result.boxes is None:
        return
    for (x1, y1, x2, y2), label in zip(result.boxes.xyxy.cpu().numpy(), labels):
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="lime", linewidth=1.5))
        ax.text(x1, y1, label, fontsize=7, color="black", va="bottom",
                bbox={"facecolor": "lime", "alpha": 0.8, "pad": 1, "linewidth": 0})  # fmt: skip


@contextlib.contextmanager
def _fonts(texts: list[str]) -> Iterator[None]:
    """A matplotlib rc context whose font list covers ``texts`` (text properties are set at creation).

    matplotlib's font manager logs "Failed to find font weight normal" for CJK fonts that only come in weight 500;
    its logger is quieted meanwhile.
    """
    import logging

    from matplotlib import rc_context

    logger = logging.getLogger("matplotlib.font_manager")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with rc_context({"font.family": font_family(texts)}):  # a list of names: matplotlib falls back per glyph
            yield
    finally:
        logger.setLevel(level)


def _new_figure(rows: int, cols: int, hw: tuple[int, int], extra_width: float = 0.0) -> Figure:
    """A figure whose panels have the image's aspect ratio (plus room for titles and an optional colorbar)."""
    from matplotlib.figure import Figure

    h, w = hw
    panel_h = PANEL_INCHES * h / w
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure(figsize=(cols * PANEL_INCHES + extra_width + 0.4, rows * (panel_h + 0.45) + 0.5), dpi=DPI)
    FigureCanvasAgg(fig)  # a real canvas: the figure can be drawn and measured before it is saved
    fig.set_layout_engine("constrained")
    return fig


def _image_axis(ax: Axes, image: np.ndarray, title: str | None = None, **kwargs: Any) -> AxesImage:
    handle = ax.imshow(image, aspect="equal", interpolation="antialiased", **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return handle


def _save(fig: Figure, path: str | Path) -> Path:
    from .writers import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, buf.getvalue())


@overload
def explain_figure(result: Any, path: None = None, index: int | None = None, title: str | None = None) -> Figure: ...
@overload
def explain_figure(result: Any, path: str | Path, index: int | None = None, title: str | None = None) -> Path: ...
def explain_figure(
    result: Any, path: str | Path | None = None, index: int | None = None, title: str | None = None
) -> Path | Figure:
    """Original (with the predictions) | heatmap | overlay, with a colorbar; saved to ``path`` when given.

    Args:
        result: a ``Results`` with ``r.cam``.
        path: where to write the PNG (its folder is created); None returns the figure only.
        index: show only prediction ``index``'s map.
        title: the figure's title (default: the method, the layers and the predictions).

    Returns:
        The written path, or the ``matplotlib.figure.Figure`` when ``path`` is None.
    """
    cam = result.cam
    maps = cam.maps if index is None else cam.maps[index : index + 1]
    heat = maps.max(0) if len(maps) else np.zeros(cam.geometry.orig_hw, np.float32)
    labels = _labels(result)
    title = title or f"{cam.method}, layers={','.join(map(str, cam.layers))}: " + (", ".join(labels[:6]) or "nothing")
    with _fonts([title, *labels]):
        fig = _new_figure(1, 3, result.orig_img.shape[:2], extra_width=0.6)
        axes = fig.subplots(1, 3)
        _image_axis(axes[0], _rgb(result.orig_img), "original")
        _draw_predictions(axes[0], result)
        handle = _image_axis(axes[1], heat, "heatmap", cmap=_cmap(cam), vmin=0, vmax=1)
        _image_axis(axes[2], _rgb(cam.plot(index=index, show_boxes=False)), "overlay")
        fig.colorbar(handle, ax=list(axes), shrink=0.8, label="activation (0-1)")
        fig.suptitle(title, fontsize=10)
        return fig if path is None else _save(fig, path)


@overload
def grid_figure(items: list[tuple[str, Any]], path: None = None, title: str | None = None, cols: int = 4) -> Figure: ...
@overload
def grid_figure(items: list[tuple[str, Any]], path: str | Path, title: str | None = None, cols: int = 4) -> Path: ...
def grid_figure(
    items: list[tuple[str, Any]], path: str | Path | None = None, title: str | None = None, cols: int = 4
) -> Path | Figure:
    """One image across candidates: an overlay per ``(label, result)``, ``cols`` per row; saved to ``path`` when given.

    Returns:
        The written path, or the ``matplotlib.figure.Figure`` when ``path`` is None.

    Raises:
        ValueError: ``items`` is empty.
    """
    if not items:
        raise ValueError("grid_figure needs at least one (label, result) pair.")
    n = len(items)
    cols = min(cols, n)
    rows = -(-n // cols)
    first = items[0][1]
    texts = [label for label, _ in items] + [title or ""] + _labels(first)
    with _fonts(texts):
        fig = _new_figure(rows, cols, first.orig_img.shape[:2])
        axes = np.atleast_1d(fig.subplots(rows, cols)).reshape(-1)
        for ax, (label, r) in zip(axes, items):
            _image_axis(ax, _rgb(r.cam.plot(show_boxes=False)), label)
            _draw_predictions(ax, r)
        for ax in axes[n:]:
            ax.set_axis_off()
        if title:
            fig.suptitle(title, fontsize=10)
        return fig if path is None else _save(fig, path)


@overload
def compare_figure(rows: list[tuple[str, Any]], path: None = None, title: str | None = None) -> Figure: ...
@overload
def compare_figure(rows: list[tuple[str, Any]], path: str | Path, title: str | None = None) -> Path: ...
def compare_figure(
    rows: list[tuple[str, Any]], path: str | Path | None = None, title: str | None = None
) -> Path | Figure:
    """Models side by side: a row per ``(label, result)``, columns detection and heatmap overlay.

    Returns:
        The written path, or the ``matplotlib.figure.Figure`` when ``path`` is None.

    Raises:
        ValueError: ``rows`` is empty.
    """
    if not rows:
        raise ValueError("compare_figure needs at least one (label, result) pair.")
    texts = [label for label, _ in rows] + [title or ""] + [t for _, r in rows for t in _labels(r)]
    with _fonts(texts):
        fig = _new_figure(len(rows), 2, rows[0][1].orig_img.shape[:2], extra_width=0.4)
        axes = np.asarray(fig.subplots(len(rows), 2)).reshape(len(rows), 2)
        for (label, r), (ax_det, ax_heat) in zip(rows, axes):
            _image_axis(ax_det, _rgb(r.orig_img), f"{label}: detection")
            _draw_predictions(ax_det, r)
            _image_axis(ax_heat, _rgb(r.cam.plot(show_boxes=False)), f"{label}: {r.cam.method}")
            ax_det.set_ylabel(label, fontsize=9)
        if title:
            fig.suptitle(title, fontsize=10)
        return fig if path is None else _save(fig, path)
