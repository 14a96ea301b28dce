"""Probe of the music features (a script that measures and prints; not a test).

    .venv/bin/python bench/music_probe.py                  # MIDI and audio music features of m21-vocal, 1 job
    .venv/bin/python bench/music_probe.py --jobs 2 --sets midi_music
    .venv/bin/python bench/music_probe.py --data m21-vocal --quick --blocks subdivision bar_position long_short named_rhythm \
        --sets midi_rhythm midi_rhythm_est audio_rhythm ref_onset12 ref_declared_ts --no-all

Computes `music.midi_music_features` (score beats) and `music.audio_music_features` directly from the files
(never through the feature store and its cache) and scores each block of `music.MUSIC_BLOCKS`, and the whole
vector, the way the evaluation protocol does: for outer folds r = 0..4, `ds.fold_ids(r, 5)`, standardise on the
fold's train items of the subset, K-Means (k = classes among the scored items, n_init=10, random_state=r) on the valid
items and, separately, on the test items of the subset, AMI against the label. Valid scores are printed beside
test scores: every choice (block, rule, parameter) is made on the valid rows; test is read, not chosen on
(`--splits valid` prints valid only, for development; `--splits train` clusters the train items themselves).
Targets: mode and meter within the Bach chorales, mode and meter over the corpus, meter within every other
collection with both duple and triple pieces, collection.

`--extra-blocks NAME=TOKEN,...` scores further blocks without editing the music module: a TOKEN is a column-name
prefix (as in `MUSIC_BLOCKS`), a name ending in `$` matches exactly, and `mean:T1+T2+...` adds one derived column,
the mean of the raw columns the tokens match; e.g. `--blocks --no-all --extra-blocks 'mode_notes=major-minor_notes'`
scores that block alone (`--blocks` with no names scores no `MUSIC_BLOCKS` block).
Prints mean and 95 % interval (corrected resampled t over the folds) per block × target, and the CPU ms per clip.

`--data NAME|PATH` probes any dataset (a built-in name, `--quick` for its quick version, or a dataset folder);
the targets are then every label of the dataset over all items, plus for m21-vocal the collection-wise ones below.
Sets: `midi_music`, `audio_music`, the named-rhythm sets `midi_rhythm` (`music.midi_rhythm_features`, quarters of
the tempo map, grid estimated from the onsets), `midi_rhythm_est` (seconds, grid estimated: what a transcription
gets), `audio_rhythm`, and two reference rows on the same folds: `ref_onset12`, a plain 12-bin onset-in-beat
histogram on the score's quarter-note grid, and `ref_declared_ts`, the declared time signature alone (a label's
source: a reference, never an input). A rhythm set's blocks are the `MUSIC_BLOCKS` with `rhy_` columns
(`subdivision`, `bar_position`, `long_short`, `named_rhythm`); a reference set is scored whole (block `all`).

`--panel` chooses the rhythm block across the development panel (m21-vocal, essen-folk, string-quartets; never
ryansMammoth or oneills1850): the targets are every label of each corpus whose source names a time signature
(m21-vocal `meter`, the others `meter_class`), over all items; the candidates are the rhythm blocks of `midi_rhythm`
(score quarters) and `midi_rhythm_est` (seconds) and the declaration-free metre blocks of `midi_music` for MIDI,
the same of `audio_rhythm` and `audio_music` for audio. `music.panel_choice` picks, separately for MIDI and audio,
the block with the best mean valid AMI over every corpus × label (each weighted alike, its folds averaged first)
and, per outer fold, the best in that fold (the fold-wise choice whose test AMI the protocol reports). Prints the
panel table (valid beside test, the chosen block marked `*`, the two reference rows on the same folds), then per
corpus × label the chosen blocks' test AMI against `ref_onset12` and audio / MIDI.

    .venv/bin/python bench/music_probe.py --panel --quick            # seconds
    MUSIC_VAE_DATA=data .venv/bin/python bench/music_probe.py --panel --jobs 2

Per-item features are cached in /tmp/music_probe, keyed by the dataset's fingerprint and a hash of the music module's
source; decoded audio (16 kHz) is cached there too (per fingerprint), so an edit of the extractors recomputes in seconds (MIDI) or a minute (audio).
"""
import argparse, functools, hashlib, inspect, os, time
from pathlib import Path

