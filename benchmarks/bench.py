"""Wall time and peak memory of `npusim run` on the Qwen3-32B decode layer, against a plain numpy
evaluation of the same layer (the reference implementation over whole tensors), and how both scale.

    python benchmarks/bench.py [--cases tiny,default,full_max_seq] [--no-scaling] [--repeat 3]
                               [--base DIR --base-python PY] [--sweep N] [--no-append] [--label TEXT]

Each measurement runs in a fresh child process (so its peak RSS is its own; "machine MB" is the largest drop of the
machine's available memory while it ran, which also counts the process a run forks for its check's reference) and
the median of `--repeat` runs is shown, the runs going in rounds of every case. With `--base`, every measurement is
paired: the checkout in DIR (run by PY, e.g. its own venv's python) and this checkout run alternately, so a machine
shared with other work slows both alike; before each run the parent writes `--pretouch-mb` of memory and frees it,
so both start with the same free memory rather than one paying to evict the page cache. Tables: the three presets
(run with numerics, timing only, numpy), the scaling over max_seq 1k-16k and batch 16-64 with the linear
extrapolation of each end from its two neighbours, start-up (`npusim --help`, `npusim validate` of a small program,
wall and CPU), and a sweep: N timing-only variants of the full layer (max_seq 1024 + 64 i) on a pool of one process
per core, each process importing npusim once; then which of issue 17's targets the newest side's numbers meet
(`verdicts`). The tables are printed and appended to benchmarks/README.md with the machine and the date; raw results
(with outputs' sha256 and per-scope cycles, so two versions can be compared for identical results) go to
benchmarks/out/*.json.
Nothing here asserts on time: the numbers are for people.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PROGRAM = "programs/qwen3_decode.yaml"
PRESETS = {"tiny", "full_max_seq"}
MODES = ("numerics", "timing", "numpy")
SAMPLE_S = 0.05  # how often a run's memory use of the whole machine is sampled
SCALING = ["max_seq=1024", "max_seq=2048", "default", "max_seq=8192", "max_seq=16384", "batch=32", "batch=64"]
START_UP = {"--help": ["--help"], "validate matmul": ["validate", "programs/matmul.yaml"]}
# Children write and use bytecode as an installed npusim does (an editable install compiles its modules on first
# import): a machine with PYTHONDONTWRITEBYTECODE set would otherwise pay ~0.1 s of compiling in every run
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def case_options(case: str) -> tuple[str | None, dict[str, int]]:
    """A case as (preset, --set overrides): a preset name, `default`, or `name=value[,name=value]`."""
    if case == "default":
        return None, {}
    if case in PRESETS:
        return case, {}
    return None, {k: int(v) for k, v in (kv.split("=") for kv in case.split(","))}


def child(case: str, mode: str, repo: Path) -> None:
    """Run one case in this process and print a JSON line: wall time, peak RSS, digests, cycles."""
    sys.path.insert(0, str(repo))  # benchmark the checkout asked for, not an installed copy
    preset, overrides = case_options(case)
    program_file = repo / PROGRAM
    start = time.perf_counter()
    if mode == "numpy":
        import math

        from npusim.dtypes import itemsize
        from npusim.frontend import load_program
        from npusim.frontend.inputs import initial_values
        from npusim.references import get_reference

        program = load_program(program_file, preset, overrides)
        inputs = initial_values(program, 0)
        ready = time.perf_counter()
        get_reference("qwen3_decode").compute(inputs, program.consts)
        result: dict[str, Any] = {
            "wall_s": time.perf_counter() - ready, "inputs_s": ready - start,
            "gm_mb": sum(math.prod(t.shape) * itemsize(t.dtype) for t in program.tensors.values()) / 2**20}
    else:  # `npusim run` as a user runs it, in this process, without its table, plots and trace
        from npusim.cli import main as cli
        from npusim.output.report import Report

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out"
            args = ["run", str(program_file), "--quiet", "--no-plot", "--no-trace", "--out", str(out),
                    *(["--no-numerics"] if mode == "timing" else []), *(["--preset", preset] if preset else []),
                    *(f"--set={k}={v}" for k, v in overrides.items())]
            try:
                cli.main(args, standalone_mode=False)
            except SystemExit as exc:  # (a failed check exits 3; its report is still written)
                if exc.code not in (0, 3):
                    raise
            report = Report.model_validate_json((out / "report.json").read_text())
        result = {
            "wall_s": time.perf_counter() - start,
            "tasks": report.total.tasks,
            "ops": report.ops,
            "cycles": {s.name: s.cycles for s in report.scopes} | {"total": report.total.cycles},
            "sha256": {n: o.sha256 for n, o in report.outputs.items()},
            "check": report.check.passed if report.check else None,
        }
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result), flush=True)
    os._exit(0)  # as `npusim run` leaves (npusim.__main__.QUICK_EXIT), not freeing the run's objects one by one


def proc_mb(path: str, key: str) -> float | None:
    """A `key: N kB` line of a /proc file, in MiB; None where there is no such file or line."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM, which exec resets (ru_maxrss keeps the high-water mark of the
    parent that forked us, and the parent has just pretouched --pretouch-mb)."""
    peak = proc_mb("/proc/self/status", "VmHWM")
    if peak is not None:
        return peak
    import resource  # (not on Windows)

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pretouch(mb: int) -> None:
    """Write `mb` MiB and free it: the kernel reclaims page cache now, not during the measured run."""
    if mb > 0:
        block = bytearray(mb * 2**20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        del block


def mem_available_mb() -> float:
    """The machine's MemAvailable (/proc/meminfo), or 0 where there is none."""
    return proc_mb("/proc/meminfo", "MemAvailable") or 0.0


