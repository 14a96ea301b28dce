"Tests of `music_vae_nb.core`, `executor` and `metrics`: output folders, figures, the metrics table, the parallel map, threads, stderr."
import json, os, subprocess, sys, time

import numpy as np
import pandas as pd
import pytest

from music_vae_nb import core
from music_vae_nb.core import figures_dir, reports_dir, save_fig, silence_stderr
from music_vae_nb.executor import StageTimes, parallel_map, resolve_scheduler, thread_limits
from music_vae_nb.metrics import METRIC_COLUMNS, metric_rows, metrics_path, read_metrics, record_metrics


@pytest.fixture
def root(tmp_path, monkeypatch):
    "A throwaway project root, so nothing is written into the repository."
    (tmp_path / "settings.ini").write_text("[DEFAULT]\n"); (tmp_path / "nbs").mkdir()
    monkeypatch.setenv("MUSIC_VAE_ROOT", str(tmp_path))
    return tmp_path


def test_numba_cpu_name_is_generic_after_import():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CPU_NAME"}
    out = subprocess.run([sys.executable, "-c", "import os, music_vae_nb.core; print(os.environ['NUMBA_CPU_NAME'])"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "generic"
    assert os.environ["NUMBA_CPU_NAME"]


def test_dataset_folders(root):
    assert reports_dir() == root / "reports"
    assert reports_dir(True, "seed-1") == root / "reports" / "quick" / "seed-1"
    assert figures_dir(False, "seed-1") == root / "figures" / "seed-1"
    assert figures_dir(True) == root / "figures" / "quick"
    for bad in ("a/b", "..", "x/../y", "", ".hidden"):
        with pytest.raises(ValueError):
            reports_dir(False, bad)
    assert not (root / "a").exists()


def test_save_fig_writes_png_closes_and_shows_only_in_a_kernel(root, monkeypatch):
    import matplotlib.pyplot as plt
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda f: shown.append(f))
    fig, ax = plt.subplots(); ax.plot([0, 1])
    p = save_fig(fig, "x", True, "toy")                      # the positional order notebooks use
    assert p == root / "figures" / "quick" / "toy" / "x.png" and p.read_bytes()[:4] == b"\x89PNG"
    assert not plt.fignum_exists(fig.number) and shown == []  # not a kernel: saved and closed, not shown
    monkeypatch.setattr(core, "_in_kernel", lambda: True)
    fig2, _ = plt.subplots(); save_fig(fig2, "y", dataset="toy")
    assert shown == [fig2] and not plt.fignum_exists(fig2.number)
    fig3, _ = plt.subplots(); save_fig(fig3, "z", show=False)
    assert shown == [fig2]


def test_metrics_table_per_dataset(root):
    rows = metric_rows({"nmi": 0.5, "ami": 0.4}, model="vae", beta=0.5, seed=1, k=3, split="test")
    record_metrics(rows, "01_easy", True, dataset="a")         # positional (rows, notebook, quick)
    record_metrics(metric_rows({"nmi": 0.9}, model="pca"), "01_easy", True, dataset="b")
    ta, tb = read_metrics(True, dataset="a"), read_metrics(True, dataset="b")
    assert metrics_path(True, "a") == root / "reports" / "quick" / "a" / "metrics.csv"
    assert list(ta.columns) == METRIC_COLUMNS and len(ta) == 2 and len(tb) == 1
    assert set(ta.dataset) == {"a"} and ta.beta.tolist() == ["0.5", "0.5"] and ta.seed.tolist() == ["1", "1"]
    assert ta.value.dtype == float and ta.value.tolist() == [0.5, 0.4]
    record_metrics(metric_rows({"nmi": 0.1}, model="vae"), "01_easy", True, dataset="a")
    assert read_metrics(True, dataset="a").value.tolist() == [0.1]
    assert len(read_metrics(True, dataset="b")) == 1


def test_record_metrics_refuses_rows_with_identical_keys(root):
    p = root / "m.csv"
    rows = metric_rows({"nmi": 0.5}, model="vae", seed=0) + metric_rows({"nmi": 0.7}, model="vae", seed=0)
    with pytest.raises(ValueError, match="share every key"):
        record_metrics(rows, "03_hard", path=p)
    assert not p.exists()
    # the same key written as 1 and 1.0 is the same key
    rows = metric_rows({"nmi": 0.5}, model="vae", beta=1) + metric_rows({"nmi": 0.7}, model="vae", beta=1.0)
    with pytest.raises(ValueError, match="share every key"):
        record_metrics(rows, "03_hard", path=p)
    ok = metric_rows({"nmi": 0.5}, model="vae", beta=1) + metric_rows({"nmi": 0.7}, model="vae", beta=2)
    assert len(record_metrics(ok, "03_hard", path=p)) == 2


def test_read_metrics_fills_columns_of_older_files(tmp_path):
    p = tmp_path / "old.csv"
    pd.DataFrame({"dataset": ["d"], "notebook": ["n"], "model": ["vae"], "seed": [0], "label": ["mode"],
                  "metric": ["nmi"], "value": [0.25]}).to_csv(p, index=False)
    t = read_metrics(path=p)
    assert list(t.columns) == METRIC_COLUMNS
    assert (t.loc[0, "config"], t.loc[0, "subset"], t.loc[0, "seed"], t.loc[0, "value"]) == ("", "", "0", 0.25)


def _square(x): return x * x
def _torch_threads(_):
    import torch
    return torch.get_num_threads()
def _slow(x): time.sleep(0.05 * (5 - x)); return x
def _fail_first(x):
    if x == 0: time.sleep(1); raise ValueError("item 0 is bad")
    time.sleep(30); return x


def test_parallel_map_order_threads_and_cleanup():
    psutil = pytest.importorskip("psutil")
    assert parallel_map(_slow, range(5), n_jobs=2) == list(range(5))     # order of items, not of completion
    assert parallel_map(_square, range(7), scheduler="local") == [x * x for x in range(7)]
    assert set(parallel_map(_torch_threads, range(4), n_jobs=2)) == {1}
    assert parallel_map(_square, [3], n_jobs=4) == [9]
    time.sleep(0.5)
    kids = [c for c in psutil.Process().children(recursive=True)     # (resource trackers end with this process)
            if "loky" in " ".join(c.cmdline()) and "resource_tracker" not in " ".join(c.cmdline())]
    assert kids == [], "loky workers left behind"


def test_resolve_scheduler():
    assert resolve_scheduler("processes") == "processes" and resolve_scheduler(" LOCAL ") == "local"
    assert resolve_scheduler("tcp://127.0.0.1:8786") == "tcp://127.0.0.1:8786"
    with pytest.raises(ValueError, match="Dask address"):
        resolve_scheduler("cluster")


def test_resolve_scheduler_default_from_env(monkeypatch):
    monkeypatch.setenv("MUSIC_VAE_SCHEDULER", "local")
    assert resolve_scheduler(None) == "local"
    monkeypatch.delenv("MUSIC_VAE_SCHEDULER")
    assert resolve_scheduler(None) == "processes"


def test_thread_limits_restores():
    import torch
    from threadpoolctl import threadpool_info
    before = torch.get_num_threads(), [p["num_threads"] for p in threadpool_info()]
    with thread_limits(1):
        with thread_limits(1): pass
        assert torch.get_num_threads() == 1                   # still limited: the outer block is open
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    assert (torch.get_num_threads(), [p["num_threads"] for p in threadpool_info()]) == before


def test_silence_stderr_captures_fd_2():
    before = os.fstat(2)
    with silence_stderr() as err:
        os.write(2, b"Note: Trying to resync...\n")
        sys.stderr.write("python-level\n")
    assert "Note: Trying to resync...\n" in err.text
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)


