"""`npusim compare`: two reports side by side, scope by scope (nested scopes too): latency, tasks, GM traffic
(the bytes and transfers that cross HBM) and on-chip traffic (between buffers) kept apart, whether the
outputs are bit-identical, and each side's reference check. The reports come from two runs (two programs,
one program on two configs or with two --set variants) or from saved report.json files."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from npusim.errors import Location, NpusimError
from npusim.frontend.yaml_source import read_bytes
from npusim.vocabulary import touches_gm

from .report import Report, Summary
from .table import number_table, print_table

METRICS = {
    "cycles": "cycles (of each side's clock)",
    "us": "latency µs",
    "tasks": "tasks",
    "gm_bytes": "GM bytes: read from and written to global memory (HBM)",
    "gm_transfers": "GM transfers: DMA transfers to or from global memory",
    "onchip_bytes": "on-chip bytes: moved between on-chip buffers (L1, L0A/B/C, UB)",
    "onchip_transfers": "on-chip transfers",
}
MAX_REPORT_BYTES = 64 << 20  # a saved report.json larger than this is not one npusim wrote


@dataclass
class Comparison:
    data: dict[str, Any]
    out_dir: Path


def load_report(path: Path) -> Report:
    """A saved report.json, or one located error saying why it is not one."""
    where = Location(str(path))
    if not path.exists():
        raise NpusimError("no such report file", where)
    raw = read_bytes(path, MAX_REPORT_BYTES, "report")  # a regular file, read with a bound
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise NpusimError("not UTF-8 text: not an npusim report.json", where) from None
    except json.JSONDecodeError as exc:
        raise NpusimError(f"not JSON: {exc.msg}", Location(str(path), exc.lineno, exc.colno)) from None
    try:
        return Report.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise NpusimError(f"not a report.json of this npusim: {key}: {first['msg']} ({exc.error_count()} problem(s))",
                          where) from None


def _metrics(scope: Summary) -> dict[str, float]:
    gm_bytes = sum(n for p, n in scope.dma.bytes.items() if touches_gm(p))
    gm_transfers = sum(n for p, n in scope.dma.transfers.items() if touches_gm(p))
    return {
        "cycles": scope.cycles,
        "us": scope.us,
        "tasks": scope.tasks,
        "gm_bytes": gm_bytes,
        "gm_transfers": gm_transfers,
        "onchip_bytes": scope.dma.total_bytes() - gm_bytes,
        "onchip_transfers": scope.dma.total_transfers() - gm_transfers,
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


def _side(report: Report, label: str) -> dict[str, Any]:
    return {"label": label, "program": report.program, "file": report.program_file, "preset": report.preset,
            "overrides": report.overrides, "config": report.config, "config_path": report.config_path,
            "config_sha256": report.config_sha256, "runtime": report.runtime, "seed": report.seed,
            "numerics": report.numerics,
            "npusim_version": report.npusim_version, "provenance": report.provenance(),
            "check": report.check.model_dump(mode="json") if report.check else None}


def compare_reports(ra: Report, rb: Report, labels: tuple[str, str] = ("A", "B")) -> dict[str, Any]:
    """The compare.json document of two reports."""
    sa = {s.name: s for s in ra.scopes}
    sb = {s.name: s for s in rb.scopes}
    names = list(sa) + [n for n in sb if n not in sa]
    outputs = {}
    for name in sorted(set(ra.outputs) | set(rb.outputs)):
        ha, hb = _digest(ra, name), _digest(rb, name)
        outputs[name] = {"a": ha, "b": hb, "identical": ha is not None and ha == hb}
    comparable = bool(outputs) and all(o["a"] is not None and o["b"] is not None for o in outputs.values())
    return {
        "a": _side(ra, labels[0]),
        "b": _side(rb, labels[1]),
        "metrics": METRICS,
        "outputs_identical": (all(o["identical"] for o in outputs.values()) if comparable else None),
        "outputs": outputs,
        "failed_checks": [k for k, r in (("a", ra), ("b", rb)) if r.check is not None and not r.check.passed],
        "scopes": [_row(n, sa.get(n), sb.get(n)) for n in names],
        "total": _row("total", ra.total, rb.total),
        "reports": {"a": ra.model_dump(mode="json"), "b": rb.model_dump(mode="json")},
    }


def compare_runs(report_a: Callable[[], Report], report_b: Callable[[], Report], labels: tuple[str, str],
                 out_dir: Path) -> Comparison:
    """Get A, then B (one at a time: each full-size run holds its GM tensors), and write compare.json/png."""
    ra = report_a()
    rb = report_b()
    data = compare_reports(ra, rb, labels)
    from . import plots
    from .artefacts import write_json

    plots.write_compare_chart(out_dir / "compare.png", ra, rb, *labels)
    write_json(out_dir / "compare.json", data)
    return Comparison(data, out_dir)


# --- console ---------------------------------------------------------------------------------------------


def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    if kind.endswith("_bytes"):
        return f"{value / 1e6:.2f}"
    if kind == "us":
        return f"{value:.2f}"
    return f"{value:.0f}"


def _pct(row: dict[str, Any], key: str) -> str:
    """B against A in percent; `=` when equal, `new` when A had none."""
    diff, pct = row.get("diff", {}).get(key), row.get("diff_pct", {}).get(key)
    if diff is None:
        return "-"
    if diff == 0:
        return "="
    if pct is None:
        return "new"
    return f"{pct:+.1f}%" if abs(pct) >= 0.05 else f"{'+' if pct > 0 else '-'}<0.1%"


def _name(row: dict[str, Any]) -> str:
    return "  " * row["name"].count("/") + row["name"].rsplit("/", 1)[-1]


def comparison_tables(data: dict[str, Any]) -> list[Table]:
    """Latency, then traffic, each within 100 columns: GM (HBM) and on-chip traffic in their own columns."""
    a, b = data["a"]["label"], data["b"]["label"]
    rows = [*data["scopes"], data["total"]]
    time = number_table(f"A = {a}, B = {b}: latency", ["scope", "tasks\nA", "tasks\nB", "µs A", "µs B", "B - A\nµs",
                                                  "B vs A"])
    traffic = number_table("traffic: GM = to/from global memory (HBM), on-chip = between buffers",
                     ["scope", "GM MB\nA", "GM MB\nB", "B vs A", "GM\nxfers A", "GM\nxfers B", "on-chip\nMB A",
                      "on-chip\nMB B", "B vs A"])
    for row in rows:
        ra, rb = row["a"] or {}, row["b"] or {}
        style = "bold" if row["name"] == "total" else None
        diff = row.get("diff", {}).get("us")
        time.add_row(_name(row), _fmt(ra.get("tasks"), "tasks"), _fmt(rb.get("tasks"), "tasks"),
                     _fmt(ra.get("us"), "us"), _fmt(rb.get("us"), "us"),
                     "-" if diff is None else "=" if diff == 0 else f"{diff:+.2f}", _pct(row, "us"), style=style)
        traffic.add_row(_name(row), _fmt(ra.get("gm_bytes"), "gm_bytes"), _fmt(rb.get("gm_bytes"), "gm_bytes"),
                        _pct(row, "gm_bytes"), _fmt(ra.get("gm_transfers"), "n"), _fmt(rb.get("gm_transfers"), "n"),
                        _fmt(ra.get("onchip_bytes"), "onchip_bytes"), _fmt(rb.get("onchip_bytes"), "onchip_bytes"),
                        _pct(row, "onchip_bytes"), style=style)
    return [time, traffic]


def check_lines(data: dict[str, Any]) -> list[str]:
    """One line per side that was checked, FAILED ones first."""
    lines = []
    for key in ("a", "b"):
        side, check = data[key], data[key]["check"]
        if check is None:
            continue
        errs = ", ".join(f"{label} {value:.3g}" if value is not None else f"{label} non-finite"
                         for label, value in (("max abs err", check["max_abs_err"]),
                                              ("max rel err", check["max_rel_err"])))
        verdict = "passed" if check["passed"] else "FAILED"
        lines.append(f"check of {key.upper()} ({side['label']}) against {check['reference']}: {verdict} ({errs})")
    return sorted(lines, key=lambda line: "FAILED" not in line)


def print_comparison(result: Comparison, console: Console) -> None:
    data = result.data
    for table in comparison_tables(data):
        print_table(console, table)
    same = data["outputs_identical"]
    if same is None:
        console.print("outputs: not compared (a timing-only side)")
    else:
        differing = [n for n, o in data["outputs"].items() if not o["identical"]]
        console.print("outputs: bit-identical" if same else f"outputs DIFFER: {', '.join(differing)}")
    for line in check_lines(data):
        console.print(f"[red]{line}[/red]" if "FAILED" in line else line, highlight=False)
    for key in ("a", "b"):
        console.print(f"{key.upper()}: {data[key]['provenance']}", highlight=False, soft_wrap=True)
    console.print(f"written: {result.out_dir / 'compare.json'}, {result.out_dir / 'compare.png'}")


def comparison_csv(data: dict[str, Any]) -> str:
    """Every metric of every scope for A and B and their difference, one row per scope."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["scope", *(f"{k}_{s}" for k in METRICS for s in ("a", "b", "diff"))])
    for row in [*data["scopes"], data["total"]]:
        cells: list[Any] = [row["name"]]
        for k in METRICS:
            cells += [(row["a"] or {}).get(k, ""), (row["b"] or {}).get(k, ""), row.get("diff", {}).get(k, "")]
        writer.writerow(cells)
    return out.getvalue()