import numpy as np

CACHE = Path("/tmp/music_probe")
SR = 16_000


def _midi_item(path, which="midi_music"):
    import pretty_midi
    from music_vae_nb import music
    pm = pretty_midi.PrettyMIDI(str(path))
    t = time.process_time()
    if which == "midi_music": v = music.midi_music_features(pm, "score")
    elif which == "midi_rhythm": v = music.midi_rhythm_features(pm, "score")
    elif which == "midi_rhythm_est": v = music.midi_rhythm_features(pm, "estimate")
    elif which == "ref_onset12":                                  # the plain reference: onsets on the score's quarter grid
        v = music.beat_histogram(music.merge_onsets(music.score_beats(pm, music.midi_notes(pm)[:, 0]))[0])
    elif which == "ref_declared_ts": v = music.declared_metre(pm)  # the label's source: a reference row only
    else: raise ValueError(which)
    return v, time.process_time() - t


def _audio_item(path, which="audio_music", ydir=CACHE / "y"):
    from music_vae_nb import music
    from music_vae_nb.features import load_audio, spectra
    f = Path(ydir) / (Path(path).stem + ".npy")
    if f.exists(): y = np.load(f).astype(np.float32)
    else:
        y = load_audio(path, SR); f.parent.mkdir(parents=True, exist_ok=True); np.save(f, y.astype(np.float16))
        y = y.astype(np.float16).astype(np.float32)
    t = time.process_time()
    spec = spectra(y, SR)
    t1 = time.process_time()
    v = music.audio_music_features(y, SR, spec=spec) if which == "audio_music" else music.audio_rhythm_features(y, SR)
    return v, time.process_time() - t1, t1 - t


def set_names(which):
    "Column names of the set `which`."
    from music_vae_nb import music
    return {"midi_music": music.midi_music_feature_names, "audio_music": music.audio_music_feature_names,
            "ref_onset12": lambda: [f"ref_beat_pos{i}/12" for i in range(12)],
            "ref_declared_ts": lambda: ["ts_declared", "ts_beats_per_bar", "ts_beat_unit", "ts_bar", "ts_compound"]
            }.get(which, music.rhythm_feature_names)()


def features(ds, ids, which, jobs):
    "(X (n, d), names, ms per clip) of the `which` set for `ids`, cached under the music module's source hash."
    from joblib import Parallel, delayed
    from music_vae_nb import music
    key = hashlib.sha1(inspect.getsource(music).encode()).hexdigest()[:10]
    f = CACHE / f"{ds.name}_{ds.fingerprint}_{which}_{key}_{len(ids)}.npz"            # the build's fingerprint: never another build's
    names = set_names(which)
    if f.exists():
        z = np.load(f); return z["X"], names, float(z["ms"]), float(z["spec_ms"])
    audio = which.startswith("audio")
    paths = [ds.audio_file(i) if audio else ds.midi_file(i) for i in ids]
    item = functools.partial(_audio_item, which=which, ydir=CACHE / "y" / ds.fingerprint) if audio else functools.partial(_midi_item, which=which)
    t = time.perf_counter()
    out = Parallel(n_jobs=jobs, batch_size=16)(delayed(item)(p) for p in paths)
    X = np.stack([o[0] for o in out]).astype(np.float64)
    ms = 1000 * np.mean([o[1] for o in out]); spec_ms = 1000 * np.mean([o[2] for o in out]) if audio else 0.0
    print(f"{which}: {len(ids)} clips in {time.perf_counter() - t:.1f} s, {ms:.1f} ms CPU per clip"
          + (f" (+ {spec_ms:.1f} ms shared spectra)" if spec_ms else ""))
    CACHE.mkdir(parents=True, exist_ok=True); np.savez(f, X=X, ms=ms, spec_ms=spec_ms)
    return X, names, ms, spec_ms