def test_silence_stderr_from_a_child_c_process():
    "A child process inherits fd 2: its writes are captured too (like a C library's)."
    with silence_stderr() as err:
        subprocess.run(["sh", "-c", "echo 'Warning: Xing stream size off' >&2"], check=True)
    assert err.text == "Warning: Xing stream size off\n"


def test_stage_times():
    t = StageTimes()
    with t("fit"): time.sleep(0.02)
    with t("score"): pass
    with t("fit"): time.sleep(0.02)
    tab = t.table()
    assert tab.stage.tolist() == ["fit", "score", "total"]
    assert tab.seconds.iloc[0] >= 0.04 and tab.share.iloc[-1] == 1.0


def test_a_worker_ends_with_its_parent():
    "`parallel_map`'s workers watch the process that started them: killed (kill -9) parent, no orphan left."
    import psutil, signal, subprocess, sys
    code = ("import time\nfrom music_vae_nb.core import parallel_map\n"
            "def nap(x):\n    import os, time; print(os.getpid(), flush=True); time.sleep(60)\n"
            "parallel_map(nap, range(2), n_jobs=2)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    workers = [int(parent.stdout.readline()) for _ in range(2)]
    parent.send_signal(signal.SIGKILL); parent.wait()
    t0 = time.time()
    while any(psutil.pid_exists(w) and psutil.Process(w).status() != psutil.STATUS_ZOMBIE for w in workers) and time.time() - t0 < 10:
        time.sleep(0.1)
    left = [w for w in workers if psutil.pid_exists(w) and psutil.Process(w).status() != psutil.STATUS_ZOMBIE]
    for w in left: psutil.Process(w).kill()
    assert not left and time.time() - t0 < 5

def test_a_failing_call_stops_the_busy_workers_at_once():
    t0 = time.time()
    with pytest.raises(ValueError, match="item 0"): parallel_map(_fail_first, range(3), n_jobs=2)
    assert time.time() - t0 < 15            # the other calls sleep 30 s: their workers were killed, not awaited

def test_stage_times_save_themselves_where_the_runner_says(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSIC_VAE_STAGES", str(tmp_path / "stages.json"))
    t = StageTimes()
    with t("fit"): pass
    with t("plots"): pass
    assert list(json.loads((tmp_path / "stages.json").read_text())) == ["fit", "plots"]


def test_names_that_moved_out_of_core_still_import_from_it():
    from music_vae_nb import executor, metrics
    from music_vae_nb.core import StageTimes as S, parallel_map as p, record_metrics as r, METRIC_COLUMNS as M
    assert (S, p, r, M) == (executor.StageTimes, executor.parallel_map, metrics.record_metrics, metrics.METRIC_COLUMNS)
    assert set(core.MOVED.values()) == {"executor", "metrics"}
    with pytest.raises(AttributeError, match="no_such"):
        core.no_such
