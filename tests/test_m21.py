"Tests of music_vae_nb.m21: the built-in m21-vocal corpus (quick build), its content grouping and its helpers."
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pretty_midi
import pytest
import soundfile as sf

from music_vae_nb import m21
from music_vae_nb.data import builtin_root, group_split, read_dataset

SEEDS = range(5)


@pytest.fixture(scope="module")
def quick():
    "The quick corpus as every quick notebook sees it (built once under a lock, then cached)."
    return read_dataset(m21.build_default(quick=True, n_jobs=1))


def split_of(ds, seed):
    "Split name per id of `ds`'s group split drawn with `seed` (seed 0: the manifest's)."
    if hasattr(ds, "split_ids"):
        return pd.concat([pd.Series(k, index=v) for k, v in ds.split_ids(seed).items() if k != "all"]).reindex(ds.manifest.index)
    return pd.Series(group_split(ds.manifest.group, ds.manifest.collection, seed=seed), index=ds.manifest.index)


def test_quick_counts_and_labels(quick):
    m = quick.manifest
    assert quick.name == "m21-vocal-quick" and quick.primary_label == "collection"
    assert quick.labels == ["collection", "mode", "meter", "language"]
    counts = m.collection.value_counts()
    assert set(counts.index) == {"bach", "trecento", "monteverdi"} and counts.min() > 0
    assert 24 <= len(m) <= 60
    assert m.index.is_unique
    assert set(m["mode"]) == {"major", "minor"} and set(m.meter) == {"duple", "triple"}
    assert set(m.language) <= {"de", "it", "la"}
    assert (m.loc[m.collection == "bach", "language"] == "de").all()
    assert (m.loc[m.collection == "bach", "mode_source"] == "encoded").all()
    assert (m.loc[m.collection != "bach", "mode_source"] == "analysis").all()
    assert m.has_audio.all() and m.has_midi.all() and m.has_lyrics.mean() > 0.8
    info = json.loads((Path(quick.root) / "dataset.json").read_text())
    assert info["audio_source"] == "sine" or info["audio_source"].startswith("fluidsynth:")
    assert info["tempo_qpm"] == m21.TEMPO_QPM and info["clip_seconds"] == 30.0
    assert set(info["label_sources"]) == set(quick.labels) and "declared time signature" in info["label_sources"]["meter"]
    assert info["labels_declared_in_midi"] == ["meter", "mode"]
    d = info["dedup"]
    assert d["works_read"] == sum(m21.QUICK_WORKS.values()) == d["works_kept"] + d["works_dropped"]
    assert d["groups"] == m.group.nunique() and info["n_works"] == m.work.nunique() == d["works_kept"]


def test_quick_splits_by_group(quick):
    m = quick.manifest
    assert m.groupby("group").split.nunique().max() == 1          # no group on both sides
    assert set(m.split) == {"train", "valid", "test"}
    for c in ["bach", "trecento", "monteverdi"]:
        assert "test" in set(m.loc[m.collection == c, "split"])
    assert sorted(np.concatenate([quick.ids(s) for s in ["train", "valid", "test"]])) == sorted(quick.ids())


def test_quick_has_no_leak_for_any_seed(quick):
    keys = m21.leak_keys(quick.manifest)
    assert (keys[["score_hash", "tune_hash", "text_hash", "clip_hash"]] != "").all().all()
    for seed in SEEDS:
        leaks = m21.split_leaks(keys, split_of(quick, seed))
        assert leaks.empty, leaks


