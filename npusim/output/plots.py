"""The PNG artefacts:
- timeline.png: one row per core, one bar per task coloured by kernel (legend: kernel, scope, tasks), the
  critical path outlined and joined, and the gaps when every core of a kind idled labelled with what
  they waited on;
- utilisation.png: HBM bandwidth against its limit, and per core kind the share of cores with a task and
  how busy the pipes of those *active* cores were;
- kernels.png: per kernel, its exec time (the HBM-throttled part marked) and its pipes' busy time;
- compare.png: every scope of two runs side by side, the changes labelled.

Every title carries the run's provenance (config file and hash, overrides, seed, npusim version). Figures are
plain `matplotlib.figure.Figure` objects on an Agg canvas: no display, no pyplot state, no backend switch
for a program that imports this module. They have a fixed width and heights that grow with the number of
rows, so a decode layer (~1500 tasks on 72 cores, 19 kernels) stays legible. Time is in µs.
"""

from __future__ import annotations

import functools
import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from npusim.graph import Execution
from npusim.timing import KernelSchedule, Timeline
from npusim.vocabulary import PIPES

from .artefacts import write_atomic
from .report import IdleGap, Report, merge_gaps
from .summaries import kernel_groups

DPI = 100
WIDTH_IN = 16.0
ROW_IN = 0.16  # height of one core row in the Gantt chart
LEVEL_IN = 0.22  # height of one level of the scope strip
MIN_HEIGHT_IN = 4.0
LEFT_IN, RIGHT_IN = 0.8, 2.1  # room for the row labels and for the legend
TOP_IN, BOTTOM_IN = 0.7, 0.55  # the top holds a two-line title (run, provenance)
BAR_ROW_IN = 0.3  # one kernel or scope row of a bar chart
NO_SCOPE = "(no scope)"
MAX_COLOURS = 20  # kernels beyond the 19 with the most exec time share one grey "other kernels" colour
OTHER = "other kernels"
PIPE_COLOURS = {
    "mte2": "tab:blue", "mte1": "tab:cyan", "cube": "tab:red", "fixpipe": "tab:orange",
    "vector": "tab:green", "mte3": "tab:purple", "scalar": "tab:gray",
}
CRITICAL = "black"

STYLE = {"font.size": 8, "axes.titlesize": 10, "axes.labelsize": 8, "legend.fontsize": 7, "xtick.labelsize": 7,
         "ytick.labelsize": 7}
TITLE_PT = 9  # suptitle font size


@dataclass
class Chart:
    """What a drawing function drew, for tests and callers: bars, row labels, the PNG size in pixels, the
    legend entries and the text labels put on the plot (gaps, changes), and the title's lines."""

    bars: int
    rows: list[str]
    size_px: tuple[int, int]
    legend: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    title: list[str] = field(default_factory=list)


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
    """Binned activity over the run: HBM bandwidth (GB/s) and, per "side pipe" lane, its busy fraction over
    all cores of the side (`busy`) and over the side's active cores (`busy_active`); `active`: the fraction
    of a side's cores with a task, per bin."""

    edges_us: np.ndarray  # bin edges, len(bins) + 1
    hbm_gbps: np.ndarray  # bandwidth in use, mean over each bin
    hbm_demand_gbps: np.ndarray  # what the running tasks would pull at full speed (above the limit: memory-bound)
    hbm_limit_gbps: float
    busy: dict[str, np.ndarray]  # "aic cube", "aiv vector", ...: busy fraction in [0, 1] over all cores
    active: dict[str, np.ndarray]  # "aic", "aiv": fraction of the side's cores running a task
    busy_active: dict[str, np.ndarray]  # busy over active core time (0 where no core was active)
    mean_active: dict[str, float]  # per lane: busy cycles over active core cycles, the whole run


# --- shared pieces ---------------------------------------------------------------------------------------


def _top_scope(execution: Execution, task: int) -> str:
    scopes = execution.tasks[task].scopes
    return scopes[0] if scopes else NO_SCOPE


