"""The PNG artefacts: the per-core Gantt chart (timeline.png), HBM bandwidth and pipe busy fractions over
time (utilisation.png), and the per-scope comparison of two runs (compare.png).

Figures are plain `matplotlib.figure.Figure` objects on an Agg canvas: no display, no pyplot state, no
backend switch for a program that imports this module. They have a fixed width and heights that grow with
the number of rows, so a decode layer (~1500 tasks on 72 cores) stays legible. Time is in µs.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from npusim.graph import Execution
from npusim.timing import KernelSchedule, Timeline
from npusim.vocabulary import PIPES

from .artefacts import write_atomic
from .report import Report, ScopeSummary

DPI = 100
WIDTH_IN = 16.0
ROW_IN = 0.16  # height of one core row in the Gantt chart
LEVEL_IN = 0.22  # height of one level of the scope strip
MIN_HEIGHT_IN = 4.0
LEFT_IN, RIGHT_IN = 0.8, 2.1  # room for the row labels and for the legend
TOP_IN, BOTTOM_IN = 0.55, 0.55
NO_SCOPE = "(no scope)"
PIPE_COLOURS = {
    "mte2": "tab:blue", "mte1": "tab:cyan", "cube": "tab:red", "fixpipe": "tab:orange",
    "vector": "tab:green", "mte3": "tab:purple", "scalar": "tab:gray",
}

STYLE = {"font.size": 8, "axes.titlesize": 10, "axes.labelsize": 8, "legend.fontsize": 7, "xtick.labelsize": 7,
         "ytick.labelsize": 7}


@dataclass
class Chart:
    """What a drawing function drew, for tests and callers: bars, row labels and the PNG size in pixels."""

    bars: int
    rows: list[str]
    size_px: tuple[int, int]


@dataclass
class ScopeSpan:
    """A top-level scope's extent in cycles (first task start to last task end) and its colour."""

    name: str
    start: float
    end: float
    colour: Any
    level: int = 0  # row in the scope strip (overlapping spans go to different levels)


@dataclass
class Utilisation:
    """Binned activity over the run: HBM bandwidth (GB/s) and busy fraction per "side pipe" lane."""

    edges_us: np.ndarray  # bin edges, len(bins) + 1
    hbm_gbps: np.ndarray  # bandwidth in use, mean over each bin
    hbm_demand_gbps: np.ndarray  # what the running tasks would pull at full speed (above the limit: memory-bound)
    hbm_limit_gbps: float
    busy: dict[str, np.ndarray]  # "aic cube", "aiv vector", ...: busy fraction in [0, 1] over all cores


# --- shared pieces ---------------------------------------------------------------------------------------


def _top_scope(execution: Execution, task: int) -> str:
    scopes = execution.tasks[task].scopes
    return scopes[0] if scopes else NO_SCOPE


def _palette(n: int) -> list[Any]:
    """tab10 up to 10 scopes, tab20 beyond (colours repeat past 20)."""
    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def scope_spans(execution: Execution, timeline: Timeline) -> list[ScopeSpan]:
    """The top-level scopes that ran tasks, in program order, with their extents and strip levels."""
    extent: dict[str, list[float]] = {}
    for r in timeline.runs:
        span = extent.setdefault(_top_scope(execution, r.task), [r.start, r.end])
        span[0], span[1] = min(span[0], r.start), max(span[1], r.end)
    order = [s for s in execution.scopes if "/" not in s and s in extent]
    order += [s for s in extent if s not in order]
    spans = [ScopeSpan(name, *extent[name], colour) for name, colour in zip(order, _palette(len(order)), strict=True)]
    level_ends: list[float] = []  # greedy interval packing: first level free by the span's start
    for span in sorted(spans, key=lambda s: s.start):
        span.level = next((i for i, end in enumerate(level_ends) if end <= span.start), len(level_ends))
        if span.level == len(level_ends):
            level_ends.append(span.end)
        level_ends[span.level] = span.end
    return spans


