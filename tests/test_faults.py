"""Nothing lost under faults: every kind of cache file cut short or bit-flipped is moved aside with one line and
recomputed to the same numbers; two processes on one cache compute each entry once; two writers of one metrics
table lose no row and write none twice; a folder that cannot be written gives one line after the caches are kept."""
import errno, json, os, subprocess, sys, textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import music_vae_nb.store as S
import music_vae_nb.train as T
from music_vae_nb.core import OutputNotWritable, read_json_checked, write_json_checked
from music_vae_nb.metrics import metric_rows, read_metrics, record_metrics
from music_vae_nb.models import VAE
from music_vae_nb.store import compute_features, toy_dataset
from music_vae_nb.train import TrainConfig, fit_embed, toy_data


def cut(p: Path): p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])

def flip(p: Path):
    b = bytearray(p.read_bytes()); b[len(b) // 2] ^= 0x10; p.write_bytes(bytes(b))

DAMAGE = {"truncated": cut, "bit-flipped": flip}


def one_warning(err: str, path: Path, kept: bool = True) -> None:
    "One warning line names `path`; the damaged file was moved aside (`kept`: and is still there to look at)."
    lines = [l for l in err.splitlines() if l.startswith("warning: damaged cache file")]
    assert len(lines) == 1 and str(path) in lines[0] and f"moved to {path.name}.damaged-1" in lines[0], err
    assert path.with_name(path.name + ".damaged-1").exists() == kept


# --- features ----------------------------------------------------------------------------------------------
@pytest.fixture()
def toy(tmp_path):
    return toy_dataset(tmp_path / "toy", n=6)


def _feats(ds, **kw):
    return compute_features(ds, ["midi", "piano_roll"], n_jobs=1, scheduler="local", progress=False, **kw)


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_feature_set_is_recomputed_to_the_same_numbers(toy, how, capfd):
    first = _feats(toy)
    f = Path(first["piano_roll"].stats["path"])
    DAMAGE[how](f)
    again = _feats(toy)
    one_warning(capfd.readouterr().err, f)
    assert not again["piano_roll"].stats["cached"]
    for n in first: np.testing.assert_array_equal(first[n].X, again[n].X)
    assert _feats(toy)["piano_roll"].stats["cached"]                 # stored again, checked


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_part_of_an_interrupted_run_is_recomputed(toy, how, capfd, monkeypatch):
    want = _feats(toy, cache_dir=toy.root / "whole")
    real = S.extract_chunk
    def stop_after_first(chunk, **kw):
        out = real(chunk, **kw); raise KeyboardInterrupt
    monkeypatch.setattr(S, "PART_SIZE", 2)
    monkeypatch.setattr(S, "extract_chunk", stop_after_first)
    with pytest.raises(KeyboardInterrupt): _feats(toy)
    part = next((toy.cache_dir / "features").glob("midi-*.parts/part-*.npz"))
    DAMAGE[how](part)
    monkeypatch.setattr(S, "extract_chunk", real)
    got = _feats(toy)
    one_warning(capfd.readouterr().err, part, kept=False)            # the parts folder goes once the sets are stored
    np.testing.assert_array_equal(got["midi"].X, want["midi"].X)


def test_a_feature_set_without_a_check_file_is_recomputed_not_trusted(toy):
    first = _feats(toy)
    f = Path(first["midi"].stats["path"])
    Path(str(f) + ".check").unlink()
    again = _feats(toy)
    assert not again["midi"].stats["cached"]
    np.testing.assert_array_equal(first["midi"].X, again["midi"].X)


# --- fits --------------------------------------------------------------------------------------------------
def _fit_job(cache):
    data, _ = toy_data(90, {"audio": 8}, seed=3)
    ids = data.ids
    return dict(model=lambda d: VAE(d["audio"], 2, (8,)), data=data, train_ids=ids[:60], valid_ids=ids[60:75], embed_ids={"test": ids[75:]},
                cfg=TrainConfig(epochs=3, kl_warmup_epochs=1, progress=False), cache_dir=cache)


@pytest.mark.parametrize("name", ["model.pt", "embeddings.npz", "history.json", "done.json"])
@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_fit_is_retrained_to_the_same_numbers(tmp_path, name, how, capfd, monkeypatch):
    job = _fit_job(tmp_path)
    first = fit_embed(**job)
    f = next(tmp_path.glob(f"*/{name}"))
    DAMAGE[how](f)
    calls = []
    real = T.fit_model
    monkeypatch.setattr(T, "fit_model", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    again = fit_embed(**job)
    one_warning(capfd.readouterr().err, f)
    assert calls == [1]
    np.testing.assert_array_equal(first.Z["test"], again.Z["test"])
    pd.testing.assert_frame_equal(first.history.drop(columns="seconds"), again.history.drop(columns="seconds"))
    fit_embed(**job); assert calls == [1]                             # stored again: read, not retrained


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_checkpoint_starts_the_fit_afresh(tmp_path, how, capfd):
    data, _ = toy_data(60, {"audio": 8}, seed=2)
    cfg = TrainConfig(epochs=2, kl_warmup_epochs=1, progress=False, checkpoint_dir=tmp_path)
    make = lambda: (T.seed_everything(0), VAE(8, 2, (8,)))[1]
    h1 = T.fit_model(make(), data, None, cfg)
    DAMAGE[how](tmp_path / "last.pt")
    h2 = T.fit_model(make(), data, None, cfg)
    one_warning(capfd.readouterr().err, tmp_path / "last.pt")
    assert h2.attrs["resumed_from"] == 0
    pd.testing.assert_frame_equal(h1.drop(columns="seconds"), h2.drop(columns="seconds"))


# --- scores ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_score_file_is_rescored_to_the_same_rows(tmp_path, how, capfd, monkeypatch):
    import music_vae_nb.experiment as E
    from test_experiment import toy as toy_experiment, P, SPECS
    ex = toy_experiment(reps=2); ex.cache_dir = tmp_path                # two outer folds (one fold is no cross-validation)
    a, _ = ex.score(ex.fit(SPECS[:1]), P)
    f = sorted((tmp_path / "scores").glob("*.json"))[0]
    DAMAGE[how](f)
    calls = []
    real = E.score_embedding
    monkeypatch.setattr(E, "score_embedding", lambda *x, **k: (calls.append(1), real(*x, **k))[1])
    b, _ = ex.score(ex.fit(SPECS[:1]), P)
    one_warning(capfd.readouterr().err, f)
    assert calls == [1]                                              # only the damaged one is scored again
    keys = [c for c in a.columns if c != "value"]
    pd.testing.assert_frame_equal(a.sort_values(keys).reset_index(drop=True), b.sort_values(keys).reset_index(drop=True))


# --- transcriptions ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_transcription_is_transcribed_again(toy, how, capfd, monkeypatch):
    import music_vae_nb.transcribe as TR
    from music_vae_nb.fixtures import toy_midi
    calls = []
    def fake(path):
        calls.append(Path(path).name); return toy_midi([[(60 + len(Path(path).name) % 12, 0.0, 0.5), (64, 0.5, 1.0)]])
    monkeypatch.setattr(TR, "has_basic_pitch", lambda: True)
    monkeypatch.setattr(TR, "model_key", lambda: "m1")
    monkeypatch.setattr(TR, "transcribe_file", fake)
    cache = toy.root / "transcribed"
    t1 = TR.transcribe_dataset(toy, which="all", cache_dir=cache, n_jobs=1, scheduler="local", progress=False)
    assert len(calls) == 6 and set(t1.status) == {"transcribed"}
    f = Path(t1.midi_path.iloc[0]); want = f.read_bytes()
    DAMAGE[how](f)
    t2 = TR.transcribe_dataset(toy, which="all", cache_dir=cache, n_jobs=1, scheduler="local", progress=False)
    one_warning(capfd.readouterr().err, f)
    assert len(calls) == 7 and f.read_bytes() == want
    assert t2.status.tolist() == ["transcribed"] + ["cached"] * 5


# --- run records -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_run_record_reads_as_none(tmp_path, how, capfd):
    rec = {"runs": [{"name": "01_easy", "seconds": 12.5, "inputs": "a1b2"}]}
    f = write_json_checked(tmp_path / "runs.json", rec, key="inputs-a1b2")
    assert read_json_checked(f, "inputs-a1b2") == rec
    DAMAGE[how](f)
    assert read_json_checked(f, "inputs-a1b2") is None
    one_warning(capfd.readouterr().err, f)


# --- two processes at once ---------------------------------------------------------------------------------
def _run_both(code: str, *args_per_proc) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, a)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for a in args_per_proc]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (o, e) in zip(procs, outs): assert p.returncode == 0, e[-2000:]


