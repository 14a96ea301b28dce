"Tests of music_vae_nb.cluster: hand-computed scores, the noise rule, k choice, sampled fits (the by-id join is the protocol's)."
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from music_vae_nb.cluster import (ALGORITHMS, DENSITY, FIT_MAX, choose_k, cluster,
                                  contingency, extend_by_centroid, extend_by_nearest,
                                  extend_by_vote, external_scores, internal_scores, knee_eps, n_clusters,
                                  sample_index)


@pytest.fixture(scope="module")
def blobs():
    Z, y = make_blobs(n_samples=150, centers=3, n_features=4, cluster_std=0.5, random_state=3)
    return Z, y


@pytest.fixture(scope="module")
def blobs_with_outliers(blobs):
    Z, y = blobs
    out = np.random.default_rng(1).uniform(Z.min() - 10, Z.max() + 10, size=(10, Z.shape[1]))
    return np.vstack([Z, out]), np.r_[y, np.full(10, -9)]


def test_purity_and_hungarian_acc_by_hand():
    # clusters {a,a} and {a,a,b,c}: purity (2+2)/6; acc: a->0 (2) + b->1 (1) = 3/6
    e = external_scores(list("aaaabc"), [0, 0, 1, 1, 1, 1])
    assert e["purity"] == pytest.approx(4 / 6)
    assert e["acc"] == pytest.approx(3 / 6)
    # one extra cluster that cannot be matched
    assert external_scores([0, 0, 0, 1, 1, 1], [0, 0, 1, 2, 2, 2])["acc"] == pytest.approx(5 / 6)


def test_nmi_ari_known_cases():
    assert external_scores(list("aabbcc"), [2, 2, 0, 0, 1, 1]) == dict(nmi=1.0, ami=1.0, ari=1.0, purity=1.0, acc=1.0)
    e = external_scores([0, 0, 1, 1], [0, 1, 0, 1])
    assert e["nmi"] == pytest.approx(0.0, abs=1e-12)
    assert e["ari"] == pytest.approx(-0.5)


def test_noise_is_never_a_cluster():
    # rule: scores on the clustered points x the fraction clustered (noise counts as zero)
    e = external_scores([0, 0, 1, 1, 0, 1], [0, 0, 1, 1, -1, -1])
    assert all(v == pytest.approx(4 / 6) for v in e.values())
    assert external_scores([0, 0, 1, 1], [-1, -1, -1, -1]) == dict(nmi=0.0, ami=0.0, ari=0.0, purity=0.0, acc=0.0)
    # all-noise must never beat a real clustering (the singleton convention gave NMI > 0 here)
    y = np.repeat([0, 1], 50)
    assert external_scores(y, np.full(100, -1))["nmi"] == 0.0
    assert n_clusters([-1, -1, 0, 1, 1]) == 2


@pytest.mark.parametrize("alg", DENSITY)
def test_density_noise_fraction(alg, blobs_with_outliers):
    Z, y = blobs_with_outliers
    lab = cluster(Z, alg, random_state=0)
    assert n_clusters(lab) == 3
    assert (lab[y == -9] == -1).mean() >= 0.9
    s = internal_scores(Z, lab)
    assert s["noise_fraction"] == pytest.approx((lab == -1).mean())
    e = external_scores(y, lab)
    # the clustered points are the blob points, perfectly clustered: every score = the fraction clustered
    assert ((lab >= 0) & (y == -9)).sum() == 0
    for m in ("nmi", "ami", "ari", "purity", "acc"):
        assert e[m] == pytest.approx(1 - s["noise_fraction"])


def test_internal_scores_exclude_noise(blobs):
    Z, y = blobs
    base = internal_scores(Z, y)
    Zn = np.vstack([Z, np.full((3, Z.shape[1]), 100.0)])
    with_noise = internal_scores(Zn, np.r_[y, -1, -1, -1])
    assert with_noise["silhouette"] == pytest.approx(base["silhouette"])
    assert with_noise["noise_fraction"] == pytest.approx(3 / 153)
    assert np.isnan(internal_scores(Z, np.zeros(len(Z), int))["silhouette"])


@pytest.mark.parametrize("alg", list(ALGORITHMS))
def test_choose_k_finds_three_blobs(alg, blobs, blobs_with_outliers):
    Z = blobs_with_outliers[0] if alg in DENSITY else blobs[0]
    k, sweep = choose_k(Z, alg, random_state=0)
    assert k == 3
    assert len(sweep) >= 1


def test_unknown_algorithm(blobs):
    with pytest.raises(KeyError, match="unknown algorithm"):
        cluster(blobs[0], "kmedoids", k=3)


def test_contingency_has_noise_column():
    t = contingency(list("aabbc"), [1, 1, 0, -1, 0])
    assert list(t.columns) == ["0", "1", "noise"]
    assert t.loc["b", "noise"] == 1


def test_knee_eps_between_blob_and_outliers(blobs_with_outliers):
    Z, y = blobs_with_outliers
    from music_vae_nb.cluster import k_distance
    eps = knee_eps(Z)
    assert np.median(k_distance(Z[y != -9])) < eps < np.sort(k_distance(Z))[-10:].min()


