"""A table-driven tile op at run time: its operands gathered where the op needs them (loaded, or moved
between buffers), its shape rule applied (cached per operand signature), its value computed, and its record
appended to the task."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from npusim.dtypes import itemsize
from npusim.frontend.program import OpCall
from npusim.graph import ComputeSig, OpRecord, TileSig
from npusim.ops import OpError
from npusim.vocabulary import MAX_BUFFER_BYTES, Buffer

from .values import RUNTIME_ERRORS, Tile, as_view, fmt_shape, tile_sig

if TYPE_CHECKING:
    from .compile import Interpreter

Info = tuple[TileSig, ComputeSig, int]  # result signature, op signature, result bytes


class ComputeOp:
    """One compiled instruction of a table-driven op; calling it runs the instruction once."""

    def __init__(self, interp: Interpreter, instr: OpCall, args: dict[str, tuple[str, Any]], iid: int) -> None:
        spec = instr.spec
        self.interp, self.instr, self.spec, self.iid = interp, instr, spec, iid
        self.env = interp.env
        self.values = [(n, a[1]) for n, a in args.items() if a[0] == "value"]
        self.scalars = [(n, a[1]) for n, a in args.items() if a[0] == "scalar"]
        self.shapes = [(n, interp.shape_getter(a[1], instr, n, positive=spec.param(n).kind != "index"))
                       for n, a in args.items() if a[0] == "shape"]
        self.consts = {n: a[1] for n, a in args.items() if a[0] == "const"}
        self.cube = spec.pipe == "cube"
        self.metadata_only = spec.pipe == "scalar"
        self.scalar_form = bool(self.scalars) and spec.scalar_cost != ""
        self.compute = spec.scalar_compute if self.scalar_form else spec.compute
        self.cost_key = spec.scalar_cost if self.scalar_form else spec.cost
        self.options = tuple(sorted((k, v) for k, v in self.consts.items() if v is not None))
        self.cache: dict[tuple, Info] = {}
        # in an accumulation loop (Interpreter._chained): the first value operand's value at the loop's start and
        # the other value operands' values per iteration, computed together when the loop ends
        self.chain: list | None = None
        # Where each operand must be: a cube operand in its L0 buffer (the op table says which), a vector
        # operand in UB, a metadata-only (scalar-pipe) op's operand wherever it is.
        self.want: dict[str, Buffer | None] = {
            name: (spec.param(name).buffer if self.cube else None if self.metadata_only else "UB")
            for name, _ in self.values
        }

    def operand(self, name: str, var: str) -> Tile:
        """A value not yet where the op needs it: a GM operand is loaded (as `slice` would), a tile moved."""
        interp, lower, iid = self.interp, self.interp.lower, self.iid
        task = interp.task
        value = self.env[var]
        if value.__class__ is not Tile and self.spec.name == "write":
            raise OpError(f"{var} is a GM tensor: writing one element of GM (pto.store_scalar) is not supported yet; "
                          "write into a tile")
        if value.__class__ is not Tile:
            view = as_view(value)
            value = lower.load(task, view.tensor, view.offset, view.shape, None, False, "L1" if self.cube else "UB",
                               iid)
        else:
            interp.own(value, self.instr, var)
        if self.cube:
            if value.buf == "UB":
                value = lower.move(task, value, "L1", iid)
            return lower.move(task, value, self.want[name], iid)  # type: ignore[arg-type]
        return value if self.metadata_only else lower.move(task, value, "UB", iid)

    def infer(self, tiles: list[Tile], svals: tuple, shapes: dict[str, tuple[int, ...]]) -> Info:
        """The result's signature by the op's shape rule; a result of the operand's shape (or its row or column
        reduction) keeps the operand's valid shape and its kind (a run-time valid shape stays one)."""
        spec = self.spec
        types: dict[str, Any] = {n: t.type() for (n, _), t in zip(self.values, tiles, strict=True)}
        types.update(zip((n for n, _ in self.scalars), svals, strict=True))
        types.update(shapes)
        types.update(self.consts)
        out_shape, out_dtype = spec.infer(**types)  # type: ignore[misc]
        valid, dynamic = None, False
        first = tiles[0].sig if tiles else None
        if first is not None and not spec.reads_valid_shape:
            if first.shape == out_shape:
                valid, dynamic = first.valid, first.dynamic
            elif len(out_shape) == 2 and out_shape == (first.shape[0], 1):  # a row reduction keeps the valid rows
                valid, dynamic = (first.valid[0], 1), first.dynamic
            elif len(out_shape) == 2 and out_shape == (1, first.shape[-1]):  # a column reduction the valid columns
                valid, dynamic = (1, first.valid[-1]), first.dynamic
        out_sig = tile_sig(out_shape, out_dtype, valid, dynamic)
        sig = ComputeSig(self.cost_key, out_sig, tuple(t.sig for t in tiles), self.options)
        nbytes = math.prod(out_shape) * itemsize(out_dtype)
        if nbytes > MAX_BUFFER_BYTES:
            raise OpError(f"its result {fmt_shape(out_shape)} {out_dtype} is {nbytes} bytes, more than any core's "
                          f"buffer can hold ({MAX_BUFFER_BYTES})")
        return out_sig, sig, nbytes

    def values_of(self, tiles: list[Tile], svals: tuple, shapes: dict[str, tuple[int, ...]]) -> Any:
        """The op's numerics on its operands' values."""
        if self.scalar_form:
            return self.compute(tiles[0].data, svals[0])  # type: ignore[misc]
        call: dict[str, Any] = dict(self.consts)
        call.update(shapes)
        call.update(zip((n for n, _ in self.scalars), svals, strict=True))
        call.update((n, t.data) for (n, _), t in zip(self.values, tiles, strict=True))
        if self.spec.reads_valid_shape:
            call["valid"] = tiles[0].sig.valid
        return self.compute(**call)  # type: ignore[misc]

    def defer(self, tiles: list[Tile]) -> None:
        """Keep this iteration's operand values for finish_chain (the first operand is the previous result)."""
        if not self.chain:
            self.chain.extend([tiles[0].data, [[] for _ in tiles[1:]]])  # type: ignore[union-attr]
        for values, t in zip(self.chain[1], tiles[1:], strict=True):  # type: ignore[index]
            values.append(t.data)

    def finish_chain(self) -> None:
        """After an accumulation loop: its last result's value, from the values the iterations kept."""
        chain, self.chain = self.chain, None
        if not chain or chain[0] is None or any(d is None for values in chain[1] for d in values):
            return  # no iteration ran, or a value is missing (the result has none either)
        call: dict[str, Any] = dict(self.consts)
        call[self.values[0][0]] = chain[0]
        call.update((n, values) for (n, _), values in zip(self.values[1:], chain[1], strict=True))
        try:
            self.env[self.instr.target].data = self.spec.chain_compute(**call)  # type: ignore[index, misc]
        except RUNTIME_ERRORS as exc:
            raise self.interp.located(self.instr, self.spec.name, exc) from None

    def __call__(self) -> None:
        interp, env, want = self.interp, self.env, self.want
        task = interp.task
        if task is None:
            raise interp.error(self.instr, f"{self.spec.name} runs inside a kernel")
        try:
            shapes = {name: get() for name, get in self.shapes} if self.shapes else {}
            svals = tuple([expr.fn(env) for _, expr in self.scalars]) if self.scalars else ()
            tiles = []
            for name, var in self.values:
                value = env[var]
                if value.__class__ is Tile and value.owner == task.id and want[name] in (None, value.buf):
                    tiles.append(value)  # the common case: already where the op needs it
                else:
                    tiles.append(self.operand(name, var))
            key = (tuple([t.sig for t in tiles]), svals, tuple(shapes.values()))
            info = self.cache.get(key)
            if info is None:
                info = self.cache[key] = self.infer(tiles, svals, shapes)
            data = None
            if self.chain is not None:
                self.defer(tiles)
            elif interp.numerics and all(t.data is not None for t in tiles):
                data = self.values_of(tiles, svals, shapes)
        except KeyError as exc:
            raise interp.undefined(self.instr, exc) from None
        except RUNTIME_ERRORS as exc:
            raise interp.located(self.instr, self.spec.name, exc) from None
        buf = (tiles[0].buf or "UB") if self.metadata_only and tiles else ("L0C" if self.cube else "UB")
        tile = Tile(data, info[0], buf, len(task.ops), task.id)
        task.ops.append(OpRecord(info[1], self.iid, tuple([t.op for t in tiles if t.op >= 0]), buf, info[2]))
        if self.instr.target is not None:
            env[self.instr.target] = tile
