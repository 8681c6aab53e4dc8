"""Issue 16's examples, one test each: every input-caused failure is exit status 2 with one located line (never
exit 1, never a hang, never a write outside the output directory, never a touched input), and the run's
numbers do not depend on the machine. Each test states the input and the line it must give."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import pytest

from npusim.cli import main
from npusim.timing import CONFIG_DIR

from .conftest import PROGRAMS, REPO

CONFIG = (CONFIG_DIR / "ascend910b.yaml").read_text()
MATMUL = (PROGRAMS / "matmul.yaml").read_text()


def fails(result, *patterns: str) -> str:
    """The run ended with exit 2 and one `error: ...` line matching every pattern; returns the line."""
    out = result.output + result.stderr
    assert result.exit_code == 2, (result.exit_code, out)
    assert "Traceback" not in out and "internal error" not in out, out
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for p in patterns:
        assert re.search(p, lines[0]), (p, lines[0])
    return lines[0]


def config(tmp_path: Path, old: str, new: str) -> Path:
    text = CONFIG.replace(old, new, 1)
    assert text != CONFIG, old
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def program(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- configs: physically sensible ranges, with the reason -----------------------------------------------------

def line_of(text: str, needle: str) -> int:
    """The line (1-based) of the first occurrence of `needle` in `text`: where a located error must point."""
    assert needle in text, needle
    return text[: text.index(needle)].count("\n") + 1


@pytest.mark.parametrize(("old", "new", "at", "message"), [
    ("bytes_per_cycle: 128.2", "bytes_per_cycle: 1.0e-12", "1.0e-12",
     r"dma\.gm_to_ub\.bytes_per_cycle: .*ge 0\.01.*slower than any DMA"),
    ("fractal_k_bytes: 32", "fractal_k_bytes: 1", "fractal_k_bytes: 1",
     r"cube\.fractal_k_bytes: .*multiple of 4.*whole number of elements"),
    ("read_bytes_per_s: 1.45e12", "read_bytes_per_s: 5.0e-324", "5.0e-324",
     r"hbm\.read_bytes_per_s: .*ge 1e\+09.*DDR channel"),
    ("num_aiv: 48 ", "num_aiv: 12 ", "num_aiv: 12", r"num_aiv: 12 AIVs for 24 AICs; every AIC needs at least one AIV"),
    ("clock_hz: 1.85e9", "clock_hz: .nan", "clock_hz: .nan", r"clock_hz: "),
])
def test_config_values_out_of_range_are_refused_with_the_reason(cli, tmp_path: Path, old: str, new: str, at: str,
                                                                 message: str) -> None:
    path = config(tmp_path, old, new)
    where = re.escape(f"{path}:{line_of(path.read_text(), at)}:") + r"\d+: "
    fails(cli.invoke(main, ["config", "check", str(path)]), where + message)
    fails(cli.invoke(main, ["run", str(PROGRAMS / "matmul.yaml"), "--preset", "tiny", "--config", str(path),
                            "--no-numerics", "-q", "--out", str(tmp_path / "o")]), where)


@pytest.mark.parametrize(("old", "new", "at", "message"), [
    ("vconv:", "vconvv:", "vconvv:", r"vector\.intrinsics: unknown intrinsic 'vconvv' \(did you mean 'vconv'\?\)"),
    ("    vconv: {", "    vfoo: {head_cycles: 1, cycles_per_repeat: 1, tail_cycles: 1}\n    vconv: {", "vfoo:",
     r"vector\.intrinsics: unknown intrinsic 'vfoo'"),
    ("    vexp: {", "    vexq: {", "vexq", r"vector\.intrinsics: unknown intrinsic 'vexq' \(did you mean 'vexp'\?\)"),
    ("  GM->L1: [gm_to_l1]\n", "", "  GM->UB:", r"routes: no route GM->L1, which a run needs"),
    ("  GM->L1: [gm_to_l1]", "  GM->L1: [gm_to_l2]", "gm_to_l2",
     r"routes: GM->L1 uses path 'gm_to_l2' \(did you mean 'gm_to_l1'\?\), which has no dma entry$"),
    ("  GM->L1: [gm_to_l1]", "  GM->L1: [gm_to_ub]", "GM->L1: [gm_to_ub]", r"routes: GM->L1 ends in UB, not L1$"),
    ("{bf16: 1, fp16: 1, fp32: 2, int8: 1}", "{fp16: 1, fp32: 2, int8: 1}", "{fp16: 1, fp32: 2, int8: 1}",
     r"cube\.cycles_per_fractal: no rate for bf16 operands"),
    ("ctrl_cycles: 1 ", "ctrl_cycles: true ", "ctrl_cycles: true",
     r"vector\.ctrl_cycles: Input should be a valid number, got True"),
    ("num_aic: 24 ", 'num_aic: "24" ', 'num_aic: "24"', r"num_aic: Input should be a valid integer, got '24'"),
])
def test_config_check_verifies_what_a_run_needs(cli, tmp_path: Path, old: str, new: str, at: str, message: str) -> None:
    """What `config check` passed and a run then failed on, unlocated: now refused by config check, located,
    and the message is short (a route error used to print the whole config)."""
    path = config(tmp_path, old, new)
    where = re.escape(f"{path}:{line_of(path.read_text(), at)}:") + r"\d+: "
    line = fails(cli.invoke(main, ["config", "check", str(path)]), where + message)
    assert len(line) < 400 and "'description'" not in line


def test_a_missing_intrinsic_is_named_with_the_instruction_that_calls_it(cli, tmp_path: Path) -> None:
    text = re.sub(r"\n    vexp: \{[^\n]*", "", CONFIG, count=1)
    path = program(tmp_path, text, "cfg.yaml")
    fails(cli.invoke(main, ["config", "check", str(path)]),
          re.escape(f"{path}:{line_of(text, '    vadd:')}:") + r"\d+: vector\.intrinsics: no entry for 'vexp', which "
          r"TEXP uses")


def test_shipped_configs_have_every_route_the_lowering_needs() -> None:
    from npusim.interp.lower import ROUTES
    from npusim.timing import load_config

    for name in ("ascend910b", "ascend950"):
        hw = load_config(name)
        assert {f"{a}->{b}" for a, b in ROUTES} <= set(hw.routes)


def test_a_matmul_of_a_matmul_result_runs(cli, tmp_path: Path) -> None:
    """L0C -> L0A, the route a matmul result needs as a cube operand, which the configs lacked."""
    path = program(tmp_path, """\