def test_full_corpus_has_no_leak_for_any_seed():
    "The full corpus (when built): no note hash, tune, text, clip lyrics or base name on two sides, for several seeds."
    root = builtin_root("m21-vocal")
    if not m21.is_built(root): pytest.skip("full m21-vocal not built")
    ds = read_dataset(root)
    keys = m21.leak_keys(ds.manifest)
    for seed in SEEDS:
        leaks = m21.split_leaks(keys, split_of(ds, seed))
        assert leaks.empty, leaks.head()
    rep = pd.read_csv(Path(root) / "build_report.csv", keep_default_na=False).set_index("work")
    assert rep.loc["monteverdi.madrigal.3.1-old", "action"] == "dropped"
    assert rep.loc["trecento.pmfc-12-4-gloria-rvat-1419-bak", "reason"] == "duplicate of trecento.pmfc-12-4-gloria-rvat-1419"
    for a, b in [("bach.bwv18.5-lz", "bach.bwv18.5-w"), ("bach.bwv244.44", "bach.bwv244.15"), ("bach.bwv244.54", "bach.bwv270")]:
        assert rep.loc[a, "group"] == rep.loc[b, "group"] != ""
    assert "shares tune with bach.bwv244.44" in rep.loc["bach.bwv244.15", "reason"]
    naive = [m21.split_leaks(keys, group_split(ds.manifest.work, ds.manifest.collection, seed=s)) for s in SEEDS]
    assert all(len(l) > 0 for l in naive)                       # one group per work would leak


def clip_midi(ds, i, r):
    "The clip MIDI of item `i` (manifest row `r`), after checking it declares the score's time signature at 0 and its tempo."
    pm = pretty_midi.PrettyMIDI(str(ds.midi_file(i)))
    ts = pm.time_signature_changes[0]
    assert (ts.time, f"{ts.numerator}/{ts.denominator}") == (0.0, r.time_signature), i
    assert abs(pm.get_tempo_changes()[1][0] - float(r.tempo_qpm)) < 1e-3
    return pm


def test_clip_midi_declares_score_signatures(quick):
    m = quick.manifest
    for i, r in m.iterrows():
        pm = clip_midi(quick, i, r)
        if r.collection == "bach":                                 # the encoded key is the declared key
            assert m21.key_number(*_sharps_mode(r.key)) == pm.key_signature_changes[0].key_number, (i, r.key)
    assert {"3/4", "4/4"} <= set(m.time_signature)


def _sharps_mode(key: str):
    "Sharps and mode of a key name such as 'G minor' or 'B- major'."
    from music21 import key as m21key
    tonic, mode = key.split()
    return m21key.Key(tonic, mode).sharps, mode


def test_three_four_score_reads_back_as_three_four(tmp_path):
    path = m21.corpus_root() / "bach" / "bwv122.6.mxl"
    rec = m21.build_work(path, tmp_path, {**m21.build_params(), "max_clips": 1})
    c = rec["clips"][0]
    pm = pretty_midi.PrettyMIDI(str(tmp_path / c["midi_path"]))
    assert [(t.numerator, t.denominator) for t in pm.time_signature_changes] == [(3, 4)]
    assert pretty_midi.key_number_to_key_name(pm.key_signature_changes[0].key_number) == "G minor" == c["key"]
    assert c["meter"] == "triple"


def test_ids_name_their_work(quick):
    m = quick.manifest
    for i, w in m.work.items():
        assert i.startswith(w + ".") and i.split(".")[0] == m.loc[i, "collection"]
    report = pd.read_csv(Path(quick.root) / "build_report.csv", keep_default_na=False)
    assert len(report) == sum(m21.QUICK_WORKS.values())
    assert set(report.action) <= {"kept", "merged", "dropped"}
    reasons = set(report.loc[report.action == "dropped", "reason"])
    assert all(r in ("no lyrics", "too short") or r.startswith(("old copy of ", "duplicate of ")) for r in reasons), reasons
    assert (report.loc[report.action != "dropped", "group"] != "").all()
    assert (Path(quick.root) / "validation.csv").exists()


