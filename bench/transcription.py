"""Given vs transcribed MIDI on a dataset whose real MIDI is known (a script that measures and prints; not a test).

    .venv/bin/python bench/transcription.py                 # full default dataset (m21-vocal), 5 outer folds
    .venv/bin/python bench/transcription.py --quick --jobs 1

1. Transcribes every item with audio and given MIDI (basic-pitch, `which="all"`; cached in the dataset's
   `cache/transcribed`, so a second run only reads) and prints the note-level agreement of each transcription
   with the given MIDI: median and 95 % interval (2.5th-97.5th percentile over items) of pitch-class overlap,
   note F (onset + pitch, 50 ms), onset F, the onset lag (s, > 0: transcribed late) and onset F with it removed.
2. Runs the feature floor of `00_features` (each feature set standardised on the training items, K-Means with
   k = number of classes, the evaluation protocol's outer folds) on the given sets (`midi`,
   `midi_music` and its blocks) and on the same sets computed from the transcriptions (`midi_transcribed_all`,
   ...), and prints the held-out test AMI (mean and 95 % t-interval over folds) side by side for every
   scored label and for every other label within each value of the primary label (the protocol's subsets).
"""
import argparse, shlex, sys, time

import numpy as np
import pandas as pd

BLOCKS = ("metre_undeclared", "grouping", "tonality", "mode_evidence")
PAIRS = [("midi", "midi_transcribed_all"), ("midi_music", "midi_transcribed_all_music"),
         *[(f"midi_music:{b}", f"midi_transcribed_all_music:{b}") for b in BLOCKS]]


def agreement_summary(q: pd.DataFrame) -> pd.DataFrame:
    "Median and 95 % interval over items of the agreement measures of `transcribe.dataset_agreement`."
    cols = {"pitch_class_overlap": "pitch-class overlap", "note_f": "note F (onset+pitch)", "onset_f": "onset F",
            "onset_lag": "onset lag [s]", "onset_f_lag_removed": "onset F, lag removed"}
    return pd.DataFrame({name: {"median": q[c].median(), "2.5 %": q[c].quantile(0.025), "97.5 %": q[c].quantile(0.975)}
                         for c, name in cols.items()}).T.round(3)


def side_by_side(metrics: pd.DataFrame) -> pd.DataFrame:
    "Test AMI 'mean [lo, hi]' of every given set beside its transcribed twin; rows: label, where (all items or a subset), set."
    from music_vae_nb.report import summarise, fmt_interval
    d = metrics[(metrics.metric == "ami") & (metrics.split == "test") & (metrics.label != "")]
    S = summarise(d[~d.model.isin(["majority", "random"])])
    S["cell"] = [f"{m:.3f} {fmt_interval(lo, hi)}" for m, lo, hi in zip(S["mean"], S["lo"], S["hi"])]
    S["where"] = S.subset.replace("", "all items")
    S["kind"] = np.where(S.features.str.contains("transcribed"), "transcribed", "given")
    S["set"] = S.features.str.replace("midi_transcribed_all", "midi")
    order = {p[0]: i for i, p in enumerate(PAIRS)}
    S = S.sort_values(["label", "where", "set"], key=lambda c: c.map(order) if c.name == "set" else
                      c.map(lambda v: (v != "all items", v)) if c.name == "where" else c)
    t = S.pivot_table(index=["label", "where", "set"], columns="kind", values="cell", aggfunc="first", sort=False)
    mean = S.pivot_table(index=["label", "where", "set"], columns="kind", values="mean", aggfunc="first", sort=False)
    t["transcribed - given"] = (mean["transcribed"] - mean["given"]).round(3)
    R = summarise(d[d.model == "random"]).assign(where=lambda r: r.subset.replace("", "all items"))
    rand = R.groupby(["label", "where"])["mean"].max()
    t["random (same k)"] = [round(rand.get((l, w), np.nan), 3) for l, w, _ in t.index]
    return t[["given", "transcribed", "transcribed - given", "random (same k)"]]


def main(a):
    from music_vae_nb.datasets import load_dataset
    from music_vae_nb.transcribe import transcribe_dataset, dataset_agreement, has_basic_pitch, INSTALL_HINT
    from music_vae_nb.store import compute_features, music_block
    from music_vae_nb.protocol import Protocol, scored_labels
    from music_vae_nb.experiment import Experiment, ModelSpec
    if not has_basic_pitch(): raise SystemExit(INSTALL_HINT)
    print("command:", " ".join(shlex.quote(x) for x in [".venv/bin/python", *sys.argv]), flush=True)
    sched = "local" if a.jobs == 1 else "processes"
    ds = load_dataset(a.dataset, quick=a.quick)
    m = ds.manifest
    both = m.index[m.has_audio & m.has_midi]
    print(f"{ds.name}: {len(m)} items, {len(both)} with audio and given MIDI", flush=True)

    t0 = time.perf_counter()
    tab = transcribe_dataset(ds, which="all", ids=both, n_jobs=a.jobs, scheduler=sched, progress=False)
    print(f"transcription: {time.perf_counter() - t0:.0f} s wall ({a.jobs} job(s)); status: "
          + ", ".join(f"{k} {v}" for k, v in tab.status.str.split(":").str[0].value_counts().items()), flush=True)
    q = dataset_agreement(ds, ids=both, n_jobs=a.jobs, scheduler=sched, progress=False)
    print(f"\nagreement of the transcription with the given MIDI ({len(q)} items; median, 2.5th and 97.5th percentile):")
    print(agreement_summary(q).to_string())
    print(f"notes per item: given median {q.n_ref.median():.0f}, transcribed median {q.n_est.median():.0f}", flush=True)

    t0 = time.perf_counter()
    feats = compute_features(ds, ["midi", "midi_music", "midi_transcribed_all", "midi_transcribed_all_music"],
                             n_jobs=a.jobs, scheduler=sched, progress=False)
    for s in ("midi_music", "midi_transcribed_all_music"):
        for b in BLOCKS: feats[f"{s}:{b}"] = music_block(feats[s], b)
    print(f"\nfeature sets: {time.perf_counter() - t0:.0f} s; available: "
          + ", ".join(f"{n} {fs.n_available}" for n, fs in feats.items() if ":" not in n), flush=True)

    t0 = time.perf_counter()
    protocol = Protocol(algorithms=("kmeans",), k_rules=("n_classes",))
    views = {n: n for n in feats}
    ex = Experiment(ds, feats, views, folds=a.reps, notebook="bench_transcription", n_jobs=a.jobs, scheduler=sched)
    fits = ex.fit([ModelSpec("features", (n,)) for n in views])
    metrics, _ = ex.score(fits, protocol)
    labels = scored_labels(ds)
    print(f"floor: {time.perf_counter() - t0:.0f} s; labels {labels}; primary label {ds.primary_label}; "
          f"{a.reps} outer folds (by group)", flush=True)
    t = side_by_side(metrics)
    print("\nheld-out test AMI, K-Means with k = number of classes, mean [95 % interval] over folds; "
          "given = the dataset's MIDI, transcribed = basic-pitch on the audio, same items, same features:")
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.max_colwidth", 40):
        print(t.to_string())
    if a.out: metrics.to_csv(a.out, index=False); print(f"\nmetrics rows: {a.out}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="m21-vocal"); ap.add_argument("--quick", action="store_true")
    ap.add_argument("--jobs", type=int, default=1); ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=None, help="write the metric rows to this CSV")
    main(ap.parse_args())