def targets(m, labels=()):
    "(name, label, collection or None) of every scored target: m21-vocal's own, else every label of `labels` over all items."
    if not {"collection", "mode", "meter"} <= set(m.columns) or "bach" not in set(m.collection):
        return [(f"{l} | all", l, None) for l in labels if m[l].nunique() >= 2]
    out = [("mode | bach", "mode", "bach"), ("meter | bach", "meter", "bach")]
    for c in sorted(m.collection.unique()):
        if c != "bach" and m.loc[m.collection == c, "meter"].nunique() >= 2: out.append((f"meter | {c}", "meter", c))
    return out + [("mode | all", "mode", None), ("meter | all", "meter", None), ("collection | all", "collection", None)]


def match(names, tok):
    "Indices of the columns `names` matched by `tok`: a prefix, or an exact name when it ends in '$'."
    return [i for i, n in enumerate(names) if (n == tok[:-1] if tok.endswith("$") else n.startswith(tok))]


def extra_block(X, names, spec):
    "(name, X with any derived columns appended, column indices) of an `--extra-blocks` spec 'NAME=TOKEN,...'."
    b, toks = spec.split("=", 1); cols = []
    for t in toks.split(","):
        if t.startswith("mean:"):
            c = sorted({i for u in t[5:].split("+") for i in match(names, u)})
            if not c: raise SystemExit(f"--extra-blocks {spec}: {t!r} matches no column")
            X = np.column_stack([X, X[:, c].mean(1)]); cols.append(X.shape[1] - 1)
        else:
            c = match(names, t)
            if not c: raise SystemExit(f"--extra-blocks {spec}: {t!r} matches no column")
            cols += [i for i in c if i not in cols]
    return b, X, cols


def score(X, m, splits, label, coll, reps, split="test"):
    "AMI per outer fold of K-Means on the `split` items (subset `coll`), standardised on the fold's train items."
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_mutual_info_score
    idx = {i: n for n, i in enumerate(m.index)}
    sub = np.ones(len(m), bool) if coll is None else (m.collection == coll).to_numpy()
    sub = sub & m[label].notna().to_numpy() & (m[label].astype(str) != "").to_numpy()       # items without this label are not scored
    y = m[label].to_numpy()
    out = []
    for r in range(reps):
        tr = np.array([idx[i] for i in splits[r]["train"]]); te = np.array([idx[i] for i in splits[r][split]])
        tr, te = tr[sub[tr]], te[sub[te]]
        mu, sd = X[tr].mean(0), X[tr].std(0); sd[sd < 1e-9] = 1.0
        Z = (X[te] - mu) / sd
        k = len(set(y[te]))
        if k < 2 or len(te) <= k: out.append(np.nan); continue
        lab = KMeans(n_clusters=k, n_init=10, random_state=r).fit_predict(Z)
        out.append(adjusted_mutual_info_score(y[te], lab))
    return np.array(out)


PANEL = ("m21-vocal", "essen-folk", "string-quartets")
RESERVED = ("ryansMammoth", "oneills1850")                 # independent evaluation: never in the panel
RHYTHM_BLOCKS = ("subdivision", "bar_position", "long_short", "named_rhythm")
METRE_BLOCKS = ("metre_undeclared", "metre_profile", "grouping", "rhythm")   # never `metre`: it reads the declaration
PANEL_CANDIDATES = {
    "midi": [("midi_rhythm", b) for b in RHYTHM_BLOCKS] + [("midi_rhythm_est", b) for b in RHYTHM_BLOCKS]
            + [("midi_music", b) for b in METRE_BLOCKS],
    "audio": [("audio_rhythm", b) for b in RHYTHM_BLOCKS] + [("audio_music", b) for b in METRE_BLOCKS]}
PANEL_REFS = ("ref_onset12", "ref_declared_ts")


def metre_labels(ds):
    "Labels of `ds` read off the time signature: those whose source (dataset.json) names one, and `meter` / `meter_class`."
    src = (ds.info or {}).get("label_sources", {}) or {}
    return [l for l in ds.labels if "time signature" in str(src.get(l, "")).lower() or l in ("meter", "meter_class")]


def _cell(v, reps):
    "mean [corrected 95 % interval] of the fold values `v` (NaN left out)."
    from music_vae_nb.report import corrected_t_interval
    v = np.asarray(v, float); v = v[np.isfinite(v)]
    if not len(v): return "-"
    lo, hi = corrected_t_interval(v, n_folds=reps) if len(v) > 1 else (v.mean(), v.mean())
    return f"{v.mean():6.3f} [{max(lo, -1):5.2f},{min(hi, 1):5.2f}]"


