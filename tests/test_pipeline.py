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

def _data(tmp_path, **kw):
    "A tiny collection in the first seed's layout (its name: `songs`)."
    from music_vae_nb.fixtures import make_seed1_layout
    return str(make_seed1_layout(tmp_path / "songs", n=8, seconds=0.5, **kw))

def _run(tmp_path, *args):
    env = {**os.environ, "MUSIC_VAE_ROOT": str(tmp_path)}
    return subprocess.run([str(BIN / "music-vae"), *args], env=env, capture_output=True, text=True, timeout=300)

def test_parameters_reach_the_notebook(tmp_path):
    root = _project(tmp_path)
    r = _run(root, "reproduce", "--quick", "--data", _data(tmp_path), "--only", "01", "-p", "x", "7", "--no-html",
             "--scheduler", "local")
    assert r.returncode == 0, r.stderr
    assert (root / "nbs" / "seen.txt").read_text() == "7 True"
    runs = json.loads((root / "reports" / "quick" / "songs" / "runs.json").read_text())
    assert [(x["name"], x["parameters"]) for x in runs["runs"]] == [("01_ok", {"quick": True, "x": 7})]
    assert f"report: {root / 'reports' / 'quick' / 'songs'}" in r.stdout
    assert sorted(p.name for p in (root / "reports").rglob("*") if p.is_file()) == ["01_ok.ipynb", "runs.json"]
    assert not (root / "figures").exists() or not any((root / "figures").glob("*.png"))

def test_failing_cell_names_notebook_cell_and_error_and_keeps_finished_work(tmp_path):
    root = _project(tmp_path)
    r = _run(root, "reproduce", "--data", _data(tmp_path), "--only", "01_ok", "--only", "02_bad", "--no-html")
    assert r.returncode == 1
    assert "02_bad failed at cell 3: ValueError: bad input x=1" in r.stderr, r.stderr
    out = root / "reports" / "songs"
    partial = out / "02_bad.ipynb"
    assert partial.exists() and str(partial) in r.stderr
    assert (out / "01_ok.ipynb").exists()          # the finished notebook is kept
    runs = json.loads((out / "runs.json").read_text())["runs"]
    assert [(x["name"], x["status"]) for x in runs] == [("01_ok", "finished"), ("02_bad", "failed")]

def test_dataset_parameters_and_prominent_warning(tmp_path):
    "A notebook declaring `dataset` and `scheduler` gets them; a modality that matched nothing is said in one line."
    root = _project(tmp_path)
    _nb(root / "nbs" / "03_data.ipynb", "from pathlib import Path\nPath('ds.txt').write_text(f'{dataset} {scheduler}')",
        params="dataset = 'm21-vocal'\nscheduler = 'processes'")
    data = _data(tmp_path)
    for f in (Path(data) / "Dataset" / "Audio").iterdir(): f.rename(f.with_name("x" + f.name))   # names no track
    r = _run(root, "reproduce", "--quick", "--data", data, "--only", "03", "--no-html", "--scheduler", "tcp://h:1")
    assert r.returncode == 0, r.stderr
    assert (root / "nbs" / "ds.txt").read_text() == f"{data} tcp://h:1"
    assert "!!! audio: only 0 of 8 items have a usable audio file" in r.stdout, r.stdout
    v = _run(root, "validate", data)
    assert v.returncode == 1 and v.stdout.strip().splitlines()[-1].startswith("!!! audio: only 0 of 8"), v.stdout

def test_unknown_dataset_is_one_clear_line(tmp_path):
    r = _run(_project(tmp_path), "reproduce", "--quick", "--data", str(tmp_path / "nowhere"), "--no-html")
    assert r.returncode == 1 and "cannot read the dataset" in r.stderr and "nowhere" in r.stderr

