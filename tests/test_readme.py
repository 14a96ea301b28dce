"The README's table of notebooks and modules says what the code does: each module's owner and its real imports."
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "music_vae_nb"


from test_layers import imports as module_imports        # one reader of a module's project imports, shared with the layer test


def real_imports() -> dict[str, set[str]]:
    mods = {p.stem: p for p in PKG.glob("*.py") if not p.stem.startswith("_")}
    return {m: (module_imports(p) & set(mods)) - {m} for m, p in mods.items()}


def readme_table(text: str) -> dict[str, tuple[str, set[str]]]:
    "module -> (owner notebook, imports listed) of the README's table under 'Notebooks and the modules they own'."
    section = text.split("### Notebooks and the modules they own", 1)[1]
    rows = [l for l in section.splitlines() if l.startswith("| `")]
    out = {}
    for row in rows:
        nb, _, module, imports = [c.strip() for c in row.strip("|").split("|")]
        owned = re.match(r"`(\w+)`", module)              # "appends to `models`" owns nothing
        if not owned: continue
        listed = set() if imports in ("–", "-", "") else {x.strip() for x in imports.split(",")}
        assert owned[1] not in out, f"{owned[1]} has two owners in the README"
        out[owned[1]] = (nb.strip("`"), listed)
    return out


def test_readme_table_lists_every_module_with_its_imports():
    table, real = readme_table((ROOT / "README.md").read_text(encoding="utf-8")), real_imports()
    assert set(table) == set(real), f"modules without a row: {set(real) - set(table)}; rows without a module: {set(table) - set(real)}"
    wrong = {m: dict(readme=sorted(table[m][1]), code=sorted(real[m])) for m in real if table[m][1] != real[m]}
    assert not wrong, f"the README's imports column differs from the code: {wrong}"


def test_each_owner_notebook_exports_its_module():
    for module, (nb, _) in readme_table((ROOT / "README.md").read_text(encoding="utf-8")).items():
        source = (ROOT / "nbs" / f"{nb}.ipynb").read_text(encoding="utf-8")
        assert f"#| default_exp {module}" in source, f"{nb} does not own {module}"


def test_the_checker_reads_a_table_and_imports(tmp_path):
    (tmp_path / "a.py").write_text("from .core import x\ndef f():\n    from music_vae_nb.data import y\n    import music_vae_nb.plots\n")
    assert module_imports(tmp_path / "a.py") == {"core", "data", "plots"}
    text = ("### Notebooks and the modules they own\n| notebook | tells | module | imports |\n|---|---|---|---|\n"
            "| `10_core` | paths | `core` | – |\n| `02_medium` | fusions | appends to `models` | – |\n"
            "| `11_data` | splits | `data` | core |\n")
    assert readme_table(text) == {"core": ("10_core", set()), "data": ("11_data", {"core"})}
