"""The seeds' data layouts, built exactly as described (fixtures), read and then reported on end to end.

(a) what each reader reads: items, modalities matched, labels, groups, the name rule, UTF-16 metadata,
    line-per-item label files, the artist-group fallback and the listed problems;
(b) fast, for each layout: reader -> features -> one model -> protocol -> report.html, in a throwaway project
    folder; each layout is written once per session and shared with (a);
(c) slow (`-m slow`, run by CI and `make test-all`): all five report notebooks on each layout, quick, through
    `pipeline.reproduce`: only `reports/quick/<dataset>/` and `figures/quick/<dataset>/` may change."""
import hashlib, shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from music_vae_nb import datasets as DS
from music_vae_nb.data import SPLITS, is_missing, seed_name
from music_vae_nb.fixtures import make_seed1_layout, make_seed2_flat, make_seed2_sorted, seed1_tracks, seed2_items

ROOT = Path(__file__).resolve().parent.parent
N = 48


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSIC_VAE_DATA", str(tmp_path / "datahome"))


LAYOUTS = {"seed1": make_seed1_layout, "seed2-flat": make_seed2_flat, "seed2-sorted": make_seed2_sorted}


@pytest.fixture(scope="session")
def layout_roots(tmp_path_factory):
    "Each seed layout of N items written once per session (tests that change a layout write their own)."
    made = {}
    def root(name):
        if name not in made: made[name] = LAYOUTS[name](tmp_path_factory.mktemp(name) / ("seed1" if name == "seed1" else "mirex"), n=N)
        return made[name]
    return root


def _report(ds):
    return pd.read_csv(Path(ds.root) / "validation.csv", dtype=str, keep_default_na=False)


def _no_group_on_two_sides(ds, seeds=(0, 1, 2)):
    for s in seeds:
        sp = ds.split_ids(s)
        side = pd.Series({i: k for k in SPLITS for i in sp[k]})
        assert ds.manifest.assign(side=side).groupby("group").side.nunique().max() == 1


# ---------------------------------------------------------------- (a) seed 1: Dataset/CSV + Dataset/Audio
def test_seed1_layout_read(layout_roots):
    root = layout_roots("seed1")
    plan = seed1_tracks(N).assign(id=lambda d: d.track_name.str.strip()).set_index("id")
    ds = DS.load_dataset(root / "Dataset")                                  # from Dataset/ as from the root
    m = ds.manifest
    assert ds.name == "seed1" and ds.labels == ["playlist_genre"] and len(m) == N
    assert m.playlist_genre.to_dict() == plan.playlist_genre.to_dict()       # every track keeps its own genre
    ok = ~(plan.no_audio | plan.corrupt)
    assert m.has_audio.to_dict() == ok.to_dict() and m.has_lyrics.all() and not m.has_midi.any()
    for i in plan.index[ok]:                                                 # the seed's name rule
        assert ds.audio_file(i).name == seed_name(plan.track_name[i]) + "_30s.wav"
    assert ds.audio_file("Don't Stop Me Now").name == "don_t_stop_me_now_30s.wav"
    assert ds.audio_file("Café Olé").name == "caf_ol_30s.wav"
    assert ds.info["group_rule"] == "track_artist: 12 groups of 48 items" and (m.group == plan.track_artist).all()
    assert ds.info["coverage"]["audio"] == {"items": N, "matched": N - 2, "usable": N - 3} and ds.info["warnings"] == []
    rep = _report(ds)
    miss = rep[is_missing(rep)]
    assert sorted(miss.id) == sorted(plan.index[plan.no_audio])
    assert all(p.endswith("_30s.wav); lyrics present") for p in miss.problem)
    bad = rep.set_index("id").problem
    assert bad[plan.index[plan.corrupt][0]].startswith("cannot decode WAV audio")
    latin = plan.index[plan.latin1][0]
    assert bad[latin] == f"row 23 ({latin!r}) is not UTF-8: its bad bytes read as \ufffd"
    assert m.loc[latin, "lyrics"].endswith("Caf\ufffd cr\ufffdme")                # kept, bad bytes marked
    _no_group_on_two_sides(ds)


def test_seed1_few_artists_fall_back_to_one_group_per_item(tmp_path):
    ds = DS.load_dataset(make_seed1_layout(tmp_path / "few", n=24, seconds=0.5, n_artists=4))
    assert ds.info["group_rule"].startswith("one group per item (the track_artist column splits the 24 items into only 4 groups")
    assert ds.manifest.group.nunique() == 24


def test_seed1_audio_named_otherwise_is_one_prominent_line(tmp_path):
    root = make_seed1_layout(tmp_path / "renamed", n=24, seconds=0.5)
    for f in sorted((root / "Dataset" / "Audio").iterdir()): f.rename(f.with_name(f"track_{hash(f.name) % 10**6}.wav"))
    ds = DS.load_dataset(root)
    assert len(ds) == 24 and not ds.manifest.has_audio.any() and ds.manifest.has_lyrics.all()   # lyrics kept
    assert len(ds.info["warnings"]) == 1 and ds.info["warnings"][0].startswith("!!! audio: only 0 of 24 items")
    assert not DS.usable(ds)