def test_transcribe_reaches_only_the_notebooks_that_declare_it(tmp_path):
    root = _project(tmp_path)
    _nb(root / "nbs" / "03_tr.ipynb", "from pathlib import Path\nPath('tr.txt').write_text(transcribe)", params="transcribe = 'auto'")
    r = _run(root, "reproduce", "--data", _data(tmp_path), "--only", "01", "--only", "03", "--no-html", "--transcribe", "missing")
    assert r.returncode == 0, r.stderr
    assert (root / "nbs" / "tr.txt").read_text() == "missing"
    runs = {x["name"]: x["parameters"] for x in json.loads((root / "reports" / "songs" / "runs.json").read_text())["runs"]}
    assert "transcribe" not in runs["01_ok"] and runs["03_tr"]["transcribe"] == "missing"

def test_lab_passes_options_through_and_allows_root():
    from music_vae_nb.pipeline import build_parser, lab_command
    a, extra = build_parser().parse_known_args(["lab", "--no-browser", "--port", "8890", "--ServerApp.token="])
    cmd = lab_command(a.no_browser, extra)
    assert cmd[-4:] == ["--no-browser", "--port", "8890", "--ServerApp.token="]
    assert ("--allow-root" in cmd) == (os.geteuid() == 0)

def test_cli_lists_its_subcommands():
    r = subprocess.run([str(BIN / "music-vae"), "--help"], capture_output=True, text=True)
    for cmd in ("reproduce", "build-default", "validate", "features", "lab"): assert cmd in r.stdout

SPAN = '''import json, time
from pathlib import Path
t0 = time.time(); time.sleep(nap)
Path(f"{name}.json").write_text(json.dumps([t0, time.time()]))
from music_vae_nb.core import StageTimes
with StageTimes()(name): pass'''

def test_independent_notebooks_run_side_by_side_and_the_analysis_waits(tmp_path):
    "01-03 need only 00 (`NOTEBOOK_NEEDS`): with --parallel 3 they overlap, 04 starts after all; --parallel 1 runs in order."
    root = tmp_path / "proj"; (root / "nbs").mkdir(parents=True); (root / "settings.ini").write_text("[DEFAULT]\n")
    for n in ("00_features", "01_easy", "02_medium", "03_hard", "04_analysis"):
        _nb(root / "nbs" / f"{n}.ipynb", SPAN, params=f"nap = 0.5\nname = '{n}'")
    data = _data(tmp_path)
    spans = lambda: {n: json.loads((root / "nbs" / f"{n}.json").read_text()) for n in
                     ("00_features", "01_easy", "02_medium", "03_hard", "04_analysis")}
    r = _run(root, "reproduce", "--data", data, "--no-html", "-p", "nap", "4")
    assert r.returncode == 0, r.stderr
    s = spans()
    for n in ("01_easy", "02_medium", "03_hard"):
        assert s[n][0] >= s["00_features"][1] and s["04_analysis"][0] >= s[n][1], s
    assert max(s[n][0] for n in ("01_easy", "02_medium", "03_hard")) < min(s[n][1] for n in ("01_easy", "02_medium", "03_hard")), s
    runs = json.loads((root / "reports" / "songs" / "runs.json").read_text())["runs"]
    assert [x["name"] for x in runs] == ["00_features", "01_easy", "02_medium", "03_hard", "04_analysis"]
    assert all(x["status"] == "finished" and list(x["stages"]) == [x["name"]] for x in runs), runs   # each its own stage table
    three = ("01_easy", "02_medium", "03_hard")                  # side by side by default; one at a time with --parallel 1
    r = _run(root, "reproduce", "--data", data, "--no-html", "-p", "nap", "0.5", "--parallel", "1", *[x for n in three for x in ("--only", n)])
    assert r.returncode == 0, r.stderr
    s = {n: t for n, t in spans().items() if n in three}; order = sorted(s, key=lambda n: s[n][0])
    assert order == list(three)
    assert all(s[a][1] <= s[b][0] for a, b in zip(order, order[1:])), s


