"""The class report's charts, drawn by matplotlib as SVG to sit inside the page: text kept as text (so that
it can be read, searched and scaled), no metadata, no reference to anything outside, ids made unique to
each chart. matplotlib is imported when a chart is drawn, never with this module: it is an optional
dependency (the ``class-report`` extra), and ``plotting_missing`` says what to install where it is absent.

A figure is made as a ``Figure`` of its own (no pyplot, so no global list of figures and no window), with
the settings of ``_SETTINGS`` for that drawing alone.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from grader.render.html import BACKGROUND, FOREGROUND, MUTED, PALETTE

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

EXTRA = "class-report"
BAR = PALETTE.ansi_colors[4].hex  # blue: a bar stands for no status
TEXT, GRID, PAGE = ("#{:02x}{:02x}{:02x}".format(*rgb) for rgb in (FOREGROUND, MUTED, BACKGROUND))
WIDTH_IN = 6.4  # a chart's width (the page scales it, to 28rem at the least); its height follows its bars
SCORE_BANDS = tuple(range(0, 101, 10))  # score bands of 10 percentage points; 100% falls in the last

_SETTINGS: dict[Any, Any] = {
    "svg.fonttype": "none",  # text as <text>, in the page's font
    "svg.hashsalt": "grader",  # the same ids for the same chart: a page drawn twice is the same page
    "text.parse_math": False,  # a case id with a $ in it is text, not TeX
    "font.family": "sans-serif",
    "font.size": 11,
    "text.color": TEXT,
    "axes.labelcolor": TEXT,
    "axes.edgecolor": GRID,
    "xtick.color": TEXT,
    "ytick.color": TEXT,
}


def plotting_missing() -> str | None:
    """What to install where matplotlib, which draws the charts, is missing; None where it is there."""
    if importlib.util.find_spec("matplotlib") is not None:
        return None
    return (
        f"the class report draws its charts with matplotlib, which is not installed: "
        f"pip install 'jax-grader[{EXTRA}]' (or pip install matplotlib)"
    )


def score_bands(percents: Sequence[float]) -> list[int]:
    """How many of ``percents`` fall in each band of ``SCORE_BANDS``: [0, 10), [10, 20), ... [90, 100]."""
    counts = [0] * (len(SCORE_BANDS) - 1)
    for percent in percents:
        counts[min(max(int(percent // 10), 0), len(counts) - 1)] += 1
    return counts


def score_histogram(percents: Sequence[float], *, chart_id: str, title: str) -> str:
    """How many submissions scored in each band of 10 percentage points, as an inline ``<svg>``."""
    from matplotlib.ticker import MaxNLocator

    counts = score_bands(percents)
    with _settings():
        figure, axes = _figure(3.2)
        bars = axes.bar(SCORE_BANDS[:-1], counts, width=10, align="edge", color=BAR, edgecolor=PAGE)
        axes.bar_label(bars, labels=[str(count) if count else "" for count in counts], padding=2)
        axes.set_xticks(list(SCORE_BANDS), [f"{band}%" for band in SCORE_BANDS])
        axes.set_xlim(0, 100)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylim(0, max([*counts, 1]) * 1.15)
        axes.set_xlabel("score (percent of the maximum)")
        axes.set_ylabel("submissions")
        return _svg(figure, chart_id=chart_id, title=title)


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    notes: Sequence[str],
    *,
    limit: float,
    axis: str,
    chart_id: str,
    title: str,
    whole: bool = False,
) -> str:
    """One horizontal bar per label, the first at the top, each with its note at its end (``75% (3/4)``),
    on an axis from 0 to ``limit`` (ticked at whole numbers alone where ``whole``), as an inline ``<svg>``."""
    from matplotlib.ticker import MaxNLocator

    with _settings():
        figure, axes = _figure(0.9 + 0.3 * len(labels))
        positions = list(range(len(labels)))
        bars = axes.barh(positions, list(values), color=BAR, height=0.7)
        axes.bar_label(bars, labels=list(notes), padding=3)
        axes.set_yticks(positions, list(labels))
        axes.invert_yaxis()
        axes.set_xlim(0, limit * 1.25)  # room for the notes at the ends of the longest bars
        axes.set_xlabel(axis)
        if whole:
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xticks([tick for tick in axes.get_xticks() if 0 <= tick <= limit])  # none past the longest bar
        return _svg(figure, chart_id=chart_id, title=title)


def _settings() -> contextlib.AbstractContextManager[None]:
    """matplotlib's settings for one chart, from making its figure to writing its SVG."""
    import matplotlib

    return matplotlib.rc_context(_SETTINGS)


def _figure(height_in: float) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH_IN, height_in), layout="constrained")
    axes = figure.add_subplot()
    axes.spines[["top", "right"]].set_visible(False)
    return figure, axes


def _svg(figure: Figure, *, chart_id: str, title: str) -> str:
    """The figure as an ``<svg>`` element for an HTML page: without the XML prolog, the metadata, the style
    sheet (the page's holds its one rule, for charts alone) and the namespace declarations (HTML gives inline
    SVG its namespace), its size set by the page, its ids prefixed with ``chart_id``, and ``title`` as its
    accessible name."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"\s*<metadata>.*?</metadata>|\s*<style[^>]*>.*?</style>", "", svg, flags=re.DOTALL)
    svg = (
        re.sub(r'\s(?:xmlns(?::xlink)?|width|height|version)="[^"]*"', "", svg[: svg.index(">")])
        + svg[svg.index(">") :]
    )
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{chart_id}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{chart_id}-\1)", svg)
    svg = re.sub(r'xlink:href="#([^"]+)"', rf'xlink:href="#{chart_id}-\1"', svg)
    from html import escape

    head = f'<svg class="chart" role="img" aria-labelledby="{chart_id}-title"'
    return svg.replace("<svg", head, 1).replace(">", f'><title id="{chart_id}-title">{escape(title)}</title>', 1)