def panel(a):
    "The `--panel` probe: score every candidate and reference on every corpus × metre label, choose across the panel, print."
    from music_vae_nb.datasets import load_dataset
    from music_vae_nb.music import block_columns, panel_choice
    t0 = time.perf_counter()
    cands = {mod: [(s, b) for s, b in c if block_columns(set_names(s), b)] for mod, c in PANEL_CANDIDATES.items()}   # blocks with columns in their set
    rows = [(s, b) for c in cands.values() for s, b in c] + [(r, "all") for r in PANEL_REFS]
    targets, V, T = [], [], []                                   # V, T: (rows, targets, folds) valid and test AMI
    for name in PANEL:
        assert not any(r.lower() in name.lower() for r in RESERVED)
        ds = load_dataset(name, quick=a.quick); m = ds.manifest; ids = list(m.index)
        splits = [ds.fold_ids(r, a.reps) for r in range(a.reps)]
        labels = metre_labels(ds)
        print(f"{ds.name}: {len(ids)} items, metre labels {labels}", flush=True)
        X = {s: features(ds, ids, s, a.jobs) for s in dict.fromkeys(s for s, _ in rows)}
        for label in labels:
            targets.append(f"{name}|{label}"); v, t = [], []
            for s, b in rows:
                x, names = X[s][0], X[s][1]
                cols = list(range(len(names))) if b == "all" else block_columns(names, b)
                v.append(score(x[:, cols], m, splits, label, None, a.reps, "valid"))
                t.append(score(x[:, cols], m, splits, label, None, a.reps, "test"))
            V.append(v); T.append(t)
    V, T = np.stack(V, 1), np.stack(T, 1)
    ix = {r: i for i, r in enumerate(rows)}
    chosen = {}
    for mod, c in cands.items():
        sel = [ix[x] for x in c]
        best, per_fold = panel_choice(V[sel])
        chosen[mod] = (sel[best], [sel[j] for j in per_fold])
    mark = {c[0]: mod for mod, c in chosen.items()}
    rule = "best mean valid AMI over every corpus × label (folds averaged first), separately for MIDI and audio"
    print(f"\npanel: {len(targets)} targets, {a.reps} outer folds; AMI, mean [corrected 95 % interval]; * chosen ({rule})")
    w = 22
    print(f"{'set:block':34s} {'panel valid':>11s} " + " ".join(f"{t + ' valid':>{w}s} {t + ' test':>{w}s}" for t in targets))
    for i, (s, b) in enumerate(rows):
        with np.errstate(all="ignore"): pv = np.nanmean(np.nanmean(V[i], 1))
        print(f"{('* ' if i in mark else '  ') + s + ':' + b:34s} {pv:11.3f} "
              + " ".join(f"{_cell(V[i, j], a.reps):>{w}s} {_cell(T[i, j], a.reps):>{w}s}" for j in range(len(targets))))
    folds = np.arange(a.reps)
    for mod, (best, per_fold) in chosen.items():
        print(f"chosen {mod}: {rows[best][0]}:{rows[best][1]}; per fold: " + ", ".join(f"{rows[i][0]}:{rows[i][1]}" for i in per_fold))
    from music_vae_nb.music import PANEL_BLOCKS
    for mod, (fs, fb) in PANEL_BLOCKS.items():                  # the frozen choice still the one this run makes?
        cs, cb = rows[chosen[mod][0]]
        same = fs == cs and block_columns(set_names(fs), fb) == block_columns(set_names(cs), cb)
        print(f"frozen music.PANEL_BLOCKS[{mod!r}] = {fs}:{fb}: " + ("the same columns as this run's choice" if same else f"DIFFERS from this run's {cs}:{cb}"))
    ref = ix["ref_onset12", "all"]; ts = ix["ref_declared_ts", "all"]
    print(f"\n{'target':28s} {'ref_onset12 test':>22s} {'ref_declared_ts test':>22s} {'MIDI chosen test':>22s} {'MIDI fold-wise test':>22s}"
          f" {'MIDI - ref (folds)':>22s} {'audio chosen test':>22s} {'audio fold-wise test':>22s} {'audio/MIDI':>10s} {'fold-wise':>9s}")
    for j, t in enumerate(targets):
        mb, mf = chosen["midi"]; ab, af = chosen["audio"]
        mfold, afold = T[mf, j, folds], T[af, j, folds]
        with np.errstate(all="ignore"):
            r1, r2 = np.nanmean(T[ab, j]) / np.nanmean(T[mb, j]), np.nanmean(afold) / np.nanmean(mfold)
        print(f"{t:28s} {_cell(T[ref, j], a.reps):>22s} {_cell(T[ts, j], a.reps):>22s} {_cell(T[mb, j], a.reps):>22s} {_cell(mfold, a.reps):>22s}"
              f" {_cell(mfold - T[ref, j], a.reps):>22s} {_cell(T[ab, j], a.reps):>22s} {_cell(afold, a.reps):>22s} {r1:10.2f} {r2:9.2f}")
    print(f"panel probe: {time.perf_counter() - t0:.0f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--data", default="m21-vocal", help="a built-in dataset name or a dataset folder")
    ap.add_argument("--quick", action="store_true", help="the built-in dataset's quick version")
    ap.add_argument("--sets", nargs="+", default=["midi_music", "audio_music"])
    ap.add_argument("--reps", "--folds", dest="reps", type=int, default=5, help="outer folds")
    ap.add_argument("--blocks", nargs="*", default=None, help="blocks to score (default: all with columns, and 'all')")
    ap.add_argument("--extra-blocks", nargs="*", default=[], metavar="NAME=TOKEN,...",
                    help="further blocks: column prefixes, exact names ending in '$', 'mean:T1+T2' for a mean column")
    ap.add_argument("--no-all", action="store_true", help="do not score the whole vector")
    ap.add_argument("--splits", nargs="+", default=["valid", "test"], help="splits scored, one row each (choose on valid)")
    ap.add_argument("--panel", action="store_true", help="choose the rhythm block across the panel's corpora and metre labels")
    a = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if a.panel: return panel(a)
    from music_vae_nb.report import corrected_t_interval
    from music_vae_nb.datasets import load_dataset
    from music_vae_nb.music import MUSIC_BLOCKS, block_columns
    ds = load_dataset(a.data, quick=a.quick); m = ds.manifest
    ids = list(m.index); splits = [ds.fold_ids(r, a.reps) for r in range(a.reps)]
    T = targets(m, ds.labels)
    print(f"{ds.name}: {len(ids)} items")
    print(f"{'set:block':34s} {'split':5s} {'cols':>4s} " + " ".join(f"{t[0]:>19s}" for t in T))
    for s in a.sets:
        X, names, ms, spec_ms = features(ds, ids, s, a.jobs)
        blocks = [] if s.startswith("ref_") else [(b, block_columns(names, b)) for b in (MUSIC_BLOCKS if a.blocks is None else a.blocks)]
        for e in a.extra_blocks:
            b, X, cols = extra_block(X, names, e); blocks.append((b, cols))
        if not a.no_all or s.startswith("ref_"): blocks.append(("all", list(range(len(names)))))
        for b, cols in blocks:
            if not cols: continue
            for sp in a.splits:
                cells = []
                for name, label, coll in T:
                    v = score(X[:, cols], m, splits, label, coll, a.reps, sp)
                    v = v[np.isfinite(v)]
                    if not len(v): cells.append(f"{'-':>19s}"); continue
                    lo, hi = corrected_t_interval(v, n_folds=a.reps) if len(v) > 1 else (v.mean(), v.mean())
                    cells.append(f"{v.mean():6.3f} [{max(lo, -1):5.2f},{min(hi, 1):5.2f}]")
                print(f"{s + ':' + b:34s} {sp:5s} {len(cols):4d} " + " ".join(f"{c:>19s}" for c in cells), flush=True)
        print(f"{s}: {ms:.1f} ms CPU per clip" + (f" (+ {spec_ms:.1f} ms shared spectra, not counted)" if spec_ms else ""))


if __name__ == "__main__":
    main()
