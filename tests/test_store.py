"""Tests of music_vae_nb.store: feature sets, the train-fitted scaler and the cached feature store.

Fast: a toy dataset written to a temp folder (cold cache), and the quick m21-vocal dataset (its shared
cache: built once, then read).
"""
import sys, types
import numpy as np
import pandas as pd
import pytest

import music_vae_nb.store as S
from music_vae_nb.music import audio_music_feature_names, midi_music_feature_names
from music_vae_nb.features import has_text, TfidfEmbedder
from music_vae_nb.store import (available_feature_names, FeatureScaler, FeatureSet, compute_features, feature_summary,
                                toy_dataset)


# --- FeatureSet / FeatureScaler -----------------------------------------------------------------------
def test_featureset_take_aligns_by_id_and_names_missing():
    fs = FeatureSet("x", ["a", "b", "c"], np.arange(3)[:, None], [True, False, True])
    t = fs.take(["c", "a"])
    assert t.ids.tolist() == ["c", "a"] and t.X[:, 0].tolist() == [2, 0] and t.mask.tolist() == [True, True]
    with pytest.raises(KeyError, match="nope"):
        fs.take(["a", "nope"])


def test_scaler_fits_on_available_train_rows_and_keeps_masked_zero():
    fs = FeatureSet("x", list("abcd"), [[1.0], [3.0], [1000.0], [50.0]], [True, True, True, False])
    sc = FeatureScaler().fit(fs.take(["a", "b", "d"]))           # d is masked: ignored
    assert sc.mean_.tolist() == [2.0] and sc.scale_.tolist() == [1.0] and sc.n_fit_ == 2
    Z = sc.transform(fs)
    assert Z.X[:, 0].tolist() == [-1.0, 1.0, 998.0, 0.0]


# --- the store on a toy dataset (cold cache) ----------------------------------------------------------
@pytest.fixture()
def toy(tmp_path):
    return toy_dataset(tmp_path / "toy", n=8, corrupt=["t5"])


def _count_extract(monkeypatch):
    "Record the items extracted in this process (n_jobs=1 runs the executor locally)."
    calls = []
    real = S.extract_item
    def counting(item, group, params):
        calls.append((group, item[0])); return real(item, group, params)
    monkeypatch.setattr(S, "extract_item", counting)
    return calls


def test_store_masks_failures_and_records_them(toy):
    names = [n for n in available_feature_names() if n != "lyrics_minilm"]    # MiniLM: tested above and below
    feats = compute_features(toy, names, n_jobs=2, progress=False)
    assert list(feats) == names
    for n, fs in feats.items():
        assert fs.ids.tolist() == toy.ids("all").tolist(), n
        assert np.isfinite(fs.X).all() and (fs.X[~fs.mask] == 0).all(), n
    assert feats["audio"].mask.tolist() == [True] * 5 + [False] + [True] * 2     # corrupt t5: masked
    assert feats["midi"].mask.all()                                              # its MIDI is fine
    assert feats["lyrics_tfidf"].mask.tolist() == [True] * 7 + [False]          # empty text: missing, not zeros-as-data
    v = pd.read_csv(toy.root / "validation.csv", dtype=str)
    assert v.columns.tolist() == ["id", "file", "modality", "problem"]
    assert v[["id", "file", "modality"]].values.tolist() == [["t5", "audio/t5.wav", "audio"]]
    # the test-only word "zebra" is not in the vocabulary: test item t4 equals train item t0 ("low song")
    L = feats["lyrics_tfidf"].take(["t0", "t4"]).X
    np.testing.assert_allclose(L[0], L[1], atol=1e-5)


def test_store_second_call_is_a_cache_hit(toy, monkeypatch):
    compute_features(toy, n_jobs=1, progress=False)
    files = {f: f.stat().st_mtime_ns for f in (toy.cache_dir / "features").glob("*.npz")}
    assert len(files) == len(available_feature_names())
    calls = _count_extract(monkeypatch)
    again = compute_features(toy, n_jobs=1, progress=False)
    assert calls == [] and feature_summary(again).cached.tolist() == [True] * len(again)
    assert {f: f.stat().st_mtime_ns for f in (toy.cache_dir / "features").glob("*.npz")} == files
    assert len(pd.read_csv(toy.root / "validation.csv")) == 1                  # no duplicate problem rows


def test_parameter_change_invalidates_only_its_group(toy, monkeypatch):
    compute_features(toy, ["audio", "midi"], n_jobs=1, progress=False)
    calls = _count_extract(monkeypatch)
    out = compute_features(toy, ["audio", "midi"], n_jobs=1, progress=False, params={"audio": {"n_mfcc": 13}})
    assert out["audio"].stats["cached"] is False and out["midi"].stats["cached"] is True
    assert out["audio"].shape == (103,)
    assert {g for g, _ in calls} == {"audio"} and len(calls) == 8


