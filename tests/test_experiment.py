"Experiments: complete keys, determinism, availability, outer folds that test every item once."
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pathlib import Path

from music_vae_nb.data import Dataset
from music_vae_nb.experiment import Experiment, ModelSpec
from music_vae_nb.protocol import Protocol
from music_vae_nb.store import FeatureSet


def toy(n=72, seed=0, reps=2):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    ids = np.array([f"s{i:03d}" for i in range(n)])
    A = (rng.normal(size=(n, 6)) + 3 * np.eye(3)[y] @ rng.normal(size=(3, 6))).astype(np.float32)
    M = (rng.normal(size=(n, 4)) + 3 * np.eye(3)[y] @ rng.normal(size=(3, 4))).astype(np.float32)
    mmask = np.arange(n) % 3 != 0                                       # a third of the items have no MIDI
    feats = {"audio": FeatureSet("audio", ids, A, np.ones(n, bool)), "midi": FeatureSet("midi", ids, M, mmask)}
    man = pd.DataFrame({"style": np.array(list("abc"))[y], "group": [f"g{i // 3}" for i in range(n)]},
                       index=pd.Index(ids, name="id"))
    ds = Dataset("toy", Path("."), man, ["style"], "style")
    return Experiment(ds, feats, {"audio": "audio", "midi": "midi"}, folds=reps, notebook="t", n_jobs=1,
                      scheduler="local")


SPECS = [ModelSpec("pca", ("audio", "midi"), latent_dim=3),
         ModelSpec("vae", ("midi",), latent_dim=3, epochs=4, patience=4),
         ModelSpec("mm_vae", ("audio", "midi"), fusion="moe", latent_dim=3, epochs=4, patience=4)]
P = Protocol(algorithms=("kmeans",), within=None)


def test_rows_have_complete_unique_keys_and_are_deterministic():
    a, _ = toy().score(toy().fit(SPECS), P)
    b, _ = toy().score(toy().fit(SPECS), P)
    keys = [c for c in a.columns if c != "value"]
    assert not a.duplicated(keys).any()
    pd.testing.assert_frame_equal(a.sort_values(keys).reset_index(drop=True), b.sort_values(keys).reset_index(drop=True))
    assert a.config.nunique() == len(SPECS) + 1                       # three specs, and the baselines (no config)


def test_a_model_is_scored_only_on_items_that_have_its_inputs():
    ex = toy()
    fits = ex.fit(SPECS[1:2])
    test_ids = set(fits[SPECS[1], 0].ids["test"])
    no_midi = set(ex.ds.manifest.index[np.arange(len(ex.ds.manifest)) % 3 == 0])
    assert test_ids and not test_ids & no_midi


def test_each_fold_tests_its_own_items_and_fits_its_own_scaler():
    ex = toy()
    assert not set(ex.split_ids(0)["test"]) & set(ex.split_ids(1)["test"])
    assert set(ex.split_ids(0)["test"]) | set(ex.split_ids(1)["test"]) == set(ex.ds.manifest.index)   # every item tested once
    for r in (0, 1):                                                  # the items that choose never stop training, never test
        s = {k: set(v) for k, v in ex.split_ids(r).items()}
        assert not (s["valid"] & s["stop"]) and not (s["valid"] & s["test"]) and not (s["stop"] & s["test"])
    fits = ex.fit(SPECS[:1])
    assert set(fits[SPECS[0], 0].ids["test"]) == set(ex.split_ids(0)["test"])
    assert set(fits[SPECS[0], 1].ids["test"]) == set(ex.split_ids(1)["test"])


