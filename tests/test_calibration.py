"""npusim against the device: every value of pto-isa's cost-model tests (tests/data/pto_isa_points.yaml, each with
its source commit, file and line; docs/sources.md DEV) is run as a small program through the path a user's program
takes (load, interpret, schedule the kernel), and the instruction's isolated cycles are read off the kernel
schedule: from the start of its first step to the end of the kernel, the instruction being the kernel's last op.

Asserted: the measured A2/A3 points on configs/ascend910b.yaml (>= 95% within 10%, none worse than 25%) and the
A5 fit points on configs/ascend950.yaml (>= 85% within 10%). Every other value (pins, copies, unclear and
superseded values, and the measured values npusim cannot write as a program) is listed separately with its
reason, and run where it can be. `pytest -s tests/test_calibration.py` prints the tables.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import yaml

from npusim.errors import NpusimError
from npusim.frontend import load_program
from npusim.interp import execute
from npusim.timing import load_config, schedule_kernel
from npusim.timing.costs import CostModel

DATA = Path(__file__).parent / "data" / "pto_isa_points.yaml"
POINTS: list[dict] = yaml.safe_load(DATA.read_text())["points"]
CONFIG = {"a2a3": "ascend910b", "a5": "ascend950"}
STATUSES = {"measured", "zeroed", "pin", "copy", "unclear"}
DTYPES = {"fp32": "fp32", "fp16": "fp16", "bf16": "bf16", "int32": "int32"}
DMA_AS_FP16 = {"int16"}  # a DMA's cost depends on its bytes only (the entry's note says so)


class NotExpressible(Exception):
    """A device value npusim's programs cannot state (the reason is the message)."""


# --- points as programs ----------------------------------------------------------------------------------

SCALAR_FORMS = {"TADDS": "add", "TSUBS": "sub", "TMULS": "mul", "TDIVS": "div", "TMAXS": "maximum", "TMINS": "minimum"}
BINARY = {"TADD": "add", "TSUB": "sub", "TMUL": "mul", "TDIV": "div", "TMAX": "maximum", "TMIN": "minimum"}
UNARY = {"TNEG": "neg", "TABS": "abs", "TEXP": "exp", "TSQRT": "sqrt", "TRSQRT": "rsqrt", "TRECIP": "recip"}
REDUCE = {"TROWSUM": "row_sum", "TROWMAX": "row_max", "TROWMIN": "row_min", "TCOLMAX": "col_max",
          "TCOLMIN": "col_min", "TCOLSUM": "col_sum"}


def _dtype(p: dict, name: str | None = None) -> str:
    dt = name or p["dtype"]
    if dt in DTYPES:
        return DTYPES[dt]
    if dt in DMA_AS_FP16 and p["op"] in ("TLOAD", "TSTORE"):
        return "fp16"
    raise NotExpressible(f"npusim has no {dt} dtype")


def _init(dtype: str) -> str:
    return "randint(1, 100)" if dtype == "int32" else "uniform(1, 2)"


class _Program:
    """A one-kernel program: GM inputs, the kind's run-time valid shapes, loads, and the point's instruction."""

    def __init__(self) -> None:
        self.tensors: list[str] = []
        self.scalars: list[str] = []
        self.kernel: list[str] = []

    def tensor(self, name: str, shape: list[int], dtype: str) -> None:
        self.tensors.append(f"  {name}: {{shape: {shape}, dtype: {dtype}, role: input, init: \"{_init(dtype)}\"}}")

    def load(self, name: str, tensor: str, shape: list[int], dtype: str, valid: list[int], dynamic: bool) -> None:
        """A tile of a GM tensor; dynamic: its valid shape given as run-time values (program scalars)."""
        self.tensor(tensor, shape, dtype)
        zeros = [0] * len(shape)
        if dynamic:
            dims = []
            for i, v in enumerate(valid):
                self.scalars.append(f"  - {name}_v{i} = {v}")
                dims.append(f"{name}_v{i}")
            self.kernel.append(f"    - {name} = slice({tensor}, {shape}, {zeros}, valid_shape=[{', '.join(dims)}])")
        elif valid != shape:
            self.kernel.append(f"    - {name} = slice({tensor}, {shape}, {zeros}, valid_shape={valid})")
        else:
            self.kernel.append(f"    - {name} = slice({tensor}, {shape}, {zeros})")

    def text(self) -> str:
        return "\n".join(["name: point", "tensors:", *self.tensors, "body:", *self.scalars, "  - incore point:",
                          *self.kernel]) + "\n"


