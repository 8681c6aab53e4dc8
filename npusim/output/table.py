"""The console tables of a run: one row per scope (nested scopes indented) with latency, tasks, GM traffic
and busy pipes, then the utilisation, the critical path and the reference check."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from .report import Report, Summary


def _mb(n: float) -> str:
    return f"{n / 1e6:.3f}"


def scope_table(report: Report, title: str | None = None) -> Table:
    """The per-scope table: latency, tasks, DMA traffic, busy pipes."""
    table = Table(title=title, title_justify="left", header_style="bold")
    for col in ("scope", "tasks", "start µs", "latency µs", "cycles", "GM read MB", "GM write MB",
                "DMA xfers", "cube busy", "vector busy"):
        table.add_column(col, justify="left" if col == "scope" else "right")

    def row(name: str, s: Summary, style: str | None = None) -> None:
        table.add_row(name, str(s.tasks), f"{s.start_cycle / report.clock_hz * 1e6:.2f}", f"{s.us:.2f}",
                      f"{s.cycles:.0f}", _mb(s.dma.gm_read()), _mb(s.dma.gm_write()), str(s.dma.total_transfers()),
                      f"{s.busy_cycles['cube']:.0f}", f"{s.busy_cycles['vector']:.0f}", style=style)

    for s in report.scopes:
        depth = s.name.count("/")
        row("  " * depth + s.name.rsplit("/", 1)[-1], s)
    row("total", report.total, style="bold")
    return table


def print_summary(report: Report, console: Console) -> None:
    console.print(scope_table(report, f"{report.program} on {report.config}"
                              + (f" (preset {report.preset})" if report.preset else "")))
    util = report.utilisation
    console.print(f"cores busy: AIC {util.aic * 100:.1f}%, AIV {util.aiv * 100:.1f}%  ·  "
                  f"critical path: {report.critical_path.tasks} tasks")
    check = report.check
    if check:
        verdict = "[green]passed[/green]" if check.passed else "[red]FAILED[/red]"
        errs = ", ".join(f"{label} {value:.3g}" if value is not None else f"{label} non-finite"
                         for label, value in (("max abs err", check.max_abs_err), ("max rel err", check.max_rel_err)))
        console.print(f"check against reference {check.reference}: {verdict} ({errs}, rtol = atol = {check.rtol})")
