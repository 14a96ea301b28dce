"Fast checks of the trainer: resume equality, safe checkpoints, the fit cache, infer/embed, NaN guard, data by id."
import warnings
import numpy as np
import pandas as pd
import pytest
import torch

from music_vae_nb.core import seed_everything
from music_vae_nb.models import VAE, MultiModalVAE, PCAEmbedder
from music_vae_nb import train as train_mod
from music_vae_nb.train import (MultiModalData, TrainConfig, embed, fit_embed, fit_embed_many, fit_model, infer,
                                 load_checkpoint, toy_data)


@pytest.fixture(scope="module")
def split():
    data, y = toy_data(200, {"audio": 10, "lyrics": 8}, missing={"lyrics": 0.3}, seed=0)
    return data.take(data.ids[:160]), data.take(data.ids[160:])


def _model(seed=1):
    seed_everything(seed)
    return MultiModalVAE({"audio": 10, "lyrics": 8}, latent_dim=3, hidden=(16,), fusion="poe")


def _cfg(**kw):
    return TrainConfig(**{**dict(epochs=4, batch_size=32, kl_warmup_epochs=2, patience=5, progress=False), **kw})


def test_resume_equals_uninterrupted(split, tmp_path):
    train, valid = split
    m4 = _model(); h4 = fit_model(m4, train, valid, _cfg())
    fit_model(_model(), train, valid, _cfg(epochs=2, checkpoint_dir=tmp_path))
    m22 = _model(); h22 = fit_model(m22, train, valid, _cfg(checkpoint_dir=tmp_path))
    assert h22.attrs["resumed_from"] == 2
    pd.testing.assert_frame_equal(h4.drop(columns="seconds"), h22.drop(columns="seconds"))
    for (k, a), b in zip(m4.state_dict().items(), m22.state_dict().values()):
        assert torch.equal(a, b), k


def test_finished_run_is_not_retrained(split, tmp_path):
    train, valid = split
    h = fit_model(_model(), train, valid, _cfg(checkpoint_dir=tmp_path))
    h2 = fit_model(_model(), train, valid, _cfg(checkpoint_dir=tmp_path))
    assert h2.attrs["resumed_from"] == 4
    pd.testing.assert_frame_equal(h, h2)


def test_foreign_checkpoint_is_ignored(split, tmp_path):
    train, valid = split
    fit_model(_model(), train, valid, _cfg(epochs=1, checkpoint_dir=tmp_path))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        h = fit_model(_model(), train, valid, _cfg(epochs=1, lr=5e-3, checkpoint_dir=tmp_path))
    assert h.attrs["resumed_from"] == 0 and any("another run" in str(x.message) for x in w)


def test_same_seed_same_run(split):
    train, valid = split
    a, b = _model(), _model()
    ha, hb = fit_model(a, train, valid, _cfg()), fit_model(b, train, valid, _cfg())
    pd.testing.assert_frame_equal(ha.drop(columns="seconds"), hb.drop(columns="seconds"))


class NaNAt(VAE):
    "Its reconstruction becomes NaN from the 6th training batch on."
    calls = 0
    def decode(self, z, batch):
        self.calls += self.training
        r = super().decode(z, batch)
        return {k: v * float("nan") for k, v in r.items()} if self.calls > 5 else r


def test_nan_guard_names_epoch_and_term(split):
    train, _ = split
    seed_everything(0)
    with pytest.raises(FloatingPointError, match=r"epoch 2, batch 0: term\(s\) \['recon_audio'\]"):
        fit_model(NaNAt(10, 3, (16,), modality="audio"), train, None, _cfg(epochs=3, batch_size=32))


def test_embed_is_posterior_mean_and_deterministic(split):
    train, valid = split
    m = _model(); fit_model(m, train, valid, _cfg(epochs=2))
    Z1, Z2 = embed(m, valid), embed(m, valid)
    assert Z1.shape == (40, 3) and Z1.dtype == np.float32
    assert np.array_equal(Z1, Z2)
    with torch.no_grad():
        mu, _ = m.encode(valid.tensors())
    assert np.allclose(Z1, mu.numpy(), atol=1e-6)
    assert not m.training


def test_history_columns_and_best_weights(split):
    train, valid = split
    m = _model(); h = fit_model(m, train, valid, _cfg(epochs=6))
    assert {"epoch", "split", "beta", "total", "kl", "recon_audio", "recon_lyrics"} <= set(h.columns)
    assert len(h) == 12
    v = h[h.split == "valid"].set_index("epoch").total
    best = h.attrs["best_epoch"]
    assert v[best] == v.loc[2:].min()                 # best after the 2 warm-up epochs
    from music_vae_nb.train import evaluate
    assert evaluate(m, valid, 1.0)["total"] == pytest.approx(v[best], rel=1e-5)   # best weights restored