FEATURES_TWICE = '''
    import os, sys, time, numpy as np
    from pathlib import Path
    import music_vae_nb.store as S
    from music_vae_nb.data import read_dataset
    ds, log, out = read_dataset(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    real = S.extract_item
    def logged(item, group, params):
        with open(log, "a") as f: f.write(f"{os.getpid()} {group} {item[0]}\\n")
        time.sleep(0.2); return real(item, group, params)
    S.extract_item = logged
    feats = S.compute_features(ds, ["midi", "piano_roll"], n_jobs=1, scheduler="local", progress=False)
    np.savez(out, **{n: fs.X for n, fs in feats.items()})
'''


def test_two_processes_compute_each_feature_set_once_and_agree(toy, tmp_path):
    log = tmp_path / "extracted.log"
    _run_both(FEATURES_TWICE, (toy.root, log, tmp_path / "a.npz"), (toy.root, log, tmp_path / "b.npz"))
    lines = log.read_text().splitlines()
    assert sorted(l.split()[2] for l in lines) == sorted(toy.ids("all").tolist())   # every item extracted once
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    for n in ("midi", "piano_roll"): np.testing.assert_array_equal(a[n], b[n])


FIT_TWICE = '''
    import os, sys, numpy as np
    from pathlib import Path
    import music_vae_nb.train as T
    from music_vae_nb.models import VAE
    cache, log, out = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    real = T.fit_model
    def logged(*a, **k):
        with open(log, "a") as f: f.write(f"{os.getpid()}\\n")
        return real(*a, **k)
    T.fit_model = logged
    data, _ = T.toy_data(400, {"audio": 16}, seed=3); ids = data.ids
    r = T.fit_embed(lambda d: VAE(d["audio"], 2, (16,)), data, ids[:300], ids[300:350], {"test": ids[350:]},
                    T.TrainConfig(epochs=15, kl_warmup_epochs=1, progress=False), cache_dir=cache)
    np.save(out, r.Z["test"])
'''


