"""The command line and hardware configs: config show/check with located errors, run's artefacts
(--save-tensors layout, atomic report, refusal to write into foreign directories), and compare."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import yaml

from npusim.cli import main
from npusim.frontend import load_program
from npusim.frontend.inputs import initial_values
from npusim.timing import CONFIG_DIR, config_label, load_config, resolve_config_path

from .conftest import PROGRAMS, REPO


def config_copy(tmp_path: Path, edit) -> Path:
    text = (CONFIG_DIR / "ascend910b.yaml").read_text()
    path = tmp_path / "cfg.yaml"
    path.write_text(edit(text))
    return path


def test_shipped_configs_validate(cli) -> None:
    for path in sorted(CONFIG_DIR.glob("*.yaml")):
        result = cli.invoke(main, ["config", "check", str(path)])
        assert result.exit_code == 0, result.stderr
    hw = load_config("ascend910b")
    assert (hw.num_aic, hw.num_aiv, hw.clock_hz) == (24, 48, 1.85e9)


def test_configs_ship_in_the_wheel(tmp_path: Path) -> None:
    """A plain (non-editable) install carries the configs: the wheel built from a copy of the checkout holds
    every top-level config as npusim/configs/NAME.yaml, byte for byte."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "configs", src / "configs")
    shutil.copytree(REPO / "npusim", src / "npusim", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(src)],
                   check=True, capture_output=True)
    wheel = zipfile.ZipFile(next((tmp_path / "dist").glob("npusim-*.whl")))
    shipped = sorted(p.name for p in (REPO / "configs").glob("*.yaml"))
    assert shipped and sorted(n.split("/")[-1] for n in wheel.namelist() if n.startswith("npusim/configs/")) == shipped
    for name in shipped:
        assert wheel.read(f"npusim/configs/{name}") == (REPO / "configs" / name).read_bytes()


