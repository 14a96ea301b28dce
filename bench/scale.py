"""A collection of the size researchers have: `validate` and `features` on a synthetic 10,000-item collection in
each seed layout (a script that measures and prints; not a test).

    .venv/bin/python bench/scale.py                                  # 10,000 items, every layout
    .venv/bin/python bench/scale.py --n 2000 --layouts seed1 --sets audio,lyrics_tfidf

Each layout is written by `fixtures.make_collection` (half-second clips, tiny MIDI, the small plan's faults) into a
temporary folder, with a temporary `data/` (MUSIC_VAE_DATA), so nothing of the repository is touched. Then, each in
its own subprocess (so memory is that step's alone):

  validate   `music-vae validate PATH` (`datasets.validate_main`): read the layout, check every file, write the
             dataset; wall seconds, ms per item, peak memory
  features   `store.compute_features` of `--sets` (default: every default set) on 2 workers, cold cache; wall
             seconds, ms per item, peak memory

Peak memory is the peak of the summed resident memory of the step's process tree (the process and its loky workers,
sampled every 50 ms with psutil) and the largest single process (getrusage ru_maxrss of the process and its children).
Targets: validate of 10,000 items under a minute on 2 cores; memory bounded (not growing with the items beyond their
feature matrices).
"""
import argparse, json, os, resource, shutil, subprocess, sys, tempfile, threading, time
from pathlib import Path


def _peak_sampler():
    "Start a thread sampling the summed RSS of this process and its children; return a function giving the peak (MB)."
    import psutil
    me, peak, stop = psutil.Process(), [0], threading.Event()
    def run():
        while not stop.is_set():
            total = 0
            for q in [me, *me.children(recursive=True)]:
                try: total += q.memory_info().rss
                except psutil.Error: pass
            peak[0] = max(peak[0], total); time.sleep(0.05)
    threading.Thread(target=run, daemon=True).start()
    return lambda: (stop.set(), peak[0] / 2**20)[1]


def child(step: str, path: str, sets: str, jobs: int) -> None:
    "Run one step; print one JSON line."
    peak = _peak_sampler()
    t0 = time.perf_counter()
    if step == "validate":
        from music_vae_nb.datasets import validate_main
        code = validate_main(path)
        out = {"exit": code}
    else:
        from music_vae_nb.datasets import load_dataset
        from music_vae_nb.store import compute_features
        ds = load_dataset(path)
        t0 = time.perf_counter()                                    # the dataset is validate's; time the features
        feats = compute_features(ds, None if sets == "default" else sets.split(","), n_jobs=jobs, progress=True)
        out = {"available": {n: f"{fs.n_available} items, {fs.stats['seconds']:.0f} s" for n, fs in feats.items()}}   # seconds of its group
    seconds = time.perf_counter() - t0
    from joblib.externals.loky import get_reusable_executor
    get_reusable_executor().shutdown(wait=True)
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    print("RESULT " + json.dumps({**out, "seconds": seconds, "peak_tree_mb": peak(), "max_process_mb": rss}))


def run_step(step, path, data, sets, jobs) -> dict:
    env = {**os.environ, "MUSIC_VAE_DATA": str(data), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, __file__, "--child", step, str(path), "--sets", sets, "--jobs", str(jobs)],
                       env=env, stdout=subprocess.PIPE, text=True)
    lines = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
    if p.returncode or not lines: raise SystemExit(f"{step} on {path} failed (exit {p.returncode}):\n{p.stdout[-3000:]}")
    return json.loads(lines[-1][7:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--layouts", default="seed1,seed2_flat,seed2_sorted")
    ap.add_argument("--sets", default="default", help="comma-separated feature sets, or 'default': `store.available_feature_names()`")
    ap.add_argument("--seconds", type=float, default=0.5, help="clip length of the synthetic audio")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--keep", help="build the collections here and keep them (default: a temporary folder, removed)")
    ap.add_argument("--child", nargs=2, metavar=("STEP", "PATH"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child: return child(*a.child, a.sets, a.jobs)
    from music_vae_nb.fixtures import make_collection
    top = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="scale-"))
    print(f"{a.n} items per layout, {a.seconds} s clips, {a.jobs} workers, {os.cpu_count()} cores; in {top}")
    print(f"{'layout':<13} {'step':<9} {'seconds':>8} {'ms/item':>8} {'peak tree MB':>13} {'max proc MB':>12}  notes")
    try:
        for layout in a.layouts.split(","):
            root, data = top / layout, top / f"data-{layout}"
            t0 = time.perf_counter()
            if not root.exists(): make_collection(root, layout, n=a.n, seconds=a.seconds)
            print(f"{layout:<13} {'build':<9} {time.perf_counter() - t0:8.1f}", flush=True)
            for step in ("validate", "features"):
                r = run_step(step, root, data, a.sets, a.jobs)
                note = f"exit {r['exit']}" if step == "validate" else "; ".join(f"{k} {v}" for k, v in r["available"].items())
                print(f"{layout:<13} {step:<9} {r['seconds']:8.1f} {1000 * r['seconds'] / a.n:8.2f} {r['peak_tree_mb']:13.0f} "
                      f"{r['max_process_mb']:12.0f}  {note}", flush=True)
    finally:
        if not a.keep: shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
