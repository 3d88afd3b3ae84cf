"""HTML for people: one report as the terminal shows it (``report_html``), and the palette the class report's
page draws in. Every text colour of the palette meets WCAG AA (a contrast of 4.5:1 or more) on the page's
white; the statuses take their colour names from ``grader.render.style`` and their hex values from here.

A report is the terminal's renderable (``ReportView``) laid out by a recording Console and exported with
inline styles. Before it is recorded, each style is made explicit where rich's HTML would lose contrast:
dim text (which rich exports as its colour half-way to the background) is drawn in the muted grey,
reversed text (a status badge) gets both of its colours, and links are dropped (a report holds text from
submissions, which must not turn into a link). rich escapes the text itself.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

from rich.color import Color
from rich.color_triplet import ColorTriplet
from rich.console import Console
from rich.segment import Segment, Segments
from rich.style import Style
from rich.terminal_theme import TerminalTheme

from grader.render.formats import FILE_WIDTH
from grader.render.terminal import ReportView
from grader.report.schema import Report

RGB = tuple[int, int, int]

BACKGROUND: RGB = (255, 255, 255)
FOREGROUND: RGB = (31, 35, 40)
MUTED: RGB = (87, 96, 106)  # dim text, what did not run, and ANSI white (unreadable on white as it is)

# rich's colour names as the page draws them: the eight ANSI colours, dark enough to read on white.
PALETTE = TerminalTheme(
    BACKGROUND,
    FOREGROUND,
    [
        FOREGROUND,  # black
        (180, 35, 24),  # red
        (17, 110, 45),  # green
        (125, 83, 0),  # yellow
        (9, 80, 180),  # blue
        (133, 38, 153),  # magenta
        (0, 106, 117),  # cyan
        MUTED,  # white
    ],
)


def css_colour(colour: str) -> str:
    """A status' colour (a rich colour name, or ``dim``) as the page draws it: ``#116e2d`` for ``green``."""
    if colour == "dim":
        return ColorTriplet(*MUTED).hex
    return Color.parse(colour).get_truecolor(PALETTE).hex


def contrast_ratio(first: RGB, second: RGB) -> float:
    """WCAG 2's contrast ratio of two sRGB colours, from 1 (the same) to 21 (black on white)."""
    lighter, darker = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _luminance(rgb: RGB) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    red, green, blue = (channel(value) for value in rgb)
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def report_html(report: Report, *, width: int = FILE_WIDTH) -> str:
    """The report the terminal shows, as an HTML ``<pre>`` (escaped, inline styles) at ``width`` columns."""
    layout = Console(file=io.StringIO(), width=width, color_system="truecolor", force_terminal=True, emoji=False)
    lines = layout.render_lines(ReportView(report), layout.options, pad=False, new_lines=True)
    recorder = Console(
        file=io.StringIO(), record=True, width=width, color_system="truecolor", force_terminal=True, emoji=False
    )
    recorder.print(Segments(_legible(segment for line in lines for segment in line)), crop=False)
    return recorder.export_html(theme=PALETTE, inline_styles=True, code_format='<pre class="terminal">{code}</pre>')


def _legible(segments: Iterable[Segment]) -> Iterator[Segment]:
    """The segments with every style explicit where rich's HTML export would lose contrast (see above)."""
    for text, style, control in segments:
        yield Segment(text, _explicit(style) if style is not None and not control else style, control)


def _explicit(style: Style) -> Style:
    colour, background = style.color, style.bgcolor
    if style.reverse:  # the badge of a verdict: its colour behind the page's white
        colour, background = background or _colour(BACKGROUND), colour or _colour(FOREGROUND)
    if style.dim and (colour is None or colour.is_default):
        colour = _colour(MUTED)
    return Style(
        color=colour,
        bgcolor=background,
        bold=style.bold,
        italic=style.italic,
        underline=style.underline,
        strike=style.strike,
    )


def _colour(rgb: RGB) -> Color:
    return Color.from_triplet(ColorTriplet(*rgb))
