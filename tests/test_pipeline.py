"The papermill runner and the `music-vae` command line, end to end in a throwaway project folder."
import json, os, subprocess, sys
from pathlib import Path
import nbformat
from nbformat.v4 import new_notebook, new_code_cell

BIN = Path(sys.executable).parent

def _nb(path, *sources, params="x = 1"):
    nb = new_notebook(cells=[new_code_cell(params, metadata={"tags": ["parameters"]}),
                             *[new_code_cell(s) for s in sources]])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    nbformat.write(nb, path)

def _project(tmp_path):
    (tmp_path / "nbs").mkdir(); (tmp_path / "settings.ini").write_text("[DEFAULT]\n")
    _nb(tmp_path / "nbs" / "01_ok.ipynb",
        "from pathlib import Path\nPath('seen.txt').write_text(f'{x} {quick}')", params="x = 1\nquick = True")
    _nb(tmp_path / "nbs" / "02_bad.ipynb", "y = 2", "raise ValueError(f'bad input x={x}')")
    return tmp_path

def _run(tmp_path, *args):
    env = {**os.environ, "MUSIC_VAE_ROOT": str(tmp_path)}
    return subprocess.run([str(BIN / "music-vae"), *args], env=env, capture_output=True, text=True, timeout=300)

def test_parameters_reach_the_notebook(tmp_path):
    root = _project(tmp_path)
    r = _run(root, "reproduce", "--quick", "--data", "somewhere", "--only", "01", "-p", "x", "7", "--no-html")
    assert r.returncode == 0, r.stderr
    assert (root / "nbs" / "seen.txt").read_text() == "7 True"
    runs = json.loads((root / "reports" / "quick" / "runs.json").read_text())
    assert [(x["name"], x["parameters"]) for x in runs["runs"]] == [("01_ok", {"quick": True, "x": 7})]
    assert not (root / "figures").exists() or not any((root / "figures").glob("*.png"))

def test_failing_cell_names_notebook_cell_and_error_and_keeps_finished_work(tmp_path):
    root = _project(tmp_path)
    r = _run(root, "reproduce", "--data", "somewhere", "--only", "01_ok", "--only", "02_bad", "--no-html")
    assert r.returncode == 1
    assert "02_bad failed at cell 3: ValueError: bad input x=1" in r.stderr, r.stderr
    partial = root / "reports" / "02_bad.ipynb"
    assert partial.exists() and str(partial) in r.stderr
    assert (root / "reports" / "01_ok.ipynb").exists()          # the finished notebook is kept
    assert [x["name"] for x in json.loads((root / "reports" / "runs.json").read_text())["runs"]] == ["01_ok"]

def test_cli_lists_its_subcommands():
    r = subprocess.run([str(BIN / "music-vae"), "--help"], capture_output=True, text=True)
    for cmd in ("reproduce", "build-default", "validate", "features", "lab"): assert cmd in r.stdout