def program_text(p: dict) -> str:
    """The point as a program whose last op is the point's instruction; NotExpressible says why not."""
    op, prog = p["op"], _Program()
    prm = p.get("params") or {}
    tile = p.get("tile")
    valid = p.get("valid", tile)
    dynamic = p["kind"] == "dynamic"
    if op == "TLOAD":
        if "gm_shape" not in prm:
            raise NotExpressible("no GM window recorded")
        gm = list(prm["gm_shape"])
        if str(prm.get("layout", "")).startswith("DN"):
            gm[-2], gm[-1] = gm[-1], gm[-2]  # the row-major twin: the same calls x bursts x bytes
        prog.tensor("x", gm, _dtype(p))
        prog.kernel.append(f"    - a = slice(x, {gm}, {[0] * len(gm)})")
        return prog.text()
    if op == "TSTORE":
        dt = _dtype(p)
        prog.load("a", "x", tile, dt, tile, False)
        prog.tensors.append(f"  y: {{shape: {tile}, dtype: {dt}, role: output}}")
        prog.kernel.append("    - y = assemble(y, a, [0, 0])")
        return prog.text()
    if op == "TMATMUL":
        if "M" not in prm or prm.get("repeats", 1) != 1:
            raise NotExpressible("a split-K chain of TMATMUL_ACC, not one instruction")
        dt = _dtype(p)
        if dt == "int32":
            raise NotExpressible("npusim has no int8 matmul")
        prog.load("a", "x", [prm["M"], prm["K"]], dt, [prm["M"], prm["K"]], False)
        prog.load("b", "w", [prm["K"], prm["N"]], dt, [prm["K"], prm["N"]], False)
        prog.kernel.append("    - c = matmul(a, b, out_dtype=fp32)")
        return prog.text()
    if tile is None:
        raise NotExpressible("no tile shape recorded")
    if op == "TCVT":
        src, dst = (_dtype(p, d) for d in p["dtype"].split("->"))
        prog.load("a", "x", tile, src, valid, dynamic)
        prog.kernel.append(f"    - r = cast(a, {dst})")
        return prog.text()
    dt = _dtype(p)
    if op == "TMOV":  # a UB -> UB tile copy: npusim's tile slice (TEXTRACT issues the same copy_ubuf_to_ubuf)
        prog.load("a", "x", tile, dt, tile, False)
        rows, cols = valid
        prog.scalars += [f"  - mr = {rows}", f"  - mc = {cols}"]
        prog.kernel.append(f"    - r = slice(a, {tile}, [0, 0], valid_shape=[mr, mc])")
        return prog.text()
    prog.load("a", "x", tile, dt, valid, dynamic)
    if op in BINARY:  # both operands one tile: the sequence does not depend on the values (and it fits UB)
        call = f"{BINARY[op]}(a, a)"
    elif op in SCALAR_FORMS:
        if "scalar / tile" in str(prm.get("form", "")):
            raise NotExpressible("scalar / tile division: npusim's div takes the tile first")
        call = f"{SCALAR_FORMS[op]}(a, 3.0)"
    elif op in UNARY:
        if prm.get("in_place") or "high precision" in str(prm.get("variant", "")):
            raise NotExpressible("in place / the 3-operand high-precision form")
        call = f"{UNARY[op]}(a)"
    elif op in REDUCE:
        if op == "TCOLSUM" and prm.get("isBinary"):
            prog.load("t", "x2", tile, dt, tile, False)
            call = "col_sum(a, t)"
        else:
            call = f"{REDUCE[op]}(a)"
    elif op == "TROWEXPAND":
        prog.load("v", "x2", [tile[0], 1], dt, [valid[0], 1], dynamic)
        call = "row_expand(a, v)"
    else:
        raise NotExpressible(f"npusim has no op for {op}")
    prog.kernel.append(f"    - r = {call}")
    return prog.text()


@dataclass
class Result:
    point: dict
    npusim: float | None
    note: str = ""

    @property
    def error(self) -> float | None:
        return None if self.npusim is None else (self.npusim - self.point["device"]) / self.point["device"]


@cache
def _cost(config: str) -> CostModel:
    return CostModel(load_config(config))


def isolated_cycles(text: str, path: Path, config: str) -> float:
    """Run the program's one kernel and read its last op's cycles off the schedule: from its first step's start
    to the kernel's end (a vector op's tail is paid when the pipe drains at the end)."""
    path.write_text(text)
    execution = execute(load_program(path), {}, numerics_on=False)
    (task,) = execution.tasks
    schedule = schedule_kernel(task, _cost(config), execution.instrs)
    last = len(task.ops) - 1
    start = min(t.start for t in schedule.ops if t.op == last)
    return schedule.cycles - start


def run_point(p: dict, workdir: Path) -> Result:
    try:
        text = program_text(p)
    except NotExpressible as exc:
        return Result(p, None, str(exc))
    try:
        return Result(p, isolated_cycles(text, workdir / "point.yaml", CONFIG[p["arch"]]), p.get("note", ""))
    except NpusimError as exc:
        return Result(p, None, f"npusim: {exc}")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> list[Result]:
    workdir = tmp_path_factory.mktemp("points")
    return [run_point(p, workdir) for p in POINTS]


