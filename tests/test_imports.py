"""The library's imports point one way: shared machinery <- parts <- command line, no circles.

Every ``import`` of a ``tdyn`` module anywhere in a module's source (function-level imports
included) is an edge.  The shared modules (``tdyn.runs``, ``tdyn.plotting``, ``tdyn.diagrams``,
``tdyn.devices``) import no part; a part (``tdyn.signalprop``, ``tdyn.markov``,
``tdyn.cooccurrence``) imports no other part and nothing above the parts (the command line and
the exercise checkers, which use every part); and no chain of imports returns to where it
started.
"""

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parent.parent / "lib" / "tdyn"
PARTS = ("tdyn.signalprop", "tdyn.markov", "tdyn.cooccurrence")
SHARED = ("tdyn.runs", "tdyn.plotting", "tdyn.diagrams", "tdyn.devices")
TOP = ("tdyn.cli", "tdyn.__main__", "tdyn.exercises")


def module_name(path: Path) -> str:
    parts = ["tdyn", *path.relative_to(LIB).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in LIB.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def group(module: str, groups) -> str | None:
    return next((g for g in groups if module == g or module.startswith(g + ".")), None)


def test_the_graph_sees_the_packages():
    graph = import_graph()
    for package in (*PARTS, *SHARED, *TOP):
        assert any(m == package or m.startswith(package + ".") for m in graph), package
    assert "tdyn.signalprop.theory" in graph["tdyn.signalprop.gradients"]


def test_shared_modules_import_no_part_and_parts_import_no_other_part():
    problems = []
    for module, edges in import_graph().items():
        own = group(module, PARTS)
        for target in edges:
            if group(target, TOP) and not group(module, TOP):
                problems.append(f"{module} imports {target}, which sits above the parts")
            if group(module, SHARED) and group(target, PARTS):
                problems.append(f"shared {module} imports the part {target}")
            other = group(target, PARTS)
            if own and other and other != own:
                problems.append(f"{module} (part {own}) imports another part: {target}")
    assert not problems, "\n".join(problems)


def test_no_import_circle():
    graph = import_graph()
    state: dict[str, int] = {}
    path: list[str] = []
    circles = []

    def visit(module):
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                circles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_light_modules_load_neither_torch_nor_seaborn():
    """Chapters that only plot theory start fast: no torch (1 s), no seaborn (1 s)."""
    import subprocess
    import sys

    # the co-occurrence sweeps train in torch, but a chapter that reads their stored results
    # needs only their specs (names, configurations, seeds)
    code = ("import sys, tdyn.plotting, tdyn.signalprop.theory, tdyn.markov.chain, "
            "tdyn.markov.reduced, tdyn.cooccurrence.data, tdyn.runs.store, "
            "tdyn.cooccurrence.msweep, tdyn.cooccurrence.generalization; "
            "print(sorted({'torch', 'seaborn'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_palette_is_seaborns_colorblind():
    import seaborn as sns

    from tdyn.plotting import PALETTE

    assert PALETTE == list(sns.color_palette("colorblind"))