# ---------------------------------------------------------------- (a) seed 2: MIREX flat and sorted
def _check_seed2(ds, plan, drop=()):
    m = ds.manifest
    keep = plan[~plan.id.isin(drop)].set_index("id")
    assert list(m.index) == list(keep.index)
    assert ds.labels == ["cluster", "category", "genre"] and ds.primary_label == "cluster"
    for lab in ds.labels: assert m[lab].to_dict() == keep[lab].to_dict(), lab      # no label shifted
    assert m.has_audio.to_dict() == (keep.has_audio & ~keep.corrupt).to_dict()
    assert m.has_lyrics.to_dict() == keep.has_lyrics.to_dict() and m.has_midi.to_dict() == keep.has_midi.to_dict()
    assert m.artist.to_dict() == keep.artist.to_dict() and m.track.to_dict() == keep.track.to_dict()   # UTF-16 metadata
    rep = _report(ds).set_index(["id", "modality"]).problem
    assert rep[("007", "audio")] == "no audio file; lyrics and MIDI present"
    assert rep[("005", "lyrics")] == "no lyrics file; audio present"
    assert rep[("012", "audio")] == "cannot decode MP3 audio (not a valid audio stream)"
    assert ds.info["group_rule"].startswith("one group per item (the artist column splits the 48 items into only 3 groups")
    cov = ds.info["coverage"]
    assert cov["audio"]["matched"] == 46 and cov["midi"]["matched"] == 16 and cov["lyrics"]["matched"] == 40
    _no_group_on_two_sides(ds)


def test_seed2_flat_read(layout_roots):
    ds = DS.load_dataset(layout_roots("seed2-flat"))
    _check_seed2(ds, seed2_items(N))
    assert ds.info["kind"] == "mirex-folders" and ds.info["warnings"] == []


def test_seed2_sorted_read_and_disagreement_listed(tmp_path):
    root = make_seed2_sorted(tmp_path / "mirex", n=N)
    plan = seed2_items(N)
    assert (root / "Audio" / plan.cluster[0] / plan.category[0] / "001.mp3").exists()
    ds = DS.load_dataset(root)
    _check_seed2(ds, plan, drop=["023"])
    rep = _report(ds)
    said = rep.loc[rep.id == "023", "problem"].tolist()
    c = plan.set_index("id").c["023"]
    assert f"cluster: folder says 'Cluster {c % 5 + 1}', clusters.txt says 'Cluster {c}'" in said
    (root / "clusters.txt").unlink(); (root / "categories.txt").unlink()           # folders alone
    ds2 = DS.load_dataset(root)
    assert ds2.manifest.loc["023", "cluster"] == f"Cluster {c % 5 + 1}"
    assert (ds2.manifest.category == plan.set_index("id").category[ds2.manifest.index]).all()


def test_seed2_line_files_never_shift_labels(tmp_path):
    root = make_seed2_flat(tmp_path / "mirex", n=N)
    for f in list(root.rglob("010.*")): f.unlink()                                # item 010 gone from every folder
    meta = (root / "dataset info.csv").read_bytes().decode("utf-16").splitlines()
    (root / "dataset info.csv").write_bytes("\r\n".join(l for l in meta if not l.startswith("010.mp3")).encode("utf-16"))
    ds = DS.load_dataset(root)
    plan = seed2_items(N).set_index("id").drop("010")
    assert "010" not in ds.manifest.index
    assert ds.manifest.cluster.to_dict() == plan.cluster[ds.manifest.index].to_dict()


def test_seed2_many_artists_make_the_groups(tmp_path):
    ds = DS.load_dataset(make_seed2_flat(tmp_path / "mirex", n=N, seconds=0.5, n_artists=12))
    assert ds.info["group_rule"].startswith("artist: ") and (ds.manifest.group == ds.manifest.artist).all()
    _no_group_on_two_sides(ds)


