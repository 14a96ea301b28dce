"Tests of music_vae_nb.datasets: names to datasets, the output name of a dataset, the validate command; layering."
import ast, contextlib, io, os
from pathlib import Path

import pandas as pd
import pytest

from music_vae_nb import datasets as DS
from music_vae_nb.data import seed_name
from music_vae_nb.fixtures import make_seed1_layout, make_seed2_flat, seed1_tracks

PKG = Path(DS.__file__).parent
ORIGINAL_DATA = os.environ.get("MUSIC_VAE_DATA")


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSIC_VAE_DATA", str(tmp_path / "datahome"))


def _imports(module: str) -> set:
    tree = ast.parse((PKG / f"{module}.py").read_text())
    out = set()
    for n in ast.walk(tree):                                  # function-level imports count too
        if isinstance(n, ast.ImportFrom): out |= {(n.module or "").split(".")[-1]} | {a.name for a in n.names}
        elif isinstance(n, ast.Import): out |= {a.name.split(".")[-1] for a in n.names}
    return out


def test_data_does_not_import_the_corpus_or_the_facade():
    assert not {"m21", "datasets"} & _imports("data")
    assert "datasets" not in _imports("m21")
    assert {"m21", "data"} <= _imports("datasets")


def test_dataset_name_is_cheap_and_matches_load(tmp_path):
    assert DS.dataset_name("m21-vocal") == DS.dataset_name("m21-vocal", quick=True) == "m21-vocal"
    assert not (tmp_path / "datahome").exists() or not any((tmp_path / "datahome").iterdir())   # built nothing
    root = make_seed1_layout(tmp_path / "CSE425 data", n=12, seconds=0.5)
    csv = root / "Dataset" / "CSV" / "dataset.csv"
    names = {DS.dataset_name(p) for p in (root, root / "Dataset", csv, str(csv))}
    assert names == {"cse425-data"}
    assert not (tmp_path / "datahome" / "user").exists()                                     # still nothing read
    for p in (root, root / "Dataset", csv):
        ds = DS.load_dataset(p)
        assert ds.name == "cse425-data" and len(ds) == 12
    assert DS.load_dataset(root, quick=True).name == "cse425-data"
    clash = make_seed2_flat(tmp_path / "m21-vocal", n=6, seconds=0.5)
    assert DS.dataset_name(clash).startswith("m21-vocal-") and DS.load_dataset(clash).name == DS.dataset_name(clash)


def test_quick_subset_whole_groups_every_label(tmp_path):
    ds = DS.load_dataset(make_seed1_layout(tmp_path / "big", n=96, seconds=0.3, n_artists=24))
    q = DS.quick_subset(ds, n=30)
    assert 30 <= len(q) <= 36 and q.info["quick"] and q.name == ds.name
    assert set(q.manifest.playlist_genre) == set(ds.manifest.playlist_genre)
    full = ds.manifest.groupby("group").size()
    kept = q.manifest.groupby("group").size()
    assert kept.equals(full[kept.index])                                                        # whole groups


def test_validate_main_lists_missing_files_and_names_the_rule(tmp_path):
    root = make_seed1_layout(tmp_path / "s1", n=24, seconds=0.5)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf): code = DS.validate_main(str(root))
    out = buf.getvalue()
    plan = seed1_tracks(24)
    miss = plan.loc[plan.no_audio, "track_name"].iloc[0]
    assert code == 0, out
    assert f"{miss.strip()}: no audio file (looked for {seed_name(miss)}_30s.wav); lyrics present" in out
    assert "cannot decode WAV audio" in out and "file does not exist" not in out
    assert "groups: " in out and "labels: playlist_genre (primary)" in out
    assert "!!!" not in out


def test_unknown_source():
    with pytest.raises(FileNotFoundError, match="neither a built-in"): DS.load_dataset("no-such-dataset")
    with pytest.raises(KeyError): DS.load_builtin("nope")


def test_relative_paths_and_a_named_label_column(tmp_path, monkeypatch):
    make_seed2_flat(tmp_path / "mx", n=10, seconds=0.5)
    monkeypatch.chdir(tmp_path)
    ds = DS.load_dataset("mx")                                            # relative to the working folder
    assert ds.manifest.has_audio.sum() >= 7 and all(Path(p).is_absolute() for p in ds.manifest.audio_path if p)
    s1 = make_seed1_layout(tmp_path / "s1", n=12, seconds=0.5)
    ds = DS.load_dataset(s1, label="track_artist")                       # the user names the label column
    assert ds.primary_label == "track_artist" and ds.labels == ["track_artist"]


def test_decoder_chatter_stays_off_the_terminal(tmp_path, capfd):
    from music_vae_nb.data import check_audio
    from music_vae_nb.fixtures import tone
    import soundfile as sf
    sf.write(tmp_path / "ok.mp3", tone(440, 2.0), 16_000)
    b = (tmp_path / "ok.mp3").read_bytes(); (tmp_path / "cut.mp3").write_bytes(b[: len(b) // 2])
    (tmp_path / "junk.mp3").write_bytes(b"ID3" + bytes(range(256)) * 8)
    capfd.readouterr()
    got = [check_audio(tmp_path / f) for f in ("ok.mp3", "cut.mp3", "junk.mp3")]
    assert got[0] is None and got[1].startswith("truncated") and got[2].startswith("cannot decode MP3")
    assert capfd.readouterr().err == ""


def test_panel_names_resolve_without_building(tmp_path):
    assert DS.BUILTIN_DATASETS[0] == "m21-vocal" and set(DS.PANEL_DATASETS) == {"m21-vocal", "essen-folk", "string-quartets"}
    assert [DS.dataset_name(n) for n in DS.PANEL_DATASETS] == list(DS.PANEL_DATASETS)
    assert not (tmp_path / "datahome").exists() or not any((tmp_path / "datahome").iterdir())       # built nothing
    clash = make_seed2_flat(tmp_path / "essen-folk", n=6, seconds=0.5)
    assert DS.dataset_name(clash).startswith("essen-folk-")                  # a user folder never takes a built-in name


def test_build_default_cli_passes_the_name():
    from music_vae_nb.pipeline import build_parser
    ap = build_parser()
    assert ap.parse_args(["build-default"]).name == "m21-vocal"
    a = ap.parse_args(["build-default", "essen-folk", "--quick"])
    assert (a.name, a.quick) == ("essen-folk", True)
    with pytest.raises(KeyError, match="unknown built-in"): DS.load_builtin("ryansMammoth")


def test_load_builtin_panel_corpus(monkeypatch):
    "A panel corpus by name (the quick build, cached in the project's data folder as the m21 tests build it)."
    from music_vae_nb.core import project_root
    monkeypatch.setenv("MUSIC_VAE_DATA", ORIGINAL_DATA or str(project_root() / "data"))
    ds = DS.load_dataset("essen-folk", quick=True, n_jobs=1)
    assert ds.name == "essen-folk" and ds.primary_label == "region" and len(ds) >= 20
    assert ds.info["label_sources"]["region"].startswith("Essen collection file")
