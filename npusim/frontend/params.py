"""A program's params, as every frontend resolves them: defaults, then a named preset, then `--set NAME=V`
overrides, each naming a known param or failing with a suggestion. A value is a number or, for a param
whose default is a boolean (a PyPTO harness flag such as `use_max_seq=False`), `true` / `false`."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from npusim.errors import Location, ProgramError, did_you_mean, shown

from .expressions import number_problem

Number = int | float  # bool included: True/False are the values of boolean params
_BOOLEANS = {"true": True, "false": False}


def parse_overrides(pairs: list[str]) -> dict[str, Number]:
    """`--set k=v` pairs to numbers (64-bit integers or finite floats: `nan` and `inf` are refused), or to
    True/False for `true`/`false` (any case)."""
    out: dict[str, Number] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ProgramError(f"--set expects NAME=VALUE, got {shown(pair)}")
        label = name if name.isidentifier() else shown(name, 40)
        if text.strip().lower() in _BOOLEANS:
            out[name] = _BOOLEANS[text.strip().lower()]
            continue
        digits = text.strip().lstrip("+-")
        if digits.isdigit() and len(digits.lstrip("0")) > 19:
            raise ProgramError(f"--set {label}: an integer of {len(digits)} digits does not fit in 64 bits")
        value: Number
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise ProgramError(f"--set {label}: {shown(text)} is not a number, true or false") from None
        problem = number_problem(value)
        if problem is not None:
            raise ProgramError(f"--set {label}: {problem}")
        out[name] = value
    return out


def check_override(name: str, default: object, value: Number) -> None:
    """A boolean param takes true/false and a number param a number: `--set flag=1` and `--set n=true` are
    mistakes, not values to convert silently."""
    if isinstance(default, bool) and not isinstance(value, bool):
        raise ProgramError(f"--set {name}: {name} is a boolean param; give true or false, not {value!r}")
    if not isinstance(default, bool) and isinstance(value, bool):
        raise ProgramError(f"--set {name}: {name} is a number param; give a number, not {str(value).lower()}")


def resolve_params(defaults: Mapping[str, Number], presets: Mapping[str, Mapping[str, Number]], preset: str | None,
                   overrides: Mapping[str, Number], preset_key_location: Callable[[str], Location]
                   ) -> dict[str, Number]:
    """The params of one run: `defaults`, updated by `presets[preset]` (if given), then by `overrides`."""
    params = dict(defaults)
    if preset is not None:
        if preset not in presets:
            known = ", ".join(presets) or "none"
            raise ProgramError(f"unknown preset {shown(preset)}{did_you_mean(preset, presets)}; presets: {known}")
        for key, value in presets[preset].items():
            if key not in params:
                raise ProgramError(f"preset {preset!r} sets unknown param {key!r}{did_you_mean(key, params)}",
                                   preset_key_location(key))
            params[key] = value
    for key, value in overrides.items():
        if key not in params:
            label = key if key.isidentifier() else shown(key, 40)
            raise ProgramError(f"--set {label}: no such param{did_you_mean(key, params)}; params: {', '.join(params)}")
        check_override(key, defaults[key], value)
        params[key] = value
    return params
