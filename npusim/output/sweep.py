"""A sweep's results: one typed row per variant (its params and config, total and per-scope latency, GM
traffic, what bounds its slowest scope, peak buffer use, or why it is infeasible), written as sweep.csv and
sweep.json, shown as a console table and as sweep.png (latency per variant with the best of each config
marked; a heat map per config when two params vary)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Literal

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from pydantic import BaseModel, ConfigDict
from rich.table import Table

from npusim.vocabulary import BUFFERS

from .artefacts import write_atomic, write_json

Number = int | float
TIMING_COLUMNS = ("wall_s",)  # differ between runs of the same sweep; every other column is reproducible


class SweepRow(BaseModel):
    """One variant of a sweep."""

    model_config = ConfigDict(extra="forbid")

    variant: int
    params: dict[str, Number]  # the swept params' values
    config: str  # the config as given (a name or a path)
    config_name: str
    status: Literal["ok", "infeasible"]
    reason: str = ""  # why the variant cannot run (a failed requirement, a buffer overflow, ...)
    total_us: float | None = None
    total_cycles: float | None = None
    tasks: int | None = None
    scopes_us: dict[str, float] = {}  # latency of every scope, nested ones as outer/inner
    gm_read_bytes: int | None = None
    gm_write_bytes: int | None = None
    slowest_scope: str = ""  # the top-level scope with the longest latency
    bound_by: str = ""  # what bounds it: hbm, or its busiest pipe
    bound_share: float | None = None
    peak_bytes: dict[str, int] = {}  # the largest live-tile footprint of any kernel, per buffer
    key: str  # content hash of program, params, config and options: the cache key
    wall_s: float = 0.0  # time to compute the variant (0 when it came from the cache)


def best_rows(rows: list[SweepRow]) -> dict[str, SweepRow]:
    """The fastest feasible variant of each config (ties: the earlier variant)."""
    best: dict[str, SweepRow] = {}
    for r in rows:
        if r.status == "ok" and (r.config not in best or r.total_us < best[r.config].total_us):  # type: ignore[operator]
            best[r.config] = r
    return best


def _columns(rows: list[SweepRow]) -> tuple[list[str], list[str]]:
    params = list(dict.fromkeys(k for r in rows for k in r.params))
    scopes = list(dict.fromkeys(k for r in rows for k in r.scopes_us))
    return params, scopes


def sweep_csv(rows: list[SweepRow]) -> str:
    """sweep.csv: one line per variant; `wall_s` (the only column that is not reproducible) comes last."""
    params, scopes = _columns(rows)
    header = ["variant", *params, "config", "status", "total_us", "total_cycles", "tasks",
              *[f"us:{s}" for s in scopes], "gm_read_mb", "gm_write_mb", "slowest_scope", "bound_by", "bound_share",
              *[f"peak_{b}_bytes" for b in BUFFERS], "reason", "key", *TIMING_COLUMNS]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for r in rows:
        writer.writerow([
            r.variant, *[r.params.get(p, "") for p in params], r.config, r.status,
            "" if r.total_us is None else f"{r.total_us:.4f}",
            "" if r.total_cycles is None else f"{r.total_cycles:.3f}", "" if r.tasks is None else r.tasks,
            *["" if s not in r.scopes_us else f"{r.scopes_us[s]:.4f}" for s in scopes],
            "" if r.gm_read_bytes is None else f"{r.gm_read_bytes / 1e6:.6f}",
            "" if r.gm_write_bytes is None else f"{r.gm_write_bytes / 1e6:.6f}",
            r.slowest_scope, r.bound_by, "" if r.bound_share is None else f"{r.bound_share:.4f}",
            *[r.peak_bytes.get(b, "") for b in BUFFERS], r.reason, r.key, f"{r.wall_s:.3f}",
        ])
    return out.getvalue()


def write_sweep(out_dir: Path, rows: list[SweepRow], meta: dict) -> None:
    """sweep.csv and sweep.json (the rows and what was swept)."""
    text = sweep_csv(rows).encode()
    write_atomic(out_dir / "sweep.csv", lambda fh: fh.write(text))
    write_json(out_dir / "sweep.json", {**meta, "rows": [r.model_dump(mode="json") for r in rows]})


def _label(r: SweepRow) -> str:
    return ", ".join(f"{k}={v}" for k, v in r.params.items()) or "defaults"


def sweep_table(rows: list[SweepRow], limit: int = 20) -> Table:
    """The fastest variants first (infeasible ones last, with their reasons), at most `limit` rows."""
    best = {id(r) for r in best_rows(rows).values()}
    table = Table(title="sweep: fastest first", title_justify="left", header_style="bold")
    for col, justify in (("#", "right"), ("params", "left"), ("config", "left"), ("latency µs", "right"),
                         ("slowest scope", "left"), ("bound by", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    ordered = sorted(rows, key=lambda r: (r.status != "ok", r.total_us or 0.0, r.variant))
    for r in ordered[:limit]:
        if r.status == "ok":
            share = f" {r.bound_share * 100:.0f}%" if r.bound_share is not None else ""
            table.add_row(str(r.variant), _label(r), r.config_name, f"{r.total_us:.2f}", r.slowest_scope,
                          r.bound_by + share, style="bold green" if id(r) in best else None)
        else:
            table.add_row(str(r.variant), _label(r), r.config_name, "infeasible", r.reason[:60], "")
    return table


def write_sweep_figure(path: Path, rows: list[SweepRow], title: str) -> None:
    """Latency per variant, one colour per config, the best of each config marked; with exactly two swept
    params, a heat map per config instead (infeasible cells marked, the best outlined)."""
    params, _ = _columns(rows)
    with matplotlib.rc_context({"font.size": 8}):
        fig = _heat_maps(rows, params) if len(params) == 2 else _bars(rows)
        fig.suptitle(title, fontsize=9)
        write_atomic(path, lambda fh: fig.savefig(fh, format="png"))


def _configs(rows: list[SweepRow]) -> tuple[list[str], dict[str, str]]:
    return list(dict.fromkeys(r.config for r in rows)), {r.config: r.config_name for r in rows}


def _heat_maps(rows: list[SweepRow], params: list[str]) -> Figure:
    configs, names = _configs(rows)
    best = best_rows(rows)
    xs = sorted({r.params[params[1]] for r in rows})
    ys = sorted({r.params[params[0]] for r in rows})
    fig = Figure(figsize=(4.2 * len(configs) + 1.0, 3.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(configs), squeeze=False)[0]
    finite = [r.total_us for r in rows if r.total_us is not None]
    vmin, vmax = (min(finite), max(finite)) if finite else (0.0, 1.0)
    image = None
    for ax, config in zip(axes, configs, strict=True):
        grid = np.full((len(ys), len(xs)), np.nan)
        for r in rows:
            if r.config == config and r.total_us is not None:
                grid[ys.index(r.params[params[0]]), xs.index(r.params[params[1]])] = r.total_us
        image = ax.imshow(grid, cmap="viridis_r", vmin=vmin, vmax=vmax, aspect="auto")
        for r in rows:
            if r.config != config:
                continue
            i, j = ys.index(r.params[params[0]]), xs.index(r.params[params[1]])
            if r.total_us is None:
                ax.text(j, i, "infeasible", ha="center", va="center", fontsize=7, color="red")
            else:  # white on the dark (slow) end of the colour map
                dark = (r.total_us - vmin) / ((vmax - vmin) or 1.0) > 0.6
                ax.text(j, i, f"{r.total_us:.1f}", ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
            if best.get(config) is r:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2.5))
        ax.set_xticks(range(len(xs)), [str(x) for x in xs])
        ax.set_yticks(range(len(ys)), [str(y) for y in ys])
        ax.set_xlabel(params[1])
        ax.set_ylabel(params[0])
        ax.set_title(f"{names[config]}: latency µs (best outlined)", fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=list(axes), label="latency µs")
    return fig


def _bars(rows: list[SweepRow]) -> Figure:
    configs, names = _configs(rows)
    best = best_rows(rows)
    fig = Figure(figsize=(max(6.0, min(16.0, 1.0 + 0.35 * len(rows))), 4.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    colours = matplotlib.colormaps["tab10"]
    for c, config in enumerate(configs):
        mine = [r for r in rows if r.config == config and r.status == "ok"]
        bars = ax.bar([r.variant for r in mine], [r.total_us for r in mine], color=colours(c % 10),
                      label=names[config])
        for r, bar in zip(mine, bars, strict=True):
            if best.get(config) is r:
                bar.set_edgecolor("red")
                bar.set_linewidth(2.5)
                ax.annotate(f"best: {_label(r)}", (r.variant, r.total_us), xytext=(0, 3), textcoords="offset points",
                            ha="center", fontsize=7, color="red")
    for r in rows:
        if r.status != "ok":
            ax.annotate("x", (r.variant, 0), ha="center", va="bottom", color="red")
    ax.set_xlabel("variant (see sweep.csv; x = infeasible)")
    ax.set_ylabel("latency µs")
    ax.legend(frameon=False)
    ax.grid(axis="y", linewidth=0.3, alpha=0.5)
    return fig
