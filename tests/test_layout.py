"""The package's shape: one folder per stage, imports that point one way, light dependencies.

Read from the source with `ast`, so the rules hold for every file, imported by a test or not:
  - nn/ (the components) imports only numpy and other nn/ files;
  - the stages import each other without cycles, and nothing imports cli/ but cli/ itself;
  - at run time only numpy, regex, tqdm and the standard library are imported: the
    reference libraries appear only in bench/reference_torch.py, or inside a function that
    imports one on demand for an optional comparison.
"""

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tinyllama_np"
RUNTIME_DEPENDENCIES = {"numpy", "regex", "tqdm"}
REFERENCE_ONLY = {"bench/reference_torch.py"}


def modules():
    return sorted(PACKAGE.rglob("*.py"))


def stage_of(path):
    """The first folder under the package (nn, models, ...), or the file's own name."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imports(path, top_level_only=False):
    """(stage or external name, is_at_module_level) for every import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package_parts = path.relative_to(PACKAGE).parent.parts
    found = []
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name.split(".")[0] for alias in node.names]
            found += [(("external", name), id(node) in top_level) for name in names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.append((("external", node.module.split(".")[0]), id(node) in top_level))
                continue
            base = list(package_parts[:len(package_parts) - (node.level - 1)])
            target = base + (node.module.split(".") if node.module else [])
            if not target:  # `from .. import name`: the names are the modules
                targets = [alias.name for alias in node.names]
            else:
                targets = [target[0]]
            found += [(("stage", t.removesuffix(".py")), id(node) in top_level) for t in targets]
    return found


def test_components_import_only_numpy_and_each_other():
    for path in (PACKAGE / "nn").glob("*.py"):
        for (kind, name), _ in imports(path):
            assert (kind, name) in {("stage", "nn"), ("external", "numpy")} or \
                name in sys.stdlib_module_names, f"{path.name} imports {name}"


def test_stages_import_each_other_without_cycles_and_nothing_imports_the_cli():
    graph = {}
    for path in modules():
        stage = stage_of(path)
        if stage in {"__init__", "__main__"}:
            continue
        for (kind, name), _ in imports(path):
            if kind == "stage" and name != stage:
                assert name != "cli", f"{path.relative_to(PACKAGE)} imports the command line"
                graph.setdefault(stage, set()).add(name)

    def visit(stage, trail):
        assert stage not in trail, f"import cycle: {' -> '.join(trail + [stage])}"
        for needed in sorted(graph.get(stage, ())):
            visit(needed, trail + [stage])

    for stage in graph:
        visit(stage, [])


def test_run_time_imports_are_numpy_regex_tqdm_and_the_standard_library():
    for path in modules():
        relative = path.relative_to(PACKAGE).as_posix()
        for (kind, name), at_module_level in imports(path):
            if kind != "external" or name in RUNTIME_DEPENDENCIES or name in sys.stdlib_module_names:
                continue
            assert relative in REFERENCE_ONLY or not at_module_level, \
                f"{relative} imports {name} when it is imported"
