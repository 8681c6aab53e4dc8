"""The package's layout: the folders are the pipeline's stages and imports run one way (no module imports
from a later stage), the reference implementations import nothing of the simulator they check, and the
README's module table names every module."""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import REPO

PACKAGE = REPO / "npusim"

# Stages in import order: a module may import from its own stage and earlier ones only. `common` holds the
# vocabulary every stage shares; the top (run, cli) drives the pipeline. The references (independent
# implementations that check outputs) may import only `common`, and only `output` and later may use them.
STAGES = ["common", "numerics", "ops", "frontend", "graph", "interp", "timing", "output", "top"]
COMMON = {"npusim.errors", "npusim.dtypes", "npusim.vocabulary", "npusim.version", "npusim.defaults"}
# the package itself is the notebook API (`npusim.run`, `npusim.sweep`), imported lazily
TOP = {"npusim", "npusim.api", "npusim.runner", "npusim.beside", "npusim.cli", "npusim.__main__"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def stage_of(module: str) -> str:
    if module in COMMON:
        return "common"
    if module in TOP or module.startswith("npusim.explore"):
        return "top"
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in (*STAGES, "references"):
        return parts[1]
    raise AssertionError(f"{module} belongs to no stage: put it in a stage folder or in the lists above")


def _is_module(name: str) -> bool:
    path = PACKAGE.parent / name.replace(".", "/")
    return path.is_dir() or path.with_suffix(".py").exists()


def imported_modules(text: str, module: str, is_package: bool) -> set[str]:
    """Every npusim module a source imports (absolute or relative, at top level or inside functions)."""
    package = module if is_package else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "npusim")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "npusim":
                # `from npusim import numerics` imports a submodule; `from .x import name` a name of x
                subs = {f"{target}.{a.name}" for a in node.names if _is_module(f"{target}.{a.name}")}
                found.update(subs or {target})
    return found


def violations(module: str, imported: set[str]) -> list[str]:
    source = stage_of(module)
    wrong = []
    for target in sorted(imported):
        dest = stage_of(target)
        if source == "references" and dest not in ("common", "references"):
            wrong.append(f"{module} (a reference) imports {target}")
        elif dest == "references" and source != "references" and STAGES.index(source) < STAGES.index("output"):
            wrong.append(f"{module} ({source}) imports the reference {target}")
        elif "references" not in (source, dest) and STAGES.index(dest) > STAGES.index(source):
            wrong.append(f"{module} ({source}) imports {target} ({dest}), a later stage")
    return wrong


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_imports_run_one_way() -> None:
    wrong = []
    for path in modules():
        module = module_name(path)
        wrong += violations(module, imported_modules(path.read_text(), module, path.name == "__init__.py"))
    assert not wrong, "\n".join(wrong)


def test_the_check_catches_backward_imports() -> None:
    late = imported_modules("from ..output.report import Report\n", "npusim.timing.kernel", False)
    assert late == {"npusim.output.report"}
    assert violations("npusim.timing.kernel", late) == [
        "npusim.timing.kernel (timing) imports npusim.output.report (output), a later stage"]
    lazy = imported_modules("def f():\n    from npusim.interp import execute\n", "npusim.ops.table", False)
    assert violations("npusim.ops.table", lazy) == [
        "npusim.ops.table (ops) imports npusim.interp (interp), a later stage"]
    assert violations("npusim.references.examples", {"npusim.numerics"}) == [
        "npusim.references.examples (a reference) imports npusim.numerics"]
    assert violations("npusim.interp.compile", {"npusim.graph", "npusim.frontend.program", "npusim.errors"}) == []


def test_readme_lists_every_module() -> None:
    readme = (REPO / "README.md").read_text()
    missing = [str(p.relative_to(REPO)) for p in modules()
               if p.name != "__init__.py" and f"`{p.relative_to(PACKAGE).with_suffix('').as_posix()}`" not in readme]
    assert not missing, f"README's module table lacks: {', '.join(missing)}"
