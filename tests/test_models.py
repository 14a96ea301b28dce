"Fast checks of the models module: loss values, masks, fusion, shapes (helper C)."
import math
import numpy as np
import pytest
import torch

from music_vae_nb.models import (AE, VAE, ConvVAE, MultiModalVAE, PCAEmbedder, kl_normal, masked_mean, moe, poe,
                                 recon_error)
from music_vae_nb.models import (MixturePrior, MixtureVAE, MixtureMultiModalVAE, PrivateSharedVAE, separated_clusters,
                                 shared_private_views, views_to_drop)

DIMS = {"audio": 12, "lyrics": 20, "midi": 6}


def batch(n=5, dims=DIMS, missing=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    b = {m: torch.randn(n, *((d,) if isinstance(d, int) else d), generator=g) for m, d in dims.items()}
    b["mask"] = {m: torch.ones(n, dtype=torch.bool) for m in dims}
    for m, rows in (missing or {}).items(): b["mask"][m][list(rows)] = False
    return b


def test_kl_zero_for_prior():
    assert torch.equal(kl_normal(torch.zeros(4, 3), torch.zeros(4, 3)), torch.zeros(4))


def test_kl_hand_computed():
    # mu=(1,2), var=(e,1): 0.5*[(1+e-1-1) + (4+1-1-0)] = 0.5*(e+3)
    kl = kl_normal(torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 0.0]]))
    assert kl.item() == pytest.approx(0.5 * (math.e + 3), rel=1e-6)


def test_recon_normalised_per_element():
    for shape in [(384,), (64, 128)]:
        x = torch.zeros(3, *shape)
        assert torch.allclose(recon_error(x + 2, x), torch.full((3,), 4.0))


def test_masked_mean_ignores_masked_nan():
    v = torch.tensor([1.0, 2.0, float("nan")])
    assert masked_mean(v, torch.tensor([True, True, False])).item() == 1.5
    assert masked_mean(v, torch.zeros(3, dtype=torch.bool)).item() == 0.0


def test_loss_dict_and_total():
    torch.manual_seed(0)
    m = VAE(12, latent_dim=4, hidden=(8,), modality="audio").eval()
    b = batch()
    with torch.no_grad():
        L = m.loss(b, m(b), beta=0.25)
    assert sorted(L) == ["kl", "recon_audio", "total"]
    assert L["total"].item() == pytest.approx((L["recon_audio"] + 0.25 * L["kl"]).item(), rel=1e-6)


def test_kl_is_per_latent_dim():
    torch.manual_seed(0)
    m = VAE(12, latent_dim=4, hidden=(8,), modality="audio").eval()
    b = batch()
    with torch.no_grad():
        out = m(b); L = m.loss(b, out)
    assert L["kl"].item() == pytest.approx(kl_normal(out["mu"], out["logvar"]).mean().item() / 4, rel=1e-5)


def test_ae_has_no_kl_and_no_sampling():
    torch.manual_seed(0)
    ae = AE(12, latent_dim=4, hidden=(8,), modality="audio").train()
    b = batch()
    out = ae(b)
    assert out["logvar"] is None and torch.equal(out["z"], out["mu"])
    assert ae.loss(b, out)["kl"].item() == 0.0


def test_poe_known_values():
    mus, lvs = torch.tensor([[[2.0]], [[-2.0]]]), torch.zeros(2, 1, 1)
    mu, lv = poe(mus, lvs, torch.tensor([[True], [False]]))
    assert mu.item() == pytest.approx(1.0) and lv.exp().item() == pytest.approx(0.5)
    mu, lv = poe(mus, lvs, torch.tensor([[False], [False]]))
    assert mu.item() == 0.0 and lv.item() == 0.0            # the prior


def test_moe_known_values():
    mus, lvs = torch.tensor([[[2.0]], [[-2.0]]]), torch.zeros(2, 1, 1)
    mu, lv = moe(mus, lvs, torch.tensor([[True], [True]]))
    assert mu.item() == pytest.approx(0.0) and lv.exp().item() == pytest.approx(5.0)


