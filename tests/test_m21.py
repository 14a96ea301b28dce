"Tests of music_vae_nb.m21: the built-in m21-vocal corpus (quick build) and its helpers."
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pretty_midi
import pytest
import soundfile as sf

from music_vae_nb import m21
from music_vae_nb.data import load_dataset, read_dataset


@pytest.fixture(scope="module")
def quick():
    "The quick corpus as every quick notebook sees it (built once under a lock, then cached)."
    return load_dataset("m21-vocal", quick=True)


def test_quick_counts_and_labels(quick):
    m = quick.manifest
    assert quick.name == "m21-vocal-quick" and quick.primary_label == "collection"
    assert quick.labels == ["collection", "mode", "meter", "language"]
    counts = m.collection.value_counts()
    assert set(counts.index) == {"bach", "trecento", "monteverdi"} and counts.min() > 0
    assert 24 <= len(m) <= 60
    assert m.index.is_unique
    assert set(m["mode"]) <= {"major", "minor"} and set(m.meter) <= {"duple", "triple"}
    assert set(m.language) <= {"de", "it", "la"}
    assert (m.loc[m.collection == "bach", "language"] == "de").all()
    assert (m.loc[m.collection == "bach", "mode_source"] == "encoded").all()
    assert (m.loc[m.collection != "bach", "mode_source"] == "analysis").all()
    assert m.has_audio.all() and m.has_midi.all() and m.has_lyrics.mean() > 0.8
    info = json.loads((Path(quick.root) / "dataset.json").read_text())
    assert info["audio_source"] in ("fluidsynth:FluidR3_GM.sf2", "sine") or info["audio_source"].startswith("fluidsynth:")
    assert info["tempo_qpm"] == m21.TEMPO_QPM and info["clip_seconds"] == 30.0


def test_quick_splits_by_work(quick):
    m = quick.manifest
    assert m.groupby("group").split.nunique().max() == 1          # no work on both sides
    assert set(m.split) == {"train", "valid", "test"}
    for c in ["bach", "trecento", "monteverdi"]:
        assert "test" in set(m.loc[m.collection == c, "split"])
    assert sorted(np.concatenate([quick.ids(s) for s in ["train", "valid", "test"]])) == sorted(quick.ids())


def test_quick_clips_are_30s_16k(quick):
    for i in quick.ids():
        info = sf.info(str(quick.audio_file(i)))
        assert (info.samplerate, info.channels, info.frames) == (16_000, 1, 480_000)
    i = quick.ids("test")[0]
    y, sr = sf.read(str(quick.audio_file(i)))
    assert 0.5 < np.abs(y).max() <= 1.0
    pm = pretty_midi.PrettyMIDI(str(quick.midi_file(i)))
    assert {inst.program for inst in pm.instruments} == {m21.GM_PROGRAM}
    assert 0 < pm.get_end_time() <= 30.0 + 1e-6


def test_ids_name_their_work(quick):
    m = quick.manifest
    for i, g in m.group.items():
        assert i.startswith(g + ".") and i.split(".")[0] == m.loc[i, "collection"]
    report = pd.read_csv(Path(quick.root) / "build_report.csv", keep_default_na=False)
    assert len(report) == sum(m21.QUICK_WORKS.values())
    assert set(report.loc[report.clips == 0, "skipped"]) <= {"no lyrics", "shorter than one clip"}
    assert (Path(quick.root) / "validation.csv").exists()


def test_resume_rebuilds_only_missing_work(quick, tmp_path):
    out = tmp_path / "q"
    shutil.copytree(quick.root, out, ignore=shutil.ignore_patterns("cache"))
    works = sorted((out / "works").glob("*.json"))
    gone = next(w for w in works if json.loads(w.read_text())["clips"])
    before = {w.name: w.stat().st_mtime_ns for w in works if w != gone}
    gone.unlink(); (out / "manifest.csv").unlink()
    ds = m21.build_m21_vocal(out, quick=True, n_jobs=1, progress=False)
    assert gone.exists()
    assert {w.name: w.stat().st_mtime_ns for w in works if w != gone} == before    # nothing else redone
    pd.testing.assert_frame_equal(ds.manifest, read_dataset(quick.root).manifest)


def test_lyrics_join_and_clean():
    assert m21.join_syllables([("Lo", "begin"), ("be", "end"), ("den", "single"), ("Herrn", "single")]) == "Lobe den Herrn"
    assert m21.join_syllables([("gio\xadvi\xad", "single"), ("net\xad", "single"), ("ta", "single")]) == "giovinetta"
    assert m21.join_syllables([("(1.)", "single"), ("[Ky]", "begin"), ("ri", "middle"), ("e", "end")]) == "Kyrie"
    assert m21.clean_syllable("‿udei:") == "udei:"
    assert m21.guess_language("Kyrie eleison Christe eleison et in terra pax") == "la"


def test_meter_and_clip_counts():
    assert [m21.meter_of(t) for t in ["2/2", "3/4", "6/8", "9/8", "12/8", "3/2"]] == \
           ["duple", "triple", "duple", "triple", "duple", "triple"]
    q_per_clip = m21.CLIP_SECONDS * m21.TEMPO_QPM / 60
    assert m21.n_clips(q_per_clip * 2.5) == 2 and m21.n_clips(q_per_clip - 0.5) == 0
    assert m21.n_clips(q_per_clip * 100) == m21.MAX_CLIPS_PER_WORK


def test_render_is_deterministic_and_exact_length():
    pm = m21.clip_to_midi([np.array([[0.0, 1.0, 60], [1.0, 2.0, 67]])])
    a = m21.render_audio(pm, seconds=2.5)
    m21.render_audio(m21.clip_to_midi([np.array([[0.0, 2.0, 50]])]), seconds=1.3)
    b = m21.render_audio(pm, seconds=2.5)
    assert a.shape == (40_000,) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    s = m21.render_audio(pm, seconds=2.5, source="sine")
    assert s.shape == (40_000,) and abs(np.abs(s).max() - 0.9) < 1e-4


def test_build_work_skips_bad_input(tmp_path):
    bad = tmp_path / "bach" / "broken.mxl"; bad.parent.mkdir(); bad.write_bytes(b"not a score")
    rec = m21.build_work(bad, tmp_path / "out", m21.build_params())
    assert rec["clips"] == [] and rec["skipped"].startswith("error:")
    assert json.loads((tmp_path / "out" / "works" / "bach.broken.json").read_text())["skipped"] == rec["skipped"]