def _write_score(path, pitches, words, ts="4/4"):
    "A one-part MusicXML score of quarter notes `pitches`, one word of `words` per note (cycled; none when empty)."
    from music21 import key, meter, note, stream
    p = stream.Part(); p.append(meter.TimeSignature(ts)); p.append(key.Key("C"))
    for i, midi in enumerate(pitches):
        n = note.Note(int(midi), quarterLength=1)
        if words: n.lyric = words[i % len(words)]
        p.append(n)
    s = stream.Score(); s.insert(0, p)
    path.parent.mkdir(parents=True, exist_ok=True); s.write("musicxml", fp=str(path))
    return path


def test_synthetic_corpus_duplicates_are_dropped_or_grouped(tmp_path):
    "Transposed copy, `_old` copy, re-texted copy and shared text: dropped or merged, and no split leaks them."
    rng = np.random.default_rng(0)
    tune = 60 + np.cumsum(rng.choice([-2, -1, 1, 2], 40)).clip(-10, 10)
    other = 64 + np.cumsum(rng.choice([-3, -1, 1, 3], 40)).clip(-10, 10)
    third = 57 + np.cumsum(rng.choice([-2, 2, 4, -4], 40)).clip(-8, 8)
    text1, text2, text3 = "Lobe den Herren den mächtigen König".split(), "Nun danket alle Gott".split(), "Ach Gott vom Himmel".split()
    d = tmp_path / "corpus" / "bach"
    works = [_write_score(d / "bwv900.1.xml", tune, text1),
             _write_score(d / "bwv900.1_old.xml", tune, text1),           # backup copy
             _write_score(d / "bwv900.2.xml", tune + 5, text1),           # transposed copy
             _write_score(d / "bwv901.xml", tune - 3, text2),             # same music, other text
             _write_score(d / "bwv902.xml", other, text1, "3/4"),         # same text, other tune
             _write_score(d / "bwv903.xml", third, text3),                # unrelated
             _write_score(d / "bwv904.xml", third + 2, [])]               # no lyrics
    ds = m21.build_m21_vocal(tmp_path / "out", n_jobs=1, progress=False, works=works)
    rep = pd.read_csv(tmp_path / "out" / "build_report.csv", keep_default_na=False).set_index("work")
    assert rep.loc["bach.bwv900.1-old", ["action", "reason"]].tolist() == ["dropped", "duplicate of bach.bwv900.1"]
    assert rep.loc["bach.bwv900.2", ["action", "reason"]].tolist() == ["dropped", "duplicate of bach.bwv900.1"]
    assert rep.loc["bach.bwv904", "reason"] == "no lyrics"
    assert "same music as bach.bwv900.1" in rep.loc["bach.bwv901", "reason"]
    assert "shares tune with bach.bwv900.1" in rep.loc["bach.bwv901", "reason"]
    assert "shares text with bach.bwv900.1" in rep.loc["bach.bwv902", "reason"]
    out = tmp_path / "out"
    assert not (out / "midi" / "bach.bwv900.2.00.mid").exists() and not (out / "audio" / "bach.bwv900.1-old.00.ogg").exists()
    assert (out / "works" / "bach.bwv900.2.json").exists() and (out / "midi" / "bach.bwv901.00.mid").exists()
    m = ds.manifest
    assert sorted(m.work.unique()) == ["bach.bwv900.1", "bach.bwv901", "bach.bwv902", "bach.bwv903"]
    assert m.groupby("work").group.first().to_dict() == {"bach.bwv900.1": "bach.bwv900.1", "bach.bwv901": "bach.bwv900.1",
                                                          "bach.bwv902": "bach.bwv900.1", "bach.bwv903": "bach.bwv903"}
    assert m.loc[m.work == "bach.bwv902", "meter"].eq("triple").all()
    keys = m21.leak_keys(m)
    for seed in SEEDS:
        assert m21.split_leaks(keys, group_split(m.group, m.collection, seed=seed)).empty
    naive = [m21.split_leaks(keys, group_split(m.work, m.collection, seed=s)) for s in SEEDS]
    assert all(len(l) > 0 for l in naive)                        # the checker sees the leak the old grouping made
    info = json.loads((tmp_path / "out" / "dataset.json").read_text())["dedup"]
    assert info["dropped"] == {"duplicate of": 2, "no lyrics": 1} and info["works_merged"] == 3 and info["groups"] == 2