@pytest.mark.parametrize("fusion", ["poe", "moe", "concat"])
def test_masked_modality_does_not_change_posterior(fusion):
    torch.manual_seed(0)
    m = MultiModalVAE(DIMS, latent_dim=4, fusion=fusion, hidden=(16,)).eval()
    b = batch(missing={"lyrics": [0]})
    junk = {**b, "lyrics": b["lyrics"].clone()}; junk["lyrics"][0] = 1e4
    with torch.no_grad():
        mu, lv = m.encode(b); mu2, lv2 = m.encode(junk)
    assert torch.equal(mu[0], mu2[0]) and torch.equal(lv[0], lv2[0])
    assert torch.allclose(mu[1:], mu2[1:], atol=1e-6)      # and the other items are untouched


@pytest.mark.parametrize("fusion", ["poe", "moe"])
def test_posterior_equals_posterior_of_other_experts(fusion):
    torch.manual_seed(0)
    m = MultiModalVAE(DIMS, latent_dim=4, fusion=fusion, hidden=(16,)).eval()
    b = batch(missing={"lyrics": [0]})
    with torch.no_grad():
        mu, lv = m.encode(b)
        # a model built on audio + midi only, sharing those experts' weights
        torch.manual_seed(1)
        m2 = MultiModalVAE({"audio": 12, "midi": 6}, latent_dim=4, fusion=fusion, hidden=(16,)).eval()
        for part in ("trunks", "heads"):
            for k in ("audio", "midi"): getattr(m2, part)[k].load_state_dict(getattr(m, part)[k].state_dict())
        b2 = {k: b[k] for k in ("audio", "midi")}; b2["mask"] = {k: b["mask"][k] for k in ("audio", "midi")}
        mu2, lv2 = m2.encode(b2)
    assert torch.allclose(mu[0], mu2[0], atol=1e-6) and torch.allclose(lv[0], lv2[0], atol=1e-6)


@pytest.mark.parametrize("fusion", ["poe", "moe", "concat"])
def test_masked_modality_gets_zero_gradient(fusion):
    torch.manual_seed(0)
    m = MultiModalVAE(DIMS, latent_dim=4, fusion=fusion, hidden=(16,)).train()
    b = batch(n=1, missing={"lyrics": [0]})
    m.loss(b, m(b))["total"].backward()
    for part in (m.trunks["lyrics"], m.decoders["lyrics"]) + ((m.heads["lyrics"],) if fusion != "concat" else ()):
        for p in part.parameters():
            assert p.grad is None or torch.count_nonzero(p.grad) == 0
    assert any(p.grad is not None and torch.count_nonzero(p.grad) > 0 for p in m.trunks["audio"].parameters())


def test_masked_item_leaves_other_items_recon_unchanged():
    torch.manual_seed(0)
    m = MultiModalVAE(DIMS, latent_dim=4, fusion="poe", hidden=(16,)).eval()
    b = batch(missing={"lyrics": [0]})
    junk = {**b, "lyrics": b["lyrics"].clone()}; junk["lyrics"][0] = 1e4
    with torch.no_grad():
        L, L2 = m.loss(b, m(b)), m.loss(junk, m(junk))
    for k in L: assert torch.equal(L[k], L2[k]), k


def test_conv_vae_shapes_and_multimodal_with_spectrogram():
    torch.manual_seed(0)
    cv = ConvVAE((64, 128), latent_dim=8, modality="log_mel").eval()
    b = batch(3, {"log_mel": (64, 128)})
    with torch.no_grad(): out = cv(b)
    assert out["mu"].shape == (3, 8) and out["recon"]["log_mel"].shape == (3, 64, 128)
    mm = MultiModalVAE({"audio": 12, "piano_roll": (64, 128)}, latent_dim=8, fusion="moe").eval()
    b = batch(3, {"audio": 12, "piano_roll": (64, 128)}, missing={"piano_roll": [1]})
    with torch.no_grad(): L = mm.loss(b, mm(b))
    assert sorted(L) == ["kl", "recon_audio", "recon_piano_roll", "total"]