def test_data_is_joined_by_id():
    data = MultiModalData({"a": np.arange(6, dtype=np.float32).reshape(3, 2)}, ["x", "y", "z"],
                          {"a": np.array([True, True, False])})
    sub = data.take(["z", "x"])
    assert sub.ids.tolist() == ["z", "x"]
    assert sub.arrays["a"].tolist() == [[0, 0], [0, 1]]           # z is missing: zero row, mask False
    assert sub.masks["a"].tolist() == [False, True]
    with pytest.raises(KeyError, match="nope"):
        data.take(["x", "nope"])


def test_fit_embed_returns_ids_beside_latents():
    data, y = toy_data(120, {"audio": 10}, seed=2)
    ids = data.ids
    r = fit_embed(lambda dims: VAE(dims["audio"], latent_dim=3, hidden=(16,)), data, ids[:80], ids[80:100],
                  {"test": ids[100:], "all": ids}, _cfg(epochs=2))
    assert r.Z["test"].shape == (20, 3) and r.ids["test"].tolist() == ids[100:].tolist()
    assert r.Z["all"].shape == (120, 3)
    assert np.allclose(r.Z["test"], r.Z["all"][100:], atol=1e-6)
    p = fit_embed(PCAEmbedder(2), data, ids[:80], embed_ids={"test": ids[100:]})
    assert p.history is None and p.Z["test"].shape == (20, 2)


def test_checkpoint_loads_with_weights_only(split, tmp_path):
    train, valid = split
    fit_model(_model(), train, valid, _cfg(epochs=2, checkpoint_dir=tmp_path))
    c = torch.load(tmp_path / "last.pt", map_location="cpu", weights_only=True)     # no pickled objects
    assert c["state"]["epoch"] == 2 and set(c["rng"]) >= {"torch", "gen", "numpy", "python"}
    assert load_checkpoint(tmp_path / "last.pt")["key"] == c["key"]


def test_checkpoint_every_spaces_the_writes(split, tmp_path, monkeypatch):
    train, valid = split
    epochs = []
    real = train_mod.save_checkpoint
    monkeypatch.setattr(train_mod, "save_checkpoint", lambda p, **s: (epochs.append(s["state"]["epoch"]), real(p, **s)))
    fit_model(_model(), train, valid, _cfg(epochs=7, patience=100, checkpoint_every=3, checkpoint_dir=tmp_path))
    assert epochs == [3, 6, 7]                                 # every 3rd epoch and the last


def test_infer_outputs(split):
    train, valid = split
    m = _model(); fit_model(m, train, valid, _cfg(epochs=2))
    out = infer(m, valid, batch_size=7)
    assert out["mu"].shape == (40, 3) and out["logvar"].shape == (40, 3) and out["mu"].dtype == np.float32
    assert set(out["recon"]) == {"audio", "lyrics"} and out["recon"]["lyrics"].shape == (40, 8)
    assert np.allclose(out["mu"], embed(m, valid), atol=1e-6)
    only = infer(m, valid, what=("mu",))
    assert only["recon"] is None and only["logvar"] is None
    assert torch.get_num_threads() >= 1 and not m.training
    p = PCAEmbedder(2).fit(train.matrix())
    o = infer(p, valid)
    assert o["logvar"] is None and o["recon"]["audio"].shape == (40, 10) and o["mu"].shape == (40, 2)


