"Tests of music_vae_nb.data (manifest, splits, readers of the user layouts, validation), loaded through music_vae_nb.datasets."
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pretty_midi
import pytest
import soundfile as sf

from music_vae_nb import data as D
from music_vae_nb import datasets as DS
from music_vae_nb.fixtures import tone as _tone, toy_midi

SR = 8_000


def tone(freq, seconds=0.5, amp=0.3):
    return _tone(freq, seconds, SR, amp)


def peak_freq(path):
    y, sr = sf.read(str(path))
    return np.fft.rfftfreq(len(y), 1 / sr)[np.abs(np.fft.rfft(y)).argmax()]


def write_midi(path, notes=True):
    toy_midi([[(60, 0, 1)] if notes else []], program=0).write(str(path))


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    "Datasets derived from user data go to a temp data dir, never the project's."
    monkeypatch.setenv("MUSIC_VAE_DATA", str(tmp_path / "datahome"))


# ---------------------------------------------------------------- layout 1: track CSV + audio folder
GENRES = {"Alpha": "rock", "Beta": "jazz", "Gamma": "pop", "Delta": "rock", "Epsilon": "folk",
          "Zeta": "jazz", "Eta": "pop", "Theta": "folk"}


def tracks_layout(d: Path, seed: int) -> Path:
    "Each track's audio is a tone whose frequency encodes the track; rows and files written in a seeded order."
    rng = random.Random(seed)
    (d / "audio").mkdir(parents=True)
    names = list(GENRES); rng.shuffle(names)
    rows = [dict(track_name=n, lyrics=f"words of {n.lower()}", playlist_genre=GENRES[n]) for n in names]
    rows += [dict(track_name="Dup", lyrics="one", playlist_genre="rock"), dict(track_name="Dup", lyrics="two", playlist_genre="pop"),
             dict(track_name="NoLabel", lyrics="no label here", playlist_genre=""),
             dict(track_name="Punct", lyrics="?!... --", playlist_genre="pop"),
             dict(track_name="Lost", lyrics="lost song words", playlist_genre="jazz")]
    rng.shuffle(rows)
    pd.DataFrame(rows).to_csv(d / "tracks.csv", index=False)
    files = [n for n in GENRES] + ["Dup", "NoLabel", "Punct"]
    rng.shuffle(files)
    for n in files:
        f = 200 + 100 * (list(GENRES).index(n) if n in GENRES else 9)
        sf.write(d / "audio" / f"{n.lower()}.wav", tone(f), SR)
    sf.write(d / "audio" / "stray.wav", tone(150), SR)
    return d


def test_tracks_layout_matches_by_name_and_reports(tmp_path):
    ds = DS.load_dataset(tracks_layout(tmp_path / "t", seed=0))
    m = ds.manifest
    assert sorted(m.index) == sorted([*GENRES, "Punct", "Lost"])
    assert m["playlist_genre"].drop(["Punct", "Lost"]).to_dict() == GENRES
    for n in GENRES:                                        # each track's own audio, whatever the order
        assert peak_freq(ds.audio_file(n)) == pytest.approx(200 + 100 * list(GENRES).index(n), abs=3)
    assert (m.loc["Lost", "has_audio"], m.loc["Lost", "has_lyrics"]) == (False, True)
    assert (m.loc["Punct", "has_audio"], m.loc["Punct", "has_lyrics"]) == (True, False)
    rep = DS.validate_dataset(tmp_path / "t")
    lines = sorted(zip(rep.id, rep.modality, rep.problem))
    assert ("Dup", "item", "duplicate id (all its rows dropped)") in lines
    assert ("NoLabel", "label", "no label (playlist_genre)") in lines
    assert ("Punct", "lyrics", "lyrics are only punctuation") in lines
    assert ("Lost", "audio", "no audio file (looked for lost_30s.wav); lyrics present") in lines
    assert (Path(ds.root) / "validation.csv").exists()
    match = pd.read_csv(Path(ds.root) / "matching.csv", dtype=str, keep_default_na=False)
    assert match.set_index("name").loc["stray.wav", "status"] == "unclaimed"
    assert set(match.status) == {"matched", "unmatched", "ambiguous", "unclaimed"}
    assert match.set_index("name").loc["Alpha", "rule"] == "seed"          # alpha.wav: the seed's name without _30s