def test_pca_embedder():
    X = np.random.default_rng(0).normal(size=(40, 5)) * [5, 1, 1, 1, 1]
    Z = PCAEmbedder(2, random_state=0).fit(X).embed(X)
    assert Z.shape == (40, 2) and Z.dtype == np.float32
    assert Z[:, 0].var() > Z[:, 1].var()


# --- the mixture prior, private latents, dropping views (issue 23) ---

def test_one_component_mixture_at_origin_is_the_standard_normal_kl():
    torch.manual_seed(0)
    p = MixturePrior(1, 3); p.means.data.zero_()
    mu, lv = torch.randn(6, 3), torch.randn(6, 3) * 0.3
    assert torch.allclose(p.kl(mu, lv), kl_normal(mu, lv), atol=1e-5)


def test_mixture_kl_hand_computed():
    # two components at -2 and +2 (var 1, weights 1/2); a code at +2 with var 1 sits on component 2:
    # gamma = (e^-8 / (1 + e^-8), 1 / (1 + e^-8)); KL_c = (8, 0); KL(gamma || 1/2, 1/2) = log 2 - H(gamma)
    p = MixturePrior(2, 1); p.means.data = torch.tensor([[-2.0], [2.0]])
    g = torch.tensor([math.exp(-8), 1.0]); g = g / g.sum()
    want = (g * torch.tensor([8.0, 0.0])).sum() + (g * (g.log() - math.log(0.5))).sum()
    assert p.kl(torch.tensor([[2.0]]), torch.zeros(1, 1)).item() == pytest.approx(want.item(), rel=1e-5)


@pytest.mark.parametrize("fusion,subsample", [("poe", True), ("poe", False), ("moe", True), ("concat", False)])
def test_mixture_models_loss_and_assign(fusion, subsample):
    torch.manual_seed(0)
    m = MixtureMultiModalVAE(DIMS, 3, latent_dim=2, fusion=fusion, hidden=(8,), subsample=subsample)
    b = batch(missing={"lyrics": [0]})
    L = m.loss(b, m(b), beta=0.5)
    assert sorted(L) == ["kl", "recon_audio", "recon_lyrics", "recon_midi", "total"]
    assert L["total"].item() == pytest.approx((L["recon_audio"] + L["recon_lyrics"] + L["recon_midi"] + 0.5 * L["kl"]).item(), rel=1e-5)
    P = m.eval().assign(b)
    assert P.shape == (5, 3) and torch.allclose(P.sum(1), torch.ones(5))


def test_initialise_fits_the_prior_to_the_codes():
    torch.manual_seed(0)
    X, y = separated_clusters(200, k=3, dim=10, seed=0)
    b = {"x": torch.from_numpy(X), "mask": {"x": torch.ones(200, dtype=torch.bool)}}
    m = MixtureVAE(10, 3, latent_dim=2, hidden=(16,), dropout=0.0, pretrain_steps=100)
    before = m.loss(b, m.eval()(b), 0.0)["recon_x"].item()
    m.initialise(b, seed=0)
    assert m.loss(b, m.eval()(b), 0.0)["recon_x"].item() < before             # the autoencoder steps trained
    w = m.prior.logits.softmax(0).detach().numpy()
    assert abs(w.sum() - 1) < 1e-6 and sorted(np.round(w * 200)) == sorted(np.bincount(y))   # one component per cluster


def test_private_shared_parts_shapes_and_masks():
    torch.manual_seed(0)
    m = PrivateSharedVAE({"audio": 12, "midi": 6}, latent_dim=3, private_dim=2, hidden=(8,)).eval()
    b = batch(dims={"audio": 12, "midi": 6}, missing={"midi": [0]})
    junk = {**b, "midi": b["midi"].clone()}; junk["midi"][0] = 1e4
    with torch.no_grad():
        parts = m.parts(b)
        assert {k: v[0].shape[1] for k, v in parts.items()} == {"shared": 3, "private:audio": 2, "private:midi": 2, "all": 7}
        assert torch.equal(parts["private:midi"][0][0], torch.zeros(2))
        assert torch.equal(m.embed(junk)[0], m.embed(b)[0])                 # a missing view never reaches any part
        m.part = "shared"; assert torch.equal(m.encode(b)[0], parts["shared"][0])
    m.train(); L = m.loss(b, m(b))
    assert sorted(L) == ["kl", "recon_audio", "recon_midi", "total"]
    with pytest.raises(KeyError, match="choose from"): m.embed(b, "private:lyrics")