def asserted(results: list[Result], arch: str) -> list[Result]:
    return [r for r in results if r.point["arch"] == arch and "separate" not in r.point]


def _shape(p: dict) -> str:
    if p["op"] == "TLOAD" and "gm_shape" in (p.get("params") or {}):
        return "gm" + "x".join(map(str, p["params"]["gm_shape"]))
    if "tile" not in p:
        return "-"
    s = "x".join(map(str, p["tile"]))
    return s + (" v" + "x".join(map(str, p["valid"])) if "valid" in p else "")


def table(title: str, rows: list[Result], reasons: bool = False) -> str:
    lines = [f"\n=== {title}", f"{'op':10s} {'dtype':12s} {'shape':22s} {'tile':8s} {'device':>7s} {'npusim':>8s} "
             f"{'error':>7s}  {'id' if not reasons else 'id; why listed separately'}"]
    for r in rows:
        p = r.point
        npu = f"{r.npusim:8.1f}" if r.npusim is not None else f"{'-':>8s}"
        err = f"{100 * r.error:+6.1f}%" if r.error is not None else f"{'-':>7s}"
        flag = " <-- >10%" if r.error is not None and abs(r.error) > 0.10 and not reasons else ""
        why = f"; {p['separate']}" + (f" ({r.note})" if r.note and r.npusim is None else "") if reasons else ""
        lines.append(f"{p['op']:10s} {p['dtype']:12s} {_shape(p):22s} {p['kind']:8s} {p['device']:7.0f} {npu} {err}  "
                     f"{p['id']}{why}{flag}")
    errors = [abs(r.error) for r in rows if r.error is not None]
    if errors and not reasons:
        within = sum(e <= 0.10 for e in errors)
        lines.append(f"--- {within} of {len(errors)} within 10% ({100 * within / len(errors):.1f}%), "
                     f"{sum(e <= 0.25 for e in errors)} within 25%, worst {100 * max(errors):.1f}%")
    return "\n".join(lines)


def _print(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(text)


# --- the data file ----------------------------------------------------------------------------------------


def test_every_point_has_a_source_and_a_status() -> None:
    ids = [p["id"] for p in POINTS]
    assert len(ids) == len(set(ids))
    for p in POINTS:
        assert p["status"] in STATUSES, p["id"]
        assert p["arch"] in CONFIG and p["device"] > 0 and p["reason"], p["id"]
        src = p["source"]
        assert src["repo"] in ("hw-native-sys/pto-isa", "zouzias/pto-isa-mirror") and len(src["commit"]) >= 8, p["id"]
        assert src["path"].startswith(("tests/costmodel/", "include/pto/costmodel/")), p["id"]
        # only measured values are asserted; everything else is listed separately, with its reason
        if p["status"] not in ("measured", "zeroed"):
            assert p.get("separate"), p["id"]
    measured = Counter(p["arch"] for p in POINTS if "separate" not in p)
    assert measured == {"a2a3": 67, "a5": 310}


def test_every_asserted_point_is_a_program() -> None:
    for p in POINTS:
        if "separate" not in p:
            program_text(p)  # raises NotExpressible


# --- the targets -----------------------------------------------------------------------------------------


def test_a2a3_measured_points_on_ascend910b(results: list[Result], capsys: pytest.CaptureFixture[str]) -> None:
    rows = asserted(results, "a2a3")
    _print(table("A2/A3 measured points on ascend910b (asserted)", rows), capsys)
    errors = [abs(r.error) for r in rows if r.error is not None]
    assert len(errors) == len(rows)
    assert sum(e <= 0.10 for e in errors) >= 0.95 * len(rows)
    assert max(errors) <= 0.25


def test_a5_fit_points_on_ascend950(results: list[Result], capsys: pytest.CaptureFixture[str]) -> None:
    rows = asserted(results, "a5")
    _print(table("A5 fit points on ascend950 (asserted)", rows), capsys)
    errors = [abs(r.error) for r in rows if r.error is not None]
    assert len(errors) == len(rows)
    assert sum(e <= 0.10 for e in errors) >= 0.85 * len(rows)


def test_the_points_listed_separately(results: list[Result], capsys: pytest.CaptureFixture[str]) -> None:
    """Printed for the record, with npusim's cost where the point can be run; not asserted."""
    for arch in CONFIG:
        rows = [r for r in results if r.point["arch"] == arch and "separate" in r.point]
        _print(table(f"{arch}: listed separately ({len(rows)} values; npusim run where it can be)", rows,
                     reasons=True), capsys)
        counts = Counter(r.point["separate"].split(":")[0] for r in rows)
        _print("--- " + ", ".join(f"{n} {why}" for why, n in counts.most_common()), capsys)
