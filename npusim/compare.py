"""`npusim compare A B`: run two programs with the same options and set their reports side by side, scope by
scope (latency, tasks, DMA bytes and transfers), and say whether their outputs are bit-identical."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from . import artifacts
from .hardware import CONFIG_DIR
from .run import RunOptions, run

METRICS = ("cycles", "us", "tasks", "dma_bytes", "dma_transfers")


@dataclass
class Comparison:
    data: dict[str, Any]
    out_dir: Path


def _metrics(scope: dict[str, Any]) -> dict[str, float]:
    return {
        "cycles": scope["cycles"],
        "us": scope["us"],
        "tasks": scope["tasks"],
        "dma_bytes": sum(scope["dma"]["bytes"].values()),
        "dma_transfers": sum(scope["dma"]["transfers"].values()),
    }


def _row(name: str, a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any]:
    ma = _metrics(a) if a else None
    mb = _metrics(b) if b else None
    row: dict[str, Any] = {"name": name, "a": ma, "b": mb}
    if ma and mb:
        row["diff"] = {k: round(mb[k] - ma[k], 4) for k in METRICS}
        row["diff_pct"] = {k: (round(100.0 * (mb[k] - ma[k]) / ma[k], 3) if ma[k] else None) for k in METRICS}
    return row


def compare_reports(ra: dict[str, Any], rb: dict[str, Any]) -> dict[str, Any]:
    """The compare.json document of two reports."""
    sa = {s["name"]: s for s in ra["scopes"]}
    sb = {s["name"]: s for s in rb["scopes"]}
    names = list(sa) + [n for n in sb if n not in sa]
    outputs = {}
    for name in sorted(set(ra["outputs"]) | set(rb["outputs"])):
        ha = ra["outputs"].get(name, {}).get("sha256")
        hb = rb["outputs"].get(name, {}).get("sha256")
        outputs[name] = {"a": ha, "b": hb, "identical": ha is not None and ha == hb}
    comparable = bool(outputs) and all(o["a"] is not None and o["b"] is not None for o in outputs.values())
    return {
        "a": {"program": ra["program"], "file": ra["program_file"], "check": ra.get("check")},
        "b": {"program": rb["program"], "file": rb["program_file"], "check": rb.get("check")},
        "preset": ra["preset"],
        "config": ra["config"],
        "seed": ra["seed"],
        "clock_hz": ra["clock_hz"],
        "outputs_identical": (all(o["identical"] for o in outputs.values()) if comparable else None),
        "outputs": outputs,
        "scopes": [_row(n, sa.get(n), sb.get(n)) for n in names],
        "total": _row("total", ra["total"], rb["total"]),
        "reports": {"a": ra, "b": rb},
    }


def compare_programs(opts_a: RunOptions, opts_b: RunOptions, out: Path | None) -> Comparison:
    """Run A, then B (one at a time: each full-size run holds its GM tensors), and write compare.json/png."""
    name_a, name_b = opts_a.program.stem, opts_b.program.stem
    suffix = f"-{opts_a.preset}" if opts_a.preset else ""
    out_dir = artifacts.prepare_out_dir(
        out or Path("reports") / f"compare-{name_a}-vs-{name_b}{suffix}",
        [opts_a.program.resolve().parent, CONFIG_DIR, Path(__file__).resolve().parent],
    )
    report_a = run(opts_a).report
    report_b = run(opts_b).report
    data = compare_reports(report_a, report_b)
    from . import plots

    plots.write_compare_chart(out_dir / "compare.png", report_a, report_b, name_a, name_b)
    artifacts.write_json(out_dir / "compare.json", data)
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
