"An interrupted `music-vae reproduce` stops its workers, keeps what finished and resumes: same metrics, less work."
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path

import nbformat, psutil, pytest
from nbformat.v4 import new_code_cell, new_notebook

from music_vae_nb.core import KEY_COLUMNS, project_root, read_metrics

BIN = Path(sys.executable).parent
QUICK = "m21-vocal-quick"


def _ours(root: Path) -> list[psutil.Process]:
    "Live processes started for the project at `root` (they inherit its `MUSIC_VAE_ROOT`)."
    out = []
    for p in psutil.process_iter():
        try:
            if p.environ().get("MUSIC_VAE_ROOT") == str(root) and p.status() != psutil.STATUS_ZOMBIE: out.append(p)
        except psutil.Error: pass
    return out

def _gone(root: Path, timeout: float = 15) -> list[str]:
    "Wait until no process of `root` is left; return the command lines of those still alive after `timeout` s."
    t0 = time.time()
    while (left := _ours(root)) and time.time() - t0 < timeout: time.sleep(0.25)
    out = []
    for p in left:                                                      # name them, then clean up
        try: out.append(" ".join(p.cmdline())[-90:]); p.kill()
        except psutil.Error: pass
    return out

def _env(root: Path, data: Path | None = None) -> dict:
    env = {**os.environ, "MUSIC_VAE_ROOT": str(root)}
    if data is not None: env["MUSIC_VAE_DATA"] = str(data)
    return env

def _runs(out_dir: Path) -> dict:
    return {r["name"]: r for r in json.loads((out_dir / "runs.json").read_text())["runs"]}

def _wait_for(cond, proc, timeout: float, what: str):
    t0 = time.time()
    while not cond():
        if proc.poll() is not None: raise AssertionError(f"the run ended before {what}: {proc.communicate()}")
        if time.time() - t0 > timeout: proc.kill(); raise AssertionError(f"no {what} after {timeout} s")
        time.sleep(0.05)

# --- the runner on tiny notebooks: signals, orphans, records, reuse -----------------------------------------------

def _nb(path, *sources, params="x = 1"):
    nb = new_notebook(cells=[new_code_cell(params, metadata={"tags": ["parameters"]}), *[new_code_cell(s) for s in sources]])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    nbformat.write(nb, path)

WORK = '''import os, time
from pathlib import Path
from music_vae_nb.core import parallel_map
def work(i, nap=nap, marks=str(Path.cwd() / "marks")):
    Path(marks, f"{i}-{os.getpid()}").touch()
    time.sleep(nap)
    return i
Path("marks").mkdir(exist_ok=True)
parallel_map(work, range(2), n_jobs=2)'''

