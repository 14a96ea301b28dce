"Tests of music_vae_nb.transcribe: audio to MIDI with basic-pitch (skipped when the `transcribe` extra is absent)."
from pathlib import Path

import numpy as np
import pandas as pd
import pretty_midi
import pytest
import soundfile as sf

from music_vae_nb import transcribe as T
from music_vae_nb.data import save_dataset

SF2 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")


@pytest.fixture(scope="module")
def bp():
    "basic-pitch and its runtime, or a clean skip."
    for m in ("basic_pitch", "onnxruntime", "mir_eval", "resampy"): pytest.importorskip(m)
    return T._basic_pitch()


def two_voice(seconds_per_beat: float = 0.5) -> pretty_midi.PrettyMIDI:
    "A melody (8 beats) over a bass line (4 notes of 2 beats), piano."
    pm = pretty_midi.PrettyMIDI(initial_tempo=60 / seconds_per_beat)
    for pitches, beats in (([72, 74, 76, 77, 79, 77, 76, 74], 1), ([48, 43, 45, 41], 2)):
        inst = pretty_midi.Instrument(program=0)
        for i, p in enumerate(pitches):
            t = i * beats * seconds_per_beat
            inst.notes.append(pretty_midi.Note(velocity=90, pitch=p, start=t, end=t + beats * seconds_per_beat * 0.9))
        pm.instruments.append(inst)
    return pm


@pytest.fixture(scope="module")
def rendered(bp):
    "The fixture's MIDI and its audio at 16 kHz, rendered through the General MIDI soundfont."
    if not SF2.exists(): pytest.skip(f"no soundfont at {SF2} (apt-get install fluid-soundfont-gm)")
    ref = two_voice()
    return ref, ref.fluidsynth(fs=16_000, synthesizer=str(SF2)).astype(np.float32)