def _palette(n: int) -> list[Any]:
    """tab10 up to 10 entries; beyond, tab20's dark shades then its light ones (its greys left for "other
    kernels"), so that neighbours in program order differ in hue, then two of tab20b (repeating past 20)."""
    if n <= 10:
        return [matplotlib.colormaps["tab10"](i) for i in range(n)]
    tab20, tab20b = matplotlib.colormaps["tab20"], matplotlib.colormaps["tab20b"]
    colours = [tab20(i) for i in (0, 2, 4, 6, 8, 10, 12, 16, 18, 1, 3, 5, 7, 9, 11, 13, 17, 19)]
    colours += [tab20b(2), tab20b(10)]
    return [colours[i % len(colours)] for i in range(n)]


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


def _run_title(execution: Execution, timeline: Timeline) -> str:
    program = execution.program + (f" (preset {execution.preset})" if execution.preset else "")
    total_us = timeline.cycles / timeline.hw.clock_hz * 1e6
    return (f"{program} on {timeline.hw.name}: {len(timeline.runs)} tasks, {total_us:.2f} µs "
            f"({timeline.cycles:.0f} cycles at {timeline.hw.clock_hz / 1e9:.2f} GHz)")


@functools.cache
def _renderer() -> Any:
    return _figure(1.0, 1.0).canvas.get_renderer()


def text_width_in(text: str, size_pt: float = TITLE_PT) -> float:
    """The width of one line of text in the default font, in inches, as the Agg renderer draws it."""
    width, _, _ = _renderer().get_text_width_height_descent(text, FontProperties(size=size_pt), ismath=False)
    return width / DPI


def wrap_title(lines: list[str], width_in: float, size_pt: float = TITLE_PT) -> list[str]:
    """Title lines wrapped at spaces (a word wider than the line is cut) so that each fits `width_in`."""
    out: list[str] = []
    for line in lines:
        current = ""
        for word in line.split(" "):
            candidate = f"{current} {word}" if current else word
            if text_width_in(candidate, size_pt) <= width_in:
                current = candidate
                continue
            if current:
                out.append(current)
            while text_width_in(word, size_pt) > width_in:  # a word wider than the line: cut it
                cut = max(1, next(i for i in range(len(word), 0, -1) if text_width_in(word[:i], size_pt) <= width_in))
                out.append(word[:cut])
                word = word[cut:]
            current = word
        out.append(current)
    return out


def _suptitle(fig: Figure, lines: list[str], height_in: float) -> list[str]:
    w = fig.get_size_inches()[0]
    wrapped = wrap_title(lines, w - 0.3)
    fig.suptitle("\n".join(wrapped), x=0.1 / w, ha="left", y=1 - 0.08 / height_in, va="top", fontsize=TITLE_PT)
    return wrapped


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


def kernel_colours(report: Report) -> dict[str, Any]:
    """A colour per kernel, in program order; past MAX_COLOURS kernels, those with the least exec time share
    the grey of OTHER."""
    kernels = [k.kernel for k in report.kernels]
    if len(kernels) > MAX_COLOURS:
        keep = {k.kernel for k in sorted(report.kernels, key=lambda k: -k.exec_us)[: MAX_COLOURS - 1]}
        kernels = [k for k in kernels if k in keep]
    colours = dict(zip(kernels, _palette(len(kernels)), strict=True))
    return {k.kernel: colours.get(k.kernel, "lightgray") for k in report.kernels}


def gap_label(group: list[IdleGap]) -> str:
    first = group[0]
    idle = sum(g.us for g in group)
    head = f"all {first.side.upper()} idle {idle:.1f} µs" + (f" in {len(group)} gaps" if len(group) > 1 else "")
    if first.waits_on:
        kernel, _, where = first.waits_on.partition(" ")
        return f"{head}\nwaiting on {kernel}\n{where.strip('()')}"
    return f"{head}\n{first.next_kernel} waiting\nfor its {first.cause}"