def _project(tmp_path):
    root = tmp_path / "proj"; (root / "nbs").mkdir(parents=True); (root / "settings.ini").write_text("[DEFAULT]\n")
    _nb(root / "nbs" / "00_ok.ipynb", "y = x + 1")
    _nb(root / "nbs" / "01_work.ipynb", WORK, params="nap = 60")
    from music_vae_nb.fixtures import make_seed1_layout
    return root, str(make_seed1_layout(tmp_path / "songs", n=8, seconds=0.5))

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_a_stopped_runner_leaves_no_process_and_keeps_finished_notebooks(tmp_path, sig):
    root, data = _project(tmp_path)
    marks, out = root / "nbs" / "marks", root / "reports" / "songs"
    args = [str(BIN / "music-vae"), "reproduce", "--data", data, "--only", "00_ok", "--only", "01_work", "--no-html"]
    # started as from a terminal: a shell's background job (e.g. CI run with `&`) inherits SIGINT ignored
    proc = subprocess.Popen(args, env=_env(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_for(lambda: marks.exists() and len(list(marks.iterdir())) == 2, proc, 120, "two busy worker processes")
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert _gone(root) == []                                            # kernel, loky workers, resource trackers
    runs = _runs(out)
    assert runs["00_ok"]["status"] == "finished"                         # the finished notebook's record is kept
    assert runs["01_work"]["status"] == ("running" if sig == signal.SIGKILL else "interrupted")
    if sig != signal.SIGKILL:
        assert proc.returncode == 128 + sig and "interrupted" in proc.stderr.read()
    again = subprocess.run(args + ["-p", "nap", "0"], env=_env(root), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "00_ok  reused (unchanged since" in again.stdout, again.stdout
    assert "✔ 01_work  ran in" in again.stdout and "its last run did not finish" in again.stdout
    assert {r["status"] for r in _runs(out).values()} == {"finished"}

def test_what_changes_decides_what_runs(tmp_path):
    "Same inputs: reused; new parameter: that notebook and every later one run; --force: all run."
    root, data = _project(tmp_path)
    args = [str(BIN / "music-vae"), "reproduce", "--data", data, "--only", "00_ok", "--only", "01_work", "--no-html",
            "-p", "nap", "0"]
    run = lambda *a: subprocess.run(args + list(a), env=_env(root), capture_output=True, text=True, timeout=120)
    first = run(); assert first.returncode == 0, first.stderr
    second = run().stdout
    assert second.count("reused (unchanged since") == 2, second
    changed = run("-p", "x", "5").stdout
    assert "▶ 00_ok (its parameters changed)" in changed and "▶ 01_work (an earlier notebook ran)" in changed, changed
    forced = run("-p", "x", "5", "--force").stdout
    assert forced.count("(--force)") == 2 and "reused (" not in forced

# --- the real thing: 01_easy on the quick data, killed once some fits are cached ----------------------------------

def _quick_copy(dst: Path) -> Path:
    "A copy of the quick dataset (its feature cache included, its fit cache left out) under `dst`."
    src = project_root() / "data" / QUICK
    if not (src / "manifest.csv").exists():                    # a fresh clone: build it (as every quick notebook would)
        from music_vae_nb.datasets import load_dataset
        load_dataset("m21-vocal", quick=True)
    shutil.copytree(src, dst / QUICK, ignore=lambda d, names: ["fits"] if Path(d).name == "cache" else [])
    return dst

def _quick_project(tmp_path, name) -> tuple[Path, Path]:
    root = tmp_path / name; (root / "nbs").mkdir(parents=True)
    shutil.copy(project_root() / "settings.ini", root)
    shutil.copy(project_root() / "nbs" / "01_easy.ipynb", root / "nbs")
    return root, _quick_copy(tmp_path / f"{name}-data")

def _metrics(root: Path):
    m = read_metrics(path=root / "reports" / "quick" / "m21-vocal" / "metrics.csv")
    return m[m.notebook == "01_easy"].sort_values(KEY_COLUMNS).reset_index(drop=True)

def _done(data: Path) -> dict[str, float]:
    return {p.parent.name: p.stat().st_mtime for p in (data / QUICK / "cache" / "fits").glob("*/done.json")}

def test_an_interrupted_run_resumes_with_the_same_metrics_and_less_work(tmp_path):
    args = ["--quick", "--only", "01_easy", "--no-html", "-p", "folds", "2"]
    cmd = [str(BIN / "music-vae"), "reproduce", *args]
    ref_root, ref_data = _quick_project(tmp_path, "reference")
    t0 = time.time()
    ref = subprocess.run(cmd, env=_env(ref_root, ref_data), capture_output=True, text=True, timeout=600)
    full = time.time() - t0
    assert ref.returncode == 0, ref.stderr
    n_fits = len(_done(ref_data))

    root, data = _quick_project(tmp_path, "resumed")
    proc = subprocess.Popen(cmd, env=_env(root, data), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: len(_done(data)) >= max(1, n_fits // 2), proc, 300, "cached fits")
    proc.send_signal(signal.SIGTERM); proc.wait(timeout=30)
    before = _done(data)
    assert proc.returncode == 128 + signal.SIGTERM and _gone(root) == []
    assert _runs(root / "reports" / "quick" / "m21-vocal")["01_easy"]["status"] == "interrupted"

    again = subprocess.run(cmd, env=_env(root, data), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "▶ 01_easy (its last run did not finish (interrupted))" in again.stdout, again.stdout
    after = _done(data)
    assert all(after[k] == t for k, t in before.items())                # fits cached before the kill were loaded
    assert len(after) == n_fits and len(set(after) - set(before)) < n_fits
    assert _metrics(root).equals(_metrics(ref_root))                    # the same numbers as the uninterrupted run

    t0 = time.time()
    third = subprocess.run(cmd, env=_env(root, data), capture_output=True, text=True, timeout=600)
    reuse = time.time() - t0
    assert "01_easy  reused (unchanged since" in third.stdout, third.stdout
    assert reuse < full / 2, (reuse, full)
    stages = {r: _runs(x / "reports" / "quick" / "m21-vocal")["01_easy"]["stages"] for r, x in (("ref", ref_root), ("resumed", root))}
    print(f"full run {full:.1f} s, reused {reuse:.1f} s; fits trained {n_fits} then {len(set(after) - set(before))}; stages {stages}")


# --- two runs of one notebook on one dataset at once --------------------------------------------------------------

FIT_LOGGER = """import os
if os.environ.get("FIT_LOG"):                       # every process of the run (runner, kernel, workers) logs its trainings
    import music_vae_nb.train as T
    _real = T.fit_model
    def _logged(*a, **k):
        with open(os.environ["FIT_LOG"], "a") as f: f.write(f"{os.getpid()}\\n")
        return _real(*a, **k)
    T.fit_model = _logged
"""

def test_two_runs_at_once_both_finish_with_the_rows_of_one_run_and_each_fit_trained_once(tmp_path):
    "Two `reproduce` of 01_easy on one dataset side by side: both finish; its rows are in metrics.csv once; no fit twice."
    root, data = _quick_project(tmp_path, "both")
    (tmp_path / "hook").mkdir(); (tmp_path / "hook" / "sitecustomize.py").write_text(FIT_LOGGER)
    log = tmp_path / "fits.log"
    cmd = [str(BIN / "music-vae"), "reproduce", "--quick", "--only", "01_easy", "--no-html", "-p", "repetitions", "1", "--force"]
    env = _env(root, data)
    env = {**env, "OMP_NUM_THREADS": "1", "FIT_LOG": str(log),
           "PYTHONPATH": os.pathsep.join([str(tmp_path / "hook"), *filter(None, [env.get("PYTHONPATH")])])}
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (o, e) in zip(procs, outs): assert p.returncode == 0, e[-3000:]
    m = _metrics(root)
    assert len(m) and not m.duplicated(subset=KEY_COLUMNS).any()           # one run's rows, once
    stored = _done(data)
    assert len(stored) and len(log.read_text().splitlines()) == len(stored)   # every fit trained once, by one of the two
    assert not list((data / QUICK / "cache").rglob("*.damaged-*"))
