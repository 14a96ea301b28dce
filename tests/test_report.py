"Tests of music_vae_nb.report on synthetic metrics tables whose answers are known."
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from music_vae_nb import report as R


@pytest.fixture(scope="module")
def M():
    return R.synthetic_metrics()


def test_fixture_has_every_metric_column(M):
    cols = ["dataset", "notebook", "config", "model", "modalities", "features", "fusion", "beta", "latent_dim", "epochs",
            "patience", "subsample", "condition", "fold", "seed", "split", "subset", "algorithm", "k",
            "k_rule", "label", "metric", "value"]
    assert set(cols) <= set(M.columns)
    assert sorted(M.fold.unique()) == [0, 1, 2, 3, 4]


def test_t_interval():
    lo, hi = R.t_interval([1.0, 3.0])
    half = stats.t.ppf(0.975, 1) * np.std([1.0, 3.0], ddof=1) / np.sqrt(2)
    assert (lo, hi) == pytest.approx((2 - half, 2 + half))
    assert np.isnan(R.t_interval([1.0])[0])


def test_summary_counts_identical_rows_once(M):
    S = R.summarise(M)
    pd.testing.assert_frame_equal(R.summarise(pd.concat([M, M, M])), S)
    base = S[S.model == "random"]
    assert (base.n == 5).all() and (base.notebook == "").all()     # recorded by two notebooks, kept once
    r = S.query("config == 'vae-fused-b1' and algorithm == 'gmm' and label == 'style' and split == 'valid'").iloc[0]
    assert r["mean"] == pytest.approx(.50) and r["n"] == 5 and r["lo"] < .50 < r["hi"]


def test_summary_refuses_to_pool_different_trainings(M):
    # two notebooks that train the same config but forget to say what differs (e.g. patience)
    other = M[M.config == "vae-audio"].assign(value=lambda d: d.value + .05)
    with pytest.raises(ValueError, match="differ in value"):
        R.summarise(pd.concat([M, other]))
    # once the key says what differs, both are kept apart
    S = R.summarise(pd.concat([M, other.assign(patience=20)]))
    assert len(S.query("config == 'vae-audio' and label == 'style' and split == 'test'")) == 2


def test_numbers_and_text_keys_agree(M):
    txt = M.astype(str)                                             # as read back from a CSV without types
    txt["value"] = M["value"]
    S1, S2 = R.summarise(M), R.summarise(txt)
    assert len(S1) == len(S2) and np.allclose(S1["mean"], S2["mean"])


def test_interval_widens_under_the_fold_correction():
    vals = [.50, .55, .61, .48, .57]
    table = pd.DataFrame([dict(config="c", model="vae", split="test", label="y", metric="ami", fold=r, value=v)
                          for r, v in enumerate(vals)])
    lo, hi = R.summarise(table)[["lo", "hi"]].iloc[0]
    plain = R.t_interval(vals)
    assert (hi - lo) == pytest.approx(1.5 * (plain[1] - plain[0]))       # sqrt((1/5 + 1/4) / (1/5)): Nadeau-Bengio, 5 folds
    assert R.corrected_t_pvalue([.02, .03, .01, .02, .04]) > 2 * 2 * stats.t.sf(.024 / (np.std([.02, .03, .01, .02, .04], ddof=1) / np.sqrt(5)), 4)


def test_selection_on_valid_not_on_test(M):
    sel = R.select_on_valid(M, "style")
    valid, oracle = sel.iloc[0], sel.iloc[1]
    assert valid.selection == "valid" and oracle.selection == "oracle (test)"
    assert (valid.config, valid.algorithm) == ("vae-fused-b1", "kmeans")
    assert oracle.algorithm == "gmm" and oracle.test_mean > valid.test_mean   # test selection would pick another
    assert valid.test_mean == pytest.approx(.55) and valid.test_lo < .55 < valid.test_hi