def test_config_names_resolve_outside_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Away from a checkout's configs/, a name is the shipped config, labelled so that the label does not
    depend on where npusim is installed; ./configs/NAME.yaml comes first when it exists."""
    monkeypatch.chdir(tmp_path)
    path = resolve_config_path("ascend950")
    assert path == CONFIG_DIR / "ascend950.yaml" and config_label(path) == "<npusim>/configs/ascend950.yaml"
    (tmp_path / "configs").mkdir()
    shutil.copy(CONFIG_DIR / "ascend950.yaml", tmp_path / "configs" / "ascend950.yaml")
    assert config_label(resolve_config_path("ascend950")) == "configs/ascend950.yaml"


def test_config_show_resolves_names_and_paths(cli) -> None:
    result = cli.invoke(main, ["config", "show", "ascend950"])
    assert result.exit_code == 0
    shown = yaml.safe_load(result.output)
    assert shown["name"] == "ascend950" and shown["dma"]["l0c_to_ub"]["bytes_per_cycle"] == 128
    assert cli.invoke(main, ["config", "show", str(CONFIG_DIR / "ascend910b.yaml")]).exit_code == 0


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.replace("num_aic: 24", "num_aic: 0"), ":14:10: num_aic: Input should be greater than or equal to 1, "
                                                          "got 0 (allowed: ge 1, le 4096: cube cores (910B: 24))"),
    (lambda t: t.replace("ub_bytes:", "ub_byte:"), ":18:1: unknown key 'ub_byte' (did you mean 'ub_bytes'?)"),
    (lambda t: t.replace("    issue_cycles: 20 ", "    issue_cyles: 20 ", 1),
     ":39:5: unknown key 'issue_cyles' (did you mean 'issue_cycles'?); allowed: issue_cycles, bytes_per_cycle, "
     "write_completion_cycles, latency_cycles, l2_hit_latency_cycles, short_run_bytes_per_cycle"),
    (lambda t: t.replace("bytes_per_cycle: 128.2", "bytes_per_cycle: -1", 1),
     ":40:22: dma.gm_to_ub.bytes_per_cycle: Input should be greater than or equal to 0.01, got -1 (allowed: ge 0.01, "
     "le 4096: 0.01 B/cycle (20 MB/s at 2 GHz) is slower than any DMA engine"),
    (lambda t: t.replace("runtime: 2026-04-24-profiling", "runtime: 2026-04-42-profiling", 1),
     ":139:10: runtime: not one of runtimes (2026-04-10-profiling, 2026-04-24-profiling, "
     "2026-07-profiling) (did you mean '2026-04-24-profiling'?), got '2026-04-42-profiling'"),
    (lambda t: t.replace("clock_hz: 1.85e9", "clock_hz: fast"),
     ":13:11: clock_hz: Input should be a valid number, got 'fast'"),
    (lambda t: t.replace("clock_hz: 1.85e9", 'clock_hz: "1.85e9"'),  # strict: a string is not a number
     ":13:12: clock_hz: Input should be a valid number, got '1.85e9'"),
    (lambda t: t.replace("num_aic: 24 ", "num_aic: true "),
     ":14:10: num_aic: Input should be a valid integer, got True"),
])
def test_bad_config_values_name_key_value_and_range(cli, tmp_path: Path, edit, message: str) -> None:
    path = config_copy(tmp_path, edit)
    result = cli.invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {path}{message}"), result.stderr


def test_a_control_character_in_a_key_stays_on_one_line(cli, tmp_path: Path) -> None:
    path = config_copy(tmp_path, lambda t: t.replace("int8: 1}", 'int8: 1, "\\x1e": 1.0}'))
    result = cli.invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1 and "\x1e" not in result.stderr
    assert ("cube.cycles_per_fractal.'\\x1e': Input should be 'bf16', 'fp16', 'fp32', 'int8', 'fp8e4m3fn' or "
            "'fp8e5m2'") in result.stderr


def test_unknown_config_name_suggests(cli) -> None:
    result = cli.invoke(main, ["config", "show", "ascend910"])
    assert result.exit_code == 2
    assert "no config named 'ascend910' (did you mean 'ascend910b'?)" in result.stderr


def test_run_writes_every_artefact_and_saves_tensors(cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = cli.invoke(main, ["run", str(PROGRAMS / "softmax.yaml"), "--preset", "tiny", "--out", str(out),
                               "--save-tensors", "--seed", "3"])
    assert result.exit_code == 0, result.stderr
    assert "check against reference softmax: passed" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["inputs.npz", "instructions.csv", "kernels.csv", "kernels.png",
                                                     "lines.csv", "outputs.npz", "report.json", "timeline.png",
                                                     "trace.json", "utilisation.png"]
    report = json.loads((out / "report.json").read_text())
    for key in ("program", "preset", "params", "config", "seed", "clock_hz", "numerics", "total", "scopes",
                "outputs", "check"):
        assert key in report
    assert set(report["total"]["dma"]["bytes"]) >= {"gm_to_ub", "gm_to_l1", "l1_to_l0a", "l1_to_l0b", "l0c_to_gm",
                                                    "ub_to_gm"}
    assert set(report["total"]["busy_cycles"]) == {"cube", "vector", "mte1", "mte2", "mte3", "fixpipe", "scalar"}
    inputs = np.load(out / "inputs.npz")
    expected = initial_values(load_program(PROGRAMS / "softmax.yaml", preset="tiny"), 3)
    assert sorted(inputs.files) == sorted(expected)
    for name, value in expected.items():  # BF16 as its uint16 bit patterns
        assert inputs[name].dtype == np.uint16 and np.array_equal(inputs[name], value.view(np.uint16))
    outputs = np.load(out / "outputs.npz")
    assert outputs.files == ["out"] and outputs["out"].dtype == np.uint16
    import hashlib
    assert hashlib.sha256(outputs["out"].tobytes()).hexdigest() == report["outputs"]["out"]["sha256"]
    assert outputs["out"].view(ml_dtypes.bfloat16).shape == (16, 128)


def test_inout_tensors_saved_as_inputs_hold_their_initial_values(cli, tmp_path: Path) -> None:
    """A run changes inout tensors in place only when nothing reads their initial values afterwards (no
    --save-tensors): the saved caches are the drawn ones, and every run computes the same outputs."""
    from npusim.runner import RunOptions, run

    program = PROGRAMS / "qwen3_decode.yaml"
    runs = {}
    for name, extra in (("saved", ["--save-tensors"]), ("plain", [])):
        out = tmp_path / name
        result = cli.invoke(main, ["run", str(program), "--preset", "tiny", "-q", "--no-plot", "--no-trace",
                                   "--out", str(out), *extra])
        assert result.exit_code == 0, result.stderr
        runs[name] = json.loads((out / "report.json").read_text())["outputs"]
    unchecked = run(RunOptions(program=program, preset="tiny", check=False, quiet=True, plot=False, trace=False,
                               out=tmp_path / "unchecked"))  # no reference: in place too
    assert runs["saved"] == runs["plain"] == {n: o.model_dump() for n, o in unchecked.report.outputs.items()}
    drawn = initial_values(load_program(program, preset="tiny"), 0)["k_cache"].view(np.uint16)
    saved_in, saved_out = np.load(tmp_path / "saved" / "inputs.npz"), np.load(tmp_path / "saved" / "outputs.npz")
    assert np.array_equal(saved_in["k_cache"], drawn) and not np.array_equal(saved_out["k_cache"], drawn)


@pytest.mark.parametrize("target", ["programs", "configs", "npusim", "."])
def test_refuses_to_write_into_foreign_directories(cli, target: str) -> None:
    result = cli.invoke(main, ["run", str(PROGRAMS / "matmul.yaml"), "--preset", "tiny", "--out",
                               str(REPO / target)])
    assert result.exit_code == 2
    assert ("--out" in result.stderr and "refusing" in result.stderr) or "not npusim reports" in result.stderr


def test_rerun_into_a_report_directory_replaces_it(cli, tmp_path: Path) -> None:
    out = tmp_path / "o"
    args = ["run", str(PROGRAMS / "matmul.yaml"), "--preset", "tiny", "--out", str(out), "-q"]
    assert cli.invoke(main, [*args, "--save-tensors"]).exit_code == 0
    assert cli.invoke(main, [*args, "--no-plot", "--no-trace"]).exit_code == 0
    # stale artefacts of the first run are gone: the report and its summaries remain
    assert sorted(p.name for p in out.iterdir()) == ["instructions.csv", "kernels.csv", "lines.csv", "report.json"]


def test_compare_runs_both_and_says_bits_are_identical(cli, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    result = cli.invoke(main, ["compare", str(PROGRAMS / "qwen3_decode.yaml"),
                               str(PROGRAMS / "qwen3_decode_full_init.yaml"), "--preset", "tiny", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    assert "outputs: bit-identical" in result.output
    data = json.loads((out / "compare.json").read_text())
    assert data["outputs_identical"] is True
    rows = {r["name"]: r for r in data["scopes"]}
    init = rows["scope2/scratch_init"]
    assert init["b"]["gm_transfers"] < init["a"]["gm_transfers"]
    assert init["diff"]["gm_bytes"] == init["b"]["gm_bytes"] - init["a"]["gm_bytes"]
    for scope in ("scope1", "scope3"):
        assert rows[scope]["a"]["gm_bytes"] == rows[scope]["b"]["gm_bytes"]
    assert (out / "compare.png").stat().st_size > 0


HEAVY = ("numpy", "ml_dtypes", "pydantic", "yaml", "rich", "simpy", "matplotlib", "numpy.random", "concurrent.futures",
         "ctypes.util")


def _heavy_imports(*argv: str) -> list[str]:
    """The heavy libraries a fresh process has imported after `npusim ARGV` (run in it, exit caught)."""
    code = ("import sys\nimport npusim.__main__ as entry\nentry.QUICK_EXIT = frozenset()\nmain = entry.main\n"
            f"sys.argv = ['npusim', *{list(argv)!r}]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return ast.literal_eval(proc.stdout.strip().splitlines()[-1])


def test_help_imports_only_click_and_validate_no_drawing_or_tables() -> None:
    """Start-up: `npusim --help` (and a command's --help) import none of the heavy libraries; validate reads
    YAML and runs the quick pass (numpy, pydantic) but draws and prints no tables (matplotlib, rich), and for a
    program whose quick pass reads no input it draws none (numpy.random) on no thread pool (concurrent.futures);
    the C library is reached through the process's own symbols, not found by ctypes.util (~9 ms: it imports
    subprocess and runs `ldconfig -p`)."""
    assert _heavy_imports("--help") == []
    assert _heavy_imports("run", "--help") == []
    assert set(_heavy_imports("validate", "programs/matmul.yaml")).isdisjoint(
        {"matplotlib", "rich", "numpy.random", "concurrent.futures", "ctypes.util"})


def test_a_quiet_run_without_plots_imports_no_drawing_or_tables(tmp_path: Path) -> None:
    """`npusim run -q --no-plot` writes its CSVs and report but prints no table: neither rich nor matplotlib is
    imported (and simpy, for the timeline, is)."""
    heavy = _heavy_imports("run", "programs/matmul.yaml", "--preset", "tiny", "--no-numerics", "--quiet",
                           "--no-plot", "--no-trace", "--out", str(tmp_path / "out"))
    assert "simpy" in heavy and {"rich", "matplotlib"}.isdisjoint(heavy)
    assert (tmp_path / "out" / "kernels.csv").exists()


def test_a_quick_exit_loses_no_output(tmp_path: Path) -> None:
    """`run` leaves by os._exit (no teardown): the whole JSON report still reaches a piped stdout, the exit
    status is the command's, an error still exits 2, and under a profiler the exit is the normal one."""
    proc = subprocess.run([sys.executable, "-m", "npusim", "run", "programs/softmax.yaml", "--preset", "tiny",
                           "--format", "json", "--out", str(tmp_path / "r")], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["total"] == json.loads((tmp_path / "r" / "report.json").read_text())["total"]
    bad = subprocess.run([sys.executable, "-m", "npusim", "validate", str(tmp_path / "missing.yaml")],
                         capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "missing.yaml" in bad.stderr
    profiled = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(tmp_path / "prof"), "-m", "npusim",
                               "validate", "programs/matmul.yaml"], capture_output=True, text=True, cwd=REPO)
    assert profiled.returncode == 0 and (tmp_path / "prof").stat().st_size > 0  # a profiler still gets its exit