# ---------------------------------------------------------------- (b) reader -> features -> model -> protocol -> report
def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_reader_features_model_protocol_report(layout, layout_roots, tmp_path, monkeypatch):
    "One small VAE and PCA on the audio features of each layout, scored by the protocol, in a report.html."
    from music_vae_nb.core import read_metrics, record_metrics, reports_dir, write_text
    from music_vae_nb.experiment import Experiment, ModelSpec
    from music_vae_nb.protocol import Protocol, scored_labels
    from music_vae_nb.report import make_report_html, select_on_valid, standard_sections
    from music_vae_nb.store import compute_features
    proj = tmp_path / "project"; (proj / "nbs").mkdir(parents=True); shutil.copy(ROOT / "settings.ini", proj)
    monkeypatch.setenv("MUSIC_VAE_ROOT", str(proj))
    ds = DS.load_dataset(layout_roots(layout), quick=True)
    feats = compute_features(ds, names=["audio"], n_jobs=1, scheduler="local", progress=False)
    assert feats["audio"].n_available == int(ds.manifest.has_audio.sum()) > 30
    ex = Experiment(ds, feats, {"audio": "audio"}, folds=2, notebook="e2e", n_jobs=1, scheduler="local",
                    cache_dir=ds.cache_dir / "fits")
    specs = [ModelSpec("vae", ("audio",), latent_dim=4, epochs=3, patience=2), ModelSpec("pca", ("audio",), latent_dim=4)]
    metrics, assign = ex.score(ex.fit(specs), Protocol(algorithms=("kmeans",), k_rules=("n_classes",), min_items=4))   # 48 items: small valid splits
    record_metrics(metrics, "e2e", quick=True, dataset=ds.name)
    m, labels = read_metrics(True, dataset=ds.name), scored_labels(ds)
    assert ds.primary_label in labels and set(m.split) == {"valid", "test"} and set(m.fold) == {"0", "1"}
    test_ids = set(ex.split_ids(0)["test"]) & set(ds.manifest.index[ds.manifest.has_audio])
    assert set(assign[(assign.fold == 0) & (assign.split == "test") & (assign.model == "vae")].id) == test_ids      # every scorable test item, by id
    best = select_on_valid(m, ds.primary_label).iloc[0]
    assert best.model in ("vae", "pca") and -1 <= best.test_mean <= 1 and best.n in (1, 2)   # 12 groups: a fold's valid may hold one class only
    page = make_report_html(ds.name, standard_sections(m, labels, ds.primary_label, manifest=ds.manifest, assignments=assign))
    write_text(reports_dir(True, ds.name) / "report.html", page)
    assert "<h2>Findings</h2>" in page and ds.primary_label in page
    written = {str(p.relative_to(proj)) for p in proj.rglob("*") if p.is_file() and p.suffix != ".lock"}
    assert written == {"settings.ini", f"reports/quick/{ds.name}/metrics.csv", f"reports/quick/{ds.name}/report.html"}, written


# ---------------------------------------------------------------- (c) five report notebooks on each layout (slow)
@pytest.mark.slow
@pytest.mark.parametrize("make", [make_seed1_layout, make_seed2_flat, make_seed2_sorted], ids=["seed1", "seed2-flat", "seed2-sorted"])
def test_report_notebooks_end_to_end(tmp_path, monkeypatch, make):
    from music_vae_nb.pipeline import REPORT_NOTEBOOKS, reproduce
    proj = tmp_path / "project"; (proj / "nbs").mkdir(parents=True)
    shutil.copy(ROOT / "settings.ini", proj)
    for nb in (ROOT / "nbs").glob("*.ipynb"): shutil.copy(nb, proj / "nbs")
    for d in ("reports", "reports/quick/m21-vocal", "reports/m21-vocal", "figures", "figures/quick/m21-vocal"):
        (proj / d).mkdir(parents=True, exist_ok=True); (proj / d / "metrics.csv").write_text("dataset,value\nm21-vocal,1\n")
    (proj / "figures" / "old.png").write_bytes(b"\x89PNG default figure")
    monkeypatch.setenv("MUSIC_VAE_ROOT", str(proj))
    data = make(tmp_path / "collection", n=N)
    before = {d: _tree(proj / d) for d in ("reports", "figures")}
    runs = reproduce(quick=True, data=str(data), html=True, log=lambda *a: None)
    name = DS.dataset_name(data)
    assert [r.name for r in runs] == REPORT_NOTEBOOKS
    after = {d: _tree(proj / d) for d in ("reports", "figures")}
    for d in ("reports", "figures"):
        changed = {k for k in after[d] if before[d].get(k) != after[d][k]} | (set(before[d]) - set(after[d]))
        assert all(k.startswith(f"quick/{name}/") for k in changed), (d, sorted(changed)[:10])
    out = proj / "reports" / "quick" / name
    assert all((out / f"{nb}.ipynb").exists() and (out / f"{nb}.html").exists() for nb in REPORT_NOTEBOOKS)
    assert any((proj / "figures" / "quick" / name).glob("*.png"))
    if make is make_seed1_layout:                 # audio only: the fused models hear the score transcribed from it
        from music_vae_nb.transcribe import has_basic_pitch
        m = pd.read_csv(out / "metrics.csv", keep_default_na=False, low_memory=False)
        fused = m[(m.notebook == "02_medium") & (m.model == "mm_vae")]
        assert len(fused) and fused.modalities.str.contains("midi_transcribed").any() == has_basic_pitch(), set(fused.modalities)
        assert not m.modalities.str.split("+").apply(lambda v: "midi" in v).any()    # no given MIDI was invented