def _levels(spans: list[ScopeSpan]) -> int:
    return max((s.level for s in spans), default=0) + 1


def _draw_scope_strip(ax: Axes, spans: list[ScopeSpan], us: float) -> None:
    """One bar per top-level scope over its extent, named inside the bar (clipped to it)."""
    levels = _levels(spans)
    for s in spans:
        rect = Rectangle((s.start * us, levels - 1 - s.level + 0.1), (s.end - s.start) * us, 0.8,
                         facecolor=s.colour, alpha=0.55, edgecolor=s.colour, linewidth=0.8)
        ax.add_patch(rect)
        text = ax.text(s.start * us, levels - 1 - s.level + 0.5, f" {s.name}", va="center", ha="left",
                       fontsize=7)
        text.set_clip_path(rect)
    ax.set_ylim(0, levels)
    ax.set_yticks([])
    ax.set_ylabel("scopes", rotation=0, ha="right", va="center")
    ax.tick_params(axis="x", labelbottom=False)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)


def _mark_scopes(ax: Axes, spans: list[ScopeSpan], us: float, shade: bool) -> None:
    """Dashed lines at each top-level scope's start, dotted at its end; optionally a faint shaded span."""
    for s in spans:
        ax.axvline(s.start * us, color=s.colour, linestyle="--", linewidth=0.8, alpha=0.8, zorder=1)
        ax.axvline(s.end * us, color=s.colour, linestyle=":", linewidth=0.8, alpha=0.8, zorder=1)
        if shade:
            ax.axvspan(s.start * us, s.end * us, color=s.colour, alpha=0.07, linewidth=0, zorder=0)


def _title(execution: Execution, timeline: Timeline) -> str:
    program = execution.program + (f" (preset {execution.preset})" if execution.preset else "")
    total_us = timeline.cycles / timeline.hw.clock_hz * 1e6
    return (f"{program} on {timeline.hw.name}: {len(timeline.runs)} tasks, {total_us:.2f} µs "
            f"({timeline.cycles:.0f} cycles at {timeline.hw.clock_hz / 1e9:.2f} GHz)")


def _axes(fig: Figure, top_in: float, height_in: float) -> Axes:
    """An axes at a fixed position in inches (from the top), so figure sizes are exact and predictable."""
    w, h = fig.get_size_inches()
    return fig.add_axes((LEFT_IN / w, 1 - (top_in + height_in) / h, (w - LEFT_IN - RIGHT_IN) / w, height_in / h))


def _figure(width_in: float, height_in: float, **kw: Any) -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=DPI, **kw)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> tuple[int, int]:
    """Write the PNG atomically; returns its size in pixels."""
    write_atomic(path, lambda fh: fig.savefig(fh, format="png", dpi=DPI))
    w, h = fig.get_size_inches()
    return round(w * DPI), round(h * DPI)


# --- timeline.png ----------------------------------------------------------------------------------------


def timeline_height(rows: int, levels: int) -> float:
    """Figure height in inches for `rows` core rows and `levels` scope-strip levels."""
    return max(MIN_HEIGHT_IN, TOP_IN + levels * LEVEL_IN + 0.1 + rows * ROW_IN + BOTTOM_IN)


