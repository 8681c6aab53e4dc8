"""What a run prints: the per-scope table (nested scopes indented), how busy the active cores' pipes were,
the kernels that take the most time, the critical path as a short chain of kernels with durations, the
longest idle gaps and the reference check; or the same as CSV or JSON for scripts (`--format`).

The tables fit 100 columns: headers wrap onto two lines, numbers are never cut (a column is as wide as its
widest number; on a narrower terminal lines wrap rather than lose digits)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from npusim.vocabulary import PIPES

from .report import Report, Summary, merge_gaps

if TYPE_CHECKING:  # rich is imported where a table is made: a run that prints none (`--quiet`, the CSVs) skips it
    from rich.console import Console
    from rich.table import Table

WIDTH = 100  # the console tables fit this many columns
TOP_KERNELS = 5
TOP_GAPS = 8


def _mb(n: float) -> str:
    return f"{n / 1e6:.3f}"


def _bound(s: Summary | Any) -> str:
    return f"{s.bound_by} {s.bound_share * 100:.0f}%" if s.bound_by else "-"


def number_table(title: str | None, columns: list[str]) -> Table:
    """A table whose first column (names) folds when space runs out and whose other columns (numbers) never
    wrap or shrink."""
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
                  show_edge=False)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right", no_wrap=i > 0, overflow="fold")
    return table


def print_table(console: Console, table: Table) -> None:
    """Print a table at the console's width, or wider when its numbers need more room: a wide table makes
    long lines (which a terminal wraps), never cut digits."""
    from rich.measure import Measurement

    need = Measurement.get(console, console.options.update_width(10**6), table).minimum
    width = console.width
    console.width = max(width, need)  # rich clamps a print's width to the console's
    try:
        console.print(table, crop=False)
    finally:
        console.width = width


def scope_table(report: Report, title: str | None = None) -> Table:
    """Per scope: tasks, start, latency, GM and on-chip traffic, and what bounds it (`hbm` = more than half
    of its tasks' time with less HBM bandwidth than they asked for, else its busiest pipe and that pipe's
    busy share)."""
    table = number_table(title, ["scope", "tasks", "start\nµs", "latency\nµs", "GM read\nMB", "GM write\nMB",
                           "GM\nxfers", "on-chip\nMB", "bound by"])

    def row(name: str, s: Summary, style: str | None = None) -> None:
        gm_xfers = sum(n for p, n in s.dma.transfers.items() if p.startswith("gm_") or p.endswith("_gm"))
        onchip = s.dma.total_bytes() - s.dma.gm_read() - s.dma.gm_write()
        table.add_row(name, str(s.tasks), f"{s.start_cycle / report.clock_hz * 1e6:.2f}", f"{s.us:.2f}",
                      _mb(s.dma.gm_read()), _mb(s.dma.gm_write()), str(gm_xfers), _mb(onchip), _bound(s), style=style)

    for s in report.scopes:
        row("  " * s.name.count("/") + s.name.rsplit("/", 1)[-1], s)
    row("total", report.total, style="bold")
    return table


def kernel_table(report: Report, top: int = TOP_KERNELS) -> Table:
    """The kernels with the most exec time (their tasks' run times added up)."""
    total = sum(k.exec_us for k in report.kernels) or 1.0
    table = number_table(f"top {min(top, len(report.kernels))} of {len(report.kernels)} kernels by exec time (all "
                   "columns: kernels.csv)",
                   ["kernel", "tasks", "avg\nµs", "exec\nµs", "share", "on crit.\npath µs", "GM\nMB", "bound by"])
    for k in sorted(report.kernels, key=lambda k: -k.exec_us)[:top]:
        table.add_row(k.kernel, str(k.tasks), f"{k.exec_avg_us:.2f}", f"{k.exec_us:.1f}",
                      f"{k.exec_us / total * 100:.1f}%", f"{k.critical_path_us:.1f}",
                      _mb(k.gm_read_bytes + k.gm_write_bytes), _bound(k))
    return table


def critical_path_lines(report: Report, width: int = WIDTH) -> list[str]:
    """The critical path as `kernel ×n duration` links, first to last, broken only between links."""
    path = report.critical_path
    linked = sum(c.us for c in path.chain)
    lines = [f"critical path: {path.tasks} tasks, {linked:.1f} of {report.total.us:.1f} µs in these links "
             "(the rest: dispatch between them)"]
    line = " "
    for i, c in enumerate(path.chain):
        link = f"{c.kernel}{f' ×{c.tasks}' if c.tasks > 1 else ''} {c.us:.1f} µs" + (" →" if i < len(path.chain) - 1
                                                                                    else "")
        if len(line) + 1 + len(link) > width and line.strip():
            lines.append(line)
            line = " "
        line += " " + link
    if line.strip():
        lines.append(line)
    return lines


def utilisation_table(report: Report) -> Table:
    """Per core kind: the share of core time with a task (occupied), and each pipe's busy share of that
    occupied time (a pipe mean over all cores would hide a kernel on a few cores)."""
    util = report.utilisation
    pipes = [p for p in PIPES if p in util.aic_pipes or p in util.aiv_pipes]
    table = number_table("cores: occupied share of core time; pipes busy, % of occupied time", ["cores",
                   "occupied", *pipes])
    for kind, resident, busy in (("AIC", util.aic, util.aic_pipes), ("AIV", util.aiv, util.aiv_pipes)):
        table.add_row(kind, f"{resident * 100:.1f}%", *(f"{busy[p] * 100:.1f}%" if p in busy else "-" for p in pipes))
    return table


def gap_lines(report: Report, top: int = TOP_GAPS) -> list[str]:
    """The stretches of idle cores of one kind (AICs first, in time order), with what ended them."""
    lines = []
    for group in merge_gaps(report.idle_gaps)[:top]:
        g, n, us = group[0], len(group), sum(x.us for x in group)
        cause = f"waiting on {g.waits_on}" if g.waits_on else f"{g.next_kernel} waiting for its {g.cause}"
        when = f"from {g.start_us:.1f} µs" + (f", {n} gaps" if n > 1 else "")
        lines.append(f"all {g.side.upper()} idle {us:.1f} µs ({when}): {cause}")
    return lines


def print_summary(report: Report, console: Console) -> None:
    print_table(console, scope_table(report, f"{report.title()}{'' if report.numerics else ', timing only'}"))
    print_table(console, utilisation_table(report))
    print_table(console, kernel_table(report))
    for line in critical_path_lines(report):
        console.print(line, highlight=False, soft_wrap=True)
    gaps = gap_lines(report)
    if gaps:
        console.print(f"idle gaps of at least {report.idle_gap_min_us:.1f} µs (1% of the run):", highlight=False)
        for line in gaps:
            console.print(f"  {line}", highlight=False)
    if report.trace_sample is not None:
        s = report.trace_sample
        console.print(f"trace: pipe slices for {s.rule} ({s.tasks} of {s.of_tasks} tasks, {s.ops} of {s.of_ops} "
                      "ops; all: --trace-detail ops)", highlight=False)
    console.print(report.provenance(), highlight=False)
    check = report.check
    if check:
        verdict = "[green]passed[/green]" if check.passed else "[red]FAILED[/red]"
        errs = ", ".join(f"{label} {value:.3g}" if value is not None else f"{label} non-finite"
                         for label, value in (("max abs err", check.max_abs_err), ("max rel err", check.max_rel_err)))
        console.print(f"check against {_reference(check.reference)}: {verdict} ({errs}, rtol {check.rtol:g}, "
                      f"atol {check.atol:g})", highlight=False)


def _reference(name: str) -> str:
    return name if name.startswith("expect ") else f"reference {name}"


# --- CSV and JSON ----------------------------------------------------------------------------------------


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}_{k}" if prefix else str(k), v, out)
    elif isinstance(value, list):
        out[prefix] = " ".join(str(v) for v in value)
    else:
        out[prefix] = "" if value is None else value


def csv_text(rows: Sequence[BaseModel]) -> str:
    """Rows of a typed model as CSV: nested values flattened (busy_cycles_mte2, dma_bytes_gm_to_ub), lists
    space-separated."""
    flat = []
    for row in rows:
        out: dict[str, Any] = {}
        _flatten("", row.model_dump(mode="json"), out)
        flat.append(out)
    header = list(dict.fromkeys(k for row in flat for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    return buf.getvalue()


def scopes_csv(report: Report) -> str:
    """The scope table for scripts: every field of every scope, then the total."""
    from .report import ScopeSummary

    return csv_text([*report.scopes, ScopeSummary(name="total", **report.total.model_dump())])


def report_json(report: Report) -> str:
    return json.dumps(report.model_dump(mode="json"), indent=2, allow_nan=False)