def test_resume_rebuilds_only_missing_work(quick, tmp_path):
    out = tmp_path / "q"
    shutil.copytree(quick.root, out, ignore=shutil.ignore_patterns("cache"))
    works = sorted((out / "works").glob("*.json"))
    used = set(quick.manifest.work)
    gone = next(w for w in works if json.loads(w.read_text())["clips"] and w.stem in used)
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


# ---- the development panel: the other built-in corpora (quick builds) ----
PANEL = ["essen-folk", "string-quartets"]
CLASSES = {"essen-folk": {"region": {"china", "germany", "ireland", "lorraine", "luxembourg"},
                          "collection": {"erk", "han", "irl", "lot", "lux"}},
           "string-quartets": {"composer": {"beethoven", "haydn", "mozart", "schumann"}}}


@pytest.fixture(scope="module", params=PANEL)
def panel(request):
    "A quick panel corpus (built once under a lock, then cached)."
    return read_dataset(m21.build_default(quick=True, n_jobs=1, name=request.param))


def test_panel_labels_and_their_sources(panel):
    spec, m = m21.CORPORA[panel.name[: -len("-quick")]], panel.manifest
    assert panel.labels == list(spec.labels) and panel.primary_label == spec.primary_label
    for label, classes in CLASSES[spec.name].items():
        assert set(m[label]) == classes, label                                   # every class of the path-derived labels
    assert set(m.meter_class) <= {"simple-duple", "simple-triple", "compound"} and m.meter_class.nunique() >= 2
    assert set(m["mode"]) <= {"major", "minor", "modal"} and m["mode"].nunique() >= 2
    assert set(m.mode_source) <= {"declared", "third above the tonic", "analysis"}
    assert m.has_audio.all() and m.has_midi.all() and not m.has_lyrics.any()
    info = json.loads((Path(panel.root) / "dataset.json").read_text())
    assert set(info["label_sources"]) == set(panel.labels)
    assert "declared time signature" in info["label_sources"]["meter_class"] and "meter_class" in info["labels_declared_in_midi"]
    assert info["clip_seconds"] == 20.0 and info["sample_rate"] == 16_000 and info["reserved_collections"] == ["ryansMammoth", "oneills1850"]
    if spec.name == "essen-folk":
        assert info["label_relations"] == {"region": "coarsening of collection (each collection lies in one region)"}
        assert (m.groupby("collection").region.nunique() == 1).all()
        assert "third above the tonic" in set(m.mode_source)
    else:
        assert (m.mode_source == "declared").all() and m.groupby("work").size().max() <= 2
        assert (m.groupby("work").tempo_qpm.nunique() == 1).all()                    # one tempo per movement


def test_panel_has_no_reserved_collection(panel, tmp_path):
    m = panel.manifest
    for c in m21.RESERVED_COLLECTIONS:
        assert not m.source.str.contains(c, case=False).any() and not m.work.str.contains(c, case=False).any()
    reserved = [m21.TuneRef(m21.corpus_root() / "ryansMammoth" / "any.abc", 1)]        # never read: refused by name
    with pytest.raises(ValueError, match="reserved"):
        m21.build_corpus(m21.ESSEN_FOLK, tmp_path / "x", works=reserved, n_jobs=1, progress=False)
    bad = m21.CorpusSpec(**{**m21.asdict(m21.ESSEN_FOLK), "sources": ("essenFolksong", "oneills1850")})
    with pytest.raises(ValueError, match="reserved"): m21.corpus_works(bad)
    assert not (tmp_path / "x").exists()                                         # refused before anything was written