def once(python: str, repo: Path, case: str, mode: str, pretouch_mb: int) -> dict:
    """One child run. Besides the child's own peak RSS, `system_mb` is the largest drop of the machine's
    MemAvailable while it ran (sampled every SAMPLE_S): the memory of the run and of any process it forks (the
    check's reference), shared pages counted once."""
    pretouch(pretouch_mb)
    baseline = lowest = mem_available_mb()
    begin = time.perf_counter()
    ended: list[float] = []
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([python, str(Path(__file__).resolve()), "--child", case, mode, str(repo)],
                                stdout=out, stderr=err, text=True, cwd=repo, env=CHILD_ENV)

        def reap() -> None:
            proc.wait()
            ended.append(time.perf_counter())

        # the child is reaped by a thread blocked in wait(), so its end is known to the moment, not to the next
        # sample (a poll every SAMPLE_S put up to 0.05 s on every process time)
        reaper = threading.Thread(target=reap)
        reaper.start()
        while reaper.is_alive():
            lowest = min(lowest, mem_available_mb())
            reaper.join(SAMPLE_S)
        elapsed = ended[0] - begin
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{repo} {case}/{mode} failed:\n{err.read()}")
        result = json.loads(out.read().strip().splitlines()[-1])
    result["process_s"] = elapsed
    result["system_mb"] = baseline - lowest
    return result