def _draw_gaps(gantt: Axes, report: Report, bands: dict[str, tuple[float, float]]) -> list[str]:
    """Shade each idle gap over its core kind's rows and label each group of gaps with what it waited on."""
    labels = []
    for group in merge_gaps(report.idle_gaps):
        lo, hi = bands[group[0].side]
        for g in group:
            gantt.add_patch(Rectangle((g.start_us, lo), g.us, hi - lo, facecolor="none", edgecolor="0.6",
                                      hatch="///", linewidth=0.0, alpha=0.35, zorder=1.5))
        label = gap_label(group)
        labels.append(label)
        x0, x1 = group[0].start_us, group[-1].start_us + group[-1].us
        longest = max(group, key=lambda g: g.us)
        wide = (x1 - x0) / report.total.us * (WIDTH_IN - LEFT_IN - RIGHT_IN) > 1.6
        x = (x0 + x1) / 2 if wide else longest.start_us + longest.us / 2
        gantt.text(x, (lo + hi) / 2, label, rotation=0 if wide else 90, ha="center", va="center", fontsize=6,
                   zorder=5, bbox={"boxstyle": "round,pad=0.25", "facecolor": "white", "edgecolor": "0.4",
                                   "alpha": 0.9, "linewidth": 0.5})
    return labels


