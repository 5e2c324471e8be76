"""The reports' PNGs: a sale's cumulative units sold over time per item, sell-out
marked; a campaign's cumulative paid GMV against its target, its phases shaded.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no global state), so
it is safe to call from a worker thread. Time runs on the x axis as seconds since the
epoch, so ticks fall on round UTC times (every 5 s, 15 min, ...) and read HH:MM:SS."""

import io
import unicodedata

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator

from app.moments import from_seconds, to_seconds
from app.reports.campaign_schemas import CampaignReport
from app.reports.schemas import EventReport, Timeline

WIDTH_PX, HEIGHT_PX, DPI = 1000, 500, 100
# Steps a reader counts in, in seconds: bucket lengths and tick spacing are one of them.
NICE_SECONDS = (
    *(0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30),
    *(60, 120, 300, 600, 900, 1800),
    *(3600, 7200, 10800, 21600, 43200, 86400),
)
MAX_BUCKETS = 120  # points per line: a sell-out in 6 s gets tenths of a second
MAX_TICKS = 8
# Items with the same curve (two items sold out together) must not hide each other:
# each has its own dash, marker and width, the later ones thinner, drawn on top.
LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
MARKERS_PER_LINE = 12


def nice_step(span_seconds: float, at_most: int) -> float:
    """The shortest step of NICE_SECONDS that cuts the span into at most `at_most`
    (whole days past the longest)."""
    for step in NICE_SECONDS:
        if span_seconds / step <= at_most:
            return step
    days = -(-span_seconds // (86400 * at_most))
    return float(days * 86400)


def _as_written(text: str) -> str:
    """An operator's text drawn as written, on one line. matplotlib reads the text between
    two `$` as mathtext: an item named "Buy 2 for $5 only $9" failed to draw (a 500); an
    escaped dollar is drawn as a dollar, and text with no unescaped pair is never parsed.
    Control characters (tabs, line breaks) have no glyph: drawn as spaces."""
    text = "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)
    return text.replace("$", r"\$")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:g} s"
    if seconds < 3600:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"


def time_label(seconds: float, *, step: float, span: float) -> str:
    """A tick's UTC time: HH:MM:SS, tenths when ticks are closer than a second, the date
    first when the chart spans more than a day, the date alone over more than a year."""
    try:
        moment = from_seconds(round(seconds, 1))
    except (ValueError, OverflowError):
        return ""  # past year 9999: the margin right of a window that ends then
    if span > 366 * 86400:
        return moment.strftime("%Y-%m-%d")
    label = moment.strftime("%H:%M:%S")
    if step < 1:
        label += f".{moment.microsecond // 100_000}"
    if span > 86400:
        label = moment.strftime("%m-%d ") + label
    return label


def _time_axis(axes: Axes, start: float, end: float) -> None:
    span = end - start
    step = nice_step(span, MAX_TICKS)
    axes.set_xlim(start, end + span * 0.08)  # room for the last "sold out"
    axes.xaxis.set_major_locator(MultipleLocator(step))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda x, _: time_label(x, step=step, span=span)))


def _canvas() -> tuple[Figure, Axes]:
    figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _png(figure: Figure) -> bytes:
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def draw(report: EventReport, timeline: Timeline) -> Figure:
    figure, axes = _canvas()
    times = [to_seconds(m) for m in timeline.moments]
    every = max(1, len(times) // MARKERS_PER_LINE)
    for index, item in enumerate(report.items):
        (line,) = axes.plot(
            times,
            timeline.units.get(item.id, [0] * len(times)),
            linestyle=LINE_STYLES[index % len(LINE_STYLES)],
            marker=MARKERS[index % len(MARKERS)],
            markevery=(index % every, every),
            markersize=5,
            linewidth=max(1.0, 3.0 - 0.6 * index),
            zorder=2 + index,
            label=f"#{item.id} {_as_written(item.name)} ({item.units} of {item.allocated})",
        )
        if item.sold_out_at is not None:
            sold_out = to_seconds(item.sold_out_at)
            axes.axvline(sold_out, color=line.get_color(), linestyle=":", linewidth=1)
            axes.annotate(
                "sold out",
                (sold_out, item.allocated),
                textcoords="offset points",
                xytext=(4, -12 - 10 * index),
                color=line.get_color(),
                fontsize=8,
            )
    axes.set_title(
        f"{_as_written(report.name)}: units sold, cumulative "
        f"(per {_duration(timeline.bucket_seconds)})"
    )
    axes.set_xlabel(f"time (UTC), {timeline.moments[0]:%Y-%m-%d}")
    axes.set_ylabel("units")
    axes.set_ylim(bottom=0, top=max(1.0, axes.get_ylim()[1]))  # whole units, nothing sold too
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    if report.items:
        axes.legend(loc="best", fontsize=8)
    axes.grid(alpha=0.3)
    _time_axis(axes, times[0], times[-1])
    figure.tight_layout()
    return figure


def report_png(report: EventReport, timeline: Timeline) -> bytes:
    return _png(draw(report, timeline))


PHASE_COLOURS = {"warm_up": "#f0ad4e", "peak": "#d9534f", "return": "#5bc0de"}
TARGET_COLOUR = "#c92a2a"


def _phases(axes: Axes, report: CampaignReport) -> None:
    """Each phase of the campaign shaded, its name at the top."""
    windows = {
        "warm_up": report.phases.warm_up,
        "peak": report.phases.peak,
        "return": report.phases.return_,
    }
    for name, window in windows.items():
        if window is None:
            continue
        starts, ends = to_seconds(window.starts_at), to_seconds(window.ends_at)
        axes.axvspan(starts, ends, color=PHASE_COLOURS[name], alpha=0.1, zorder=0)
        axes.text(
            starts,
            0.98,
            f" {name.replace('_', '-')}",
            transform=axes.get_xaxis_transform(),
            va="top",
            fontsize=8,
            color="#5b6478",
            clip_on=True,
        )


def draw_campaign(report: CampaignReport) -> Figure:
    """Cumulative paid GMV over the campaign against a horizontal line at its GMV target
    (when it has one)."""
    figure, axes = _canvas()
    series = report.series
    times = [to_seconds(p.at) for p in series.points]
    gmv = [float(p.gmv) for p in series.points]
    every = max(1, len(times) // MARKERS_PER_LINE)
    axes.plot(
        times,
        gmv,
        marker=MARKERS[0],
        markevery=every,
        markersize=5,
        linewidth=2.5,
        zorder=3,
        label=f"paid GMV ({report.gmv:,})",
    )
    top = max([1.0, *gmv])
    target = report.targets.gmv
    if target is not None:
        completion = "" if target.completion is None else f", {target.completion:.0%} reached"
        axes.axhline(
            float(target.target),
            color=TARGET_COLOUR,
            linestyle="--",
            linewidth=1.5,
            zorder=2,
            label=f"GMV target ({target.target:,}{completion})",
        )
        top = max(top, float(target.target))
    _phases(axes, report)
    axes.set_title(
        f"{_as_written(report.name)}: paid GMV, cumulative (per {_duration(series.bucket_seconds)})"
    )
    axes.set_xlabel(f"time (UTC), from {series.points[0].at:%Y-%m-%d}")
    axes.set_ylabel("GMV")
    axes.set_ylim(bottom=0, top=top * 1.1)
    axes.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:,.0f}"))
    axes.legend(loc="lower right", fontsize=8)
    axes.grid(alpha=0.3)
    _time_axis(axes, times[0], times[-1])
    figure.tight_layout()
    return figure


def campaign_png(report: CampaignReport) -> bytes:
    return _png(draw_campaign(report))