def median_of(runs: list[dict]) -> dict:
    """The run with the median wall time, with the median of every timing and the largest peak RSS."""
    runs = sorted(runs, key=lambda r: r["wall_s"])
    out = dict(runs[len(runs) // 2])
    for key in ("wall_s", "process_s", "inputs_s"):
        if key in out:
            out[key] = statistics.median(r[key] for r in runs)
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    out["system_mb"] = max(r.get("system_mb", 0.0) for r in runs)
    out["walls"] = [round(r["wall_s"], 3) for r in runs]
    return out


def measure(sides: dict[str, tuple[str, Path]], cases: list[str], repeat: int, pretouch_mb: int) -> dict:
    """results[side][case][mode]: the median of `repeat` runs, the sides alternating run by run.

    The runs go in rounds, each round every case and mode once: this VM's speed drifts by up to 2x over minutes,
    and measuring a case's repeats back to back put that drift between the cases of the scaling table (round twelve's
    table put batch 64 at 1.24x its line; three rounds of default, batch 32 and batch 64 in turn, at 0.91x)."""
    raw: dict[str, dict[str, dict[str, list[dict]]]] = {s: {} for s in sides}
    for round_ in range(repeat):
        for case in cases:
            for mode in MODES:
                for side, (python, repo) in sides.items():
                    raw[side].setdefault(case, {}).setdefault(mode, []).append(
                        once(python, repo, case, mode, pretouch_mb))
                line = " · ".join(f"{s} {raw[s][case][mode][-1]['wall_s']:.2f} s" for s in sides)
                print(f"  round {round_ + 1}/{repeat} {case} {mode}: {line}", flush=True)
    return {s: {c: {m: median_of(runs) for m, runs in per.items()} for c, per in raw[s].items()} for s in raw}


def machine_speed() -> float:
    """Seconds of a fixed pure-Python loop (median of 3): this VM's speed drifts with its host's load by up to
    ~2x over minutes (`npusim validate` of one program took 0.17 s and 0.44 s an hour apart), so every table
    says how fast the machine was at its start and end."""
    def loop() -> float:
        begin = time.perf_counter()
        total = 0
        for i in range(3_000_000):
            total += i
        return time.perf_counter() - begin

    return statistics.median(loop() for _ in range(3))


def start_up(python: str, repo: Path, repeat: int) -> dict[str, dict[str, float]]:
    """Median wall and CPU seconds of the start-up commands (`python -m npusim ...` in the checkout)."""
    import resource

    out = {}
    for name, argv in START_UP.items():
        walls, cpus = [], []
        subprocess.run([python, "-m", "npusim", *argv], capture_output=True, cwd=repo, check=False, env=CHILD_ENV)
        for _ in range(repeat):  # after one unmeasured run (it writes the bytecode)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            begin = time.perf_counter()
            proc = subprocess.run([python, "-m", "npusim", *argv], capture_output=True, cwd=repo, check=False,
                                  env=CHILD_ENV)
            walls.append(time.perf_counter() - begin)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            if proc.returncode != 0:
                raise SystemExit(f"{repo}: npusim {' '.join(argv)} failed:\n{proc.stderr.decode()}")
        out[name] = {"wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus)}
    return out


def _sweep_one(repo: str, max_seq: int) -> float:
    sys.path.insert(0, repo)
    try:
        from npusim.runner import RunOptions, run
    except ImportError:
        from npusim.run import RunOptions, run
    begin = time.perf_counter()
    run(RunOptions(program=Path(repo) / PROGRAM, overrides={"max_seq": max_seq}, numerics=False, quiet=True,
                   plot=False, trace=False))
    return time.perf_counter() - begin


def sweep(python: str, repo: Path, n: int) -> dict[str, float]:
    """Wall time of `n` timing-only variants on a pool of one process per core (run by `python`)."""
    script = (f"import sys, time; sys.path.insert(0, {str(HERE)!r}); import bench\n"
              "from concurrent.futures import ProcessPoolExecutor\n"
              "begin = time.perf_counter()\n"
              "with ProcessPoolExecutor() as pool:\n"
              f"    each = list(pool.map(bench._sweep_one, [{str(repo)!r}] * {n},\n"
              f"                         [1024 + 64 * i for i in range({n})]))\n"
              "print(time.perf_counter() - begin, sum(each) / len(each))\n")
    proc = subprocess.run([python, "-c", script], capture_output=True, text=True, cwd=repo, check=False,
                          env=CHILD_ENV)
    if proc.returncode != 0:
        raise SystemExit(f"{repo}: sweep failed:\n{proc.stderr}")
    total, each = (float(x) for x in proc.stdout.split())
    return {"variants": n, "wall_s": total, "per_variant_s": each}


def preset_rows(side: str, results: dict, cases: list[str]) -> list[str]:
    rows = []
    for case in cases:
        r = results[case]
        num, tim, ref = r["numerics"], r["timing"], r["numpy"]
        rows.append(
            f"| {side} | {case} | {num['tasks']} | {num['ops']} | {num['wall_s']:.2f} | {num['peak_rss_mb']:.0f} | "
            f"{num.get('system_mb', 0):.0f} | "
            f"{ref['gm_mb']:.0f} | {tim['wall_s']:.2f} | {tim['process_s']:.2f} | {tim['peak_rss_mb']:.0f} | "
            f"{ref['wall_s']:.3f} | {num['wall_s'] / ref['wall_s']:.1f}x | "
            f"{'passed' if num['check'] else 'FAILED'} |")
    return rows


@dataclass(frozen=True)
class ScalingEnd:
    """One end of the scaling range (`end`) against the straight line through its two neighbours (`through`)."""

    end: str
    mode: str
    kind: Literal["time", "memory"]
    measured: float
    line: float
    through: tuple[str, str]

    @property
    def ratio(self) -> float:
        return self.measured / self.line


def scaling_ends(results: dict) -> list[ScalingEnd]:
    """max_seq 16384 and batch 64, with numerics and timing-only, in time and (with numerics) memory."""
    ends = []
    for end, (a, b), (xa, xb, x) in (("max_seq=16384", ("default", "max_seq=8192"), (4096, 8192, 16384)),
                                     ("batch=64", ("default", "batch=32"), (16, 32, 64))):
        if end not in results or a not in results or b not in results:
            continue
        for mode, key in (("numerics", "wall_s"), ("timing", "wall_s"), ("numerics", "peak_rss_mb")):
            ya, yb, y = results[a][mode][key], results[b][mode][key], results[end][mode][key]
            ends.append(ScalingEnd(end, mode, "time" if key == "wall_s" else "memory", y,
                                   ya + (yb - ya) * (x - xa) / (xb - xa), (a, b)))
    return ends


def extrapolations(results: dict) -> list[str]:
    """The scaling ends as the table's lines."""
    return [f"{e.end} {e.mode} {e.kind}: {e.measured:.2f} measured, {e.line:.2f} on the line through "
            f"{e.through[0]} and {e.through[1]}: {e.ratio:.2f}x" for e in scaling_ends(results)]


# Issue 17's targets ("Speed, round two"), each measured in one run of this benchmark
TARGET_NUMERICS_S = 10.0  # the default layer with numerics
TARGET_NUMPY_RATIO = 3.0  # ... against the plain numpy evaluation of the same layer
TARGET_MEMORY = (1.5, 500.0)  # ... peak memory <= 1.5 x the program's GM tensors' MB + 500 MB
TARGET_TIMING_S = 1.0  # timing-only default and full_max_seq, wall including start-up
TARGET_SWEEP_100_S = 120.0  # 100 timing-only variants of the full layer on the local pool
TARGET_SCALING = 1.2  # max_seq 16384 and batch 64 against the linear extrapolation, in time and memory
TARGET_START_UP_S = 0.3  # npusim --help, npusim validate of a small program


def verdicts(results: dict, starts: dict[str, dict[str, float]], sweep_result: dict[str, float] | None
             ) -> list[str]:
    """Each of issue 17's targets this side's measurements reach: "met" or "NOT met", the number and its limit
    (the larger of the run's peak RSS and the machine's memory drop stands for its memory)."""
    checks: list[tuple[bool, str]] = []
    if "default" in results:
        num, ref = results["default"]["numerics"], results["default"]["numpy"]
        limit = TARGET_MEMORY[0] * ref["gm_mb"] + TARGET_MEMORY[1]
        used = max(num["peak_rss_mb"], num.get("system_mb", 0.0))
        checks += [(num["wall_s"] <= TARGET_NUMERICS_S,
                    f"default with numerics {num['wall_s']:.2f} s <= {TARGET_NUMERICS_S:g} s"),
                   (num["wall_s"] <= TARGET_NUMPY_RATIO * ref["wall_s"],
                    f"default with numerics {num['wall_s'] / ref['wall_s']:.2f}x numpy <= {TARGET_NUMPY_RATIO:g}x"),
                   (used <= limit, f"default with numerics {used:.0f} MB <= {TARGET_MEMORY[0]:g} x {ref['gm_mb']:.0f}"
                                   f" + {TARGET_MEMORY[1]:.0f} = {limit:.0f} MB")]
    for case in ("default", "full_max_seq"):
        if case in results:
            wall = results[case]["timing"]["process_s"]
            checks.append((wall <= TARGET_TIMING_S,
                           f"{case} timing-only with start-up {wall:.2f} s <= {TARGET_TIMING_S:g} s"))
    if sweep_result:
        per_100 = sweep_result["wall_s"] * 100 / sweep_result["variants"]
        checks.append((per_100 <= TARGET_SWEEP_100_S,
                       f"sweep of 100 variants {per_100:.0f} s <= {TARGET_SWEEP_100_S:g} s"))
    checks += [(e.ratio <= TARGET_SCALING, f"{e.end} {e.mode} {e.kind} {e.ratio:.2f}x its line <= {TARGET_SCALING:g}x")
               for e in scaling_ends(results)]
    checks += [(v["wall_s"] <= TARGET_START_UP_S, f"npusim {name} {v['wall_s']:.3f} s <= {TARGET_START_UP_S:g} s")
               for name, v in starts.items()]
    return [f"{'met' if ok else 'NOT met'}: {text}" for ok, text in checks]


def same_results(results: dict) -> str:
    """Whether before and after gave the same outputs' sha256 and the same cycles of every scope, per case and
    mode (numerics and timing-only)."""
    lines = []
    for case, modes in results["after"].items():
        for mode in ("numerics", "timing"):
            a, b = results["before"][case].get(mode), modes.get(mode)
            if a is None or b is None:
                continue
            same = a["sha256"] == b["sha256"] and a["cycles"] == b["cycles"]
            lines.append(f"{case} {mode}: {'identical' if same else 'DIFFERENT'} outputs' sha256 and cycles of "
                         f"{len(b['cycles']) - 1} scopes and the total ({b['cycles']['total']:.3f})")
    return "Before against after:\n\n" + "\n".join(f"- {line}" for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="tiny,default,full_max_seq")
    parser.add_argument("--no-scaling", action="store_true", help="skip the max_seq / batch scaling table")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (the median is shown)")
    parser.add_argument("--base", type=Path, default=None, help="a checkout to pair every measurement with")
    parser.add_argument("--base-python", default=sys.executable, help="the python that runs --base")
    parser.add_argument("--sweep", type=int, default=20, help="timing-only variants in the sweep (0: none)")
    parser.add_argument("--pretouch-mb", type=int, default=3072, help="memory written and freed before each run")
    parser.add_argument("--no-append", action="store_true", help="do not append the tables to benchmarks/README.md")
    parser.add_argument("--label", default="", help="a note for the tables (e.g. the commits)")
    parser.add_argument("--child", nargs=3, metavar=("CASE", "MODE", "REPO"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], Path(args.child[2]))
        return

    sides: dict[str, tuple[str, Path]] = {}
    if args.base is not None:
        sides["before"] = (args.base_python, args.base.resolve())
    sides["after" if args.base is not None else "this"] = (sys.executable, REPO)
    cases = args.cases.split(",")
    scaling = [] if args.no_scaling else [c for c in SCALING if c not in cases]
    speed_before = machine_speed()
    results = measure(sides, cases + scaling, args.repeat, args.pretouch_mb)
    starts = {side: start_up(python, repo, 3 * args.repeat) for side, (python, repo) in sides.items()}
    sweeps = {side: sweep(python, repo, args.sweep) for side, (python, repo) in sides.items()} if args.sweep else {}
    speed_after = machine_speed()

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    loadavg = f" · load {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    head = (f"\n### {stamp} · {cpu_name()} · {os.cpu_count()} cores · Python {platform.python_version()}{loadavg}"
            + (f" · {args.label}" if args.label else "")
            + f"\n\nMedian of {args.repeat} runs, in rounds of every case"
            + (", before and after alternating" if args.base else "")
            + f". Machine speed (a fixed pure-Python loop, `machine_speed`): {speed_before:.3f} s at the start, "
            f"{speed_after:.3f} s at the end.\n")
    columns = ("\n| side | case | tasks | ops | run s | peak MB | machine MB | GM MB | timing-only s | "
               "with start-up s | peak MB | numpy s | run / numpy | check |\n" + "|---" * 14 + "|\n")
    table = head + columns + "\n".join(row for side in sides for row in preset_rows(side, results[side], cases))
    if scaling:
        order = [c for c in SCALING if c in results[next(iter(sides))]]
        table += "\n\nScaling (default = max_seq 4096, batch 16):\n" + columns + "\n".join(
            row for side in sides for row in preset_rows(side, results[side], order))
        for side in sides:
            table += "\n\n" + "\n".join(f"- {side}: {line}" for line in extrapolations(results[side]))
    table += f"\n\nStart-up (median of {3 * args.repeat}):\n\n| side | command | wall s | CPU s |\n" \
        + "|---|---|---|---|\n" + "\n".join(f"| {side} | npusim {name} | {v['wall_s']:.3f} | {v['cpu_s']:.3f} |"
                                     for side, per in starts.items() for name, v in per.items()) + "\n"
    for side, v in sweeps.items():
        table += (f"\nSweep ({side}): {v['variants']} timing-only variants of the full layer in {v['wall_s']:.1f} s on "
                  f"{os.cpu_count()} processes ({v['per_variant_s']:.2f} s each in its process; 100 variants: "
                  f"~{v['wall_s'] * 100 / v['variants']:.0f} s)\n")
    newest = next(reversed(sides))
    table += (f"\nIssue 17's targets ({newest}):\n\n"
              + "\n".join(f"- {line}" for line in verdicts(results[newest], starts[newest], sweeps.get(newest)))
              + "\n")
    if args.base is not None:
        table += "\n" + same_results(results) + "\n"
    print(table)
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / f"bench-{stamp.replace(' ', '_').replace(':', '')}.json").write_text(
        json.dumps({"results": results, "start_up": starts, "sweep": sweeps}, indent=2))
    if not args.no_append:
        with (HERE / "README.md").open("a") as fh:
            fh.write(table)


if __name__ == "__main__":
    main()