name: chain
tensors:
  a: {shape: [16, 16], dtype: fp32, role: input, init: "uniform(-1, 1)"}
  c: {shape: [16, 16], dtype: fp32, role: output}
body:
  - incore k:
    - at = slice(a, [16, 16], [0, 0])
    - bt = slice(a, [16, 16], [0, 0])
    - p = matmul(at, bt)
    - q = matmul(p, bt)
    - c = assemble(c, q, [0, 0])
""")
    result = cli.invoke(main, ["run", str(path), "-q", "--no-plot", "--no-trace", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.stderr


def test_a_cost_rule_error_is_located_at_its_op(cli, tmp_path: Path) -> None:
    """An accumulator made on the vector side has no hardware path into L0C: the error names the matmul_acc's
    line (it used to be one unlocated line naming only the config)."""
    path = program(tmp_path, """\
name: acc
tensors:
  a: {shape: [16, 16], dtype: bf16, role: input, init: "uniform(-1, 1)"}
  c: {shape: [16, 16], dtype: fp32, role: output}
body:
  - incore k:
    - at = slice(a, [16, 16], [0, 0])
    - acc = full([16, 16], fp32, 0.0)
    - p = matmul_acc(acc, at, at)
    - c = assemble(c, p, [0, 0])
""")
    fails(cli.invoke(main, ["validate", str(path)]),
          re.escape(f"{path}:9:7: matmul_acc: ascend910b has no data path from L1 to L0C (kernel k)"))


# --- the engine: tolerances relative to time, no livelock ---------------------------------------------------

def test_hbm_finishes_jobs_at_times_where_1e_6_is_below_float_resolution() -> None:
    """At t = 2**60 cycles a float step is 256 cycles: with the old absolute 1e-6 tolerance a job with a few
    cycles left could never finish (the loop timed out by less than a step, forever)."""
    import simpy

    from npusim.timing.hbm import SharedHBM

    env = simpy.Environment(initial_time=2.0**60)
    hbm = SharedHBM(env, 64.0)
    done = [hbm.run(0, 1000.0, 128.0), hbm.run(1, 3.0, 128.0)]
    steps = 0
    while not all(d.processed for d in done):
        env.step()
        steps += 1
        assert steps < 1000, "the HBM loop livelocked"
    assert env.now >= 2.0**60


def test_extreme_config_values_in_range_run_to_the_end(cli, tmp_path: Path) -> None:
    """The slowest DMA path and HBM the ranges allow: a Qwen3 tiny run ends (used to hang at 1e-12)."""
    text = re.sub(r"bytes_per_cycle: [0-9.]+", "bytes_per_cycle: 0.01", CONFIG).replace(
        "read_bytes_per_s: 1.45e12", "read_bytes_per_s: 1.0e9")
    path = program(tmp_path, text, "slow.yaml")
    result = cli.invoke(main, ["run", str(PROGRAMS / "qwen3_decode.yaml"), "--preset", "tiny", "--config", str(path),
                               "--no-numerics", "-q", "--no-plot", "--no-trace", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.stderr


# --- special files -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "directory"])
@pytest.mark.parametrize("role", ["program", "config"])
def test_special_files_are_refused_at_once(cli, tmp_path: Path, kind: str, role: str) -> None:
    if kind == "fifo":
        path = tmp_path / "f.yaml"
        os.mkfifo(path)
        what = "a FIFO, not a regular file"
    elif kind == "dev_zero":
        path = Path("/dev/zero")
        what = "a character device, not a regular file"
    else:
        path = tmp_path
        what = "a directory, expected a YAML file"
    args = ["config", "check", str(path)] if role == "config" else ["validate", str(path)]
    if role == "program" and kind == "directory":  # click itself refuses a directory as PROGRAM
        assert cli.invoke(main, args).exit_code == 2
        return
    fails(cli.invoke(main, args), re.escape(f"error: {path}: {role} is {what}"))


def test_files_are_read_with_a_bound_whatever_their_size_says(cli, tmp_path: Path) -> None:
    """/proc files report st_size 0; the read itself is bounded."""
    fails(cli.invoke(main, ["validate", "/proc/self/maps", "--max-yaml-bytes", "64"]),
          r"error: /proc/self/maps: program is more than the limit of 64 bytes")


# --- names as paths ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ['"/abs/dir/x"', '"../../x"', '"a\\0b"', '"a\\udc80b"', '".hidden"', '"a/b"'])
def test_program_names_that_are_not_one_path_component_are_refused(cli, tmp_path: Path, name: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    path = program(tmp_path, MATMUL.replace("name: matmul", f"name: {name}", 1))
    fails(cli.invoke(main, ["run", str(path), "--preset", "tiny", "--no-numerics"]),
          re.escape(f"{path}:1:") + r"\d+: name: cannot name a report directory")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [path]


def test_preset_names_are_path_components(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = program(tmp_path, MATMUL.replace("tiny: {K: 512, N: 128}", 'tiny: {K: 512, N: 128}\n  "../../x": {K: 512}'))
    fails(cli.invoke(main, ["run", str(path), "--preset", "../../x", "--no-numerics"]),
          re.escape(f"{path}:14:3: preset '../../x' cannot name a report directory"))


def test_default_out_dir_is_one_component_of_reports() -> None:
    from npusim.output.artefacts import safe_component

    for fine in ("qwen3_decode-tiny-ascend910b-1a2b3c4d", "m-max_seq=2048-x+y-ascend950-timing-00ff00ff"):
        assert safe_component(fine) == fine  # the provenance names pass as they are
    for hostile in ("../../x", "/abs", "a\x00b", "a\udc80b", ".", "..", "-rf", "x" * 300 + "-1a2b3c4d"):
        component = safe_component(hostile)
        assert "/" not in component and component not in (".", "..") and len(component) <= 200
        assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.=+-]*", component)
    assert safe_component("x" * 300 + "-1a2b3c4d").endswith("-1a2b3c4d")  # a long name keeps its run key


# --- numbers: nan, inf, huge integers ------------------------------------------------------------------------

def test_set_nan_is_refused_before_anything_is_written(cli, tmp_path: Path) -> None:
    out = tmp_path / "o"
    fails(cli.invoke(main, ["run", str(PROGRAMS / "rms_norm.yaml"), "--preset", "tiny", "--set", "eps=nan", "--out",
                            str(out)]), r"^error: --set eps: nan is not a finite number$")
    assert not out.exists() or not list(out.iterdir())


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_nan_and_inf_params_are_located(cli, tmp_path: Path, value: str) -> None:
    path = program(tmp_path, (PROGRAMS / "rms_norm.yaml").read_text().replace("eps: 1.0e-6", f"eps: {value}"))
    fails(cli.invoke(main, ["validate", str(path)]), re.escape(f"{path}:11:8: params eps: ") + r".* is not a finite")


def test_loop_bounds_beyond_64_bits(cli, tmp_path: Path) -> None:
    path = program(tmp_path, f"name: l\ntensors: {{}}\nbody:\n  - for i in range({2**63}):\n    - x = i\n")
    fails(cli.invoke(main, ["validate", str(path)]),
          re.escape(f"{path}:4:11: literal {2**63} does not fit in a 64-bit"))
    path = program(tmp_path, "name: l\ntensors: {}\nbody:\n  - for i in range(2, 3):\n"
                             f"    - for j in range(i * {2**62}):\n      - x = j\n")
    fails(cli.invoke(main, ["validate", str(path)]),
          re.escape(f"{path}:5:7: range arguments must be 64-bit integers, got [{2**63}] (at i=2)"))
    path = program(tmp_path, f"name: l\ntensors: {{}}\nbody:\n  - for i in range({-(2**62)}, {2**62}):\n    - x = i\n")
    fails(cli.invoke(main, ["validate", str(path)]), r"loop of 9223372036854775808 iterations exceeds the limit")


def test_integers_over_4300_digits(cli, tmp_path: Path) -> None:
    path = program(tmp_path, "name: l\nparams:\n  n: " + "9" * 5000 + "\ntensors: {}\nbody: []\n")
    fails(cli.invoke(main, ["validate", str(path)]), re.escape(f"{path}:3:6: number of 5000 characters is too long"))
    fails(cli.invoke(main, ["validate", str(PROGRAMS / "matmul.yaml"), "--set", "M=" + "9" * 5000]),
          r"^error: --set M: an integer of 5000 digits does not fit in 64 bits$")
    # a param YAML can read but no 64-bit scalar holds: the message shows it cut short
    path = program(tmp_path, "name: l\nparams:\n  n: " + "9" * 4000 + "\ntensors: {}\nbody: []\n")
    line = fails(cli.invoke(main, ["validate", str(path)]),
                 re.escape(f"{path}:3:6: params n: ") + r".*does not fit in a 64-bit")
    assert len(line) < 300
    path = program(tmp_path, "name: l\nlet:\n  a: 3037000500 * 3037000500\ntensors: {}\nbody: []\n")
    fails(cli.invoke(main, ["validate", str(path)]),
          re.escape(f"{path}:3:") + r"\d+: let a: cannot evaluate: 9223372037000250000 does not fit in a 64-bit")
    path = program(tmp_path, "name: l\ntensors: {}\nbody:\n  - a = 3037000500\n  - b = a * a * a\n")
    fails(cli.invoke(main, ["validate", str(path)]), re.escape(f"{path}:5:5: b = ") + r".* does not fit in a 64-bit")


@pytest.mark.parametrize("body", [
    "  - if 1 > 2:\n    - x = 1\n  - y = x + 1\n",
    "  - for i in range(0):\n    - x = 1\n  - y = x + 1\n",
    "  - for i in range(0):\n    - x = 1\n  - y = i\n",
    "  - if 1 > 2:\n    - t = a\n  - z = read(t, [0, 0])\n",
    "  - incore k:\n    - for i in range(0):\n      - t = slice(a, [16, 64], [0, 0])\n"
    "    - b = assemble(b, t, [0, 0])\n",
    "  - incore k:\n    - if 2 < 1:\n      - t = slice(a, [16, 64], [0, 0])\n    - u = exp(t)\n",
])
def test_names_defined_only_on_untaken_branches(cli, tmp_path: Path, body: str) -> None:
    head = ("name: u\ntensors:\n  a: {shape: [16, 64], dtype: fp32, role: input, init: ones}\n"
            "  b: {shape: [16, 64], dtype: fp32, role: output}\nbody:\n")
    path = program(tmp_path, head + body)
    for command in (["validate"], ["run", "-q", "--out", str(tmp_path / "o")]):
        fails(cli.invoke(main, [*command, str(path)]),
              re.escape(str(path)) + r":\d+:\d+: .*has no value when this line runs: it is assigned only in an 'if' "
              r"branch not taken or in a loop that ran no iterations")


def test_shapes_of_no_or_too_many_dimensions(cli, tmp_path: Path) -> None:
    path = program(tmp_path, "name: f\ntensors:\n  b: {shape: [16, 64], dtype: fp32, role: output}\nbody:\n"
                             "  - incore k:\n    - t = full([], fp32, 1.0)\n    - u = exp(t)\n")
    fails(cli.invoke(main, ["validate", str(path)]), re.escape(f"{path}:6:7: full: shape [] must have 1 to 32 dim"))
    shape = ", ".join(["1"] * 65)
    path = program(tmp_path, f"name: d\ntensors:\n  a: {{shape: [{shape}], dtype: fp32, role: input, init: ones}}\n"
                             "body: []\n")
    fails(cli.invoke(main, ["validate", str(path)]), re.escape(f"{path}:3:14: tensors.a.shape: List should have at "
                                                               "most 32 items"))


def test_a_result_larger_than_any_buffer_is_refused_before_it_is_allocated(cli, tmp_path: Path) -> None:
    path = program(tmp_path, "name: f\ntensors: {}\nbody:\n  - incore k:\n    - t = full([65536, 65536], fp32, 1.0)\n")
    fails(cli.invoke(main, ["run", str(path), "-q", "--out", str(tmp_path / "o")]),
          re.escape(f"{path}:5:7: full: its result [65536, 65536] fp32 is 17179869184 bytes, more than any core's"))


def test_a_reference_of_another_program_is_located(cli, tmp_path: Path) -> None:
    path = program(tmp_path, (PROGRAMS / "rms_norm.yaml").read_text().replace("reference: rms_norm",
                                                                              "reference: qwen3_decode"))
    fails(cli.invoke(main, ["run", str(path), "--preset", "tiny", "-q", "--out", str(tmp_path / "o")]),
          re.escape(f"{path}:24:12: reference qwen3_decode does not fit this program: it needs input tensor "
                    "hidden_states"))
    path = program(tmp_path, MATMUL.replace("reference: matmul", "reference: softmax"))
    fails(cli.invoke(main, ["validate", str(path)]), re.escape(f"{path}:25:12: reference softmax does not fit"))


def test_assemble_into_an_input_tensor_fails_validate(cli, tmp_path: Path) -> None:
    path = program(tmp_path, "name: a\ntensors:\n  a: {shape: [16, 64], dtype: fp32, role: input, init: ones}\n"
                             "body:\n  - incore k:\n    - t = slice(a, [16, 64], [0, 0])\n    - u = mul(t, 2.0)\n"
                             "    - a = assemble(a, u, [0, 0])\n")
    message = re.escape(f"{path}:8:7: assemble: a is an input tensor (role: input)")
    fails(cli.invoke(main, ["validate", str(path)]), message)
    fails(cli.invoke(main, ["run", str(path), "-q", "--no-numerics", "--out", str(tmp_path / "o")]), message)


@pytest.mark.parametrize(("dtype", "init"), [("int32", "uniform(-1e12, 1e12)"), ("fp16", "uniform(0, 1e5)"),
                                             ("fp32", "normal(0, 1e38)"), ("bf16", "full(1e39)"),
                                             ("int32", "ones * 3e9"), ("fp32", "uniform(-3e38, 3e38)")])
def test_init_rules_that_overflow_their_dtype(cli, tmp_path: Path, dtype: str, init: str) -> None:
    path = program(tmp_path, f"name: a\ntensors:\n  a: {{shape: [16, 64], dtype: {dtype}, role: input, "
                             f"init: \"{init}\"}}\nbody: []\n")
    result = cli.invoke(main, ["run", str(path), "-q", "--no-plot", "--no-trace", "--out", str(tmp_path / "o")])
    fails(result, re.escape(f"{path}:3:6: tensor a: init"))
    assert "RuntimeWarning" not in result.stderr


def test_init_rules_at_the_edge_of_their_dtype_still_run(cli, tmp_path: Path) -> None:
    path = program(tmp_path, "name: a\ntensors:\n  a: {shape: [16, 64], dtype: int32, role: input, "
                             "init: \"randint(-2147483648, 2147483648)\"}\n"
                             "  b: {shape: [16, 64], dtype: fp16, role: input, init: \"uniform(-65504, 65504)\"}\n"
                             "body: []\n")
    result = cli.invoke(main, ["run", str(path), "-q", "--no-plot", "--no-trace", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.stderr


# --- --out that cannot be written ----------------------------------------------------------------------------

def test_out_that_cannot_be_created(cli, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    args = ["run", str(PROGRAMS / "matmul.yaml"), "--preset", "tiny", "--no-numerics", "-q", "--out"]
    fails(cli.invoke(main, [*args, str(afile / "sub")]),
          r"--out .*/afile/sub: cannot create or open it: Not a directory")
    fails(cli.invoke(main, [*args, str(tmp_path / ("x" * 300))]), r"cannot create or open it: File name too long")
    if Path("/sys").is_dir() and not os.access("/sys", os.W_OK):
        fails(cli.invoke(main, [*args, "/sys/npusim"]), r"--out /sys/npusim: cannot create or open it")


def test_a_full_disk_is_exit_2(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.fdopen

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: Full(real(fd, *a, **k)))
    out = tmp_path / "o"
    fails(cli.invoke(main, ["run", str(PROGRAMS / "matmul.yaml"), "--preset", "tiny", "--no-numerics", "-q",
                            "--out", str(out)]),
          re.escape(f"error: cannot write {out}/") + r".*No space left on device$")
    assert list(out.iterdir()) == [] and not list(tmp_path.glob(".npusim-stage-*"))


# --- inputs under --out are never touched --------------------------------------------------------------------

def test_a_config_inside_out_is_never_deleted(cli, tmp_path: Path) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "trace.json").write_text(CONFIG)
    fails(cli.invoke(main, ["run", str(PROGRAMS / "matmul.yaml"), "--preset", "tiny", "--no-numerics", "--no-trace",
                            "--config", str(out / "trace.json"), "--out", str(out)]),
          r"refusing to write where an input of this run is \(.*/o/trace.json\)")
    assert (out / "trace.json").read_text() == CONFIG


def test_compare_never_overwrites_its_inputs(cli, tmp_path: Path) -> None:
    """A side's program, or a saved report given as a side, inside --out: refused, and left as it was."""
    out = tmp_path / "o"
    out.mkdir()
    b = out / "b.yaml"
    b.write_text(MATMUL)
    fails(cli.invoke(main, ["compare", str(PROGRAMS / "matmul.yaml"), str(b), "--preset", "tiny", "--no-numerics",
                            "-q", "--out", str(out)]),
          r"refusing to write where an input of this run is \(.*/o/b.yaml\)")
    assert b.read_text() == MATMUL
    b.unlink()
    saved = tmp_path / "saved"
    assert cli.invoke(main, ["run", str(PROGRAMS / "matmul.yaml"), "--preset", "tiny", "--no-numerics", "-q",
                             "--no-plot", "--no-trace", "--out", str(saved)]).exit_code == 0
    report = out / "compare.json"
    report.write_bytes((saved / "report.json").read_bytes())
    before = report.read_bytes()
    fails(cli.invoke(main, ["compare", str(saved / "report.json"), str(report), "-q", "--out", str(out)]),
          r"refusing to write where an input of this run is \(.*/o/compare.json\)")
    assert report.read_bytes() == before


