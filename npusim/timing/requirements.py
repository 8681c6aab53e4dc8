"""What a run needs from a hardware config, checked when the config is loaded, so that `config check` passes
only configs a run can use and a run never fails unlocated on a config: a dma entry for every path a route
names (and no unknown path), a route for every move the lowering emits (each a chain of paths from its source
to its destination), every vector intrinsic (A2/A3) or vector-function class (A5) the rule table uses (and
none it does not know), a cube rate for every operand dtype but FP8, and at least one AIV per AIC (a mix kernel
takes an AIC and an AIV of its cluster); a GM read's L2-hit latency, and write completions on GM writes only."""

from __future__ import annotations

from collections.abc import Callable
from typing import get_args

from npusim.errors import ConfigError, did_you_mean
from npusim.frontend.yaml_source import YamlDoc
from npusim.interp.lower import ROUTES
from npusim.vocabulary import PATHS, Place

from .costs.vector import VECTOR_RULES, VectorRule
from .hardware import Cube, HardwareConfig, PathCost

INTRINSICS = sorted({name for rule in VECTOR_RULES.values() for name in rule.intrinsics})
CVT_CLASSES = ("cvt_narrow", "cvt_same", "cvt_widen")  # TCVT's class `cvt` is one of these by the widths


def _vf_classes(a5_class: str) -> tuple[str, ...]:
    return CVT_CLASSES if a5_class == "cvt" else (a5_class,)


VF_CLASSES = sorted({name for rule in VECTOR_RULES.values() for name in _vf_classes(rule.a5_class)})
# every cube operand dtype needs a rate, except the FP8 formats: A2/A3's cube has none (docs/sources.md HF §1), and
# an FP8 matmul on a config without an FP8 rate is a located error at the op
_RATED = get_args(get_args(Cube.model_fields["cycles_per_fractal"].annotation)[0])
CUBE_DTYPES: tuple[str, ...] = tuple(d for d in _RATED if not d.startswith("fp8"))
_PLACES: dict[str, Place] = {"gm": "GM", "ub": "UB", "l1": "L1", "l0a": "L0A", "l0b": "L0B", "l0c": "L0C"}


def path_ends(path: str) -> tuple[Place, Place]:
    """The places a path name such as `l0c_to_gm` joins."""
    src, _, dst = path.partition("_to_")
    return _PLACES[src], _PLACES[dst]


def check_requirements(hw: HardwareConfig, doc: YamlDoc) -> None:
    """Raise a located ConfigError for the first thing a run would need and not find in `hw`."""
    if hw.num_aiv < hw.num_aic:
        raise ConfigError(f"num_aiv: {hw.num_aiv} AIVs for {hw.num_aic} AICs; every AIC needs at least one AIV "
                          "(a mix kernel runs on an AIC and an AIV of its cluster)", doc.where(("num_aiv",)))
    for name in hw.dma:
        if name not in PATHS:
            raise ConfigError(f"dma: unknown path {name!r}{did_you_mean(name, PATHS)}; paths: {', '.join(PATHS)}",
                              doc.where_key(("dma", name)))
    for name, path in hw.dma.items():
        _check_path(doc, name, path)
    for route, hops in hw.routes.items():
        _check_route(hw, doc, route, hops)
    for src, dst in sorted(ROUTES):
        if f"{src}->{dst}" not in hw.routes:
            raise ConfigError(f"routes: no route {src}->{dst}, which a run needs (moves: "
                              f"{', '.join(f'{a}->{b}' for a, b in sorted(ROUTES))})", doc.where(("routes",)))
    if hw.vector is not None:
        _check_table(doc, hw.vector.intrinsics, ("vector", "intrinsics"), "intrinsic", INTRINSICS,
                     lambda rule: rule.intrinsics)
    if hw.vector_functions is not None:
        _check_table(doc, hw.vector_functions.classes, ("vector_functions", "classes"), "vector-function class",
                     VF_CLASSES, lambda rule: _vf_classes(rule.a5_class))
    for dtype in CUBE_DTYPES:
        if dtype not in hw.cube.cycles_per_fractal:
            raise ConfigError(f"cube.cycles_per_fractal: no rate for {dtype} operands (needed: "
                              f"{', '.join(CUBE_DTYPES)})", doc.where(("cube", "cycles_per_fractal")))


def _check_table(doc: YamlDoc, entries: dict, where: tuple[str, ...], what: str, known: list[str],
                 used: Callable[[VectorRule], tuple[str, ...]]) -> None:
    """Every name of a cost table is one the vector rules use, and every name they use is in it."""
    dotted = ".".join(where)
    for name in entries:
        if name not in known:
            raise ConfigError(f"{dotted}: unknown {what} {name!r}{did_you_mean(name, known)}; the vector rules use: "
                              f"{', '.join(known)}", doc.where_key((*where, name)))
    for key, rule in VECTOR_RULES.items():
        for name in used(rule):
            if name not in entries:
                raise ConfigError(f"{dotted}: no entry for {name!r}, which {key} uses", doc.where(where))


def _check_path(doc: YamlDoc, name: str, path: PathCost) -> None:
    """A GM read has an L2-hit latency (and may have a short-run rate); only GM writes wait for a write completion."""
    reads_gm, where = name.startswith("gm_"), doc.where_key(("dma", name))
    if reads_gm and path.l2_hit_latency_cycles is None:
        raise ConfigError(f"dma: {name} reads GM and needs l2_hit_latency_cycles", where)
    if not reads_gm and (path.l2_hit_latency_cycles is not None or path.short_run_bytes_per_cycle is not None):
        raise ConfigError(f"dma: {name} does not read GM: l2_hit_latency_cycles and short_run_bytes_per_cycle "
                          "apply to GM reads only", where)
    if path.write_completion_cycles and not name.endswith("_gm"):
        raise ConfigError(f"dma: {name} does not write GM: write_completion_cycles applies to GM writes only", where)


def _check_route(hw: HardwareConfig, doc: YamlDoc, route: str, hops: list[str]) -> None:
    where = doc.where(("routes", route))
    src, arrow, dst = route.partition("->")
    places = ", ".join(_PLACES.values())
    if not arrow or src not in _PLACES.values() or dst not in _PLACES.values() or src == dst:
        raise ConfigError(f"routes: {route!r} must be 'SRC->DST', two different places of {places}",
                          doc.where_key(("routes", route)))
    if not hops:
        raise ConfigError(f"routes: {route} has no paths", where)
    at = src
    for i, hop in enumerate(hops):
        if hop not in hw.dma:
            known = [p for p in PATHS if p in hw.dma]
            raise ConfigError(f"routes: {route} uses path {hop!r}{did_you_mean(hop, known)}, which has no dma "
                              "entry", doc.where(("routes", route, i)))
        start, end = path_ends(hop)
        if start != at:
            raise ConfigError(f"routes: {route}: path {hop} starts at {start}, but the data is in {at} here",
                              doc.where(("routes", route, i)))
        at = end
    if at != dst:
        raise ConfigError(f"routes: {route} ends in {at}, not {dst}", where)