def test_selection_on_a_table_built_to_disagree():
    rows = []
    for cfg, (v, t) in {"a": (.9, .1), "b": (.1, .9)}.items():
        for split, m in (("valid", v), ("test", t)):
            rows += [dict(config=cfg, model="vae", modalities="x", split=split, label="y", metric="ami", fold=r,
                          value=m + r / 100) for r in range(3)]
    sel = R.select_on_valid(pd.DataFrame(rows), "y")
    assert sel.config.tolist() == ["a", "b"] and sel.test_mean.iloc[0] == pytest.approx(.11)


def test_paired_difference_and_verdict(M):
    p = R.paired_difference(M, {"config": "vae-fused-b1", "algorithm": "kmeans"}, {"config": "pca-fused"}, "style")
    assert p["diff"] == pytest.approx(.11) and p["n"] == 5 and p["verdict"] == "better"
    assert len(p["diffs"]) == 5
    q = R.paired_difference(M, {"config": "pca-fused"}, {"config": "vae-fused-b1", "algorithm": "kmeans"}, "style")
    assert q["verdict"] == "worse" and q["diff"] == pytest.approx(-.11)
    assert R.verdict(-.01, .02) == "not distinguishable"
    with pytest.raises(ValueError, match="several rows"):
        R.paired_difference(M, {"model": "vae"}, {"config": "pca-fused"}, "style")


def test_group_bootstrap_resamples_groups():
    rng = np.random.default_rng(2)
    groups = np.repeat(np.arange(40), 8)
    y = np.repeat(rng.integers(0, 4, 40), 8)
    pred = np.where(np.repeat(rng.random(40) < .6, 8), y, (y + 1) % 4)
    lo, hi = R.group_bootstrap(y, pred, groups, "ami", n_boot=60)
    lo_i, hi_i = R.group_bootstrap(y, pred, np.arange(len(y)), "ami", n_boot=60)
    assert lo < hi and (hi - lo) > 1.5 * (hi_i - lo_i)
    assert R.group_bootstrap(y, y, groups, "ari", n_boot=10) == (1.0, 1.0)


def test_findings_are_generic_and_follow_the_numbers(M):
    F = R.finding_table(M, ["style", "era"], "style").set_index(["label", "question"])
    assert F.loc[("style", "fusion"), "verdict"] == "better" and F.loc[("era", "fusion"), "verdict"] == "worse"
    assert F.loc[("style", "beta"), "beta"] == "1"
    # rename the labels and the models: same answers, no trace of the old names
    M2 = M.assign(label=M.label.map({"style": "cluster", "era": "category"}))
    sents = R.findings(M2, ["category", "cluster"], "cluster")
    assert sents[0].startswith("cluster:") and not any("style" in s or "era:" in s for s in sents)
    # with a fused model that is no better than its best single modality, the verdict changes
    M3 = M.copy()
    sel = (M3.config == "vae-lyrics") & (M3.label == "style")
    M3.loc[sel, "value"] += .14
    F3 = R.finding_table(M3, ["style"], "style").set_index("question")
    assert F3.loc["fusion", "verdict"] == "not distinguishable"


def test_no_default_corpus_label_in_the_module():
    import inspect
    src = inspect.getsource(R)
    for word in ("collection", "\"mode\"", "'mode'", "language", "composer"):
        assert word not in src, word


def test_confounds_and_scores_within(M):
    man = pd.DataFrame({"a": list("xxyyzz"), "b": list("ppqqrr"), "c": list("ststst")})
    C = R.label_confounds(man, ["a", "b", "c"])
    assert C[["label_a", "label_b"]].values.tolist() == [["a", "b"], ["a", "c"], ["b", "c"]]
    assert C.nmi.iloc[0] == pytest.approx(1.0) and C.ami.iloc[1] < .1
    W = R.scores_within(M, "era", "style", {"config": "vae-fused-b1", "algorithm": "kmeans"})
    assert W["style"].tolist() == ["a", "b"] and W["mean"].tolist() == pytest.approx([.30, .10])


