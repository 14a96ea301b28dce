"Tests of music_vae_nb.report on a synthetic metrics table with known answers."
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from music_vae_nb.report import (beta_of, beta_table, best_per_label, has_required_rows, make_report_html,
                                 modality_table, quality_goals, seed_stability, seed_summary, synthetic_metrics,
                                 t_interval)


@pytest.fixture(scope="module")
def S():
    return seed_summary(synthetic_metrics())


def test_t_interval():
    lo, hi = t_interval([1.0, 3.0])
    half = stats.t.ppf(0.975, 1) * np.std([1.0, 3.0], ddof=1) / np.sqrt(2)
    assert (lo, hi) == pytest.approx((2 - half, 2 + half))
    assert np.isnan(t_interval([1.0])[0])


def test_seed_summary(S):
    r = S.query("model == 'mm_vae_poe' and algorithm == 'kmeans' and label == 'collection' and metric == 'nmi'").iloc[0]
    assert r["mean"] == pytest.approx(0.82) and r["n"] == 2 and r["ks"] == "3"
    assert r["sd"] == pytest.approx(np.std([0.80, 0.84], ddof=1))
    assert r["lo"] < 0.82 < r["hi"]
    assert "seed" not in S.columns


def test_best_modality_beta(S):
    B = best_per_label(S, "nmi")
    assert B.loc["collection", "model"] == "mm_vae_poe" and B.loc["collection", "random"] == pytest.approx(0.03)
    T = modality_table(S)
    assert T.modalities.tolist() == ["audio+lyrics+midi", "lyrics", "audio"] and T.fused.tolist() == [True, False, False]
    assert beta_of("beta_vae_0.5") == 0.5 and np.isnan(beta_of("mm_vae_poe"))
    BT = beta_table(S, "nmi")
    assert list(BT.columns) == [0.5, 1.0, 4.0] and BT.loc["collection", 1.0] == pytest.approx(0.61)


def test_quality_goals(S):
    Q = quality_goals(S)
    assert Q.value.tolist() == pytest.approx([0.82, 0.82 - 0.63, 0.82 - 0.50, 0.25 - 0.0, 0.72 - 0.58])
    assert Q.met.tolist() == [True] * 5
    # a stricter NMI goal is not met, and an empty table meets nothing
    assert not quality_goals(S, nmi_goal=0.9).met.iloc[0]
    assert quality_goals(S.iloc[:0]).met.tolist() == [False] * 5
    assert has_required_rows(S) and not has_required_rows(S[S.model != "pca"])


def test_seed_stability_joins_by_id():
    A = pd.DataFrame({"model": "vae", "modalities": "audio", "split": "test", "algorithm": "kmeans",
                      "k_rule": "n_classes", "seed": [0] * 4 + [1] * 4,
                      "id": list("abcd") + list("dcba"), "cluster": [0, 0, 1, 1] + [5, 5, 7, 7]})
    st = seed_stability(A).iloc[0]
    assert st["ari_mean"] == pytest.approx(1.0) and st["pairs"] == 1


def test_report_html_is_self_contained(S):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(); ax.plot([0, 1])
    page = make_report_html("R <1>", [dict(title="Goals", text="x < y", tables=[quality_goals(S)], figures=[fig])])
    plt.close(fig)
    assert page.startswith("<!DOCTYPE html>") and "R &lt;1&gt;" in page and "x &lt; y" in page
    assert page.count("data:image/png;base64,") == 1 and page.count("<table") == 1
    assert "http" not in page