def write_timeline(path: Path, execution: Execution, timeline: Timeline, report: Report) -> Chart:
    """Gantt chart: one row per core that ran something (AICs first), one bar per task per core it ran on,
    coloured by kernel, under the top-level scopes' strip; the critical path outlined in black and joined
    task to task; every idle gap of `report.idle_gaps` hatched and labelled with what it waited on."""
    hw, us = timeline.hw, 1e6 / timeline.hw.clock_hz
    aic = sorted({r.aic for r in timeline.runs if r.aic is not None})
    aiv = sorted({c for r in timeline.runs for k, c in r.cores if k == "aiv"})
    row_of = {("aic", c): i for i, c in enumerate(aic)} | {("aiv", c): len(aic) + i for i, c in enumerate(aiv)}
    labels = [f"AIC {c}" for c in aic] + [f"AIV {c}" for c in aiv]
    spans = scope_spans(execution, timeline)
    colours = kernel_colours(report)
    name_of = {r.task: g.kernel for g in kernel_groups(execution, timeline) for r in g.runs}
    chain = report.critical_path.task_ids
    on_path = set(chain)

    verts: dict[str, list[list[tuple[float, float]]]] = defaultdict(list)
    outlined: list[list[tuple[float, float]]] = []
    for r in timeline.runs:
        x0, x1 = r.start * us, r.end * us
        for kind, core in r.cores:
            y = row_of[(kind, core)]
            box = [(x0, y - 0.4), (x0, y + 0.4), (x1, y + 0.4), (x1, y - 0.4)]
            verts[name_of[r.task]].append(box)
            if r.task in on_path:
                outlined.append(box)

    levels = _levels(spans)
    height = timeline_height(len(labels), levels)
    with matplotlib.rc_context(STYLE):
        fig = _figure(WIDTH_IN, height)
        strip = _axes(fig, TOP_IN, levels * LEVEL_IN)
        top = TOP_IN + levels * LEVEL_IN + 0.1
        gantt = _axes(fig, top, height - top - BOTTOM_IN)
        gantt.sharex(strip)
        bars = 0
        handles: list[Any] = []
        for kernel in report.kernels:
            colour = colours[kernel.kernel]
            coll = PolyCollection(verts[kernel.kernel], facecolors=[colour], edgecolors="white", linewidths=0.3,
                                  zorder=2)
            gantt.add_collection(coll)
            bars += len(coll.get_paths())
            if colour != "lightgray":
                handles.append(Patch(facecolor=colour, label=f"{kernel.kernel} ×{kernel.tasks}"))
        if len(handles) < len(report.kernels):
            handles.append(Patch(facecolor="lightgray", label=f"{OTHER} ({len(report.kernels) - len(handles)})"))
        if chain:
            gantt.add_collection(PolyCollection(outlined, facecolors="none", edgecolors=CRITICAL, linewidths=1.1,
                                                zorder=3))
            points = []
            for a, b in itertools.pairwise(chain):
                ra, rb = timeline.runs[a], timeline.runs[b]
                ya = row_of[("aic", ra.aic) if ra.aic is not None else ("aiv", ra.aiv)]
                yb = row_of[("aic", rb.aic) if rb.aic is not None else ("aiv", rb.aiv)]
                points.append([(ra.end * us, ya), (rb.start * us, yb)])
            gantt.add_collection(LineCollection(points, colors=CRITICAL, linewidths=0.9, zorder=4))
            handles.append(Line2D([], [], color=CRITICAL, linewidth=1.1,
                                  label=f"critical path ({len(chain)} tasks)"))
        bands = {"aic": (-0.5, len(aic) - 0.5), "aiv": (len(aic) - 0.5, len(labels) - 0.5)}
        gap_labels = _draw_gaps(gantt, report, bands) if labels else []
        if gap_labels:
            handles.append(Patch(facecolor="white", edgecolor="0.6", hatch="///",
                                 label=f"all AIC or AIV idle ≥ {report.idle_gap_min_us:.1f} µs"))
        _mark_scopes(gantt, spans, us, shade=False)
        _draw_scope_strip(strip, spans, us)
        gantt.set_yticks(range(len(labels)), labels)
        gantt.set_ylim(len(labels) - 0.5, -0.5)  # first row at the top
        gantt.set_xlim(0, max(timeline.cycles * us, 1e-3) * 1.005)
        gantt.set_xlabel("time (µs)")
        gantt.grid(axis="x", linewidth=0.3, alpha=0.5)
        if not labels:
            gantt.text(0.5, 0.5, "no tasks", transform=gantt.transAxes, ha="center")
        fig.legend(handles=handles, title="kernel ×tasks (program order)", loc="upper left",
                   bbox_to_anchor=(1 - (RIGHT_IN - 0.1) / WIDTH_IN, 1 - top / height), frameon=False)
        title = _suptitle(fig, [f"{_run_title(execution, timeline)}  ·  {len(aic)} of {hw.num_aic} AIC, "
                                f"{len(aiv)} of {hw.num_aiv} AIV used", report.provenance()], height)
        size = _save(fig, path)
    return Chart(bars, labels, size, [h.get_label() for h in handles], gap_labels, title)


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
    """HBM traffic, active cores and pipe busy fractions, binned over the run.

    HBM follows the engine's fluid model: a running task asks for its GM bytes over its standalone cycles
    (its demand), and max-min fair sharing hands out min(total demand, HBM bandwidth). Op intervals are
    stretched uniformly like their task (the engine gives only each task's overall stretch). A core is
    active while a task runs on it (a mix task makes its AIC and its AIV active)."""
    hw = timeline.hw
    edges = np.linspace(0.0, max(timeline.cycles, 1.0), bins + 1)
    bin_cycles = edges[1] - edges[0]
    bin_s = bin_cycles / hw.clock_hz
    runs = timeline.runs
    demand = np.array([r.schedule.gm_bytes / r.schedule.cycles if r.schedule.cycles else 0.0 for r in runs])
    times, steps = _intervals(np.array([r.kernel_start for r in runs]), np.array([r.end for r in runs]), demand)
    hbm = integrate(times, steps, edges, hw.hbm_bytes_per_cycle) / bin_s / 1e9
    wanted = integrate(times, steps, edges) / bin_s / 1e9

    cache: dict[int, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    lanes: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = defaultdict(lambda: ([], []))
    for r in runs:
        arrays = cache.get(id(r.schedule))
        if arrays is None:
            arrays = cache[id(r.schedule)] = _op_arrays(r.schedule)
        for lane, (a, b) in arrays.items():
            lanes[lane][0].append(r.kernel_start + a * r.stretch)
            lanes[lane][1].append(r.kernel_start + b * r.stretch)
    cores = {"aic": hw.num_aic, "aiv": hw.num_aiv}
    active: dict[str, np.ndarray] = {}
    for side in ("aic", "aiv"):
        on = [r for r in runs if getattr(r, side) is not None]
        s, e = np.array([r.start for r in on]), np.array([r.end for r in on])
        active[side] = integrate(*_intervals(s, e, np.ones(len(on))), edges) / (bin_cycles * cores[side])
    busy: dict[str, np.ndarray] = {}
    busy_active: dict[str, np.ndarray] = {}
    mean_active: dict[str, float] = {}
    for side in ("aic", "aiv"):
        for pipe in PIPES:
            lane = f"{side} {pipe}"
            if lane in lanes:
                s, e = np.concatenate(lanes[lane][0]), np.concatenate(lanes[lane][1])
                busy[lane] = integrate(*_intervals(s, e, np.ones(len(s))), edges) / (bin_cycles * cores[side])
                busy_active[lane] = np.divide(busy[lane], active[side], out=np.zeros(bins), where=active[side] > 0)
                total_active = float(np.sum(active[side]))
                mean_active[lane] = float(np.sum(busy[lane])) / total_active if total_active else 0.0
    return Utilisation(edges / hw.clock_hz * 1e6, hbm, wanted, hw.hbm_bytes_per_s / 1e9, busy, active, busy_active,
                       mean_active)


def write_utilisation(path: Path, execution: Execution, timeline: Timeline, report: Report, bins: int = 300
                      ) -> Utilisation:
    """HBM bandwidth against its limit; per core kind, the cores with a task (grey, % of all cores) and the
    busy fraction of each pipe over those active cores, under the scope strip: a memory-bound scope shows as
    HBM at the limit, a kernel on a few cores as few active cores with busy pipes."""
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
            ax.stairs(util.active[side] * 100, edges, fill=True, color="0.85",
                      label=f"active cores, % of {cores} (mean {float(np.mean(util.active[side])) * 100:.0f}%)")
            for pipe in PIPES:
                values = util.busy_active.get(f"{side} {pipe}")
                if values is not None:
                    ax.stairs(values * 100, edges, color=PIPE_COLOURS[pipe], linewidth=1.0,
                              label=f"{pipe} (mean {util.mean_active[f'{side} {pipe}'] * 100:.1f}% of active)")
            ax.set_ylim(0, 105)
            ax.set_ylabel(f"{side.upper()}: pipes busy\n% of active cores")
        for ax in axes:
            _mark_scopes(ax, spans, us, shade=True)
            ax.grid(linewidth=0.3, alpha=0.5)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False)
            ax.tick_params(axis="x", labelbottom=ax is axes[-1])
        axes[-1].set_xlabel("time (µs)")
        axes[-1].set_xlim(0, edges[-1] * 1.005)
        _suptitle(fig, [f"{_run_title(execution, timeline)}  ·  {bins} bins of {edges[1] - edges[0]:.3g} µs",
                        report.provenance()], height)
        _save(fig, path)
    return util