# ---------------------------------------------------------------- reuse only what this machine ran
def _fake_runner(calls):
    "A stand-in for `pipeline.run_notebook` that writes the executed notebook without a kernel and counts the calls."
    from music_vae_nb.pipeline import NotebookRun, parameters_for
    def run(path, out_dir, params=None, html=True, log=print, why=""):
        calls.append((Path(path).stem, why))
        out = Path(out_dir) / Path(path).name; out.write_text(Path(path).read_text())
        return NotebookRun(Path(path).stem, 0.1, str(out), None, parameters_for(path, params or {}))
    return run


def test_a_committed_record_is_never_reused_a_local_one_is(tmp_path, monkeypatch):
    from music_vae_nb import pipeline
    root = _project(tmp_path); monkeypatch.setenv("MUSIC_VAE_ROOT", str(root)); monkeypatch.delenv("MUSIC_VAE_DATA", raising=False)
    calls = []; monkeypatch.setattr(pipeline, "run_notebook", _fake_runner(calls))
    data, go = _data(tmp_path), lambda: pipeline.reproduce(only=["01"], data=data, html=False, log=lambda *a: None)
    assert [r.reused for r in go()] == [False] and calls == [("01_ok", "no run of it on this machine")]
    reader = json.loads((root / "reports" / "songs" / "runs.json").read_text())
    assert reader["runs"][0]["output"] == "reports/songs/01_ok.ipynb" and "machine" not in reader["runs"][0]
    assert str(tmp_path) not in json.dumps(reader)                                  # no absolute path for readers
    local = pipeline.run_records_path(False, "songs")
    assert local.parent == root / "data" / "runs" / "songs"
    assert json.loads(local.read_text())["runs"][0]["machine"] == pipeline.this_machine()
    assert [r.reused for r in go()] == [True] and len(calls) == 1                  # the local record: reused
    local.unlink()                                                                  # a fresh clone: the committed
    assert [r.reused for r in go()] == [False] and calls[-1] == ("01_ok", "no run of it on this machine")   # files only
    (root / "reports" / "songs" / "01_ok.ipynb").write_text("{}")                  # `git pull` replaced the notebook
    assert [r.reused for r in go()] == [False] and calls[-1] == ("01_ok", "its executed notebook changed since it ran here")


def test_the_end_of_a_run_says_where_the_report_is_and_compares_the_headline(tmp_path, monkeypatch):
    from music_vae_nb import pipeline
    from music_vae_nb.report import synthetic_metrics
    root = _project(tmp_path); monkeypatch.setenv("MUSIC_VAE_ROOT", str(root))
    out = root / "reports" / "songs"; out.mkdir(parents=True)
    m = synthetic_metrics(); m.to_csv(out / "metrics.csv", index=False)              # the table before the run
    def run(path, out_dir, params=None, html=True, log=print, why=""):             # the run moves one label's test AMI
        m.assign(value=m.value.where(~((m.label == "era") & (m.split == "test")), m.value + 0.02)).to_csv(out / "metrics.csv", index=False)
        (out / "report.html").write_text("<html></html>")
        return _fake_runner([])(path, out_dir, params)
    monkeypatch.setattr(pipeline, "run_notebook", run)
    said = []
    pipeline.reproduce(only=["01"], data=_data(tmp_path), html=False, log=said.append)
    assert said[-3].endswith(f"report: {out / 'report.html'}"), said
    assert said[-2].startswith("headline (test AMI of the configuration selected on valid, per label): era 0.230"), said
    assert said[-1].startswith("differs from the report before this run: max abs difference 0.0200 over 2 labels (era 0.210 -> 0.230)"), said


def test_reproduce_into_a_folder_it_cannot_write_says_so_in_one_line(monkeypatch, capsys):
    import music_vae_nb.pipeline as P
    from music_vae_nb.core import OutputNotWritable
    def full(*a, **k): raise OutputNotWritable("/somewhere/reports/m21-vocal", "no space left on device")
    monkeypatch.setattr(P, "reproduce", full)
    assert P.main(["reproduce", "--quick"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "/somewhere/reports/m21-vocal/" in err[0] and "no space left" in err[0]
