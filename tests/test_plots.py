"Tests of music_vae_nb.plots: every function returns a figure with the expected axes and artists."
import matplotlib
matplotlib.use("Agg")                      # tests only; notebooks keep the inline backend
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from music_vae_nb import plots


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_history_one_panel_per_term():
    H = pd.DataFrame({"epoch": [1, 2] * 2, "split": ["train", "train", "valid", "valid"],
                      "total": [2., 1., 2.5, 1.5], "kl": [.1, .2, .1, .2], "recon_x": [1.9, .8, 2.4, 1.3]})
    fig = plots.plot_history(H)
    assert [a.get_title() for a in fig.axes] == ["total", "kl", "recon_x"]
    assert len(fig.axes[0].lines) == 2      # no best epoch recorded: no marker


def test_latent_map_one_panel_per_colouring_and_any_labels():
    P = np.random.default_rng(0).normal(size=(30, 2))
    cols = {"cluster": np.arange(30) % 3, "playlist_genre": np.array(["rock", "pop", None] * 10, dtype=object)}
    fig = plots.plot_latent_map(P, cols)
    assert [a.get_title() for a in fig.axes] == ["cluster", "playlist_genre"]
    assert [len(a.collections) for a in fig.axes] == [3, 3]
    assert sum(len(c.get_offsets()) for c in fig.axes[1].collections) == 30


def test_project_2d_shapes():
    Z = np.random.default_rng(1).normal(size=(25, 6))
    for method in ("pca", "tsne"):
        assert plots.project_2d(Z, method).shape == (25, 2)
    with pytest.raises(ValueError):
        plots.project_2d(Z, "nope")


def test_contingency_counts_and_shares():
    T = pd.crosstab(pd.Series(["u", "u", "v", "w"], name="cat"), pd.Series([1, 1, 0, 2], name="cluster"))
    fig = plots.plot_contingency(T)
    ax = fig.axes[0]
    assert sorted(int(t.get_text()) for t in ax.texts) == sorted(T.to_numpy().ravel().tolist())
    assert ax.get_ylabel() == "cat"
    row_share = ax.collections[0].get_array().reshape(T.shape)
    assert np.allclose(row_share.sum(axis=1), 1.0)


def test_label_distribution_stacks():
    L = pd.DataFrame({"a": list("xxyz"), "split": ["train", "test", "train", "test"]})
    ax = plots.plot_label_distribution(L, by="split").axes[0]
    assert len(ax.patches) == 3 * 2 and sum(p.get_height() for p in ax.patches) == 4


def test_reconstructions_layout():
    x = np.zeros((2, 3, 4))
    assert len(plots.plot_reconstructions(x, x + 1).axes) == 4
    assert len(plots.plot_reconstructions(x.reshape(2, -1), x.reshape(2, -1)).axes) == 2


def test_interval_bars_and_beta_curve():
    S = pd.DataFrame({"config": ["c1", "c2"], "mean": [.3, .1], "lo": [.2, .0], "hi": [.4, .2]})
    ax = plots.plot_interval_bars(S, reference=0.05).axes[0]
    assert [p.get_width() for p in ax.patches] == pytest.approx([.3, .1])
    assert len(ax.lines) >= 1               # the reference line
    B = pd.DataFrame({"beta": [0.5, 2.0, 1.0], "label": "any", "mean": [.2, .4, .3], "lo": [.1, .3, .2], "hi": [.3, .5, .4]})
    ax = plots.plot_beta_curve(B).axes[0]
    assert list(ax.lines[0].get_xdata()) == [0.5, 1.0, 2.0] and list(ax.lines[0].get_ydata()) == [.2, .3, .4]
