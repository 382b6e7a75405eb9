"""Print jaxcost's import graph by layer and check that imports flow one way.

    python tools/import_graph.py            # edges, layer of each module, counts
    python tools/import_graph.py --check    # exit 1 on any problem listed below

Layers, lowest first (a module may import only from its own layer or below; inside a
layer, only from modules that do not import it back):

    0  jaxcost.errors, jaxcost.units
    1  jaxcost.io
    2  jaxcost.model
    3  jaxcost.search
    4  jaxcost.calibrate, jaxcost.policy
    5  jaxcost.cli, jaxcost (the curated public API), jaxcost.__main__

Problems (``--check`` exits 1): a back edge, a cycle, a name starting with ``_``
imported from another module, an import inside a function (matplotlib excepted), a
dynamic import (``importlib.import_module``, ``__import__``) outside the declared lazy
tables below, a module without ``__all__`` (``__main__`` excepted) and a name in
``__all__`` that the module neither defines nor imports. Counted as well: the largest
module.

Lazy imports: two modules load others on first use, for the ``jaxcost`` command's
start-up and its Ctrl-C handling (docs/architecture.md, rule 2), each from a table
declared at module level: ``jaxcost`` (``_EXPORTS``, the public API) and
``jaxcost.cli.app`` (``COMMANDS`` and ``JAX_SETUP``, the subcommands' modules). Every
module named in those tables is an edge here, checked like an import (layers,
cycles), and the names of ``_EXPORTS`` count as imported for ``__all__``.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "jaxcost"

#: Imports allowed inside functions: matplotlib, an optional heavy dependency that
#: only ``--plot`` needs (importing it at start-up would slow every command).
LAZY_OK = {"matplotlib"}

#: Module -> the module-level tables from which it imports lazily (see above).
LAZY_TABLES = {"jaxcost": ("_EXPORTS",), "jaxcost.cli.app": ("COMMANDS", "JAX_SETUP")}

LAYERS = {"jaxcost.errors": 0, "jaxcost.units": 0, "jaxcost.io": 1, "jaxcost.model": 2,
          "jaxcost.search": 3, "jaxcost.calibrate": 4, "jaxcost.policy": 4,
          "jaxcost.cli": 5, "jaxcost": 5, "jaxcost.__main__": 5}


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer(mod: str) -> int:
    best = None
    for prefix, lay in LAYERS.items():
        if mod == prefix or mod.startswith(prefix + "."):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, lay)
    return best[1] if best else -1


def _is_module(name: str) -> bool:
    rel = name.replace(".", "/")
    return (PKG.parent / (rel + ".py")).exists() or (PKG.parent / rel).is_dir()


def lazy_table(tree: ast.Module, names: tuple[str, ...]) -> tuple[set, set]:
    """(modules, other strings) of the top-level tables ``names`` of a module."""
    modules, strings = set(), set()
    for n in tree.body:
        targets = (n.targets if isinstance(n, ast.Assign) else
                   [n.target] if isinstance(n, ast.AnnAssign) else [])
        if not any(isinstance(t, ast.Name) and t.id in names for t in targets):
            continue
        for c in ast.walk(n.value):
            if isinstance(c, ast.Constant) and isinstance(c.value, str):
                is_mod = c.value.startswith("jaxcost") and _is_module(c.value)
                (modules if is_mod else strings).add(c.value)
    return modules, strings


def dynamic_imports(tree: ast.Module) -> list[int]:
    """Lines of ``importlib.import_module(...)`` and ``__import__(...)`` calls."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Attribute) and f.attr == "import_module") or \
                    (isinstance(f, ast.Name) and f.id in ("__import__",
                                                          "import_module")):
                lines.append(node.lineno)
    return lines