def test_fold_stability_is_keyed_on_k():
    A = pd.DataFrame({"config": "c", "k": 2, "fold": [0] * 4 + [1] * 4, "id": list("abcd") + list("dcba"),
                      "cluster": [0, 0, 1, 1] + [5, 5, 7, 7]})
    A3 = A.assign(k=3, cluster=[0, 1, 2, 2] + [2, 2, 1, 0])
    st = R.fold_stability(pd.concat([A, A3])).set_index("k")
    assert st.ari_mean.tolist() == pytest.approx([1.0, 1.0]) and st.pairs.tolist() == [1, 1]   # mixing k = 2 with k = 3 would not be 1


def test_selection_never_reads_another_folds_items():
    # config "leaky" is best on the validation of fold 0 only; pooled over folds it would win everywhere
    rows = [dict(config=c, model="vae", modalities="x", split=s, label="y", metric="ami", fold=f, value=v)
            for c, vs, ts in [("steady", [.5] * 4, [.5] * 4), ("leaky", [.95, .45, .45, .45], [.1] * 4)]
            for s, vals in (("valid", vs), ("test", ts)) for f, v in enumerate(vals)]
    T = pd.DataFrame(rows)
    assert T[T.split == "valid"].groupby("config").value.mean().idxmax() == "leaky"
    ch = R.fold_choices(R.tidy(T), "y")
    assert ch.config.tolist() == ["leaky", "steady", "steady", "steady"]
    # changing one fold's test value never changes any fold's choice
    T2 = T.copy(); T2.loc[(T2.split == "test") & (T2.fold == 1) & (T2.config == "leaky"), "value"] = .99
    assert R.fold_choices(R.tidy(T2), "y").config.tolist() == ch.config.tolist()
    # changing fold 0's valid values changes fold 0's choice only
    T3 = T.copy(); T3.loc[(T3.split == "valid") & (T3.fold == 0) & (T3.config == "leaky"), "value"] = .1
    assert R.fold_choices(R.tidy(T3), "y").config.tolist() == ["steady"] * 4


def test_holm_makes_verdicts_stricter():
    # eleven findings, each with p just under 0.05 alone: none survives Holm
    assert (R.holm([0.04] * 11) >= 0.05).all() and R.holm([0.001, 0.04])[0] == pytest.approx(0.002)


def test_best_per_column(M):
    B = R.best_per(M, "modalities", "era")
    assert B.modalities.tolist() == ["lyrics", "audio+lyrics", "audio"]


def test_report_html_is_self_contained(M):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(); ax.plot([0, 1])
    page = R.make_report_html("R <1>", [dict(title="Findings", text=["x < y"], items=["a & b"]),
                                        dict(title="Tables", tables=[(R.select_on_valid(M, "style"), "sel")],
                                             figures=[(fig, "a line")])])
    plt.close(fig)
    assert page.startswith("<!DOCTYPE html>") and "R &lt;1&gt;" in page and "x &lt; y" in page and "<li class='finding'>a &amp; b</li>" in page
    assert page.count("data:image/png;base64,") == 1 and page.count("<table") == 1
    assert "Figure 1. a line" in page and "Table 1. sel" in page
    assert "http" not in page and "<th></th>" not in page


def test_headline_table_selects_on_valid(M):
    H = R.headline_table(M, ["style"], metrics=("ami",))
    fused = H[(H.model == "vae") & (H.modalities == "audio+lyrics")].iloc[0]
    assert (fused.config, fused.algorithm) == ("vae-fused-b1", "kmeans") and fused["mean"] == pytest.approx(.55)
    assert set(H.model) == {"vae", "pca", "random", "majority"}
    T = R.interval_table(H[~H.model.isin(R.BASELINES)])
    assert T.columns.tolist() == ["model", "modalities", "style ami"] and len(T) == 4
    assert T["style ami"].str.match(r"^\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]$").all()