def tiny_dataset(root: Path, rendered) -> "Dataset":
    "Four items: audio + MIDI, audio only, lyrics only, corrupt audio."
    ref, y = rendered
    root.mkdir(parents=True, exist_ok=True)
    sf.write(root / "fixture.wav", y, 16_000, subtype="FLOAT")
    sf.write(root / "other.wav", y[::-1].copy(), 16_000, subtype="FLOAT")
    (root / "broken.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(64)))
    ref.write(str(root / "fixture.mid"))
    man = pd.DataFrame({"id": ["both", "audio_only", "lyrics_only", "corrupt"], "group": list("abcd"),
                        "split": ["train", "train", "valid", "test"],
                        "audio_path": ["fixture.wav", "other.wav", "", "broken.wav"],
                        "midi_path": ["fixture.mid", "", "", ""], "lyrics": ["", "", "la la", ""], "label": list("xyxy")})
    return save_dataset(root, man, "tiny", ["label"], "label")


def test_two_voice_fixture_transcribes_back(rendered):
    ref, y = rendered
    est = T.transcribe_audio(y, 16_000)
    notes = T.note_array(est)
    assert {int(p) % 12 for p in notes[:, 2]} == {n.pitch % 12 for i in ref.instruments for n in i.notes}
    onsets = notes[:, 0]
    assert all(np.abs(onsets - n.start).min() <= 0.05 for i in ref.instruments for n in i.notes)
    assert [int(p) for p in notes[:, 2] if p < 55] == [48, 43, 45, 41]           # the bass line, in order
    a = T.transcription_agreement(ref, est)
    # measured here: note_f 0.88, onset_f 0.88, pitch-class overlap 0.89, 13 notes for 12
    assert a["note_f"] >= 0.75 and a["onset_f"] >= 0.75 and a["pitch_class_overlap"] >= 0.8, a
    assert a["n_ref"] == 12 and 10 <= a["n_est"] <= 15
    assert abs(a["onset_lag"]) <= 0.03, a                                       # a plucked sound is heard on time
    same = T.transcribe_audio(np.stack([y, y], axis=1), 16_000)                 # stereo is averaged; deterministic
    np.testing.assert_array_equal(T.note_array(same), notes)


def test_resampling_any_rate(rendered):
    ref, y = rendered
    import librosa
    y44 = librosa.resample(y, orig_sr=16_000, target_sr=44_100)
    a = T.transcription_agreement(ref, T.transcribe_audio(y44, 44_100))
    assert a["pitch_class_overlap"] >= 0.8 and a["onset_f"] >= 0.75, a


def test_agreement_known_values(bp):
    ref = two_voice()
    a = T.transcription_agreement(ref, ref)
    assert (a["note_f"], a["onset_f"], a["pitch_class_overlap"], a["n_ref"], a["n_est"]) == (1.0, 1.0, 1.0, 12, 12)
    up = two_voice()
    for i in up.instruments:
        for n in i.notes: n.pitch += 12
    b = T.transcription_agreement(ref, up)
    assert (b["note_f"], b["onset_f"], b["pitch_class_overlap"]) == (0.0, 1.0, 1.0)
    late = two_voice()
    for i in late.instruments:
        for n in i.notes: n.start += 0.08; n.end += 0.08
    c = T.transcription_agreement(ref, late)
    assert c["onset_f"] == 0.0                                                  # 80 ms is outside the 50 ms tolerance
    assert abs(c["onset_lag"] - 0.08) < 1e-6 and c["onset_f_lag_removed"] == 1.0  # a constant delay, told apart
    late.instruments[0].notes.insert(0, pretty_midi.Note(90, 61, 0.0, 0.02))   # moved back by the lag, it ends before 0 s
    assert T.transcription_agreement(ref, late)["onset_f_lag_removed"] == 1.0
    e = T.transcription_agreement(ref, pretty_midi.PrettyMIDI())
    assert (e["n_est"], e["note_f"], e["pitch_class_overlap"]) == (0, 0.0, 0.0) and np.isnan(e["onset_lag"])


def test_item_without_midi_gets_a_transcribed_row_and_cache_is_reused(rendered, tmp_path, monkeypatch):
    ds = tiny_dataset(tmp_path / "tiny", rendered)
    t = T.transcribe_dataset(ds, scheduler="local", progress=False).set_index("id")
    assert list(t.index) == ["audio_only", "lyrics_only", "corrupt"]             # items without MIDI only
    assert t.status["audio_only"] == "transcribed" and t.status["lyrics_only"] == "no audio"
    out = Path(t.midi_path["audio_only"])
    assert out.parent == ds.cache_dir / "transcribed" and out.name.endswith(f".{T.model_key()}.mid")
    assert len(T.note_array(pretty_midi.PrettyMIDI(str(out)))) > 5
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]        # no temp file left behind

    calls = []
    monkeypatch.setattr(T, "transcribe_audio", lambda y, sr: calls.append(1) or pretty_midi.PrettyMIDI())
    t2 = T.transcribe_dataset(ds, scheduler="local", progress=False).set_index("id")
    assert calls == [] and t2.status["audio_only"] == "cached" and t2.midi_path["audio_only"] == str(out)

    out.unlink()                                                                 # an interrupted run resumes
    t3 = T.transcribe_dataset(ds, scheduler="local", progress=False).set_index("id")
    assert len(calls) == 1 and t3.status["audio_only"] == "transcribed" and out.exists()


def test_same_audio_content_is_transcribed_once(rendered, tmp_path, monkeypatch):
    ds = tiny_dataset(tmp_path / "tiny", rendered)
    (tmp_path / "tiny" / "copy.wav").write_bytes((tmp_path / "tiny" / "fixture.wav").read_bytes())
    m = ds.manifest.copy(); m.loc["audio_only", "audio_path"] = "copy.wav"
    ds = save_dataset(tmp_path / "tiny", m, "tiny", ["label"], "label")
    calls, real = [], T.transcribe_audio
    monkeypatch.setattr(T, "transcribe_audio", lambda y, sr: calls.append(1) or real(y, sr))
    t = T.transcribe_dataset(ds, which="all", scheduler="local", progress=False, ids=["both", "audio_only"])
    assert len(calls) == 1 and list(t.status) == ["transcribed", "transcribed"] and t.midi_path[0] == t.midi_path[1]


