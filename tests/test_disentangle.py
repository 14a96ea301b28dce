"Tests of music_vae_nb.disentangle and the CVAE: MIG by hand, DCI sanity, active units, KL, the CVAE rule."
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from music_vae_nb.disentangle import (active_units, dci, dci_from_importance, discretize, entropy, factor_codes,
                                      kl_per_dim, latent_bins, latent_scores, mig, mig_from_mi, mutual_info_matrix,
                                      reconstruction_errors, split_views)
from music_vae_nb.experiment import Experiment, ModelSpec
from music_vae_nb.models import CVAE, MultiModalVAE
from music_vae_nb.protocol import Protocol, near_copies
from music_vae_nb.store import FeatureSet
from music_vae_nb.train import MultiModalData, TrainConfig, fit_embed, infer, toy_data


def test_mig_hand_computed():
    # f1 copied into z0 and z2 (gap 0), f2 into z1 only (gap 1): MIG = 0.5
    f1, f2 = np.tile([0, 0, 1, 1], 10), np.tile([0, 1, 0, 1], 10)
    codes = pd.DataFrame({"f1": f1, "f2": f2})
    m = mig(np.c_[f1, f2, f1].astype(float), codes)
    assert m["f1"] == pytest.approx(0.0, abs=1e-12)
    assert m["f2"] == pytest.approx(1.0)
    assert m["all"] == pytest.approx(0.5)
    # the gap formula on a given MI matrix: (0.6 - 0.2) / 0.8
    assert mig_from_mi(pd.DataFrame({"f": [0.6, 0.2, 0.1]}), {"f": 0.8})["f"] == pytest.approx(0.5)


def test_mutual_info_and_entropy():
    f = np.tile([0, 1], 20)
    mi = mutual_info_matrix(np.c_[f, np.zeros(40)].astype(float), pd.DataFrame({"f": f}))
    assert mi.loc["z0", "f"] == pytest.approx(np.log(2))
    assert mi.loc["z1", "f"] == pytest.approx(0.0)
    assert entropy([0, 0, 1, 1, -1]) == pytest.approx(np.log(2))
    assert [latent_bins(n) for n in (9, 40, 270)] == [2, 4, 20]


def test_discretize_and_factor_codes():
    assert discretize(["minor", "major", "", "minor"]).tolist() == [1, 0, -1, 1]
    assert discretize([1., 2., 3., 4., 5., 6., 7., 8.], n_bins=4).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert discretize([5., 5., 7.], n_bins=4).tolist() == [0, 0, 1]
    fc = factor_codes(pd.DataFrame({"tempo": [72.0] * 4, "mode": list("abab")}))
    assert list(fc.columns) == ["mode"]                         # constant factors are dropped


def test_dci_by_hand_and_sanity():
    d = dci_from_importance([[3, 1], [0, 0]])
    h = -(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25))
    assert d["dci_disentanglement"] == pytest.approx(1 - h)
    assert d["dci_completeness"] == pytest.approx(1.0)
    assert dci_from_importance(np.eye(2)) == {"dci_disentanglement": 1.0, "dci_completeness": 1.0}
    assert dci_from_importance(np.ones((2, 2))) == {"dci_disentanglement": 0.0, "dci_completeness": 0.0}
    rng = np.random.default_rng(1)
    g1, g2 = rng.integers(0, 3, 300), rng.integers(0, 3, 300)
    Z = np.c_[g1 + 0.1 * rng.normal(size=300), g2 + 0.1 * rng.normal(size=300), rng.normal(size=300)]
    codes = pd.DataFrame({"g1": g1, "g2": g2})
    good = dci(Z, codes)
    mixed = dci(np.c_[Z[:, 0] + Z[:, 1], Z[:, 0] - Z[:, 1], Z[:, 2]], codes)
    assert good["dci_disentanglement"] > 0.9 and good["dci_informativeness"] > 0.9
    assert mixed["dci_disentanglement"] < good["dci_disentanglement"] - 0.3


def test_active_units_and_kl():
    mu = np.c_[np.tile([-1., 1.], 50), np.full(100, 0.3), np.tile([0.05, -0.05], 50)]
    n, var = active_units(mu)
    assert n == 1 and var == pytest.approx([1.0, 0.0, 0.0025])
    assert kl_per_dim(np.ones((3, 1)), np.zeros((3, 1))) == pytest.approx([0.5])
    assert kl_per_dim(np.zeros((1, 1)), np.log([[4.0]])) == pytest.approx([0.5 * (3 - np.log(4))])


