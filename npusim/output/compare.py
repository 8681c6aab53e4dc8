"""`npusim compare A B`: run two programs with the same options and set their reports side by side, scope by
scope (latency, tasks, DMA bytes and transfers), and say whether their outputs are bit-identical."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .report import Report, Summary

METRICS = ("cycles", "us", "tasks", "dma_bytes", "dma_transfers")


@dataclass
class Comparison:
    data: dict[str, Any]
    out_dir: Path


def _metrics(scope: Summary) -> dict[str, float]:
    return {
        "cycles": scope.cycles,
        "us": scope.us,
        "tasks": scope.tasks,
        "dma_bytes": scope.dma.total_bytes(),
        "dma_transfers": scope.dma.total_transfers(),
    }


def _row(name: str, a: Summary | None, b: Summary | None) -> dict[str, Any]:
    ma = _metrics(a) if a else None
    mb = _metrics(b) if b else None
    row: dict[str, Any] = {"name": name, "a": ma, "b": mb}
    if ma and mb:
        row["diff"] = {k: round(mb[k] - ma[k], 4) for k in METRICS}
        row["diff_pct"] = {k: (round(100.0 * (mb[k] - ma[k]) / ma[k], 3) if ma[k] else None) for k in METRICS}
    return row


def _digest(report: Report, name: str) -> str | None:
    out = report.outputs.get(name)
    return out.sha256 if out is not None else None


def compare_reports(ra: Report, rb: Report) -> dict[str, Any]:
    """The compare.json document of two reports."""
    sa = {s.name: s for s in ra.scopes}
    sb = {s.name: s for s in rb.scopes}
    names = list(sa) + [n for n in sb if n not in sa]
    outputs = {}
    for name in sorted(set(ra.outputs) | set(rb.outputs)):
        ha, hb = _digest(ra, name), _digest(rb, name)
        outputs[name] = {"a": ha, "b": hb, "identical": ha is not None and ha == hb}
    comparable = bool(outputs) and all(o["a"] is not None and o["b"] is not None for o in outputs.values())

    def side(r: Report) -> dict[str, Any]:
        return {"program": r.program, "file": r.program_file,
                "check": r.check.model_dump(mode="json") if r.check else None}

    return {
        "a": side(ra),
        "b": side(rb),
        "preset": ra.preset,
        "config": ra.config,
        "seed": ra.seed,
        "clock_hz": ra.clock_hz,
        "outputs_identical": (all(o["identical"] for o in outputs.values()) if comparable else None),
        "outputs": outputs,
        "scopes": [_row(n, sa.get(n), sb.get(n)) for n in names],
        "total": _row("total", ra.total, rb.total),
        "reports": {"a": ra.model_dump(mode="json"), "b": rb.model_dump(mode="json")},
    }


def compare_runs(run_a: Callable[[], Report], run_b: Callable[[], Report], names: tuple[str, str], out_dir: Path
                 ) -> Comparison:
    """Run A, then B (one at a time: each full-size run holds its GM tensors), and write compare.json/png."""
    report_a = run_a()
    report_b = run_b()
    data = compare_reports(report_a, report_b)
    from . import plots
    from .artefacts import write_json

    plots.write_compare_chart(out_dir / "compare.png", report_a, report_b, *names)
    write_json(out_dir / "compare.json", data)
    return Comparison(data, out_dir)


def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "dma_bytes":
        return f"{value / 1e6:.3f} MB"
    if kind == "us":
        return f"{value:.2f}"
    return f"{value:.0f}"


def comparison_table(data: dict[str, Any]) -> Table:
    table = Table(title=f"{data['a']['program']} (A) vs {data['b']['program']} (B) on {data['config']}"
                  + (f", preset {data['preset']}" if data["preset"] else ""), title_justify="left")
    table.add_column("scope")
    table.add_column("tasks A/B", justify="right")
    for label in ("µs", "DMA bytes", "DMA xfers"):
        table.add_column(f"{label} A", justify="right")
        table.add_column(f"{label} B", justify="right")
        table.add_column("B - A", justify="right")
    for row in [*data["scopes"], data["total"]]:
        depth = row["name"].count("/")
        tasks = "/".join(_fmt(r["tasks"] if r else None, "tasks") for r in (row["a"], row["b"]))
        cells = ["  " * depth + row["name"].rsplit("/", 1)[-1], tasks]
        for key in ("us", "dma_bytes", "dma_transfers"):
            a = row["a"][key] if row["a"] else None
            b = row["b"][key] if row["b"] else None
            diff = row.get("diff", {}).get(key)
            pct = row.get("diff_pct", {}).get(key)
            change = "-" if diff is None else f"{_fmt(diff, key)}" + (f" ({pct:+.1f}%)" if pct is not None else "")
            cells += [_fmt(a, key), _fmt(b, key), change]
        table.add_row(*cells, style="bold" if row["name"] == "total" else None)
    return table


def print_comparison(result: Comparison, console: Console) -> None:
    data = result.data
    console.print(comparison_table(data))
    same = data["outputs_identical"]
    if same is None:
        console.print("outputs: not compared (timing-only runs)")
    else:
        differing = [n for n, o in data["outputs"].items() if not o["identical"]]
        console.print("outputs: bit-identical" if same else f"outputs DIFFER: {', '.join(differing)}")
    console.print(f"written: {result.out_dir / 'compare.json'}, {result.out_dir / 'compare.png'}")