def test_which_all_and_processes(rendered, tmp_path):
    ds = tiny_dataset(tmp_path / "tiny", rendered)
    t = T.transcribe_dataset(ds, which="all", cache_dir=tmp_path / "cache", n_jobs=2, scheduler="processes",
                             progress=False)
    assert list(t.id) == ["both", "audio_only", "lyrics_only", "corrupt"]
    assert list(t.status.str.split(":").str[0]) == ["transcribed", "transcribed", "no audio", "cannot decode"]
    assert all(Path(p).parent == tmp_path / "cache" for p in t.midi_path[:2])
    q = T.dataset_agreement(ds, cache_dir=tmp_path / "cache", scheduler="local", progress=False)
    assert list(q.id) == ["both"] and q.n_ref[0] == 12 and q.note_f[0] >= 0.75
    with pytest.raises(ValueError, match="which"): T.transcribe_dataset(ds, which="given")


def test_corrupt_audio_gives_one_line_and_no_crash(rendered, tmp_path, capsys):
    ds = tiny_dataset(tmp_path / "tiny", rendered)
    t = T.transcribe_dataset(ds, scheduler="local", progress=False).set_index("id")
    assert t.status["corrupt"].startswith("cannot decode: WAV audio") and t.midi_path["corrupt"] == ""
    err = [l for l in capsys.readouterr().err.splitlines() if l.startswith("transcribe:")]
    assert err == [f"transcribe: corrupt: {t.status['corrupt']}"]
    with pytest.raises(T.TranscriptionError) as e: T.transcribe_file(tmp_path / "tiny" / "broken.wav")
    assert "broken.wav" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(T.TranscriptionError, match="file not found"): T.transcribe_file(tmp_path / "nope.wav")


def test_silent_audio_is_no_notes(bp):
    pm = T.transcribe_audio(np.zeros(16_000, np.float32), 16_000)
    assert len(T.note_array(pm)) == 0


def test_without_basic_pitch_one_line_and_skip(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(T, "has_basic_pitch", lambda: False)
    man = pd.DataFrame({"id": ["a", "b"], "group": ["a", "b"], "split": ["train", "test"],
                        "audio_path": ["a.wav", "b.wav"], "label": ["x", "y"]})
    ds = save_dataset(tmp_path / "d", man, "d", ["label"], "label")
    t = T.transcribe_dataset(ds, progress=False)
    assert list(t.status) == ["basic-pitch not installed"] * 2 and list(t.midi_path) == ["", ""]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install" in err[0] and "--no-deps basic-pitch" in err[0]
    with pytest.raises(ImportError, match="no-deps basic-pitch"): T.transcribe_audio(np.zeros(100), 16_000)


def test_item_without_midi_gets_midi_transcribed_through_the_store(rendered, tmp_path):
    "modality_views + compute_features, with the real model: the audio-only item gets `midi_transcribed` and its mask."
    from music_vae_nb.store import compute_features, modality_views
    ds = tiny_dataset(tmp_path / "tiny", rendered)                               # both, audio_only, lyrics_only, corrupt
    views = modality_views(ds)
    assert views["midi"] == "midi" and views["midi_transcribed"] == "midi_transcribed"
    feats = compute_features(ds, list(views.values()), scheduler="local", progress=False)
    assert feats["midi"].mask.tolist() == [True, False, False, False]
    assert feats["midi_transcribed"].mask.tolist() == [False, True, False, False]        # given and transcribed: disjoint
    assert feats["midi_transcribed_music"].mask.tolist() == [False, True, False, False]
    assert feats["midi_transcribed"].X[1].any() and not feats["midi_transcribed"].X[[0, 2, 3]].any()
    every = compute_features(ds, [modality_views(ds, transcribe="all")["midi_transcribed"]], scheduler="local", progress=False)
    assert every["midi_transcribed_all"].mask.tolist() == [True, True, False, False]
    np.testing.assert_array_equal(every["midi_transcribed_all"].X[1], feats["midi_transcribed"].X[1])   # same transcription