# --- kernels.png -----------------------------------------------------------------------------------------


def write_kernels(path: Path, report: Report) -> Chart:
    """Per kernel (most exec time first): left, its exec time (its tasks' run times added up, in core-µs),
    the runtime's fixed time per task (exec minus standalone minus HBM throttling) hatched at its start and
    the part lost to HBM sharing hatched at its end, and the busy time of each pipe it
    uses; right, each pipe's busy share of the kernel's standalone time, so the pipe that bounds it stands
    out. Labels give tasks, average task length and what bounds the kernel."""
    kernels = sorted(report.kernels, key=lambda k: -k.exec_us)
    used = [[p for p in PIPES if k.busy_cycles.get(p, 0.0) > 0] for k in kernels]
    pipes = [p for p in PIPES if any(p in u for u in used)]
    us = 1e6 / report.clock_hz
    n = len(kernels)
    row = max(BAR_ROW_IN, 0.08 * (max((len(u) for u in used), default=0) + 1))
    height = max(MIN_HEIGHT_IN, TOP_IN + 0.3 + n * row + BOTTOM_IN + 0.2)
    y = np.arange(n)
    bars = 0
    with matplotlib.rc_context(STYLE):
        fig = _figure(WIDTH_IN, height)
        plot_h = n * row
        base = (BOTTOM_IN + 0.2) / height
        left = fig.add_axes((2.0 / WIDTH_IN, base, 8.8 / WIDTH_IN, plot_h / height))
        right = fig.add_axes((11.3 / WIDTH_IN, base, 3.2 / WIDTH_IN, plot_h / height), sharey=left)
        exec_us = np.array([k.exec_us for k in kernels])
        lost = np.array([max(k.hbm_throttled_us, 0.0) for k in kernels])
        fixed = np.array([max(k.exec_us - k.standalone_us - k.hbm_throttled_us, 0.0) for k in kernels])
        bars += len(left.barh(y, exec_us, height=0.9, color="0.9", edgecolor="0.6", linewidth=0.5,
                              label="exec time (its tasks' run times added up)"))
        if fixed.any():
            left.barh(y, fixed, height=0.9, color="none", edgecolor="tab:blue", hatch="...", linewidth=0.0,
                      label="of which the runtime's fixed time per task (before the ops)")
        if lost.any():
            left.barh(y, lost, left=exec_us - lost, height=0.9, color="none", edgecolor="tab:red", hatch="///",
                      linewidth=0.0, label="of which lost to HBM sharing")
        for i, (k, pipes_used) in enumerate(zip(kernels, used, strict=True)):
            thick = 0.8 / max(len(pipes_used), 1)
            for j, pipe in enumerate(pipes_used):
                offset = -0.4 + thick * (j + 0.5)
                busy = k.busy_cycles[pipe]
                share = busy / (k.standalone_us / us) if k.standalone_us else 0.0
                bars += len(left.barh(i + offset, busy * us, height=thick * 0.9, color=PIPE_COLOURS[pipe]))
                bars += len(right.barh(i + offset, share * 100, height=thick * 0.9, color=PIPE_COLOURS[pipe]))
        labels = []
        for i, k in enumerate(kernels):
            text = f" {k.tasks} × {k.exec_avg_us:.2f} µs · bound by {k.bound_by} {k.bound_share * 100:.0f}%"
            labels.append(text.strip())
            left.text(exec_us[i], i, text, va="center", ha="left", fontsize=6.5)
        handles, _ = left.get_legend_handles_labels()
        handles += [Patch(facecolor=PIPE_COLOURS[p], label=f"{p} busy") for p in pipes]
        left.legend(handles=handles, loc="lower right", frameon=False)
        left.set_yticks(y, [f"{k.kernel}\n{k.scope}" for k in kernels], fontsize=6.5)
        left.set_ylim(n - 0.5, -0.5)
        left.set_xlim(0, float(exec_us.max(initial=1.0)) * 1.35)
        left.set_xlabel("core-µs (summed over the kernel's tasks)")
        left.grid(axis="x", linewidth=0.3, alpha=0.5)
        right.set_xlim(0, 105)
        right.set_xlabel("pipe busy, % of the kernel's standalone time")
        right.tick_params(axis="y", labelleft=False)
        right.grid(axis="x", linewidth=0.3, alpha=0.5)
        title = _suptitle(fig, [f"{report.title()}: {n} kernels by exec time, and what their pipes do",
                                report.provenance()], height)
        size = _save(fig, path)
    return Chart(bars, [k.kernel for k in kernels], size, [h.get_label() for h in handles], labels, title)


