"""Wall time and peak memory of `npusim run` on the Qwen3-32B decode layer, against a plain numpy
evaluation of the same layer (the reference implementation over whole tensors).

    python benchmarks/bench.py [--cases tiny,default,full_max_seq] [--repeat N] [--no-append]

Each case runs in a fresh child process (so its peak RSS is its own); the table is printed and appended to
benchmarks/README.md with the machine's CPU and the date. Results also go to benchmarks/out/*.json, with
the outputs' sha256 and the per-scope cycles, so two versions can be compared for identical results.
Nothing here asserts on time: the numbers are for people.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PROGRAM = REPO / "programs" / "qwen3_decode.yaml"
PRESETS = {"tiny": "tiny", "default": None, "full_max_seq": "full_max_seq"}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def child(args: argparse.Namespace) -> None:
    """Run one case in this process and print a JSON line: wall time, peak RSS, digests, cycles."""
    import resource

    sys.path.insert(0, str(REPO))  # benchmark the checkout this script lives in, not an installed copy
    start = time.perf_counter()
    if args.mode == "numpy":
        from npusim.frontend import load_program
        from npusim.frontend.inputs import initial_values
        from npusim.references import get_reference

        program = load_program(PROGRAM, PRESETS[args.case])
        inputs = initial_values(program, 0)
        ready = time.perf_counter()
        get_reference("qwen3_decode").compute(inputs, program.consts)
        result = {"wall_s": time.perf_counter() - ready, "inputs_s": ready - start}
    else:
        from npusim.runner import RunOptions, run

        with tempfile.TemporaryDirectory() as out:
            report = run(RunOptions(program=PROGRAM, preset=PRESETS[args.case], numerics=args.mode == "numerics",
                                    out=Path(out), quiet=True, plot=False, trace=False)).report
        result = {
            "wall_s": time.perf_counter() - start,
            "tasks": report.total.tasks,
            "ops": report.ops,
            "cycles": {s.name: s.cycles for s in report.scopes} | {"total": report.total.cycles},
            "sha256": {n: o.sha256 for n, o in report.outputs.items()},
            "check": report.check.passed if report.check else None,
        }
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def measure(case: str, mode: str, repeat: int) -> dict:
    """The best of `repeat` runs (wall time), each in a fresh process."""
    best: dict | None = None
    for _ in range(repeat):
        proc = subprocess.run([sys.executable, __file__, "--child", case, mode], capture_output=True, text=True,
                              cwd=REPO, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"{case}/{mode} failed:\n{proc.stderr}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        if best is None or result["wall_s"] < best["wall_s"]:
            best = result
    assert best is not None
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="tiny,default,full_max_seq")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--no-append", action="store_true", help="do not append the table to benchmarks/README.md")
    parser.add_argument("--label", default="", help="a note for the table (e.g. the commit)")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(argparse.Namespace(case=args.child[0], mode=args.child[1]))
        return

    rows, results = [], {}
    for case in args.cases.split(","):
        numerics = measure(case, "numerics", args.repeat)
        timing = measure(case, "timing", args.repeat)
        numpy_eval = measure(case, "numpy", args.repeat)
        results[case] = {"numerics": numerics, "no_numerics": timing, "numpy": numpy_eval}
        rows.append(
            f"| {case} | {numerics['tasks']} | {numerics['ops']} | {numerics['wall_s']:.2f} | "
            f"{numerics['peak_rss_mb']:.0f} | {timing['wall_s']:.2f} | {timing['peak_rss_mb']:.0f} | "
            f"{numerics['wall_s'] / timing['wall_s']:.1f}x | {numpy_eval['wall_s']:.3f} | "
            f"{numerics['wall_s'] / numpy_eval['wall_s']:.1f}x | {'passed' if numerics['check'] else 'FAILED'} |"
        )
        print(rows[-1], flush=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"\n### {stamp} · {cpu_name()} · {os.cpu_count()} cores · Python {platform.python_version()}"
        + (f" · {args.label}" if args.label else "")
        + "\n\n| case | tasks | ops | run s | peak MB | --no-numerics s | peak MB | speed-up | numpy s | "
        "run / numpy | check |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    table = header + "\n".join(rows) + "\n"
    print(table)
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / f"bench-{stamp.replace(' ', '_').replace(':', '')}.json").write_text(json.dumps(results, indent=2))
    if not args.no_append:
        with (HERE / "README.md").open("a") as fh:
            fh.write(table)


if __name__ == "__main__":
    main()
