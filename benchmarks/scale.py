"""Time and peak memory of timing-only runs of generated programs with many tasks or many ops, to measure how
npusim scales (dependency finding, the task graph, the chip model) and the memory per task and per op the
run-size estimate uses (`npusim/interp/limits.py`).

    python benchmarks/scale.py [--tasks 20000,200000] [--ops 2000000] [--tree DIR] [--append]

`--tasks N`: N kernels, each loading a row block of `x`, scaling it and storing it into `y`, plus every 64th
kernel reading a column block of a shared weight and a block of the rows an earlier kernel wrote (so the
dependency finder sees reads, writes and overlaps on several tensors). `--ops M`: one kernel of about M ops (a
loop of loads, multiplies and stores). Each case runs `npusim run --no-numerics` in a fresh child process of
`--tree` (default: this checkout; run from a temporary directory so that no other checkout shadows it),
timed, with the child's peak RSS. Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

MANY_TASKS = """\
name: many_tasks
doc: N kernels over row blocks of x, every 64th also reading a weight column block and rows written before.
params: {{N: {n}, R: 16, C: 128}}
let:
  groups: N // 64
tensors:
  x: {{shape: [N * R, C], dtype: fp32, role: input, init: "uniform(-1, 1)"}}
  w: {{shape: [C, 64 * C], dtype: fp32, role: input, init: "uniform(-1, 1)"}}
  y: {{shape: [N * R, C], dtype: fp32, role: output}}
  z: {{shape: [groups * R, C], dtype: fp32, role: output}}
body:
  - scope rows:
    - parallel i in range(N):
      - incore scale:
        - t = slice(x, [R, C], [i * R, 0])
        - u = mul(t, 2.0)
        - y = assemble(y, u, [i * R, 0])
  - scope mixed:
    - parallel g in range(groups):
      - incore combine:
        - a = slice(y, [R, C], [g * 64 * R, 0])
        - b = slice(w, [R, C], [0, (g % 64) * C])
        - s = add(a, b)
        - z = assemble(z, s, [g * R, 0])
"""

MANY_OPS = """\
name: many_ops
doc: One kernel of about 3 x N ops.
params: {{N: {n}, R: 16, C: 128}}
tensors:
  x: {{shape: [R, C], dtype: fp32, role: input, init: "uniform(-1, 1)"}}
  y: {{shape: [R, C], dtype: fp32, role: output}}
body:
  - incore long:
    - for i in range(N):
      - t = slice(x, [R, C], [0, 0])
      - u = mul(t, 2.0)
      - y = assemble(y, u, [0, 0])
"""


def run_case(tree: Path, text: str, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        program = Path(tmp) / "program.yaml"
        program.write_text(text)
        env = dict(os.environ, PYTHONPATH=str(tree))
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "npusim", "run", str(program), "--no-numerics", "-q",
                                 "--no-plot", "--out", str(Path(tmp) / "out"), *extra],
                                env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        err = proc.stderr.read() if proc.stderr else ""
        traces = list((Path(tmp) / "out").glob("trace.json*"))  # trace.json, or trace.json.gz when large
        return {"seconds": seconds, "peak_mb": usage.ru_maxrss / 1024, "status": os.waitstatus_to_exitcode(status),
                "stderr": err.strip().splitlines()[-1] if err.strip() else "",
                "trace_mb": traces[0].stat().st_size / 2**20 if traces else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="20000,200000", help="comma-separated kernel counts ('' for none)")
    parser.add_argument("--ops", default="", help="comma-separated op counts of the one-kernel program")
    parser.add_argument("--tree", type=Path, default=HERE.parent, help="the npusim checkout to run")
    parser.add_argument("--append", action="store_true", help="append the table to benchmarks/README.md")
    args = parser.parse_args()
    rows = []
    for n in [int(v) for v in args.tasks.split(",") if v]:
        r = run_case(args.tree, MANY_TASKS.format(n=n), ["--max-tasks", str(max(n + n // 64, 200_000))])
        rows.append((f"{n + n // 64} tasks", r))
    for n in [int(v) for v in args.ops.split(",") if v]:
        r = run_case(args.tree, MANY_OPS.format(n=n // 3), ["--max-loop-iterations", str(max(n, 50_000_000))])
        rows.append((f"{n} ops, one kernel", r))
    head = (f"### {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC · {os.cpu_count()} cores · "
            f"load {os.getloadavg()[0]:.1f} · {args.tree}\n\n"
            "| case | exit | s | peak MB | trace MB on disk | last stderr line |\n|---|---|---|---|---|---|\n")
    table = head + "".join(f"| {name} | {r['status']} | {r['seconds']:.1f} | {r['peak_mb']:.0f} | {r['trace_mb']:.0f} "
                           f"| {r['stderr'][:120]} |\n" for name, r in rows)
    print(table)
    if args.append:
        with (HERE / "README.md").open("a") as fh:
            fh.write("\n" + table)


if __name__ == "__main__":
    main()