def test_a_second_run_reuses_the_cached_fits(tmp_path, monkeypatch):
    import music_vae_nb.train as T
    first = toy(); first.cache_dir = tmp_path
    a, _ = first.score(first.fit(SPECS), P)
    monkeypatch.setattr(T, "fit_model", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained again")))
    again = toy(); again.cache_dir = tmp_path
    b, _ = again.score(again.fit(SPECS), P)                           # every trained spec comes from the cache
    keys = [c for c in a.columns if c != "value"]
    pd.testing.assert_frame_equal(a.sort_values(keys).reset_index(drop=True), b.sort_values(keys).reset_index(drop=True))


NEW = [ModelSpec("mm_vae", ("audio", "midi"), fusion="private", part="shared", latent_dim=3, private_dim=2, epochs=3, patience=3),
       ModelSpec("mm_vae", ("audio", "midi"), fusion="private", part="all", latent_dim=3, private_dim=2, epochs=3, patience=3),
       ModelSpec("mm_vae", ("audio", "midi"), fusion="poe", subsample=True, mixture=True, components=3, latent_dim=3,
                 epochs=3, patience=3)]


def test_a_private_latent_model_is_fitted_once_and_scored_on_each_part():
    ex = toy()
    fits = ex.fit(NEW[:2])
    for r in (0, 1):
        sh, al = fits[NEW[0], r], fits[NEW[1], r]
        assert sh.model is al.model                                   # one fit per fold serves both parts
        assert al.Z["test"].shape[1] == 3 + 2 * 2                     # shared code, then a private code per view
        np.testing.assert_array_equal(sh.Z["test"], al.Z["test"][:, :3])
    rows, _ = ex.score(fits, P)
    assert {s.keys(ex.views)["config"] for s in NEW[:2]} <= set(rows.config)
    assert set(rows[rows.fusion == "private"].config) == {s.keys(ex.views)["config"] for s in NEW[:2]}


def test_the_mixture_prior_models_are_built_and_scored_like_every_model():
    ex = toy()
    fits_specs = NEW[2:] + [ModelSpec("gmvae", ("audio",), components=3, latent_dim=3, epochs=3, patience=3)]
    fits = ex.fit(fits_specs)
    assert type(fits[NEW[2], 0].model).__name__ == "MixtureMultiModalVAE" and fits[NEW[2], 0].model.n_components == 3
    rows, _ = ex.score(fits, P)
    assert set(rows[rows.config.isin([s.keys(ex.views)["config"] for s in fits_specs])].model) == {"gmvae"}   # the table names the mixture prior
    ami = rows[(rows.metric == "ami") & (rows.split == "test") & (rows.label == "style")]
    assert ami.groupby("config").value.count().loc[[s.keys(ex.views)["config"] for s in fits_specs]].min() >= 2   # every fold scored
    own = rows[rows.algorithm == "posterior"]                        # each model's own clustering, beside the protocol's
    assert set(own.k_rule) == {"model"} and set(own.model) == {"gmvae"} and set(own.split) == set(rows[rows.algorithm == "kmeans"].split)
    assert set(own.label) == {"", "style"} and (own.k.astype(int) <= 3).all()
    f = fits[NEW[2], 0]
    assert len(f.own["test"]) == len(f.ids["test"]) and set(f.own["test"]) <= {0, 1, 2}
    assert not len(rows[(rows.algorithm == "posterior") & (rows.model != "gmvae")])


def test_a_chosen_k_reads_no_label_and_is_cached(tmp_path, monkeypatch):
    import music_vae_nb.experiment as E, music_vae_nb.train as T
    monkeypatch.setattr(E, "COMPONENT_RANGE", (2, 3))
    spec = ModelSpec("gmvae", ("audio",), latent_dim=3, epochs=3, patience=3)     # components=0: chosen per fold
    first = toy(); first.cache_dir = tmp_path
    fits = first.fit([spec])
    for r in (0, 1):
        h = fits[spec, r].history
        assert list(h.k) == [2, 3] and h.attrs["components"] in (2, 3)
        assert fits[spec, r].model.n_components == h.attrs["components"]
    monkeypatch.setattr(T, "fit_model", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained again")))
    again = toy(); again.cache_dir = tmp_path
    fits2 = again.fit([spec])
    np.testing.assert_array_equal(fits2[spec, 1].Z["test"], fits[spec, 1].Z["test"])
    assert fits2[spec, 1].model.n_components == fits[spec, 1].model.n_components