# --- compare.png -----------------------------------------------------------------------------------------


def _change(p: float, q: float) -> str | None:
    """B against A, as a label: None when equal."""
    if p == q:
        return None
    if p == 0:
        return "new"
    pct = (q - p) / p * 100
    return f"{pct:+.1f}%" if abs(pct) >= 0.05 else f"{'+' if pct > 0 else '-'}<0.1%"


def write_compare_chart(path: Path, report_a: Report, report_b: Report, label_a: str, label_b: str) -> Chart:
    """Every scope of A and B (top-level ones bold, each with its nested ones under it), side by side in four
    panels: latency (µs), GM traffic (MB to and from HBM), GM transfers, on-chip traffic (MB between
    buffers); each change labelled with B against A. A scope present in only one run gets a zero bar in the
    other."""
    from .compare import _metrics

    a = {s.name: s for s in report_a.scopes}
    b = {s.name: s for s in report_b.scopes}
    names = list(a) + [n for n in b if n not in a]
    panels = (("latency (µs)", "us", 1.0), ("GM traffic (MB, to/from HBM)", "gm_bytes", 1e-6),
              ("GM transfers", "gm_transfers", 1.0), ("on-chip traffic (MB, between buffers)", "onchip_bytes", 1e-6))
    n = len(names)
    y = np.arange(n)
    bars = 0
    labels: list[str] = []
    total_change = _change(report_a.total.us, report_b.total.us)
    lines = [f"A = {label_a}, B = {label_b}: every scope; labels: change of B against A",
             f"total {report_a.total.us:.2f} µs (A) vs {report_b.total.us:.2f} µs (B)"
             + (f" ({total_change})" if total_change else ""),
             f"A: {report_a.title()} · {report_a.provenance()}", f"B: {report_b.title()} · {report_b.provenance()}"]
    wrapped = wrap_title(lines, WIDTH_IN - 0.3)
    top = 0.25 + 0.17 * len(wrapped) + 0.35
    height = top + max(n, 1) * BAR_ROW_IN + BOTTOM_IN + 0.2
    with matplotlib.rc_context(STYLE):
        fig = _figure(WIDTH_IN, height)
        left_in, gap_in = 1.5, 0.35
        panel_w = (WIDTH_IN - left_in - 0.3 - 3 * gap_in) / 4
        axes = [fig.add_axes(((left_in + i * (panel_w + gap_in)) / WIDTH_IN, (BOTTOM_IN + 0.2) / height,
                              panel_w / WIDTH_IN, max(n, 1) * BAR_ROW_IN / height)) for i in range(4)]
        for ax, (xlabel, key, scale) in zip(axes, panels, strict=True):
            va = np.array([_metrics(a[m])[key] * scale if m in a else 0.0 for m in names])
            vb = np.array([_metrics(b[m])[key] * scale if m in b else 0.0 for m in names])
            bars += len(ax.barh(y - 0.2, va, height=0.4, color="tab:blue", label=f"A: {label_a}"))
            bars += len(ax.barh(y + 0.2, vb, height=0.4, color="tab:orange", label=f"B: {label_b}"))
            for i, (p, q) in enumerate(zip(va, vb, strict=True)):
                change = _change(float(p), float(q))
                if change is not None:
                    labels.append(f"{names[i]} {key} {change}")
                    ax.text(max(p, q), i, f" {change}", va="center", ha="left", fontsize=6.5,
                            color="tab:red" if q > p else "tab:green")
            ax.set_xlim(0, max(float(max(va.max(initial=0), vb.max(initial=0))), 1e-9) * 1.3)
            ax.set_xlabel(xlabel)
            ax.grid(axis="x", linewidth=0.3, alpha=0.5)
            ax.set_ylim(max(n, 1) - 0.5, -0.5)  # one empty row for a run without scopes
            for i, m in enumerate(names):
                if "/" not in m and i:
                    ax.axhline(i - 0.5, color="0.5", linewidth=0.6)  # a rule above each top-level scope
            ax.set_yticks(y, [m.rsplit("/", 1)[-1] for m in names] if ax is axes[0] else [])
        for tick, m in zip(axes[0].get_yticklabels(), names, strict=True):
            tick.set_fontweight("bold" if "/" not in m else "normal")  # top-level bold, nested ones plain
        axes[0].legend(loc="lower right", frameon=False)
        fig.suptitle("\n".join(wrapped), x=0.1 / WIDTH_IN, ha="left", y=1 - 0.08 / height, va="top",
                     fontsize=TITLE_PT)
        size = _save(fig, path)
    return Chart(bars, names, size, [f"A: {label_a}", f"B: {label_b}"], labels, wrapped)