def test_full_panel_manifests_have_no_reserved_item():
    "Every built corpus (quick or full): no item from a reserved collection."
    roots = [r for n in m21.CORPORA for q in (True, False) if m21.is_built(r := builtin_root(n, q))]
    if not roots: pytest.skip("no panel corpus built")
    for r in roots:
        m = read_dataset(r).manifest
        for c in m21.RESERVED_COLLECTIONS: assert not m.source.str.contains(c, case=False).any(), (r, c)


def test_panel_groups_never_split(panel):
    m = panel.manifest
    assert m.groupby("group").split.nunique().max() == 1 and set(m.split) == {"train", "valid", "test"}
    keys = m21.leak_keys(m)
    for seed in SEEDS:
        assert m21.split_leaks(keys, split_of(panel, seed)).empty


def test_panel_clip_midi_declares_time_signature_tempo_and_one_program(panel):
    m = panel.manifest
    for i, r in m.iterrows():
        pm = clip_midi(panel, i, r)
        if float(r.start_s) == 0: assert abs(float(r.tempo_qpm) - float(r.tempo_bpm) * m21.beat_quarters(r.time_signature)) < 1e-2
        assert {inst.program for inst in pm.instruments} == {int(r.program)}
        assert m21.meter_class(r.time_signature) == r.meter_class
        assert sf.info(panel.audio_file(i)).duration == pytest.approx(20.0)


def test_panel_instrument_and_tempo_come_from_ids_alone(panel):
    "The tempo is drawn from the work id, the instrument from the clip id (and the spec's seed): neither can depend on a label."
    spec, m = m21.CORPORA[panel.name[: -len("-quick")]], panel.manifest
    for i, r in m.iterrows():
        assert float(r.tempo_bpm) == m21.rendering_choice(r.work, spec.programs, spec.tempo_bpm, spec.seed)[1]
        assert int(r.program) == m21.rendering_choice(i, spec.programs, spec.tempo_bpm, spec.seed)[0]
    assert m.groupby("work").tempo_bpm.nunique().max() == 1
    assert m.instrument.nunique() >= 3 and m.tempo_bpm.astype(float).between(*spec.tempo_bpm).all()


def test_full_panel_instruments_independent_of_labels():
    "Full builds (when present): every class of every label hears several instruments; no label/instrument association."
    from scipy.stats import chi2_contingency
    built = [n for n in ("essen-folk", "string-quartets") if m21.is_built(builtin_root(n))]
    if not built: pytest.skip("no full panel corpus built")
    for n in built:
        m = read_dataset(builtin_root(n)).manifest
        for label in read_dataset(builtin_root(n)).labels:
            tab = pd.crosstab(m[label], m.instrument)
            big = tab[tab.sum(1) >= 20]
            if len(big) < 2: continue
            assert (big.gt(0).sum(1) >= 4).all(), (n, label, tab)
            assert chi2_contingency(big)[1] > 0.001, (n, label, tab)


def test_essen_tune_with_pickup_falls_on_its_bar_lines(tmp_path):
    "erk10 X:1 starts with a one-eighth pickup in 2/4: the clip's first note sits 1.5 quarters after the bar line."
    tune = m21.abc_tunes(m21.corpus_root() / "essenFolksong" / "erk10.abc")[0]
    rec = m21.build_work(tune, tmp_path, m21.corpus_params(m21.ESSEN_FOLK))
    c = rec["clips"][0]
    pm = pretty_midi.PrettyMIDI(str(tmp_path / c["midi_path"]))
    first = min(n.start for i in pm.instruments for n in i.notes)
    assert first == pytest.approx(1.5 * 60 / c["tempo_qpm"], abs=1e-3) and c["meter_class"] == "simple-duple"
    assert pm.get_end_time() > 19                                                  # repeated to fill 20 s


def test_m21_vocal_build_is_unchanged():
    assert m21.corpus_params(m21.M21_VOCAL) == m21.build_params() and m21.corpus_params(m21.M21_VOCAL, True) == m21.build_params(True)
    assert m21.corpus_works(m21.M21_VOCAL, quick=True) == m21.candidate_works(quick=True)