def test_interrupted_run_resumes_missing_items_only(toy, monkeypatch):
    monkeypatch.setattr(S, "PART_SIZE", 2)
    real_run = S.run_items
    def interrupted(fn, items, n_jobs=-1, scheduler="processes", desc=None, progress=False):
        out = []
        for k, x in enumerate(items):
            if k == 2: raise KeyboardInterrupt                                   # after two chunks (their parts are written)
            out.append(fn(x))
        return out
    monkeypatch.setattr(S, "run_items", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compute_features(toy, ["midi"], n_jobs=1, progress=False)
    parts = list((toy.cache_dir / "features").glob("midi-*.parts/part-*.npz"))
    assert len(parts) == 2                                                       # 4 items written, the rest not started
    monkeypatch.setattr(S, "run_items", real_run)
    calls = _count_extract(monkeypatch)
    out = compute_features(toy, ["midi"], n_jobs=1, progress=False)
    assert sorted(i for _, i in calls) == ["t4", "t5", "t6", "t7"] and out["midi"].mask.all()
    assert not list((toy.cache_dir / "features").glob("midi-*.parts"))         # parts removed once assembled
    cold = compute_features(toy, ["midi"], n_jobs=1, progress=False, cache_dir=toy.root / "fresh")
    np.testing.assert_array_equal(out["midi"].X, cold["midi"].X)               # resumed == computed in one go


# --- the quick m21-vocal dataset ----------------------------------------------------------------------
def _quick():
    from music_vae_nb.datasets import load_dataset
    return load_dataset("m21-vocal", quick=True)


def test_quick_dataset_feature_sets():
    ds = _quick()
    feats = compute_features(ds, progress=False)          # shared cache: computed once, then read
    m = ds.manifest
    shapes = {"audio": (131,), "log_mel": (64, 128), "midi": (51,), "piano_roll": (64, 128), "lyrics_minilm": (384,),
              "midi_music": (len(midi_music_feature_names()),), "audio_music": (len(audio_music_feature_names()),)}
    for n, fs in feats.items():
        assert fs.ids.tolist() == ds.ids("all").tolist(), n
        assert np.isfinite(fs.X).all() and (fs.X[~fs.mask] == 0).all(), n
        if n in shapes: assert fs.shape == shapes[n], n
        col = {"audio": "has_audio", "log_mel": "has_audio", "audio_music": "has_audio", "midi": "has_midi",
               "piano_roll": "has_midi", "midi_music": "has_midi"}.get(n, "has_lyrics")
        assert not (fs.mask & ~m.loc[fs.ids, col].to_numpy(bool)).any(), n
    assert feats["audio"].mask.all() and feats["midi"].mask.all()
    assert 1 <= feats["lyrics_tfidf"].shape[0] <= 64
    np.testing.assert_array_equal(feats["lyrics_minilm"].mask, has_text(m.loc[feats["lyrics_minilm"].ids, "lyrics"].tolist())
                                  & m.loc[feats["lyrics_minilm"].ids, "has_lyrics"].to_numpy(bool))
    # TF-IDF vocabulary = training lyrics only: a word that only test items use is unknown
    train_txt = m.loc[ds.ids("train"), "lyrics"].tolist()
    te = TfidfEmbedder(**S.DEFAULT_PARAMS["lyrics_tfidf"]).fit(train_txt)
    an = te.vectorizer.build_analyzer()
    seen = {w for t in m.loc[m.split != "test", "lyrics"] for w in an(t)}
    only_test = {w for t in m.loc[ds.ids("test"), "lyrics"] for w in an(t)} - seen
    assert only_test and not (only_test & te.vocabulary)


def test_local_and_process_schedulers_agree(toy):
    a = compute_features(toy, ["midi_music", "audio_music"], n_jobs=2, progress=False, cache_dir=toy.root / "p")
    b = compute_features(toy, ["midi_music", "audio_music"], scheduler="local", progress=False, cache_dir=toy.root / "l")
    for n in a: np.testing.assert_array_equal(a[n].X, b[n].X); np.testing.assert_array_equal(a[n].mask, b[n].mask)


def test_transcribed_sets_use_the_transcription_table(toy, monkeypatch):
    "A stand-in `transcribe` module: items t0-t5 'transcribed' (to their score MIDI), t6 and t7 failed."
    def transcribe_dataset(ds, which="missing", cache_dir=None, n_jobs=-1, scheduler="processes", progress=True):
        ids = ds.ids("all").tolist()
        return pd.DataFrame({"id": ids, "midi_path": [str(ds.midi_file(i)) if i < "t6" else "" for i in ids],
                             "status": ["transcribed" if i < "t6" else "failed" for i in ids]})
    asked = []
    stub = types.SimpleNamespace(transcribe_dataset=lambda ds, which, **kw: asked.append(which) or transcribe_dataset(ds, which, **kw),
                                 has_basic_pitch=lambda: True, model_key=lambda: "stub")
    monkeypatch.setitem(sys.modules, "music_vae_nb.transcribe", stub)
    monkeypatch.setattr(sys.modules["music_vae_nb"], "transcribe", stub, raising=False)
    out = compute_features(toy, ["midi_transcribed_all", "midi_transcribed_all_music", "midi"], scheduler="local", progress=False)
    assert asked == ["all"]
    assert out["midi_transcribed_all"].mask.tolist() == [True] * 6 + [False] * 2
    np.testing.assert_array_equal(out["midi_transcribed_all"].X[:6], out["midi"].X[:6])   # same extractor, same files
    assert out["midi_transcribed_all_music"].shape == (len(midi_music_feature_names()),) and out["midi_transcribed_all_music"].n_available == 6
    assert not {"midi_transcribed", "midi_transcribed_all"} & set(available_feature_names())   # only on request
    compute_features(toy, ["midi_transcribed"], scheduler="local", progress=False)
    assert asked == ["all", "missing"]                                                  # the set's name says which
    keys = {S.cache_key(toy, g, S.resolve_params()[g]) for g in ("midi", "midi_transcribed", "midi_transcribed_all")}
    stub.model_key = lambda: "another model"
    assert len(keys) == 3 and S.cache_key(toy, "midi_transcribed", S.resolve_params()["midi_transcribed"]) not in keys
    assert S.cache_key(toy, "midi", S.resolve_params()["midi"]) in keys                 # the score's sets do not care


# --- modality_views ---------------------------------------------------------------------------------
def _without_midi(ds, root, ids):
    "A copy of `ds` (same files, absolute paths) where the items `ids` have no MIDI."
    from music_vae_nb.data import save_dataset
    m = ds.manifest.reset_index().drop(columns=["has_audio", "has_midi", "has_lyrics"])
    m["audio_path"] = [str(ds.root / p) for p in m.audio_path]
    m["midi_path"] = ["" if i in ids else str(ds.root / p) for i, p in zip(m.id, m.midi_path)]
    return save_dataset(root, m, ds.name, ds.labels, ds.primary_label)


def test_modality_views_full_none_some_and_modes(toy, tmp_path, monkeypatch, capsys):
    from music_vae_nb import transcribe as T
    monkeypatch.setattr(T, "has_basic_pitch", lambda: True)
    full, none = toy, _without_midi(toy, tmp_path / "none", toy.ids("all").tolist())
    some = _without_midi(toy, tmp_path / "some", ["t6", "t7"])
    base = {"audio": "audio", "log_mel": "log_mel", "lyrics": "lyrics_minilm"}
    assert S.modality_views(full, music=False) == {**base, "midi": "midi"}          # every item has MIDI: nothing to transcribe
    assert S.modality_views(none, music=False) == {**base, "midi_transcribed": "midi_transcribed"}
    assert S.modality_views(some, music=False) == {**base, "midi": "midi", "midi_transcribed": "midi_transcribed"}
    assert S.modality_views(some) == {**base, "midi": "midi", "midi_transcribed": "midi_transcribed", "audio_music": "audio_music",
                                      "midi_music": "midi_music", "midi_transcribed_music": "midi_transcribed_music"}
    assert "midi_transcribed" not in S.modality_views(some, transcribe="none")
    assert S.modality_views(full, transcribe="missing")["midi_transcribed"] == "midi_transcribed"
    v = S.modality_views(full, transcribe="all", lyrics="lyrics_tfidf")
    assert (v["midi_transcribed"], v["midi_transcribed_music"], v["lyrics"]) == ("midi_transcribed_all", "midi_transcribed_all_music", "lyrics_tfidf")
    with pytest.raises(ValueError, match="transcribe must be"): S.modality_views(full, transcribe="yes")
    assert capsys.readouterr().out == ""
    monkeypatch.setattr(T, "has_basic_pitch", lambda: False)                        # no basic-pitch:
    assert "midi_transcribed" not in S.modality_views(some)                         # auto: one line, no view
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "2 items have audio and no MIDI" in out[0] and "pip install" in out[0]
    assert S.modality_views(full) == S.modality_views(full, transcribe="none") and capsys.readouterr().out == ""
    for mode in ("missing", "all"):
        with pytest.raises(ImportError, match="basic-pitch"): S.modality_views(some, transcribe=mode)


def test_concat_sets_gives_each_block_equal_say():
    a = FeatureSet("a", ["x", "y"], [[3.], [-3.]], [True, True])
    b = FeatureSet("b", ["x", "y"], np.full((2, 2, 50), 3.), [False, True])
    c = S.concat_sets([a, b])
    assert (c.name, c.shape, c.mask.tolist()) == ("a+b", (101,), [True, True])
    np.testing.assert_allclose((c.X[1, :1] ** 2).sum(), (c.X[1, 1:] ** 2).sum(), rtol=1e-6)
    with pytest.raises(ValueError, match="aligned"):
        S.concat_sets([a, b.take(["y", "x"])])
