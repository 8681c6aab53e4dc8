"""Regenerate the figures the README shows: the timeline, utilisation and per-kernel plots of the
default-size Qwen3-32B decode layer on ascend910b, and the comparison chart of the two initialisation
variants.

    python docs/make_figures.py        # writes docs/img/*.png (about a minute)
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from npusim.runner import RunOptions, Side, compare, run

REPO = Path(__file__).resolve().parents[1]
IMG = REPO / "docs" / "img"


def main() -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "qwen3"
        run(RunOptions(program=REPO / "programs" / "qwen3_decode.yaml", out=out, trace=False, quiet=True))
        for name in ("timeline.png", "utilisation.png", "kernels.png"):
            shutil.copyfile(out / name, IMG / f"qwen3_decode_{name}")
        opts = {"numerics": False, "plot": False, "trace": False, "quiet": True}
        cmp = compare(Side(RunOptions(program=REPO / "programs" / "qwen3_decode.yaml", **opts)),
                      Side(RunOptions(program=REPO / "programs" / "qwen3_decode_full_init.yaml", **opts)),
                      Path(tmp) / "compare")
        shutil.copyfile(cmp.out_dir / "compare.png", IMG / "compare_full_init.png")
    print(f"wrote {', '.join(sorted(p.name for p in IMG.glob('*.png')))} in {IMG}")


if __name__ == "__main__":
    main()
