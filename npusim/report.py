"""The report: per-scope latency, DMA traffic and pipe busy cycles from a timeline (report.json), and the
per-scope table printed at the end of a run."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from rich.console import Console
from rich.table import Table

from . import __version__
from .costs import PIPES
from .engine import Timeline, critical_path
from .interpreter import Execution
from .numerics import digest


def _dma_block(paths: list[str]) -> dict[str, dict[str, int]]:
    return {"bytes": dict.fromkeys(paths, 0), "transfers": dict.fromkeys(paths, 0)}


def _summary(runs: list, timeline: Timeline) -> dict[str, Any]:
    paths = list(timeline.hw.dma)
    dma = _dma_block(paths)
    busy = dict.fromkeys(PIPES, 0.0)
    for r in runs:
        for path, n in r.schedule.dma_bytes.items():
            dma["bytes"][path] += n
        for path, n in r.schedule.dma_transfers.items():
            dma["transfers"][path] += n
        for pipe, c in r.schedule.busy.items():
            busy[pipe] += c
    start = min((r.start for r in runs), default=0.0)
    end = max((r.end for r in runs), default=0.0)
    cycles = end - start
    return {
        "start_cycle": round(start, 3),
        "end_cycle": round(end, 3),
        "cycles": round(cycles, 3),
        "us": round(cycles / timeline.hw.clock_hz * 1e6, 4),
        "tasks": len(runs),
        "dma": dma,
        "busy_cycles": {p: round(c, 3) for p, c in busy.items()},
    }


def outputs_digest(execution: Execution, roles: dict[str, str]) -> dict[str, dict[str, Any]]:
    """dtype, shape and sha256 of the final value of every output and inout tensor."""
    out: dict[str, dict[str, Any]] = {}
    for name, tensor in execution.tensors.items():
        if roles.get(name) not in ("output", "inout"):
            continue
        out[name] = {
            "dtype": tensor.dtype,
            "shape": list(tensor.shape),
            "sha256": digest(tensor.data) if tensor.data is not None else None,
        }
    return out


def build_report(
    *,
    program_name: str,
    program_file: str,
    preset: str | None,
    params: dict[str, Any],
    config_name: str,
    seed: int,
    execution: Execution,
    timeline: Timeline,
    roles: dict[str, str],
    check: dict[str, Any] | None,
) -> dict[str, Any]:
    """The report.json document (DESIGN §7)."""
    tasks = execution.tasks
    by_scope: dict[str, list] = defaultdict(list)
    for run in timeline.runs:
        for scope in tasks[run.task].scopes:
            by_scope[scope].append(run)
    scopes = [{"name": name, **_summary(by_scope[name], timeline)} for name in execution.scopes]
    total = _summary(timeline.runs, timeline)
    hw = timeline.hw
    core_cycles = {"aic": 0.0, "aiv": 0.0}
    for r in timeline.runs:
        for kind, core in (("aic", r.aic), ("aiv", r.aiv)):
            if core is not None:
                core_cycles[kind] += r.end - r.start
    span = total["cycles"] or 1.0
    chain = critical_path(timeline)
    chain_kernels: dict[str, float] = defaultdict(float)
    for t in chain:
        chain_kernels[tasks[t].kernel] += timeline.runs[t].end - timeline.runs[t].start
    report: dict[str, Any] = {
        "npusim_version": __version__,
        "program": program_name,
        "program_file": program_file,
        "preset": preset,
        "params": params,
        "config": config_name,
        "seed": seed,
        "clock_hz": hw.clock_hz,
        "numerics": execution.numerics,
        "total": total,
        "scopes": scopes,
        "utilisation": {
            "aic": round(core_cycles["aic"] / (span * hw.num_aic), 4),
            "aiv": round(core_cycles["aiv"] / (span * hw.num_aiv), 4),
        },
        "critical_path": {
            "tasks": len(chain),
            "busy_cycles": round(sum(chain_kernels.values()), 3),
            "kernels": {k: round(v, 3) for k, v in sorted(chain_kernels.items(), key=lambda kv: -kv[1])},
        },
        "ops": execution.op_count,
        "loop_iterations": execution.loop_iterations,
        "outputs": outputs_digest(execution, roles),
    }
    if check is not None:
        report["check"] = check
    return report


def _mb(n: float) -> str:
    return f"{n / 1e6:.3f}"


def scope_table(report: dict[str, Any], title: str | None = None) -> Table:
    """The per-scope table: latency, tasks, DMA traffic, busy pipes."""
    table = Table(title=title, title_justify="left", header_style="bold")
    for col in ("scope", "tasks", "start µs", "latency µs", "cycles", "GM read MB", "GM write MB",
                "DMA xfers", "cube busy", "vector busy"):
        table.add_column(col, justify="left" if col == "scope" else "right")

    def row(name: str, s: dict[str, Any], style: str | None = None) -> None:
        b = s["dma"]["bytes"]
        reads = sum(v for k, v in b.items() if k.startswith("gm_"))
        writes = sum(v for k, v in b.items() if k.endswith("_gm"))
        xfers = sum(s["dma"]["transfers"].values())
        clock = report["clock_hz"]
        table.add_row(name, str(s["tasks"]), f"{s['start_cycle'] / clock * 1e6:.2f}", f"{s['us']:.2f}",
                      f"{s['cycles']:.0f}", _mb(reads), _mb(writes), str(xfers),
                      f"{s['busy_cycles']['cube']:.0f}", f"{s['busy_cycles']['vector']:.0f}", style=style)

    for s in report["scopes"]:
        depth = s["name"].count("/")
        row("  " * depth + s["name"].rsplit("/", 1)[-1], s)
    row("total", report["total"], style="bold")
    return table


def print_summary(report: dict[str, Any], console: Console) -> None:
    console.print(scope_table(report, f"{report['program']} on {report['config']}"
                              + (f" (preset {report['preset']})" if report["preset"] else "")))
    util = report["utilisation"]
    console.print(f"cores busy: AIC {util['aic'] * 100:.1f}%, AIV {util['aiv'] * 100:.1f}%  ·  "
                  f"critical path: {report['critical_path']['tasks']} tasks")
    check = report.get("check")
    if check:
        verdict = "[green]passed[/green]" if check["passed"] else "[red]FAILED[/red]"
        errs = ", ".join(f"{label} {check[key]:.3g}" if check[key] is not None else f"{label} non-finite"
                         for label, key in (("max abs err", "max_abs_err"), ("max rel err", "max_rel_err")))
        console.print(f"check against reference {check['reference']}: {verdict} ({errs}, "
                      f"rtol = atol = {check['rtol']})")
