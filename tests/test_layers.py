"The package's modules import only downwards: no cycle, and no module imports one of a higher layer."
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "music_vae_nb"

# lower layers first; a module may import only modules of a strictly lower layer
LAYERS = [["core"], ["executor", "metrics"], ["data", "features", "models", "cluster", "plots"], ["m21", "music", "train", "protocol", "fixtures"],
          ["datasets", "transcribe", "disentangle", "report"], ["store"], ["experiment"], ["pipeline"]]
RANK = {m: i for i, layer in enumerate(LAYERS) for m in layer}


def imports(path: Path) -> set[str]:
    "Project modules imported anywhere in `path` (top level or inside functions)."
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 1: out |= {mod.split(".")[0]} if mod else {a.name for a in node.names}
            elif mod == "music_vae_nb": out |= {a.name for a in node.names}
            elif mod.startswith("music_vae_nb."): out.add(mod.split(".")[1])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("music_vae_nb.")}
    return out


def graph() -> dict[str, set[str]]:
    mods = {p.stem: p for p in PKG.glob("*.py") if not p.stem.startswith("_")}
    return {m: {i for i in imports(p) if i in mods and i != m} for m, p in mods.items()}


def test_every_module_has_a_layer():
    assert set(graph()) == set(RANK), set(graph()) ^ set(RANK)


def test_imports_only_go_down():
    bad = [(m, i) for m, deps in graph().items() for i in deps if RANK[i] >= RANK[m]]
    assert not bad, f"imports that do not go down a layer: {bad}"


def test_no_cycle():
    g, seen, stack = graph(), set(), []
    def visit(m):
        if m in stack: raise AssertionError(f"import cycle: {' -> '.join(stack[stack.index(m):] + [m])}")
        if m in seen: return
        stack.append(m)
        for d in g[m]: visit(d)
        stack.pop(); seen.add(m)
    for m in g: visit(m)


def test_the_checker_sees_a_cycle(tmp_path):
    (tmp_path / "a.py").write_text("from .b import x\n")
    (tmp_path / "b.py").write_text("def f():\n    from music_vae_nb.a import y\n")
    assert imports(tmp_path / "a.py") == {"b"} and imports(tmp_path / "b.py") == {"a"}
