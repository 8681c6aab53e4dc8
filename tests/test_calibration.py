"""npusim's cost of single tile instructions on ascend910b next to cycles measured on a 910B3.

The first table is docs/sources.md PTC §6.2. The second holds further device values from the same
pto-isa test files (tests/costmodel/st/testcase/<op>/main.cpp and st/a2a3/<op>/<op>.cpp in the public mirror
zouzias/pto-isa-mirror; values whose recorded precision shows they were measured, not model pins) and the
device calibration comments of cce_costmodel_vector_compute.hpp. Both are priced by the same decomposition
rules (docs/sources.md PTC §1-§4; the points themselves are listed under DEV); none of the rules is specific to one of these shapes.
"""

from __future__ import annotations

import pytest

from npusim.graph import ComputeSig, DmaSig, TileSig
from npusim.timing import load_config
from npusim.timing.costs import CostModel

COST = CostModel(load_config("ascend910b"))


def tile(shape: tuple[int, ...], dtype: str = "fp32") -> TileSig:
    return TileSig(shape, dtype, shape, False)


def unary(key: str, shape: tuple[int, int], dtype: str = "fp32", out_dtype: str | None = None) -> ComputeSig:
    return ComputeSig(key, tile(shape, out_dtype or dtype), (tile(shape, dtype),))


def binary(key: str, shape: tuple[int, int], dtype: str = "fp32") -> ComputeSig:
    return ComputeSig(key, tile(shape, dtype), (tile(shape, dtype), tile(shape, dtype)))


def reduce(key: str, shape: tuple[int, int], dtype: str = "fp32") -> ComputeSig:
    return ComputeSig(key, tile((shape[0], 1), dtype), (tile(shape, dtype),))


def load(nbytes: int, rows: int = 1) -> DmaSig:
    return DmaSig("TLOAD", tile((rows, nbytes // rows // 4)), "UB", rows, nbytes // rows)


def store(nbytes: int, dtype: str = "fp32") -> DmaSig:
    return DmaSig("TSTORE", tile((1, nbytes // 4), dtype), "UB", 1, nbytes)


def matmul(m: int, k: int, n: int, dtype: str = "fp16") -> ComputeSig:
    return ComputeSig("TMATMUL", tile((m, n)), (tile((m, k), dtype), tile((k, n), dtype)))


SECTION_6_2 = [
    ("TEXP f32 64x64", unary("TEXP", (64, 64)), 159),
    ("TEXP f32 32x32", unary("TEXP", (32, 32)), 63),
    ("TADD f32 64x64", binary("TADD", (64, 64)), 160),
    ("TDIV f32 64x64", binary("TDIV", (64, 64)), 288),
    ("TSQRT f32 64x64", unary("TSQRT", (64, 64)), 160),
    ("TCVT f32->f16 4x64", unary("TCVT", (4, 64), "fp32", "fp16"), 33),
    ("TADDS f32 7x448", unary("TADDS", (7, 448)), 77),
    ("TROWSUM f32 64x64", reduce("TROWSUM", (64, 64)), 492),
    ("TMATMUL f16 40x50x60", matmul(40, 50, 60), 54),
    ("TLOAD 64 KiB GM->UB", load(65536, rows=128), 776),
]

FURTHER_DEVICE_POINTS = [
    ("TSUB f32 64x64", binary("TSUB", (64, 64)), 153),
    ("TADD int32 64x64", binary("TADD", (64, 64), "int32"), 151),
    ("TDIV f16 64x64", binary("TDIV", (64, 64), "fp16"), 304),
    ("TDIV f32 32x32", binary("TDIV", (32, 32)), 113),
    ("TADDS f32 32x64", unary("TADDS", (32, 64)), 57),
    ("TMULS f32 32x64", unary("TMULS", (32, 64)), 58),
    ("TROWSUM f16 64x128", reduce("TROWSUM", (64, 128), "fp16"), 495),
    ("TROWMAX f32 64x64", reduce("TROWMAX", (64, 64)), 480),
    ("TROWMAX f16 64x128", reduce("TROWMAX", (64, 128), "fp16"), 481),
    ("TEXP f32 128 repeats (128x64)", unary("TEXP", (128, 64)), 287),
    ("TEXP f32 1 repeat (1x64)", unary("TEXP", (1, 64)), 33),
    ("TCVT f32->f16 128 repeats (1x8192)", unary("TCVT", (1, 8192), "fp32", "fp16"), 141),
    ("TLOAD f32 128x127 (508-B rows)", DmaSig("TLOAD", tile((128, 128)), "UB", 128, 508), 773),
    ("TLOAD 16-bit 128x127 (254-B rows)", DmaSig("TLOAD", tile((128, 128), "fp16"), "UB", 128, 254), 519),
    ("TLOAD 8 KiB", load(8192, rows=32), 328),
    ("TLOAD 512 B", load(512, rows=2), 268),
    ("TSTORE f32 64 KiB", store(65536), 785),
    ("TSTORE f32 32 KiB", store(32768), 490),
    ("TSTORE f32 128 KiB", store(131072), 1390),
    ("TSTORE 16-bit 16 KiB", store(16384, "fp16"), 345),
    ("TSTORE 16-bit 64 KiB", store(65536, "fp16"), 787),
]


@pytest.mark.parametrize(("name", "sig", "device"), SECTION_6_2 + FURTHER_DEVICE_POINTS,
                         ids=[p[0] for p in SECTION_6_2 + FURTHER_DEVICE_POINTS])
def test_within_ten_percent_of_the_device(name: str, sig: ComputeSig | DmaSig, device: int) -> None:
    model = COST.isolated_cycles(sig)
    assert abs(model - device) <= 0.10 * device, f"{name}: npusim {model:.1f} vs device {device}"


def test_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    """The whole comparison at once (printed with pytest -s): at least 95% of the points within 10% and none
    worse than 25%."""
    points = SECTION_6_2 + FURTHER_DEVICE_POINTS
    lines = [f"{'instruction':38s} {'device':>7s} {'npusim':>8s} {'error':>7s}"]
    errors = []
    for name, sig, device in points:
        model = COST.isolated_cycles(sig)
        errors.append((model - device) / device)
        lines.append(f"{name:38s} {device:7d} {model:8.1f} {100 * errors[-1]:+6.1f}%")
    within = sum(abs(e) <= 0.10 for e in errors)
    lines.append(f"{within} of {len(points)} within 10%, worst {100 * max(map(abs, errors)):.1f}%")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert within >= 0.95 * len(points)
    assert max(map(abs, errors)) <= 0.25