def test_two_processes_train_one_fit_once_and_agree(tmp_path):
    log = tmp_path / "trained.log"
    _run_both(FIT_TWICE, (tmp_path / "fits", log, tmp_path / "a.npy"), (tmp_path / "fits", log, tmp_path / "b.npy"))
    assert len(log.read_text().splitlines()) == 1                    # one trained, the other waited and read
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


METRICS_WRITER = '''
    import sys
    from music_vae_nb.metrics import metric_rows, record_metrics
    path, who = sys.argv[1], sys.argv[2]
    for j in range(15):
        record_metrics(metric_rows({"nmi": j / 100, "ami": j / 50}, model="vae", seed=j), f"{who}-{j}", path=path, dataset="toy")
        record_metrics(metric_rows({"nmi": 0.5}, model="pca", seed=0), "shared", path=path, dataset="toy")
'''


def test_two_metrics_writers_at_once_lose_no_row_and_write_none_twice(tmp_path):
    path = tmp_path / "metrics.csv"
    _run_both(METRICS_WRITER, (path, "p"), (path, "q"))
    t = read_metrics(path=path)
    want = {f"{w}-{j}" for w in "pq" for j in range(15)} | {"shared"}
    assert set(t.notebook) == want and len(t) == 2 * 30 + 1
    assert not t.duplicated(subset=[c for c in t.columns if c != "value"]).any()
    assert t[t.notebook == "q-14"].sort_values("metric").value.tolist() == [0.28, 0.14]


# --- output that cannot be written -------------------------------------------------------------------------
@pytest.fixture()
def project(tmp_path, monkeypatch):
    (tmp_path / "proj").mkdir(); (tmp_path / "proj" / "settings.ini").write_text("[DEFAULT]\n"); (tmp_path / "proj" / "nbs").mkdir()
    monkeypatch.setenv("MUSIC_VAE_ROOT", str(tmp_path / "proj"))
    return tmp_path / "proj"


def test_a_full_reports_folder_gives_one_line_after_the_caches_are_kept(toy, project, monkeypatch):
    feats = _feats(toy)                                              # the work: cached under the dataset's cache
    def full(*a, **k): raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    with pytest.raises(OutputNotWritable) as e:
        record_metrics(metric_rows({"nmi": 0.5}, model="pca"), "01_easy", True, dataset="toy")
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and f"{project / 'reports' / 'quick' / 'toy'}/ (No space left on device)" in msg, msg
    monkeypatch.undo()
    assert _feats(toy)["midi"].stats["cached"]                       # the caches were kept
    assert not list((project / "reports" / "quick" / "toy").glob("*.tmp"))


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_reports_folder_gives_one_line(project):
    from music_vae_nb.core import reports_dir
    d = reports_dir(True, "toy"); d.chmod(0o555)
    try:
        with pytest.raises(OutputNotWritable, match=f"cannot write in {d}/"):
            record_metrics(metric_rows({"nmi": 0.5}, model="pca"), "01_easy", True, dataset="toy")
    finally: d.chmod(0o755)


def test_features_on_a_full_disk_print_one_line(toy, monkeypatch, capsys):
    def full(*a, **k): raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(S, "write_npz", full)
    assert S.features_main(str(toy.root), n_jobs=1) == 1
    err = [l.strip("\r ") for l in capsys.readouterr().err.replace("\r", "\n").splitlines() if l.strip() and "it/s" not in l]
    assert len(err) == 1 and err[0].startswith(f"cannot write in {toy.cache_dir / 'features'}/") and "(No space left" in err[0], err


# --- run records ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_run_record_means_the_notebooks_run_again(tmp_path, how, capfd):
    from music_vae_nb.core import write_json_checked
    from music_vae_nb.pipeline import RUNS_KEY, read_runs
    f = tmp_path / "runs" / "m21-vocal" / "abc.json"
    write_json_checked(f, {"runs": [{"name": "01_easy", "status": "ok"}]}, RUNS_KEY)
    assert read_runs(f, checked=True) == {"01_easy": {"name": "01_easy", "status": "ok"}}
    DAMAGE[how](f)
    assert read_runs(f, checked=True) == {}                          # nothing is reused: every notebook runs again
    one_warning(capfd.readouterr().err, f)
