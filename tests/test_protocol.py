"The evaluation protocol: equal terms, labels by id, baselines once per key at the same k, no condition scored."
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from music_vae_nb.protocol import Protocol, baseline_rows, label_frame, merged_labels, near_copies, scored_labels, score_embedding


def blobs_ds(n=120, seed=0):
    X, y = make_blobs(n, centers=3, n_features=5, cluster_std=0.7, random_state=seed)
    rng = np.random.default_rng(seed)
    ids = [f"x{i:03d}" for i in range(n)]
    man = pd.DataFrame({"style": np.array(["a", "b", "c"])[y], "noise": rng.choice(["p", "q"], n),
                        "copy": np.array(["A", "B", "C"])[y]}, index=pd.Index(ids, name="id"))
    return SimpleNamespace(name="blobs", manifest=man, labels=["style", "noise", "copy"], primary_label="style", info={}), X, ids


KEYS = dict(dataset="blobs", config="c", model="m", split="test", fold=0, seed=0)


def test_every_representation_gets_the_same_algorithms_and_rules():
    ds, X, ids = blobs_ds()
    P = Protocol(algorithms=("kmeans", "gmm", "agglomerative", "hdbscan"), within=None)
    a, _ = score_embedding(X, ids, ds, P, {**KEYS, "config": "a"})
    b, _ = score_embedding(np.random.default_rng(1).normal(size=X.shape), ids, ds, P, {**KEYS, "config": "b"})
    combos = lambda rows: {(r["algorithm"], r["k_rule"]) for r in rows}
    assert combos(a) == combos(b)
    assert {alg for alg, _ in combos(a)} == {"kmeans", "gmm", "agglomerative", "hdbscan"}


def test_labels_follow_ids_not_positions():
    ds, X, ids = blobs_ds()
    P = Protocol(algorithms=("kmeans",), k_rules=("n_classes",), within=None)
    order = np.random.default_rng(3).permutation(len(ids))
    a, _ = score_embedding(X, ids, ds, P, KEYS)
    b, _ = score_embedding(X[order], [ids[i] for i in order], ds, P, KEYS)
    get = lambda rows: {(r["label"], r["metric"]): r["value"] for r in rows if r["label"]}
    for k, v in get(a).items(): assert get(b)[k] == pytest.approx(v, abs=1e-9)
    assert get(a)[("style", "ami")] > 0.9
    # misaligned labels (the rows shuffled, the ids not) are at chance: the test would catch a positional join
    c, _ = score_embedding(X[order], ids, ds, P, KEYS)
    assert get(c)[("style", "ami")] < 0.1


def test_baselines_are_drawn_once_per_key_at_every_k_used():
    ds, X, ids = blobs_ds()
    P = Protocol(algorithms=("kmeans", "gmm"), within=None)
    rows = []
    for cfg in ("a", "b", "c"):                                   # three representations share the keys
        r, _ = score_embedding(X, ids, ds, P, {**KEYS, "config": cfg})
        rows += r
    B = pd.DataFrame(baseline_rows(rows, ds, {0: {"test": ids}}))
    R = pd.DataFrame(rows)
    used = set(map(tuple, R[R.label != ""][["label", "k"]].drop_duplicates().values.tolist()))
    rnd = B[(B.model == "random") & (B.metric == "ami")]
    assert set(map(tuple, rnd[["label", "k"]].values.tolist())) == used
    assert not rnd.duplicated(["label", "k", "split", "subset", "fold"]).any()
    assert len(B[(B.model == "majority") & (B.metric == "ami")]) == len(set(R[R.label != ""].label))


def test_condition_and_near_copies_are_never_scored():
    ds, X, ids = blobs_ds()
    labels = scored_labels(ds)
    assert merged_labels(ds) == {"copy": "style"} and "copy" not in labels          # one partition: scored once
    assert near_copies(ds, "style", ds.labels) == ["style", "copy"]
    rows, _ = score_embedding(X, ids, ds, Protocol(algorithms=("kmeans",), within=None), KEYS,
                              exclude=near_copies(ds, "style", ds.labels))
    assert {r["label"] for r in rows} == {"", "noise"}


def test_subsets_score_a_label_within_each_value_of_another():
    ds, X, ids = blobs_ds()
    rows, _ = score_embedding(X, ids, ds, Protocol(algorithms=("kmeans",), within="noise"), KEYS)
    sub = pd.DataFrame(rows).query("subset != ''")
    assert set(sub.subset) == {"noise=p", "noise=q"}
    assert set(sub.label) == {"style"}                                            # `copy` is `style` again: merged
    assert (sub.query("metric == 'ami' and label == 'style'").value > 0.9).all()


def test_small_splits_are_not_scored_and_unknown_ids_fail():
    ds, X, ids = blobs_ds()
    rows, found = score_embedding(X[:5], ids[:5], ds, Protocol(min_items=8), KEYS)
    assert rows == [] and found == []
    with pytest.raises(KeyError, match="not in the manifest"):
        label_frame(ds, ["missing"], ["style"])