def _ds():
    ids = [f"i{j:02d}" for j in range(30)]
    man = pd.DataFrame({"collection": list("aabbcc") * 5, "language": list("xxyyzz") * 5,
                        "mode": list("MmMmMm") * 5}, index=pd.Index(ids, name="id"))
    return ids, SimpleNamespace(name="toy", manifest=man, labels=["collection", "language", "mode"],
                                primary_label="collection")


def test_cvae_never_scored_against_its_condition():
    ids, ds = _ds()
    assert near_copies(ds, "collection", ds.labels) == ["collection", "language"]      # language is a near-copy
    rng = np.random.default_rng(0)
    feats = {"a": FeatureSet("a", ids, rng.normal(size=(len(ids), 5)).astype(np.float32), np.ones(len(ids), bool))}
    half = len(ids) // 2
    ds.fold_ids = lambda r, n, seed=0: {"train": np.array(ids[:half - 5]), "stop": np.array(ids[half - 5:half]), "valid": np.array(ids[half:half + 5]),
                                        "test": np.array(ids[half + 5:]), "all": np.array(ids)}
    ex = Experiment(ds, feats, {"a": "a"}, folds=1, n_jobs=1, scheduler="local")
    spec = ModelSpec("cvae", ("a",), condition="collection", latent_dim=2, epochs=2, patience=2)
    rows, _ = ex.score(ex.fit([spec]), Protocol(algorithms=("kmeans", "gmm"), within=None, min_items=5))
    scored = set(rows[rows.model == "cvae"].label)
    assert "mode" in scored and not scored & {"collection", "language"}


def test_cvae_model_uses_condition():
    data, _ = toy_data(n=40, dims={"audio": 6, "midi": 4})
    cond = np.eye(3, dtype=np.float32)[np.arange(40) % 3]
    dc = MultiModalData({**data.arrays, "cond": cond}, data.ids, {**data.masks, "cond": np.ones(40, bool)})
    fit = fit_embed(lambda d: CVAE({"audio": 6, "midi": 4}, n_cond=3, latent_dim=2), dc, data.ids[:30], data.ids[30:35],
                    {"test": data.ids[35:]}, TrainConfig(epochs=2, progress=False, kl_warmup_epochs=0))
    out = infer(fit.model, dc.take(data.ids[35:]))
    assert np.allclose(out["mu"], fit.Z["test"], atol=1e-5) and out["logvar"].shape == (5, 2)
    assert sorted(out["recon"]) == ["audio", "midi"]                                   # the condition is not reconstructed
    # a different condition changes the posterior
    dc2 = MultiModalData({**data.arrays, "cond": np.roll(cond, 1, axis=1)}, data.ids, dc.masks)
    assert not np.allclose(infer(fit.model, dc2)["mu"], infer(fit.model, dc)["mu"])
    # with n_cond=0 it has exactly the parameters of the concat-fusion MultiModalVAE
    n = lambda m: sum(p.numel() for p in m.parameters())
    assert n(CVAE({"audio": 6, "midi": 4}, 0, 2)) == n(MultiModalVAE({"audio": 6, "midi": 4}, 2, fusion="concat"))


def test_latent_scores_and_reconstruction_errors():
    rng = np.random.default_rng(1)
    f = rng.integers(0, 2, 200)
    s = latent_scores(np.c_[f + 0.05 * rng.normal(size=200), rng.normal(size=200)], np.zeros((200, 2)),
                      pd.DataFrame({"f": f}))
    assert s["f"]["mig"] > 0.5 and s[""]["active_units"] == 2.0 and s[""]["kl_mean_per_dim"] > 0
    parts = split_views(np.arange(10.).reshape(2, 5), {"a": 2, "b": 3})
    assert parts["b"].tolist() == [[2., 3., 4.], [7., 8., 9.]]
    e = reconstruction_errors({"a": np.ones((2, 2))}, {"a": np.zeros((2, 2))}, {"a": np.array([True, False])})
    assert e == {"recon_a": 1.0}
