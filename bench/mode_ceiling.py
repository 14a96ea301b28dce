"""How much of a whole piece's mode can a 30 s clip tell? (a script that measures and prints; not a test)

    .venv/bin/python bench/mode_ceiling.py --jobs 2            # m21-vocal, 10 outer folds
    .venv/bin/python bench/mode_ceiling.py --reps 5 --dataset m21-vocal

The `mode` label of m21-vocal belongs to the whole score: for the Bach chorales it is the mode their key signature
encodes, for the other collections music21's key analysis of all the score's notes (`mode_source` in the
manifest). Every feature sees one 30 s clip. This script runs the label's own analyser, music21's
`analyze("key")`, on each clip's MIDI and scores the answer as if it were a clustering into two groups: the share
of clips where it agrees with the label, and the AMI of the partition (no clustering error at all), over every
clip, per collection, and on the valid and test items of each outer fold (mean and 95 % t-interval), the same
items the evaluation protocol scores. Set beside the held-out AMI of the mode features (`bench/music_probe.py`,
`00_features`), it says how far the label itself lets a clip go.

Clip analyses are cached in /tmp/mode_ceiling (keyed by the clip's content hash and music21's version).
"""
import argparse, hashlib, json, os, sys, warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
CACHE = Path("/tmp/mode_ceiling")


def clip_mode(path) -> str:
    "music21's key analysis of the notes of one MIDI file: 'major', 'minor', or 'error: <reason>'."
    import music21
    warnings.filterwarnings("ignore")
    data = Path(path).read_bytes()
    f = CACHE / f"{hashlib.sha1(data).hexdigest()[:16]}.{music21.__version__}.json"
    if f.exists(): return json.loads(f.read_text())["mode"]
    try: mode = music21.converter.parse(str(path)).analyze("key").mode
    except Exception as e: mode = f"error: {' '.join(str(e).split())[:200]}"
    CACHE.mkdir(parents=True, exist_ok=True); f.write_text(json.dumps({"mode": mode}))
    return mode


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="m21-vocal"); ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--reps", type=int, default=10)
    a = ap.parse_args()
    from joblib import Parallel, delayed
    from sklearn.metrics import adjusted_mutual_info_score as ami
    from music_vae_nb.datasets import load_dataset
    from music_vae_nb.report import corrected_t_interval
    ds = load_dataset(a.dataset); m = ds.manifest[ds.manifest.has_midi & ds.manifest["mode"].notna()]
    modes = Parallel(n_jobs=a.jobs, batch_size=16)(delayed(clip_mode)(ds.midi_file(i)) for i in m.index)
    d = pd.DataFrame({"analysis": modes, "label": m["mode"].to_numpy(), "collection": m.collection.to_numpy(),
                      "mode_source": m.get("mode_source", pd.Series("", m.index)).to_numpy()}, index=m.index)
    bad = d[d.analysis.str.startswith("error")]
    for i, r in bad.iterrows(): print(f"{ds.midi_file(i)}: {r.analysis}")
    d = d.drop(bad.index)
    print(f"{ds.name}: music21 key analysis of {len(d)} clips against the whole piece's mode ({len(bad)} not analysed)")
    rows = [("all clips", d)] + [(f"collection={c} ({g.mode_source.iloc[0]})", g) for c, g in d.groupby("collection")]
    print(f"{'where':38s} {'clips':>5s} {'agree':>6s} {'AMI':>6s}   held-out AMI per split, mean [95 % interval] over {a.reps} outer folds")
    splits = [ds.fold_ids(r, a.reps) for r in range(a.reps)]
    for name, g in rows:
        cells = []
        for s in ("valid", "test"):
            v = np.array([ami(h.label, h.analysis) for h in (g[g.index.isin(sp[s])] for sp in splits) if h.label.nunique() > 1])
            lo, hi = corrected_t_interval(v)
            cells.append(f"{s} {v.mean():.3f} [{lo:.2f}, {hi:.2f}]")
        print(f"{name:38s} {len(g):5d} {(g.analysis == g.label).mean():6.3f} {ami(g.label, g.analysis):6.3f}   " + "   ".join(cells))


if __name__ == "__main__":
    main()