def write_timeline(path: Path, execution: Execution, timeline: Timeline) -> Chart:
    """Gantt chart: one row per core that ran something (AICs first), one bar per task per core it ran
    on, coloured by top-level scope, with the scopes' extents in a strip on top and marked by lines."""
    hw, us = timeline.hw, 1e6 / timeline.hw.clock_hz
    aic = sorted({r.aic for r in timeline.runs if r.aic is not None})
    aiv = sorted({r.aiv for r in timeline.runs if r.aiv is not None})
    row_of = {("aic", c): i for i, c in enumerate(aic)} | {("aiv", c): len(aic) + i for i, c in enumerate(aiv)}
    labels = [f"AIC {c}" for c in aic] + [f"AIV {c}" for c in aiv]
    spans = scope_spans(execution, timeline)

    verts: dict[str, list[list[tuple[float, float]]]] = defaultdict(list)
    for r in timeline.runs:
        x0, x1 = r.start * us, r.end * us
        for kind, core in (("aic", r.aic), ("aiv", r.aiv)):
            if core is not None:
                y = row_of[(kind, core)]
                verts[_top_scope(execution, r.task)].append([(x0, y - 0.4), (x0, y + 0.4), (x1, y + 0.4),
                                                             (x1, y - 0.4)])

    levels = _levels(spans)
    height = timeline_height(len(labels), levels)
    with matplotlib.rc_context(STYLE):
        fig = _figure(WIDTH_IN, height)
        strip = _axes(fig, TOP_IN, levels * LEVEL_IN)
        top = TOP_IN + levels * LEVEL_IN + 0.1
        gantt = _axes(fig, top, height - top - BOTTOM_IN)
        gantt.sharex(strip)
        bars = 0
        for s in spans:
            coll = PolyCollection(verts[s.name], facecolors=[s.colour], edgecolors="white", linewidths=0.3,
                                  zorder=2)
            gantt.add_collection(coll)
            bars += len(coll.get_paths())
        _mark_scopes(gantt, spans, us, shade=False)
        _draw_scope_strip(strip, spans, us)
        gantt.set_yticks(range(len(labels)), labels)
        gantt.set_ylim(len(labels) - 0.5, -0.5)  # first row at the top
        gantt.set_xlim(0, max(timeline.cycles * us, 1e-3) * 1.005)
        gantt.set_xlabel("time (µs)")
        gantt.grid(axis="x", linewidth=0.3, alpha=0.5)
        if not labels:
            gantt.text(0.5, 0.5, "no tasks", transform=gantt.transAxes, ha="center")
        fig.legend(handles=[Patch(facecolor=s.colour, label=s.name) for s in spans], title="top-level scope",
                   loc="upper left", bbox_to_anchor=(1 - (RIGHT_IN - 0.15) / WIDTH_IN, 1 - top / height),
                   frameon=False)
        fig.suptitle(f"{_title(execution, timeline)}  ·  {len(aic)} of {hw.num_aic} AIC, {len(aiv)} of "
                     f"{hw.num_aiv} AIV used", x=LEFT_IN / WIDTH_IN, ha="left", y=1 - 0.12 / height, va="top")
        size = _save(fig, path)
    return Chart(bars, labels, size)


# --- utilisation.png -------------------------------------------------------------------------------------


def integrate(times: np.ndarray, steps: np.ndarray, edges: np.ndarray, cap: float = np.inf) -> np.ndarray:
    """Per-bin integral of the step function min(sum of `steps` at `times` up to t, cap): exact, since its
    running integral is piecewise linear between the step times."""
    if not len(times):
        return np.zeros(len(edges) - 1)
    order = np.argsort(times, kind="stable")
    t = times[order]
    level = np.minimum(np.cumsum(steps[order]), cap)
    running = np.concatenate([[0.0], np.cumsum(level[:-1] * np.diff(t))])
    return np.diff(np.interp(edges, t, running))


