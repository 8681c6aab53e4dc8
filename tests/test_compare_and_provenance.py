"""Runs that say what they are and never collide (default output directories, provenance in report.json and
the trace), stdout as CSV or JSON, `compare` of anything (two programs, two configs, two --set variants,
two saved reports) with exit status 3 when a side fails its check, and `--expect outputs.npz`."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from npusim.cli import main
from npusim.timing import CONFIG_DIR, config_sha256, load_config
from npusim.version import __version__

from .conftest import PROGRAMS

SOFTMAX = str(PROGRAMS / "softmax.yaml")
QUICK = ["--preset", "tiny", "-q", "--no-plot"]


def flat(text: str) -> str:
    """Console text with its line wrapping undone."""
    return " ".join(text.split())


def run_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "reports").iterdir())


def test_default_directories_name_the_run_and_never_collide(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.invoke(main, ["run", SOFTMAX, *QUICK]).exit_code == 0
    [plain] = run_dirs(tmp_path)
    assert plain.startswith("softmax-tiny-ascend910b-") and len(plain.rsplit("-", 1)[1]) == 8
    assert cli.invoke(main, ["run", SOFTMAX, *QUICK]).exit_code == 0  # the same run again: the same directory
    assert run_dirs(tmp_path) == [plain]
    # a --set, a copied program that keeps its name, an edited config that keeps its name, another seed
    assert cli.invoke(main, ["run", SOFTMAX, *QUICK, "--set", "ctx_len=100"]).exit_code == 0
    copy = tmp_path / "mine" / "softmax.yaml"
    copy.parent.mkdir()
    copy.write_text(Path(SOFTMAX).read_text())
    assert cli.invoke(main, ["run", str(copy), *QUICK]).exit_code == 0
    edited = tmp_path / "my910.yaml"
    edited.write_text((CONFIG_DIR / "ascend910b.yaml").read_text().replace("read_bytes_per_s: 1.45e12",
                                                                           "read_bytes_per_s: 2.9e12"))
    assert load_config(str(edited)).name == "ascend910b"
    assert cli.invoke(main, ["run", SOFTMAX, *QUICK, "--config", str(edited)]).exit_code == 0
    assert cli.invoke(main, ["run", SOFTMAX, *QUICK, "--seed", "1"]).exit_code == 0
    assert cli.invoke(main, ["run", SOFTMAX, *QUICK, "--no-numerics"]).exit_code == 0  # timing only: its own
    dirs = run_dirs(tmp_path)
    assert len(dirs) == 6 and len({d.rsplit("-", 1)[1] for d in dirs}) == 5
    assert f"{plain.rsplit('-', 1)[0]}-timing-{plain.rsplit('-', 1)[1]}" in dirs
    assert any(d.startswith("softmax-tiny-ctx_len=100-ascend910b-") for d in dirs)
    reports = [json.loads((tmp_path / "reports" / d / "report.json").read_text()) for d in dirs if "-timing-" not in d]
    edited_report = next(r for r in reports if r["config_path"] == str(edited))
    assert edited_report["config"] == "ascend910b"
    shipped = next(r for r in reports if r["config_path"] != str(edited))  # (directory order follows the keys)
    assert edited_report["config_sha256"] == config_sha256(load_config(str(edited))) != shipped["config_sha256"]
    assert next(r for r in reports if r["overrides"])["overrides"] == {"ctx_len": 100}
    assert {r["seed"] for r in reports} == {0, 1} and {r["npusim_version"] for r in reports} == {__version__}


def test_provenance_in_report_trace_and_figures(cli, tmp_path: Path) -> None:
    out = tmp_path / "o"
    result = cli.invoke(main, ["run", SOFTMAX, "--preset", "tiny", "--out", str(out), "--set", "ctx_len=150",
                               "--seed", "7", "--config", "ascend950"])
    assert result.exit_code == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    hw = load_config("ascend950")
    assert (report["config"], report["config_sha256"], report["overrides"], report["seed"]) == \
        ("ascend950", config_sha256(hw), {"ctx_len": 150}, 7)
    assert report["config_path"].endswith("configs/ascend950.yaml")
    other = json.loads((out / "trace.json").read_text())["otherData"]
    for key in ("config", "config_path", "config_sha256", "runtime", "overrides", "seed", "npusim_version"):
        assert other[key] == report[key]
    assert report["runtime"] == hw.runtime == "2026-07-profiling"
    line = (f"config ascend950 ({report['config_path']}, sha256 {report['config_sha256'][:12]}) · "
            f"runtime 2026-07-profiling · --set ctx_len=150")
    assert line in flat(result.output)


def test_stdout_as_csv_or_json(cli, tmp_path: Path) -> None:
    out = tmp_path / "o"
    result = cli.invoke(main, ["run", SOFTMAX, "--preset", "tiny", "--out", str(out), "--format", "csv"])
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    report = json.loads((out / "report.json").read_text())
    assert [r["name"] for r in rows] == [s["name"] for s in report["scopes"]] + ["total"]
    assert float(rows[-1]["cycles"]) == report["total"]["cycles"]
    assert int(rows[-1]["dma_bytes_gm_to_ub"]) == report["total"]["dma"]["bytes"]["gm_to_ub"]
    assert "report.json" in result.stderr and "report.json" not in result.stdout
    result = cli.invoke(main, ["run", SOFTMAX, "--preset", "tiny", "--out", str(out), "--format", "json"])
    assert json.loads(result.stdout) == json.loads((out / "report.json").read_text())


# --- compare ---------------------------------------------------------------------------------------------


def compare(cli, tmp_path: Path, *args: str):
    out = tmp_path / "cmp"
    result = cli.invoke(main, ["compare", *args, "--preset", "tiny", "--out", str(out)])
    data = json.loads((out / "compare.json").read_text()) if (out / "compare.json").exists() else None
    return result, data


def test_compare_two_configs(cli, tmp_path: Path) -> None:
    result, data = compare(cli, tmp_path, SOFTMAX, "--config-a", "ascend910b", "--config-b", "ascend950")
    assert result.exit_code == 0, result.stderr
    assert (data["a"]["label"], data["b"]["label"]) == ("ascend910b", "ascend950")
    assert (data["a"]["config"], data["b"]["config"]) == ("ascend910b", "ascend950")
    assert data["outputs_identical"] is True and "outputs: bit-identical" in result.output
    assert data["total"]["a"]["tasks"] == data["total"]["b"]["tasks"] and data["total"]["diff"]["us"] != 0
    assert "A = ascend910b, B = ascend950" in result.output
    args = ["compare", SOFTMAX, "--config-a", "ascend910b", "--config-b", "ascend950", "--preset", "tiny", "--out",
            str(tmp_path / "cmp")]
    rows = list(csv.DictReader(io.StringIO(cli.invoke(main, [*args, "--format", "csv"]).stdout)))
    assert [r["scope"] for r in rows] == [r["name"] for r in data["scopes"]] + ["total"]
    assert float(rows[-1]["us_diff"]) == data["total"]["diff"]["us"]
    shown = json.loads(cli.invoke(main, [*args, "--format", "json"]).stdout)
    assert "reports" not in shown and shown["scopes"] == data["scopes"]


def test_compare_two_set_variants(cli, tmp_path: Path) -> None:
    result, data = compare(cli, tmp_path, SOFTMAX, "--set-a", "ctx_len=100", "--set-b", "ctx_len=200")
    assert result.exit_code == 0, result.stderr
    assert (data["a"]["label"], data["b"]["label"]) == ("ctx_len=100", "ctx_len=200")
    qk = next(r for r in data["scopes"] if r["name"] == "qk")
    assert (qk["a"]["tasks"], qk["b"]["tasks"]) == (2, 4)  # ceil(ctx_len / SEQ_TILE) blocks of 64
    assert data["outputs_identical"] is False


def test_compare_two_saved_reports_equals_compare_of_the_runs(cli, tmp_path: Path) -> None:
    for name, config in (("a", "ascend910b"), ("b", "ascend950")):
        args = ["run", SOFTMAX, "--preset", "tiny", "-q", "--no-plot", "--no-trace", "--config", config]
        assert cli.invoke(main, [*args, "--out", str(tmp_path / name)]).exit_code == 0
    result, saved = compare(cli, tmp_path, str(tmp_path / "a" / "report.json"), str(tmp_path / "b" / "report.json"))
    assert result.exit_code == 0, result.stderr
    _, ran = compare(cli, tmp_path / "ran", SOFTMAX, "--config-a", "ascend910b", "--config-b", "ascend950")
    assert saved["scopes"] == ran["scopes"] and saved["total"] == ran["total"]
    assert saved["outputs_identical"] is True


def test_every_traffic_column_is_gm_or_on_chip(cli, tmp_path: Path) -> None:
    result, data = compare(cli, tmp_path, SOFTMAX, "--config-a", "ascend910b", "--config-b", "ascend950")
    report = data["reports"]["a"]
    for row, scope in zip(data["scopes"], report["scopes"], strict=True):
        paths = scope["dma"]["bytes"]
        gm = sum(n for p, n in paths.items() if p.startswith("gm_") or p.endswith("_gm"))
        assert row["a"]["gm_bytes"] == gm and row["a"]["onchip_bytes"] == sum(paths.values()) - gm
    assert set(data["metrics"]) >= {"gm_bytes", "gm_transfers", "onchip_bytes", "onchip_transfers"}
    assert "dma_bytes" not in data["total"]["a"]
    tables = result.output.split("traffic: GM = to/from global memory (HBM), on-chip = between buffers")[1]
    header = " ".join(tables.splitlines()[1:4])
    assert header.count("GM") == 4 and header.count("on-chip") == 2


def test_compare_exits_3_when_a_side_fails_its_check(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from npusim import references

    broken = references.Reference("matmul", lambda inputs, c: {"c": np.zeros((c["M"], c["N"]))})
    monkeypatch.setitem(references.REFERENCES, "matmul", broken)
    result, data = compare(cli, tmp_path, SOFTMAX, str(PROGRAMS / "matmul.yaml"))
    assert result.exit_code == 3
    assert data["failed_checks"] == ["b"] and data["a"]["check"]["passed"] is True
    assert "check FAILED on B (matmul)" in result.stderr
    assert "check of B (matmul) against matmul: FAILED" in flat(result.output)
    # the same from saved reports: a report whose check failed
    out = tmp_path / "m"
    assert cli.invoke(main, ["run", str(PROGRAMS / "matmul.yaml"), "--preset", "tiny", "--out", str(out), "-q",
                             "--no-plot", "--no-trace"]).exit_code == 3
    result, _ = compare(cli, tmp_path / "saved", str(out / "report.json"), str(out / "report.json"))
    assert result.exit_code == 3 and "check FAILED on A (A), B (B)" in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    ([SOFTMAX], "compare needs two programs, two report.json files, or one program with"),
    (["r.json", SOFTMAX, "--config-a", "ascend950"], "--config-a/--set-a vary a program's run; A (r.json) is a saved"),
    (["bad.json", "r.json"], "bad.json:2:1: not JSON: "),
    (["list.json", "r.json"], "list.json: not a report.json of this npusim: (top level): "),
    (["missing.json", "r.json"], "missing.json: no such report file"),
])
def test_compare_input_errors(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str],
                              message: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.json").write_text("{\n]")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "r.json").write_text("{}")
    result = cli.invoke(main, ["compare", *args])
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr


# --- --expect --------------------------------------------------------------------------------------------


@pytest.fixture
def saved(cli, tmp_path: Path) -> Path:
    out = tmp_path / "saved"
    args = ["run", SOFTMAX, "--preset", "tiny", "--out", str(out), "--save-tensors", "-q", "--no-plot", "--no-trace"]
    assert cli.invoke(main, args).exit_code == 0
    return out / "outputs.npz"


def expect(cli, tmp_path: Path, npz: Path, *extra: str):
    return cli.invoke(main, ["run", SOFTMAX, "--preset", "tiny", "--out", str(tmp_path / "e"), "--no-plot",
                             "--no-trace", "--expect", str(npz), *extra])


def test_expect_saved_outputs(cli, tmp_path: Path, saved: Path) -> None:
    result = expect(cli, tmp_path, saved)
    assert result.exit_code == 0 and f"check against expect {saved}: passed (max abs err 0" in flat(result.output)
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    assert report["check"]["reference"] == f"expect {saved}" and report["check"]["outputs"]["out"]["mismatches"] == 0
    # one element off by 0.25: a failed check (exit 3) at the default tolerances, a pass at atol 0.5
    out = np.load(saved)["out"].view(ml_dtypes.bfloat16).copy()
    out[3, 5] = out[3, 5].astype(np.float32) + np.float32(0.25)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, out=out.view(np.uint16))
    result = expect(cli, tmp_path, wrong)
    assert result.exit_code == 3 and "FAILED" in result.output
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    assert report["check"]["outputs"]["out"]["mismatches"] == 1
    assert report["check"]["max_abs_err"] == pytest.approx(0.25, abs=0.01)
    assert expect(cli, tmp_path, wrong, "--atol", "0.5").exit_code == 0


@pytest.mark.parametrize(("arrays", "extra", "message"), [
    ({"nope": np.zeros((16, 128), np.uint16)}, [], "'nope' is not an output or inout tensor of softmax (outputs: out)"),
    ({"out": np.zeros((16, 128), np.float32)}, [], "out: stored as float32; a bf16 tensor is stored as uint16"),
    ({"out": np.zeros((16, 64), np.uint16)}, [], "out: shape [16, 64], the tensor is [16, 128]"),
    ({"out": np.zeros((16, 128), np.uint16)}, ["--no-numerics"], "--expect compares computed outputs: it needs"),
    (None, [], "not an .npz archive of arrays"),
])
def test_expect_input_errors(cli, tmp_path: Path, arrays, extra: list[str], message: str) -> None:
    npz = tmp_path / "x.npz"
    if arrays is None:
        npz.write_text("not a zip")
    else:
        np.savez(npz, **arrays)
    result = expect(cli, tmp_path, npz, *extra)
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert message in result.stderr, result.stderr
    assert not (tmp_path / "e").exists() or not (tmp_path / "e" / "report.json").exists()