def test_shuffled_order_never_shifts_labels(tmp_path):
    a = DS.load_dataset(tracks_layout(tmp_path / "a", seed=1)).manifest
    b = DS.load_dataset(tracks_layout(tmp_path / "b", seed=2)).manifest
    assert a["playlist_genre"].sort_index().equals(b["playlist_genre"].sort_index())
    assert [Path(p).name for p in a.sort_index().audio_path] == [Path(p).name for p in b.sort_index().audio_path]


def test_splits_by_group_and_seeded(tmp_path):
    ds = DS.load_dataset(tracks_layout(tmp_path / "t", seed=0))
    assert set(ds.manifest.split) <= {"train", "valid", "test"}
    assert ds.manifest.groupby("group").split.nunique().max() == 1
    g = [f"w{i // 3}" for i in range(300)]
    lab = [["a", "b", "c"][(i // 3) % 3] for i in range(300)]
    sp = D.group_split(g, lab, seed=0)
    frac = pd.Series(sp).value_counts(normalize=True)
    assert abs(frac["train"] - 0.6) < 0.05 and abs(frac["valid"] - 0.2) < 0.05 and abs(frac["test"] - 0.2) < 0.05
    assert pd.DataFrame({"g": g, "s": sp}).groupby("g").s.nunique().max() == 1
    assert (D.group_split(g, lab, seed=0) == sp).all()


# ---------------------------------------------------------------- layout 2: MIREX-style folders
def mirex_layout(d: Path, with_metadata: bool) -> Path:
    for sub in ["Audio", "Lyrics", "MIDIs"]: (d / sub).mkdir(parents=True)
    labels = {"001": "Cluster 1", "002": "Cluster 2", "003": "Cluster 3", "004": "Cluster 4", "005": "Cluster 5",
              "006": "Cluster 1", "007": "Cluster 2", "008": "Cluster 3"}
    def place(kind, sid):
        sub = d / kind / (labels[sid] if not with_metadata else "")
        sub.mkdir(parents=True, exist_ok=True); return sub
    for i, sid in enumerate(labels):
        sf.write(place("Audio", sid) / f"{sid}.wav", tone(300 + 50 * i), SR)
    (place("Audio", "004") / "004.wav").write_bytes(b"RIFF\x00\x00")                  # unreadable
    sf.write(place("Audio", "005") / "005.wav", tone(300, amp=0.0), SR)               # silent
    b = (place("Audio", "006") / "006.wav").read_bytes()
    (place("Audio", "006") / "006.wav").write_bytes(b[: len(b) // 2])                  # truncated
    (place("Audio", "008") / "008.wav").unlink(); (place("Audio", "008") / "008.wma").write_bytes(b"wma!")  # unsupported
    (place("Lyrics", "001") / "001.txt").write_text("Sunny morning, happy heart", encoding="utf-8")
    (place("Lyrics", "002") / "002.txt").write_bytes("tr\xe8s triste".encode("latin-1"))      # not UTF-8
    (place("Lyrics", "003") / "003.txt").write_text("   \n", encoding="utf-8")              # empty
    write_midi(place("MIDIs", "001") / "001.mid")
    write_midi(place("MIDIs", "002") / "002.mid", notes=False)                             # no notes
    (place("MIDIs", "003") / "003.mid").write_bytes(b"MThd\x00\x00\x00\x06junk")           # fails to parse
    if with_metadata:
        pd.DataFrame({"Song": list(labels)[::-1], "Emotion": [labels[s].replace("Cluster", "Q") for s in list(labels)[::-1]]}
                     ).to_csv(d / "dataset_info.csv", index=False)
    return d


@pytest.mark.parametrize("with_metadata", [False, True])
def test_mirex_layout(tmp_path, with_metadata):
    root = mirex_layout(tmp_path / "mirex", with_metadata)
    assert D.detect_layout(root) == "mirex-folders"
    ds = DS.load_dataset(root)
    m = ds.manifest
    lab = ds.primary_label
    assert lab == ("emotion" if with_metadata else "cluster")
    expect = {"001": "1", "002": "2", "003": "3", "007": "2"}          # 004-006, 008 keep nothing usable
    assert {i: v[-1] for i, v in m[lab].items()} == expect
    assert m.loc["001", ["has_audio", "has_lyrics", "has_midi"]].tolist() == [True, True, True]
    assert m.loc["002", ["has_audio", "has_lyrics", "has_midi"]].tolist() == [True, False, False]
    assert m.loc["003", ["has_audio", "has_lyrics", "has_midi"]].tolist() == [True, False, False]
    assert m.loc["007", ["has_audio", "has_lyrics", "has_midi"]].tolist() == [True, False, False]
    for i, sid in enumerate(["001", "002", "003", "004", "005", "006", "007"]):
        if sid in m.index: assert peak_freq(ds.audio_file(sid)) == pytest.approx(300 + 50 * i, abs=3)
    rep = DS.validate_dataset(root).set_index(["id", "modality"]).problem
    assert rep[("002", "lyrics")] == "lyrics not UTF-8 (byte 2)"
    assert rep[("003", "lyrics")] == "empty lyrics"
    assert rep[("002", "midi")] == "MIDI has no notes"
    assert rep[("003", "midi")].startswith("MIDI fails to parse")
    assert rep[("004", "audio")].startswith("cannot decode WAV audio")
    assert rep[("005", "audio")] == "silent audio (peak below -80 dBFS)"
    assert rep[("006", "audio")].startswith("truncated audio")
    assert rep[("008", "audio")] == "unsupported audio format '.wma'"
    for sid in ["004", "005", "006", "008"]: assert rep[(sid, "item")] == "no usable audio, lyrics or MIDI (dropped)"
    assert DS.validate_main(str(root)) == 0


def test_mirex_conflicting_cluster_folders(tmp_path):
    d = tmp_path / "m"
    for sub in ["audio/Cluster 1", "lyrics/Cluster 2", "lyrics/Cluster 1"]: (d / sub).mkdir(parents=True)
    sf.write(d / "audio/Cluster 1/a.wav", tone(440), SR); sf.write(d / "audio/Cluster 1/b.wav", tone(550), SR)
    (d / "lyrics/Cluster 2/a.txt").write_text("hello there"); (d / "lyrics/Cluster 1/b.txt").write_text("bye now")
    ds = DS.load_dataset(d)
    assert list(ds.manifest.index) == ["b"]
    rep = DS.validate_dataset(d)
    assert "conflicting cluster folders ['Cluster 1', 'Cluster 2']" in set(rep.problem)


# ---------------------------------------------------------------- layout 3: a manifest CSV
def test_manifest_csv_named_columns(tmp_path):
    d = tmp_path / "own"; (d / "wav").mkdir(parents=True)
    sf.write(d / "wav" / "x.wav", tone(440), SR); sf.write(d / "wav" / "y.wav", tone(660), SR)
    (d / "y.txt").write_text("la la la")
    pd.DataFrame({"key": ["x", "y", "z", "x"], "sound": ["wav/x.wav", "wav/y.wav", "wav/z.wav", "wav/x.wav"],
                  "text_file": ["", "y.txt", "", ""], "mood": ["calm", "happy", "sad", "calm"],
                  "artist": ["A", "B", "C", "A"]}).to_csv(d / "items.csv", index=False)
    ds = DS.load_dataset(d / "items.csv", id="key", audio="sound", lyrics_path="text_file", group="artist", labels=["mood"])
    assert list(ds.manifest.index) == ["y"]                               # x duplicated; z has nothing usable
    assert DS.validate_dataset(ds).empty                                   # what is left checks clean
    # the CSV is edited: the next load sees the change (the cache key holds file sizes and times)
    pd.DataFrame({"key": ["x", "y", "z"], "sound": ["wav/x.wav", "wav/y.wav", "wav/z.wav"], "text_file": ["", "y.txt", ""],
                  "mood": ["calm", "happy", "sad"], "artist": ["A", "B", "C"]}).to_csv(d / "items.csv", index=False)
    ds = DS.load_dataset(d / "items.csv", id="key", audio="sound", lyrics_path="text_file", group="artist", labels=["mood"])
    m = ds.manifest
    assert m.mood.to_dict() == {"x": "calm", "y": "happy"}
    assert m.loc["y", "lyrics"] == "la la la" and m.loc["y", "group"] == "B"
    assert peak_freq(ds.audio_file("y")) == pytest.approx(660, abs=3)
    rep = pd.read_csv(Path(ds.root) / "validation.csv", dtype=str, keep_default_na=False)
    assert rep.set_index("id").loc["z", "problem"].tolist() == ["file not found", "no usable audio, lyrics or MIDI (dropped)"]


def test_detect_and_validate_main_failures(tmp_path, capsys):
    assert DS.validate_main(str(tmp_path / "nothing")) == 1
    empty = tmp_path / "empty"; empty.mkdir()
    assert DS.validate_main(str(empty)) == 1
    assert "cannot read" in capsys.readouterr().out


def test_dataset_roundtrip_and_ids(tmp_path):
    m = pd.DataFrame({"id": ["b", "a", "c"], "group": ["g", "g", "h"], "split": ["train", "train", "test"],
                      "audio_path": ["", "", ""], "lyrics": ["x", "y", ""], "genre": ["1", "2", "3"]})
    ds = D.save_dataset(tmp_path / "ds", m, "toy", ["genre"], "genre")
    back = DS.load_dataset(tmp_path / "ds")
    assert list(back.ids("all")) == ["b", "a", "c"] and list(back.ids("test")) == ["c"]
    assert back.fingerprint == ds.fingerprint
    assert back.manifest.has_lyrics.tolist() == [True, True, False]
    with pytest.raises(ValueError): back.ids("holdout")


# ---------------------------------------------------------------- repeated group splits (split seeds)
def test_split_ids_repeated_group_splits(tmp_path):
    n = 120
    m = pd.DataFrame({"id": [f"i{j:03d}" for j in range(n)], "group": [f"g{j // 4}" for j in range(n)],
                      "genre": [["pop", "rock", "jazz"][(j // 4) % 3] for j in range(n)]})
    m["split"] = D.group_split(m["group"], m["genre"])
    ds = D.save_dataset(tmp_path / "ds", m, "toy", ["genre"], "genre")
    assert list(ds.ids("test")) == list(m.id[m.split == "test"])                # split seed 0 = the manifest's column
    tests = []
    for seed in range(6):
        sp = ds.split_ids(seed)
        assert set(sp) == {"train", "valid", "test", "all"} and list(sp["all"]) == list(ds.manifest.index)
        assert sorted(np.concatenate([sp[s] for s in D.SPLITS])) == sorted(sp["all"])
        side = pd.Series({i: s for s in D.SPLITS for i in sp[s]})
        assert ds.manifest.assign(side=side).groupby("group").side.nunique().max() == 1      # no group on two sides
        for s in D.SPLITS:                                                          # every label on every side
            assert set(ds.manifest.loc[sp[s], "genre"]) == {"pop", "rock", "jazz"}
        assert list(ds.ids("valid", split_seed=seed)) == list(sp["valid"])
        tests.append(frozenset(sp["test"]))
    assert len(set(tests)) == 6                                                     # each seed its own test set
    back = DS.load_dataset(tmp_path / "ds")
    labels = back.manifest["genre"]
    for seed in (1, 2):                                                             # labels stay with their ids
        assert (labels.loc[back.ids("test", seed)] == m.set_index("id").loc[back.ids("test", seed), "genre"]).all()
    assert back.split_ids(3) is back.split_ids(3)                                   # cached per seed


def test_split_ids_without_a_split_column(tmp_path):
    m = pd.DataFrame({"id": [f"i{j}" for j in range(30)], "group": [f"g{j // 2}" for j in range(30)],
                      "mood": ["calm", "angry", "sad"] * 10})
    ds = D.Dataset("x", tmp_path, D.normalise_manifest(m, ["mood"]), ["mood"], "mood")
    sp = ds.split_ids(0)                                        # no split in the manifest: drawn with seed 0
    assert sum(len(sp[s]) for s in D.SPLITS) == 30 and all(len(sp[s]) for s in D.SPLITS)
    assert list(sp["test"]) == [i for i, s in zip(m.id, D.group_split(m.group, m.mood, seed=0)) if s == "test"]
