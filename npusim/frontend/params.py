"""A program's params, as every frontend resolves them: defaults, then a named preset, then `--set NAME=V`
overrides, each naming a known param or failing with a suggestion."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from npusim.errors import Location, ProgramError, did_you_mean

Number = int | float


def parse_overrides(pairs: list[str]) -> dict[str, Number]:
    """`--set k=v` pairs to numbers."""
    out: dict[str, Number] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ProgramError(f"--set expects NAME=VALUE, got {pair!r}")
        try:
            out[name.strip()] = int(value)
        except ValueError:
            try:
                out[name.strip()] = float(value)
            except ValueError:
                raise ProgramError(f"--set {name.strip()}: {value!r} is not a number") from None
    return out


def resolve_params(defaults: Mapping[str, Number], presets: Mapping[str, Mapping[str, Number]], preset: str | None,
                   overrides: Mapping[str, Number], preset_key_location: Callable[[str], Location]
                   ) -> dict[str, Number]:
    """The params of one run: `defaults`, updated by `presets[preset]` (if given), then by `overrides`."""
    params = dict(defaults)
    if preset is not None:
        if preset not in presets:
            known = ", ".join(presets) or "none"
            raise ProgramError(f"unknown preset {preset!r}{did_you_mean(preset, presets)}; presets: {known}")
        for key, value in presets[preset].items():
            if key not in params:
                raise ProgramError(f"preset {preset!r} sets unknown param {key!r}{did_you_mean(key, params)}",
                                   preset_key_location(key))
            params[key] = value
    for key, value in overrides.items():
        if key not in params:
            raise ProgramError(f"--set {key}: no such param{did_you_mean(key, params)}; params: {', '.join(params)}")
        params[key] = value
    return params