def test_ami_perfect_and_random():
    y = np.repeat([0, 1, 2], 100)
    assert external_scores(y, (y + 1) % 3)["ami"] == pytest.approx(1.0)
    rnd = external_scores(np.repeat([0, 1, 2], 30), np.random.default_rng(0).integers(0, 10, 90))
    assert abs(rnd["ami"]) < 0.03 and rnd["nmi"] > 0.05          # NMI is not chance-adjusted, AMI is
    assert external_scores([0, 0, 1, 1], [0, 1, 0, 1])["ami"] < 0


def test_small_data_is_the_exact_sklearn_call(blobs, blobs_with_outliers):
    from sklearn import cluster as skc
    from sklearn.metrics import normalized_mutual_info_score as nmi
    from sklearn.mixture import GaussianMixture
    Z, _ = blobs
    Zo, _ = blobs_with_outliers
    ref = {"kmeans": skc.KMeans(n_clusters=3, n_init=10, random_state=0).fit_predict(Z),
           "agglomerative": skc.AgglomerativeClustering(n_clusters=3, linkage="ward").fit_predict(Z),
           "gmm": GaussianMixture(3, covariance_type="diag", n_init=2, reg_covar=1e-4, random_state=0).fit(Z).predict(Z),
           "spectral": skc.SpectralClustering(3, affinity="nearest_neighbors", n_neighbors=10, assign_labels="cluster_qr",
                                              random_state=0).fit_predict(Z),
           "dbscan": skc.DBSCAN(eps=knee_eps(Zo), min_samples=5).fit_predict(Zo),
           "hdbscan": skc.HDBSCAN(min_cluster_size=max(5, round(0.05 * len(Zo)))).fit_predict(Zo)}
    for alg, want in ref.items():
        got = cluster(Zo if alg in DENSITY else Z, alg, k=None if alg in DENSITY else 3, random_state=0)
        assert nmi(want, got) >= 0.98, alg
        if alg in DENSITY: assert ((got == -1) == (want == -1)).all(), alg


@pytest.fixture(scope="module")
def big_blobs():
    return make_blobs(n_samples=900, centers=4, n_features=16, cluster_std=1.5, random_state=1)


@pytest.mark.parametrize("alg", list(ALGORITHMS))
def test_sampled_path_matches_exact(alg, big_blobs):
    Z, y = big_blobs
    k = None if alg in DENSITY else 4
    exact = external_scores(y, cluster(Z, alg, k=k, max_fit=None))["nmi"]
    sampled = external_scores(y, cluster(Z, alg, k=k, max_fit=300))["nmi"]
    assert sampled == pytest.approx(exact, abs=0.02)
    assert sampled > 0.9


def test_default_limits_sample_large_inputs():
    Z, y = make_blobs(n_samples=FIT_MAX + 1000, centers=3, n_features=16, random_state=4)
    for alg in ("agglomerative", "hdbscan"):
        assert external_scores(y, cluster(Z, alg, k=None if alg in DENSITY else 3))["nmi"] > 0.98, alg


def test_sampled_silhouette_close_to_exact():
    Z, y = make_blobs(n_samples=3000, centers=5, n_features=8, cluster_std=2.0, random_state=2)
    exact, sampled = internal_scores(Z, y, max_items=None), internal_scores(Z, y, max_items=600, random_state=1)
    assert (exact["silhouette_sample"], sampled["silhouette_sample"]) == (3000, 600)
    assert sampled["silhouette"] == pytest.approx(exact["silhouette"], abs=0.02)
    assert sampled["davies_bouldin"] == pytest.approx(exact["davies_bouldin"])   # linear scores: every item


def test_choose_k_on_a_sample(big_blobs):
    Z, _ = big_blobs
    k, sweep = choose_k(Z, "kmeans", max_items=300)
    assert k == 4 and sweep["items"].unique().tolist() == [300]
    assert choose_k(Z, "gmm", max_items=300)[0] == 4


def test_sample_and_extensions():
    s = sample_index(1000, 50, random_state=3)
    assert len(np.unique(s)) == 50 and (s == sample_index(1000, 50, random_state=3)).all()
    assert (sample_index(7, 10) == np.arange(7)).all()
    Z = np.array([[0.], [10.], [1.], [9.], [50.], [4.]])
    idx, lab = np.array([0, 1]), np.array([0, 1])
    assert extend_by_centroid(Z, idx, lab).tolist() == [0, 1, 0, 1, 1, 0]
    assert extend_by_vote(Z, idx, lab, n_neighbors=1).tolist() == [0, 1, 0, 1, 1, 0]
    assert extend_by_nearest(Z, idx, lab, radius=2.0).tolist() == [0, 1, 0, 1, -1, -1]
    assert extend_by_nearest(Z, idx, np.array([-1, 1])).tolist() == [-1, 1, -1, 1, 1, -1]   # noise spreads too