def _intervals(starts: np.ndarray, ends: np.ndarray, rates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step times and sizes of a sum of rates, each active over [start, end)."""
    return np.concatenate([starts, ends]), np.concatenate([rates, -rates])


def _op_arrays(sched: KernelSchedule) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A schedule's op intervals grouped by "side pipe" lane."""
    lanes: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for op in sched.ops:
        lane = lanes[f"{op.side} {op.pipe}"]
        lane[0].append(op.start)
        lane[1].append(op.end)
    return {k: (np.asarray(a), np.asarray(b)) for k, (a, b) in lanes.items()}


def utilisation(timeline: Timeline, bins: int = 300) -> Utilisation:
    """HBM traffic and pipe busy fractions, binned over the run.

    HBM follows the engine's fluid model: a running task asks for its GM bytes over its standalone cycles
    (its demand), and max-min fair sharing hands out min(total demand, HBM bandwidth). Op intervals are
    stretched uniformly like their task (the engine gives only each task's overall stretch)."""
    hw = timeline.hw
    edges = np.linspace(0.0, max(timeline.cycles, 1.0), bins + 1)
    bin_cycles = edges[1] - edges[0]
    bin_s = bin_cycles / hw.clock_hz
    runs = timeline.runs
    demand = np.array([r.schedule.gm_bytes / r.schedule.cycles if r.schedule.cycles else 0.0 for r in runs])
    times, steps = _intervals(np.array([r.start for r in runs]), np.array([r.end for r in runs]), demand)
    hbm = integrate(times, steps, edges, hw.hbm_bytes_per_cycle) / bin_s / 1e9
    wanted = integrate(times, steps, edges) / bin_s / 1e9

    cache: dict[int, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    lanes: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = defaultdict(lambda: ([], []))
    for r in runs:
        arrays = cache.get(id(r.schedule))
        if arrays is None:
            arrays = cache[id(r.schedule)] = _op_arrays(r.schedule)
        for lane, (a, b) in arrays.items():
            lanes[lane][0].append(r.start + a * r.stretch)
            lanes[lane][1].append(r.start + b * r.stretch)
    cores = {"aic": hw.num_aic, "aiv": hw.num_aiv}
    busy: dict[str, np.ndarray] = {}
    for side in ("aic", "aiv"):
        for pipe in PIPES:
            lane = f"{side} {pipe}"
            if lane in lanes:
                s, e = np.concatenate(lanes[lane][0]), np.concatenate(lanes[lane][1])
                busy[lane] = integrate(*_intervals(s, e, np.ones(len(s))), edges) / (bin_cycles * cores[side])
    return Utilisation(edges / hw.clock_hz * 1e6, hbm, wanted, hw.hbm_bytes_per_s / 1e9, busy)


def write_utilisation(path: Path, execution: Execution, timeline: Timeline, bins: int = 300) -> Utilisation:
    """HBM bandwidth against its limit, and AIC / AIV pipe busy fractions over time, under the scope strip:
    a memory-bound scope shows as HBM at the limit with idle compute pipes."""
    util = utilisation(timeline, bins)
    hw, us = timeline.hw, 1e6 / timeline.hw.clock_hz
    spans = scope_spans(execution, timeline)
    levels = _levels(spans)
    panel, gap = 2.3, 0.15
    top = TOP_IN + levels * LEVEL_IN + 0.1
    height = top + 3 * (panel + gap) + BOTTOM_IN
    edges = util.edges_us
    with matplotlib.rc_context(STYLE):
        fig = _figure(WIDTH_IN, height)
        strip = _axes(fig, TOP_IN, levels * LEVEL_IN)
        axes = [_axes(fig, top + i * (panel + gap), panel) for i in range(3)]
        for ax in axes:
            ax.sharex(strip)
        _draw_scope_strip(strip, spans, us)

        hbm = axes[0]
        peak = float(util.hbm_demand_gbps.max(initial=0.0))
        hbm.stairs(util.hbm_gbps, edges, fill=True, color="tab:blue", alpha=0.6,
                   label=f"in use (mean {float(np.mean(util.hbm_gbps)):.0f} GB/s)")
        hbm.stairs(util.hbm_demand_gbps, edges, color="black", linewidth=0.8,
                   label=f"tasks' demand (peak {peak:.0f} GB/s)")
        hbm.axhline(util.hbm_limit_gbps, color="tab:red", linestyle="--", linewidth=1.0,
                    label=f"limit {util.hbm_limit_gbps:.0f} GB/s")
        hbm.set_ylim(0, max(util.hbm_limit_gbps, min(peak, 2.5 * util.hbm_limit_gbps)) * 1.12)
        hbm.set_ylabel("HBM GB/s")
        for ax, side, cores in ((axes[1], "aic", hw.num_aic), (axes[2], "aiv", hw.num_aiv)):
            top_pct = 10.0
            for pipe in PIPES:
                values = util.busy.get(f"{side} {pipe}")
                if values is not None:
                    ax.stairs(values * 100, edges, color=PIPE_COLOURS[pipe], linewidth=1.0,
                              label=f"{pipe} (mean {float(np.mean(values)) * 100:.1f}%)")
                    top_pct = max(top_pct, float(values.max()) * 115)
            ax.set_ylim(0, min(top_pct, 105))
            ax.set_ylabel(f"{side.upper()} pipes busy %\n(all {cores} cores)")
        for ax in axes:
            _mark_scopes(ax, spans, us, shade=True)
            ax.grid(linewidth=0.3, alpha=0.5)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False)
            ax.tick_params(axis="x", labelbottom=ax is axes[-1])
        axes[-1].set_xlabel("time (µs)")
        axes[-1].set_xlim(0, edges[-1] * 1.005)
        fig.suptitle(f"{_title(execution, timeline)}  ·  {bins} bins of {edges[1] - edges[0]:.3g} µs",
                     x=LEFT_IN / WIDTH_IN, ha="left", y=1 - 0.12 / height, va="top")
        _save(fig, path)
    return util


# --- compare.png -----------------------------------------------------------------------------------------


def _top_level(report: Report) -> dict[str, ScopeSummary]:
    return {s.name: s for s in report.scopes if "/" not in s.name}


def write_compare_chart(path: Path, report_a: Report, report_b: Report, label_a: str, label_b: str) -> Chart:
    """Per top-level scope, A and B side by side: latency (µs) and DMA traffic (MB, all paths). A scope
    present in only one run gets a zero bar in the other, so every panel has two bars per scope."""
    a, b = _top_level(report_a), _top_level(report_b)
    names = list(a) + [n for n in b if n not in a]
    x = np.arange(len(names))
    metrics = (("latency (µs)", lambda s: s.us), ("DMA traffic (MB)", lambda s: s.dma.total_bytes() / 1e6))
    tilt = len(names) > 6
    bars = 0
    with matplotlib.rc_context(STYLE):
        fig = _figure(max(8.0, min(WIDTH_IN, 2.0 + 0.8 * len(names))), 7.5, layout="constrained")
        axes = fig.subplots(2, 1, sharex=True)
        for ax, (ylabel, value) in zip(axes, metrics, strict=True):
            va = [value(a[n]) if n in a else 0.0 for n in names]
            vb = [value(b[n]) if n in b else 0.0 for n in names]
            for offset, values, label, colour in ((-0.2, va, label_a, "tab:blue"), (0.2, vb, label_b, "tab:orange")):
                bars += len(ax.bar(x + offset, values, width=0.4, label=label, color=colour))
            for i, (p, q) in enumerate(zip(va, vb, strict=True)):
                if p > 0 and q > 0 and p != q:
                    ax.annotate(f"{(q - p) / p * 100:+.0f}%", (x[i] + 0.2, q), xytext=(0, 2),
                                textcoords="offset points", ha="center", va="bottom", fontsize=7)
            ax.set_ylabel(ylabel)
            ax.grid(axis="y", linewidth=0.3, alpha=0.5)
            ax.margins(y=0.12)
        axes[0].legend(frameon=False)
        axes[1].set_xticks(x, names, rotation=30 if tilt else 0, ha="right" if tilt else "center")
        axes[0].set_title(f"A = {label_a}, B = {label_b}\ntotal {report_a.total.us:.2f} µs (A) vs "
                          f"{report_b.total.us:.2f} µs (B); labels: change of B against A", fontsize=9)
        size = _save(fig, path)
    return Chart(bars, names, size)