@pytest.mark.parametrize("target", ["configs/sub", "npusim/sub", "programs", "."])
def test_out_in_the_configs_or_the_package_is_refused(cli, target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    fails(cli.invoke(main, ["run", str(PROGRAMS / "matmul.yaml"), "--preset", "tiny", "--no-numerics", "--out",
                            target]), r"--out .*refusing")
    assert not (REPO / "configs" / "sub").exists() and not (REPO / "npusim" / "sub").exists()


# --- read of values a kernel wrote ---------------------------------------------------------------------------

READ_AFTER_KERNEL = """\
name: r
tensors:
  a: {shape: [16, 64], dtype: int32, role: input, init: "full(3)"}
  n: {shape: [16, 64], dtype: int32, role: scratch}
  b: {shape: [16, 64], dtype: int32, role: output}
body:
  - incore w:
    - t = slice(a, [16, 64], [0, 0])
    - n = assemble(n, t, [0, 0])
  - k = read(n, [0, 0])
  - for i in range(k):
    - incore c:
      - u = slice(n, [16, 64], [0, 0])
      - b = assemble(b, u, [0, 0])
"""


def test_read_of_a_tensor_an_earlier_kernel_wrote(cli, tmp_path: Path) -> None:
    """With numerics the orchestrator sees the value after the producing kernel (3: four kernels in all);
    timing-only says it needs numerics; validate checks up to the read."""
    import json

    path = program(tmp_path, READ_AFTER_KERNEL)
    result = cli.invoke(main, ["run", str(path), "-q", "--no-plot", "--no-trace", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.stderr
    assert json.loads((tmp_path / "o" / "report.json").read_text())["total"]["tasks"] == 4
    fails(cli.invoke(main, ["run", str(path), "-q", "--no-numerics", "--out", str(tmp_path / "o2")]),
          re.escape(f"{path}:10:5: read: n is written by kernel w before this read; its values exist only in a run "
                    "with numerics (drop --no-numerics)"))
    result = cli.invoke(main, ["validate", str(path)])
    assert result.exit_code == 0 and f"ok up to {path}:10:5" in result.output


# --- determinism ---------------------------------------------------------------------------------------------

def test_small_reference_matmul_sums_in_order() -> None:
    """Bit for bit the sequential sum over k of exact float64 products."""
    import numpy as np

    from npusim.references import same_bits

    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((3, 50)).astype(np.float32), rng.standard_normal((50, 7)).astype(np.float32)
    want = np.zeros((3, 7))
    for i in range(50):
        want = want + a[:, i : i + 1].astype(np.float64) * b[i].astype(np.float64)
    assert np.array_equal(same_bits.matmul(a, b), want)


def test_large_reference_matmul_is_exact_where_a_float64_sum_in_any_order_is_not() -> None:
    """The sliced path (M*K*N above SMALL): exactly 1 in columns built to cancel (2**60 + 1 - 2**60: 0 summed
    in order in float64), whether the cancelling terms lie in the dense band (exact only if every dgemm
    partial sum is) or the 1 lies below it (the sparse part); elsewhere within the error bound of a float64
    sum in order, K * 2**-53 * sum |a b|, of math.fsum of the exact products."""
    import math

    import ml_dtypes
    import numpy as np

    from npusim.references import same_bits

    rng = np.random.default_rng(7)
    m, k, n = 4, 512, 1024
    assert m * k * n > same_bits.SMALL
    a = rng.standard_normal((m, k)).astype(ml_dtypes.bfloat16).astype(np.float32)
    b = (rng.uniform(-1, 1, (k, n)) * np.exp2(rng.integers(-40, 1, (k, n)))).astype(ml_dtypes.bfloat16)
    a[:, :3] = 1.0
    b[:3, 0] = [2.0**60, 1.0, -(2.0**60)]  # the 1 is far below the band: the sparse part
    b[:3, 1] = [2.0**12, 1.0, -(2.0**12)]  # all in the dense band
    b[3:, :2] = 0
    got = same_bits.matmul(a, b)
    assert got[:, 0].tolist() == [1.0] * m and got[:, 1].tolist() == [1.0] * m
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    for i, j in [(0, 2), (1, 500), (3, 1023), *((i, j) for i in range(m) for j in rng.integers(2, n, 20))]:
        exact = math.fsum(a64[i] * b64[:, j])  # BF16 x BF16 products are exact in float64
        assert abs(got[i, j] - exact) <= k * 2.0**-53 * float(np.abs(a64[i] * b64[:, j]).sum()), (i, j)


def test_large_reference_matmul_falls_back_to_the_sum_in_order() -> None:
    """Operands the slices cannot take (a float64 right operand, an inf) are summed in order, bit for bit."""
    import numpy as np

    from npusim.references import same_bits

    rng = np.random.default_rng(9)
    a = rng.standard_normal((4, 512)).astype(np.float32)
    for b in (rng.standard_normal((512, 1024)), np.full((512, 1024), np.inf, dtype=np.float32)):
        with np.errstate(invalid="ignore"):
            assert np.array_equal(same_bits.matmul(a, b), same_bits._in_order(a.astype(np.float64), b),
                                  equal_nan=True)


def test_reference_exp_is_correctly_rounded_to_fp32() -> None:
    import decimal

    import numpy as np

    from npusim.references.same_bits import exp_f32

    rng = np.random.default_rng(3)
    x = np.concatenate([rng.standard_normal(4000) * 30, rng.uniform(-0.01, 0.01, 1000)]).astype(np.float32)
    y = exp_f32(x)
    decimal.getcontext().prec = 60
    for xi, yi in zip(x[::7], y[::7], strict=True):
        exact = decimal.Decimal(float(xi)).exp()
        neighbours = [yi, np.nextafter(yi, np.float32(np.inf)), np.nextafter(yi, np.float32(-np.inf))]
        if np.isfinite(yi) and yi > 0:
            assert min(neighbours, key=lambda v: abs(decimal.Decimal(float(v)) - exact)) == yi, xi


def test_report_json_is_the_same_on_other_blas_kernels_threads_and_simd_paths(tmp_path: Path) -> None:
    """The reference used BLAS and numpy's SIMD exp: OpenBLAS's Prescott kernel (an older machine) moved
    qwen3 tiny's check.max_abs_err from 4.8e-7 to 0. Every byte of report.json must not move."""
    import subprocess
    import sys

    reports = {}
    for label, extra in [("default", {}), ("prescott", {"OPENBLAS_CORETYPE": "Prescott"}),
                         ("1 thread", {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}),
                         ("no avx", {"NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"})]:
        out = tmp_path / label.replace(" ", "_")
        env = dict(os.environ, PYTHONPATH=str(REPO), **extra)
        subprocess.run([sys.executable, "-m", "npusim", "run", str(PROGRAMS / "qwen3_decode.yaml"), "--preset",
                        "tiny", "-q", "--no-plot", "--no-trace", "--out", str(out)], check=True, env=env)
        reports[label] = (out / "report.json").read_bytes()
    assert len(set(reports.values())) == 1, {k: hash(v) for k, v in reports.items()}