def scan(path: Path, lazy_names: tuple[str, ...] = ()):
    tree = ast.parse(path.read_text(), filename=str(path))
    edges, inner, private = set(), [], []
    lazy, lazy_strings = lazy_table(tree, lazy_names) if lazy_names else (set(), set())
    top_level = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and \
                node.module.startswith("jaxcost"):
            targets = []
            for a in node.names:
                full = f"{node.module}.{a.name}"
                if (PKG.parent / (full.replace(".", "/") + ".py")).exists() or \
                        (PKG.parent / full.replace(".", "/")).is_dir():
                    targets.append(full)
                else:
                    targets.append(node.module)
                    if a.name.startswith("_"):
                        private.append(f"{node.module}.{a.name}")
            for t in targets:
                edges.add(t)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("jaxcost"):
                    edges.add(a.name)
        if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in top_level:
            mod = (
                node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            )
            if mod.split(".")[0] not in LAZY_OK:
                inner.append(node.lineno)
    has_all, unbound = False, []
    bound = set()
    for n in tree.body:
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(n.name)
        elif isinstance(n, ast.Import | ast.ImportFrom):
            bound.update((a.asname or a.name).split(".")[0] for a in n.names)
        targets = (n.targets if isinstance(n, ast.Assign) else
                   [n.target] if isinstance(n, ast.AnnAssign) else [])
        bound.update(t.id for t in targets if isinstance(t, ast.Name))
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            has_all = True
            if isinstance(n.value, ast.List | ast.Tuple):
                unbound = [e.value for e in n.value.elts
                           if isinstance(e, ast.Constant) and e.value not in bound]
    bound |= lazy_strings  # the public names of jaxcost's _EXPORTS
    unbound = [u for u in unbound if u not in bound]
    lines = len(path.read_text().splitlines())
    dynamic = [] if lazy_names else dynamic_imports(tree)
    return edges, inner, private, has_all, unbound, lines, lazy, dynamic


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    mods = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}
    graph, problems = {}, []
    n_inner = n_private = 0
    no_all, largest = [], ("", 0)
    lazy_report = []
    for mod, path in mods.items():
        edges, inner, private, has_all, unbound, lines, lazy, dynamic = scan(
            path, LAZY_TABLES.get(mod, ()))
        lazy = {e for e in lazy if e in mods and e != mod}
        if mod in LAZY_TABLES:
            lazy_report.append(f"{mod} ({', '.join(LAZY_TABLES[mod])}: "
                               f"{len(lazy)} modules)")
        edges = {e for e in edges | lazy if e in mods and e != mod}
        graph[mod] = edges
        problems += [f"{mod}:{ln}: dynamic import outside the lazy tables "
                     "(LAZY_TABLES)" for ln in dynamic]
        n_inner += len(inner)
        n_private += len(private)
        problems += [f"{mod}: imports private {p}" for p in private]
        problems += [f"{mod}:{ln}: import inside a function" for ln in inner]
        if not has_all and not mod.endswith("__main__"):
            no_all.append(mod)
            problems.append(f"{mod}: no __all__ (rule 4: every module lists its "
                            "public names)")
        problems += [f"{mod}: __all__ names {u!r}, which it does not define or "
                     "import" for u in unbound]
        if lines > largest[1]:
            largest = (mod, lines)
        for e in sorted(edges):
            if layer(e) > layer(mod) and mod not in ("jaxcost",):
                problems.append(f"back edge: {mod} (layer {layer(mod)}) -> {e} "
                                f"(layer {layer(e)})")
    # cycles inside a layer
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for e in graph[m]:
            if state.get(e) == 1:
                problems.append("cycle: " + " -> ".join(stack[stack.index(e):] + [e]))
            elif e not in state:
                visit(e, stack + [e])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])
    for lay in sorted(set(map(layer, graph))):
        print(f"layer {lay}:")
        for m in sorted(x for x in graph if layer(x) == lay):
            deps = sorted(e for e in graph[m] if e != "jaxcost")
            print(f"  {m:34s} <- {', '.join(deps) if deps else '(nothing)'}")
    print(f"\nmodules {len(mods)}; largest {largest[0]} ({largest[1]} lines); "
          f"imports inside functions {n_inner}; private names imported across "
          f"modules {n_private}; modules without __all__ {len(no_all)}"
          + (f" ({', '.join(no_all)})" if no_all else ""))
    print(f"lazy imports (declared tables, checked as edges): "
          f"{'; '.join(lazy_report) or 'none'}")
    print(f"problems {len(problems)}")
    for p in problems:
        print("  " + p)
    return 1 if (args.check and problems) else 0


if __name__ == "__main__":
    sys.exit(main())