def test_fit_cache_reuses_a_finished_fit(tmp_path, monkeypatch):
    data, _ = toy_data(100, {"audio": 10}, seed=5)
    ids = data.ids
    job = dict(data=data, train_ids=ids[:60], valid_ids=ids[60:80], embed_ids={"test": ids[80:]},
               cfg=_cfg(epochs=3), cache_dir=tmp_path)
    make = lambda d: VAE(d["audio"], 3, (16,))
    r1 = fit_embed(make, **job)
    calls = []
    real = train_mod.fit_model
    monkeypatch.setattr(train_mod, "fit_model", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    r2 = fit_embed(make, **job)
    assert calls == [] and np.array_equal(r1.Z["test"], r2.Z["test"])
    assert r2.ids["test"].tolist() == ids[80:].tolist()
    pd.testing.assert_frame_equal(r1.history, r2.history)
    assert r2.history.attrs["best_epoch"] == r1.history.attrs["best_epoch"]
    # other data values under the same ids: not the cached fit
    other = MultiModalData({"audio": data.arrays["audio"] + 1}, ids)
    fit_embed(make, **{**job, "data": other})
    assert calls == [1]


def test_fit_embed_many_local_equals_processes():
    data, _ = toy_data(90, {"audio": 8}, seed=6)
    ids = data.ids
    tasks = [dict(model=lambda d: VAE(d["audio"], 2, (8,)), data=data, train_ids=ids[:60], valid_ids=ids[60:75],
                  embed_ids={"test": ids[75:]}, cfg=_cfg(epochs=2, seed=s)) for s in (0, 1)]
    a = fit_embed_many(tasks, scheduler="local")
    b = fit_embed_many(tasks, n_jobs=2, scheduler="processes")
    for x, y in zip(a, b):
        assert np.array_equal(x.Z["test"], y.Z["test"])
    assert not np.array_equal(a[0].Z["test"], a[1].Z["test"])


# --- the trainer's start hook and the mixture models' k (issue 23) ---

def test_initialise_runs_on_a_fresh_run_only(split, tmp_path):
    from music_vae_nb.models import MixtureMultiModalVAE
    train, valid = split
    calls = []
    class Counted(MixtureMultiModalVAE):
        def initialise(self, batch, seed=0):
            calls.append((len(batch["audio"]), seed)); super().initialise(batch, seed)
    make = lambda: (seed_everything(1), Counted({"audio": 10, "lyrics": 8}, 3, latent_dim=2, hidden=(16,), pretrain_steps=5))[1]
    fit_model(make(), train, valid, _cfg(epochs=2, checkpoint_dir=tmp_path, seed=7))
    assert calls == [(160, 7)]                               # every training item, the run's seed
    fit_model(make(), train, valid, _cfg(epochs=4, checkpoint_dir=tmp_path, seed=7))
    assert len(calls) == 1                                   # resumed: the checkpoint already holds the start


def test_same_seed_same_mixture_fit(split):
    from music_vae_nb.models import MixtureVAE
    train, valid = split
    fits = []
    for _ in range(2):
        seed_everything(3); m = MixtureVAE(10, 3, latent_dim=2, hidden=(16,), modality="audio", pretrain_steps=10)
        fit_model(m, train.select(["audio"]), valid.select(["audio"]), _cfg(epochs=2)); fits.append(m.state_dict())
    for k in fits[0]: assert torch.equal(fits[0][k], fits[1][k]), k


def test_choose_components_picks_k_on_validation():
    from music_vae_nb.models import MixtureVAE, separated_clusters
    from music_vae_nb.train import choose_components, component_probabilities
    X, y = separated_clusters(300, k=4, dim=20, seed=1)
    data = MultiModalData({"x": X}, [f"i{i:03d}" for i in range(300)])
    cfg = TrainConfig(epochs=20, batch_size=64, lr=3e-3, kl_warmup_epochs=0, patience=20, progress=False)
    k, m, sweep = choose_components(lambda k: MixtureVAE(20, k, latent_dim=4, hidden=(32,), dropout=0.0),
                                    data.take(data.ids[:200]), data.take(data.ids[200:260]), ks=(3, 4, 5), cfg=cfg)
    assert k == 4 and list(sweep.k) == [3, 4, 5] and sweep.score.idxmax() == 1
    P = component_probabilities(m, data.take(data.ids[260:]))
    assert P.shape == (40, 4) and np.allclose(P.sum(1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="unknown rule"): choose_components(None, data, data, rule="bic")


def test_choose_components_for_the_fused_model_with_a_missing_view():
    from music_vae_nb.models import MixtureMultiModalVAE, separated_clusters
    from music_vae_nb.train import choose_components, component_probabilities
    from sklearn.metrics import adjusted_mutual_info_score as ami
    X, y = separated_clusters(300, k=4, dim=20, seed=0)
    data = MultiModalData({"a": X[:, :10], "b": X[:, 10:]}, [f"i{i:03d}" for i in range(300)], {"b": np.arange(300) % 5 != 0})
    cfg = TrainConfig(epochs=20, batch_size=64, lr=3e-3, kl_warmup_epochs=0, patience=20, progress=False)
    make = lambda k: MixtureMultiModalVAE({"a": 10, "b": 10}, k, latent_dim=4, hidden=(32,), dropout=0.0)
    k, m, _ = choose_components(make, data.take(data.ids[:200]), data.take(data.ids[200:260]), ks=(3, 4), cfg=cfg)
    assert k == 4 and ami(y[260:], component_probabilities(m, data.take(data.ids[260:])).argmax(1)) >= 0.9