def test_views_to_drop():
    scores = {("audio", "lyrics", "midi"): {"mode": 0.30, "meter": 0.40},
              ("lyrics", "midi"): {"mode": 0.35, "meter": 0.45},     # audio lowers both labels: dropped
              ("midi", "audio"): {"mode": 0.20, "meter": 0.50},      # lyrics helps one label: kept
              ("audio", "lyrics"): {"mode": 0.10, "meter": 0.20}}
    assert views_to_drop(scores, ["audio", "lyrics", "midi"]) == ["audio"]
    assert views_to_drop({("a", "b"): {"x": 0.3}, ("a",): {"x": 0.3}}, ["a", "b"]) == []     # a tie keeps it
    assert views_to_drop({("a", "b"): {"x": 0.3, "y": 0.2}, ("a",): {"x": 0.4}}, ["a", "b"]) == []   # y unscored: kept


# --- known answers (fast, CPU, seeded) ---

def _fit(model, data, n_train, n_valid, epochs, warmup=0):
    from music_vae_nb.core import seed_everything
    from music_vae_nb.train import TrainConfig, fit_model
    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=3e-3, kl_warmup_epochs=warmup, patience=epochs, progress=False)
    fit_model(model, data.take(data.ids[:n_train]), data.take(data.ids[n_train:n_train + n_valid]), cfg)
    return model


def test_mixture_prior_recovers_separated_clusters_where_vae_kmeans_does_not():
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_mutual_info_score as ami
    from music_vae_nb.core import seed_everything
    from music_vae_nb.train import MultiModalData, component_probabilities, embed
    X, y = separated_clusters(400, k=5, dim=20, seed=0)
    data = MultiModalData({"x": X}, [f"i{i:03d}" for i in range(400)])
    seed_everything(0); mv = _fit(MixtureVAE(20, 5, latent_dim=4, hidden=(32,), dropout=0.0), data, 300, 100, 30)
    seed_everything(0); vae = _fit(VAE(20, latent_dim=4, hidden=(32,), dropout=0.0), data, 300, 100, 70)   # + the start's steps
    mixture = ami(y, component_probabilities(mv, data).argmax(1))
    kmeans = ami(y, KMeans(5, n_init=10, random_state=0).fit_predict(embed(vae, data)))
    print(f"AMI: mixture-prior VAE {mixture:.3f}, VAE + K-Means {kmeans:.3f}")
    assert mixture >= 0.95 and kmeans < mixture, (mixture, kmeans)


def test_private_latent_absorbs_the_view_specific_factor():
    from sklearn.linear_model import LinearRegression
    from music_vae_nb.core import seed_everything
    from music_vae_nb.train import MultiModalData, embed
    views, s, p = shared_private_views(600, seed=0)
    data = MultiModalData(views, [f"i{i:03d}" for i in range(600)])
    seed_everything(0)
    m = _fit(PrivateSharedVAE({"a": 16, "b": 16}, latent_dim=1, private_dim=1, hidden=(32,), dropout=0.0), data, 400, 100, 60, 5)
    def probe(part, t):
        m.part = part; Z = embed(m, data)
        return LinearRegression().fit(Z[:400], t[:400]).score(Z[400:], t[400:])
    r2 = {(part, f): round(probe(part, t), 3) for part in ("shared", "private:a") for f, t in (("s", s), ("p", p))}
    print("probe R^2:", r2)
    assert r2["shared", "s"] >= 0.9 and r2["shared", "p"] <= 0.1, r2
    assert r2["private:a", "p"] >= 0.8 and r2["private:a", "s"] <= 0.2, r2
