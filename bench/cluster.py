"""Scale benchmark of the clustering suite: seconds, peak memory, NMI and growth exponent per algorithm.

Usage: python bench/cluster.py [--sizes 1000,4000,16000,64000,100000] [--max-n N] [--old-max-n 16000] [--dim 16] [--std 1.0]

For each size n it draws seeded, well separated Gaussian blobs (16-d by default, 3 to 8 classes drawn from the
seed) and runs, per algorithm, what the evaluation protocol runs on one embedding: a fit at k = the number of
classes and a label-free choice of k followed by a fit at that k (density methods: one fit that chooses its own
k), each with its internal scores (silhouette on a sample, CH, DB) and external scores against the classes.

Two paths, in one run:
- `new`: the module as it is (quadratic steps on seeded samples of at most FIT_MAX / SWEEP_MAX / SCORE_MAX items);
- `old`: the same functions with every limit switched off (`max_fit=None`, `max_items=None`): the exact path,
  which is the code of the module before sampling; only up to `--old-max-n` items (default 16,000), as it is quadratic.

Memory is the peak resident set size (psutil RSS, sampled every 5 ms in a background thread) during the run of
one algorithm, minus the RSS just before it ("extra"), and the process peak. Growth exponents are the slope of
log(seconds) against log(n) (least squares over the sizes run).
"""
from __future__ import annotations

import argparse, os, sys, threading, time

import numpy as np
import psutil
from sklearn.datasets import make_blobs

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from music_vae_nb.cluster import (ALGORITHMS, DENSITY, FIT_MAX, SCORE_MAX, SWEEP_MAX, choose_k, cluster,  # noqa: E402
                                  default_k_rule, external_scores, internal_scores, n_clusters)


class PeakRSS:
    "Context manager: peak RSS (bytes) of this process while inside, sampled every `every` seconds."
    def __init__(self, every: float = 0.005):
        self.every, self.proc = every, psutil.Process()

    def _watch(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self._stop.wait(self.every)

    def __enter__(self):
        self.start = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._watch, daemon=True); self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set(); self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def suite(Z, y, alg, exact: bool, seed: int = 0) -> dict:
    "What the protocol runs for one algorithm on one embedding; returns NMI / AMI at k = classes and the chosen k."
    fit = dict(max_fit=None) if exact else {}
    score = dict(max_items=None) if exact else {}
    if alg in DENSITY:
        lab = cluster(Z, alg, random_state=seed, **fit)
        internal_scores(Z, lab, random_state=seed, **score)
        e = external_scores(y, lab)
        return dict(nmi=e["nmi"], ami=e["ami"], k_chosen=n_clusters(lab), nmi_chosen=e["nmi"])
    k_true = len(np.unique(y))
    lab = cluster(Z, alg, k=k_true, random_state=seed, **fit)
    internal_scores(Z, lab, random_state=seed, **score)
    e = external_scores(y, lab)
    k, _ = choose_k(Z, alg, random_state=seed, rule=default_k_rule(alg), **score)
    lab_k = lab if k == k_true else cluster(Z, alg, k=k, random_state=seed, **fit)
    if k != k_true: internal_scores(Z, lab_k, random_state=seed, **score)
    return dict(nmi=e["nmi"], ami=e["ami"], k_chosen=k, nmi_chosen=external_scores(y, lab_k)["nmi"])


def blobs(n: int, dim: int, seed: int, std: float = 1.0):
    n_classes = int(np.random.default_rng(seed + n).integers(3, 9))
    Z, y = make_blobs(n_samples=n, centers=n_classes, n_features=dim, cluster_std=std, center_box=(-10, 10),
                      random_state=seed)
    return Z, y, n_classes


def md(df) -> str:
    "A pandas frame as a markdown table (no tabulate needed)."
    df = df.reset_index()
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join("" if isinstance(v, float) and np.isnan(v) else str(v) for v in r) + " |"
              for r in df.itertuples(index=False)]
    return "\n".join(lines)


def slope(ns, ts):
    ns, ts = np.asarray(ns, float), np.asarray(ts, float)
    return float(np.polyfit(np.log(ns), np.log(np.maximum(ts, 1e-3)), 1)[0]) if len(ns) >= 2 else float("nan")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,4000,16000,64000,100000")
    p.add_argument("--max-n", type=int, default=None, help="skip sizes above this")
    p.add_argument("--old-max-n", type=int, default=16000, help="run the exact (old) path up to this size")
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--std", type=float, default=1.0, help="cluster_std of the blobs (centres in a box of +-10)")
    p.add_argument("--algorithms", default=",".join(ALGORITHMS))
    a = p.parse_args(argv)
    sizes = [int(s) for s in a.sizes.split(",") if not a.max_n or int(s) <= a.max_n]
    algs = a.algorithms.split(",")
    print(f"limits: FIT_MAX={FIT_MAX} SWEEP_MAX={SWEEP_MAX} SCORE_MAX={SCORE_MAX}; dim={a.dim}; cores={os.cpu_count()}; "
          f"blob std={a.std}; memory = psutil RSS sampled every 5 ms", flush=True)
    rows = []
    for n in sizes:
        Z, y, c = blobs(n, a.dim, a.seed, a.std)
        for path in ("new", "old"):
            if path == "old" and n > a.old_max_n: continue
            for alg in algs:
                t0 = time.perf_counter()
                with PeakRSS() as m: r = suite(Z, y, alg, exact=path == "old", seed=a.seed)
                r.update(n=n, classes=c, path=path, algorithm=alg, seconds=time.perf_counter() - t0,
                         extra_mb=(m.peak - m.start) / 2**20, peak_mb=m.peak / 2**20)
                rows.append(r)
                print(f"{path:3s} n={n:>6d} classes={c} {alg:13s} {r['seconds']:8.2f} s  extra {r['extra_mb']:7.1f} MB  "
                      f"peak {r['peak_mb']:7.1f} MB  nmi {r['nmi']:.3f}  ami {r['ami']:.3f}  k_chosen {r['k_chosen']}",
                      flush=True)
    import pandas as pd
    df = pd.DataFrame(rows)
    print("\n## Seconds per algorithm (suite: fit at k = classes + label-free k + fit at chosen k + scores)\n")
    t = df.pivot_table(index=["path", "n", "classes"], columns="algorithm", values="seconds")[algs]
    t["total"] = t.sum(axis=1)
    print(md(t.round(2)))
    print("\n## Peak extra RSS (MB) per algorithm\n")
    print(md(df.pivot_table(index=["path", "n"], columns="algorithm", values="extra_mb")[algs].round(0)))
    print("\n## NMI at k = classes (density: own k) / AMI\n")
    print(md(df.pivot_table(index=["path", "n"], columns="algorithm", values="nmi")[algs].round(3)))
    print(md(df.pivot_table(index=["path", "n"], columns="algorithm", values="ami")[algs].round(3)))
    print("\n## Growth exponent (log-log slope of seconds vs n)\n")
    g = {path: {alg: slope(d.n, d.seconds) for alg, d in df[df.path == path].groupby("algorithm")}
         for path in df.path.unique()}
    print(md(pd.DataFrame(g).T[algs].round(2).rename_axis("path")))
    new = df[df.path == "new"]
    if len(new):
        big = new[new.n == new.n.max()]
        print(f"\nnew path at n={big.n.max()}: total {big.seconds.sum():.1f} s, peak RSS during it {big.peak_mb.max():.0f} MB "
              f"(process peak over the whole run {df.peak_mb.max():.0f} MB)")
    return df


if __name__ == "__main__":
    main()
