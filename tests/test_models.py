"Fast checks of the models module: loss values, masks, fusion, shapes (helper C)."
import math
import numpy as np
import pytest
import torch

from music_vae_nb.models import (AE, VAE, ConvVAE, MultiModalVAE, PCAEmbedder, kl_normal, masked_mean, moe, poe,
                                 recon_error)

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
