"""Benchmark of the feature store (a script that measures and prints; not a test).

    .venv/bin/python bench/features.py            # full default dataset (m21-vocal)
    .venv/bin/python bench/features.py --quick    # the 40-clip quick subset

Each configuration runs in its own subprocess with a fresh, temporary feature cache (the dataset's own cache
is never touched), so times are cold unless stated and memory is that configuration's alone:

  cold-2    every feature set, 2 workers: seconds and items/s per extractor group
  cold-1    audio + MIDI, 1 worker (in process): the speed-up of 2 workers over 1
  cached    the same call again on cold-2's cache: seconds (call only, and whole process incl. imports)
  double-2  every feature set, 2 workers, on the dataset twice as large (manifest duplicated with new ids)
  extractors  CPU ms per clip of each audio / MIDI extractor in this process (the shared STFT, the descriptors,
            the music features: target <= 30 ms per 30 s clip for `audio_music` + `midi_music`)
  transcription  CPU and wall seconds per clip of basic-pitch (`transcribe.time_transcription`, one process, a
            seeded sample of `--transcribe-items` clips after a warm-up) and the projected time to transcribe
            every clip of the dataset on 1 and 2 workers
  dask      the audio and MIDI groups of the first `--dask-items` items on local worker processes (2) and on a
            Dask `distributed.LocalCluster` (2 worker processes, one thread each): the sets must be identical;
            prints both times, the cluster's start-up and the Dask overhead in seconds

    .venv/bin/python bench/features.py --quick --new-only --transcribe-items 4 --dask-items 16   # only the last two

Peak memory is the peak of the summed resident memory of the process tree (the process and its loky
workers, sampled every 50 ms with psutil) and, for reference, the largest single process
(getrusage RUSAGE_SELF / RUSAGE_CHILDREN after the workers are shut down).
CPU ms/item (process + workers) does not depend on how busy the machine is, unlike wall time.
Targets: all sets cold < 3 min, 2 workers >= 1.6x one worker, cached rerun < 5 s, peak memory < 2 GB and
not doubling on the doubled dataset.
"""
import argparse, json, os, resource, shutil, subprocess, sys, tempfile, time
from pathlib import Path


def child(args):
    "Run one configuration; print a JSON line with the timings."
    t_start = time.perf_counter()
    from music_vae_nb.data import read_dataset
    from music_vae_nb.datasets import load_dataset
    import psutil
    from music_vae_nb.store import compute_group, GROUPS
    me = psutil.Process()
    def cpu():                                                    # CPU seconds of this process + live workers
        t = 0.0
        for q in [me, *me.children(recursive=True)]:
            try: c = q.cpu_times(); t += c.user + c.system
            except psutil.Error: pass
        return t
    ds = read_dataset(args.root) if args.root else load_dataset(args.dataset, quick=args.quick)
    out = {"items": len(ds.ids("all")), "groups": {}}
    for g in args.groups.split(","):
        t0, c0 = time.perf_counter(), cpu()
        sets = compute_group(ds, g, n_jobs=args.jobs, cache_dir=args.cache, progress=False)
        s, c = time.perf_counter() - t0, cpu() - c0
        fs = sets[GROUPS[g][0]]
        out["groups"][g] = {"seconds": s, "cached": fs.stats["cached"], "available": fs.n_available,
                            "items_per_s": len(fs) / s, "cpu_ms_per_item": 1000 * c / len(fs)}
    from joblib.externals.loky import get_reusable_executor
    get_reusable_executor().shutdown(wait=True)                      # reap the workers: their rusage counts
    mb = lambda r: resource.getrusage(r).ru_maxrss / 1024
    out.update(process_seconds=time.perf_counter() - t_start, max_rss_self_mb=mb(resource.RUSAGE_SELF),
               max_rss_children_mb=mb(resource.RUSAGE_CHILDREN))
    print("RESULT " + json.dumps(out), flush=True)


def run(label, dataset, quick, groups, jobs, cache, root=None):
    "Run a configuration in a subprocess, sampling the summed RSS of its process tree."
    import psutil
    cmd = [sys.executable, __file__, "--child", "--dataset", dataset, "--groups", groups, "--jobs", str(jobs),
           "--cache", str(cache)] + (["--quick"] if quick else []) + (["--root", str(root)] if root else [])
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    proc, peak = psutil.Process(p.pid), 0
    while p.poll() is None:
        try:
            rss = sum(q.memory_info().rss for q in [proc, *proc.children(recursive=True)])
            peak = max(peak, rss)
        except psutil.Error: pass
        time.sleep(0.05)
    out = p.stdout.read()
    wall = time.perf_counter() - t0
    line = [l for l in out.splitlines() if l.startswith("RESULT ")]
    if p.returncode or not line: raise SystemExit(f"{label} failed (exit {p.returncode}):\n{out}")
    r = json.loads(line[-1][7:]); r.update(label=label, wall=wall, peak_tree_mb=peak / 2**20)
    return r


def _spin(n: int) -> int:
    "Pure-Python CPU work (~0.1 s): the control for how much parallelism the machine offers right now."
    s = 0
    for k in range(n): s += k
    return s


def control_speedup(n_items: int = 16) -> float:
    "Speed-up of 2 workers over 1 on pure CPU work through the store's executor (2.0 on an idle 2-core machine)."
    from music_vae_nb.store import run_items
    run_items(_spin, [10] * 2, 2)                                      # start the workers
    t = {}
    for j in (1, 2):
        t0 = time.perf_counter(); run_items(_spin, [3_000_000] * n_items, j)
        t[j] = time.perf_counter() - t0
    return t[1] / t[2]


def double_dataset(ds, root: Path):
    "A copy of `ds`'s manifest with every item twice (second copy: new ids and groups), same files (absolute paths)."
    import pandas as pd
    from music_vae_nb.data import save_dataset
    m = ds.manifest.reset_index()
    for c in ("audio_path", "midi_path"):
        m[c] = [str(Path(ds.root) / p) if p and not Path(p).is_absolute() else p for p in m[c]]
    d = m.copy(); d["id"] = d["id"] + "#2"; d["group"] = d["group"] + "#2"
    return save_dataset(root, pd.concat([m, d], ignore_index=True), ds.name + "-x2", ds.labels, ds.primary_label,
                        info_columns=ds.info.get("info_columns", []))


def extractor_costs(ds, n_items: int = 40) -> dict:
    """CPU ms per clip of each per-item extractor, in this process, on the first `n_items` clips with audio and MIDI,
    with one BLAS / OpenMP thread, as in a feature worker (CPU time of idle threads spinning would count otherwise)."""
    import warnings
    from threadpoolctl import threadpool_limits
    from music_vae_nb.features import load_audio, spectra, audio_features, load_midi, midi_features
    from music_vae_nb.music import audio_music_features, midi_music_features
    m = ds.manifest; ids = m.index[m.has_audio & m.has_midi][:n_items]
    cost = {k: 0.0 for k in ("decode", "spectra (shared STFT)", "audio descriptors", "audio_music", "MIDI parse", "midi", "midi_music")}
    seconds = 0.0
    def timed(key, fn):
        c = time.process_time(); out = fn(); cost[key] += time.process_time() - c
        return out
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        audio_music_features(np.zeros(16_000, np.float32))                # warm-up: filter banks, imports
        for id in ids:
            y = timed("decode", lambda: load_audio(ds.audio_file(id))); seconds += len(y) / 16_000
            sp = timed("spectra (shared STFT)", lambda: spectra(y))
            timed("audio descriptors", lambda: audio_features(y, spec=sp))
            timed("audio_music", lambda: audio_music_features(y, spec=sp))
            pm = timed("MIDI parse", lambda: load_midi(ds.midi_file(id)))
            timed("midi", lambda: midi_features(pm))
            timed("midi_music", lambda: midi_music_features(pm))
    n = max(len(ids), 1)
    return {"clips": len(ids), "mean_seconds": seconds / n, **{k: 1000 * v / n for k, v in cost.items()}}


def transcription_cost(ds, n_items: int = 16, seed: int = 0) -> dict:
    "Seconds per clip of basic-pitch in this process on a seeded sample of clips, and the whole dataset projected."
    from music_vae_nb.transcribe import has_basic_pitch, time_transcription, transcribe_audio
    if not has_basic_pitch(): return {}
    m = ds.manifest; audio = m.index[m.has_audio]
    sample = np.random.default_rng(seed).choice(audio, size=min(n_items, len(audio)), replace=False)
    transcribe_audio(np.zeros(16_000, np.float32), 16_000)                # warm-up: imports, the ONNX session
    t = time_transcription(ds, ids=sorted(sample))
    per = {k: float(t[k].mean()) for k in ("audio_s", "cpu_s", "wall_s")}
    return {"clips": len(t), **per, "n_audio": len(audio), "all_1_worker_min": len(audio) * per["wall_s"] / 60,
            "all_2_workers_min": len(audio) * per["wall_s"] / 120, "all_cpu_1_min": len(audio) * per["cpu_s"] / 60, "cpu_per_audio_second": per["cpu_s"] / per["audio_s"]}


def _first_items(ds, n: int, root: Path):
    "The first `n` items of `ds` as a dataset of their own (same files, absolute paths)."
    from music_vae_nb.data import save_dataset
    m = ds.manifest.reset_index().head(n)
    for c in ("audio_path", "midi_path"):
        m[c] = [str(Path(ds.root) / p) if p and not Path(p).is_absolute() else p for p in m[c]]
    return save_dataset(root, m.drop(columns=["has_audio", "has_midi", "has_lyrics"]), ds.name + f"-{n}", ds.labels,
                        ds.primary_label)


def dask_vs_processes(ds, n_items: int, tmp: Path, groups=("audio", "midi")) -> dict:
    "Times of the file groups of the first `n_items` items on 2 local processes and on a 2-worker Dask LocalCluster; asserts identical sets."
    from distributed import Client, LocalCluster
    from music_vae_nb.store import compute_group
    sub = _first_items(ds, n_items, tmp / "sub")
    def timed(sched, cache):
        t0 = time.perf_counter()
        sets = {g: compute_group(sub, g, n_jobs=2, cache_dir=cache, progress=False, scheduler=sched) for g in groups}
        return sets, time.perf_counter() - t0
    ref, t_proc = timed("processes", tmp / "proc")                      # first call: the workers start and import
    _, t_proc_warm = timed("processes", tmp / "proc-warm")              # same workers, cold cache
    out = {"items": n_items, "processes_s": t_proc, "processes_warm_s": t_proc_warm}
    for processes in (True, False):
        try:
            t0 = time.perf_counter()
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=processes, dashboard_address=None) as cl, \
                 Client(cl, set_as_default=False) as client:
                t_start = time.perf_counter() - t0
                got, t_dask = timed(client, tmp / f"dask-{processes}")
                _, t_dask_warm = timed(client, tmp / f"dask-{processes}-warm")
        except Exception as e:
            out[f"dask_processes={processes}"] = f"failed: {type(e).__name__}: {e}"[:200]; continue
        for g in groups:
            for n, fs in ref[g].items():
                assert np.array_equal(fs.X, got[g][n].X) and np.array_equal(fs.mask, got[g][n].mask), f"{n} differs on Dask"
        out.update(dask_workers="processes" if processes else "threads", dask_start_s=t_start, dask_s=t_dask,
                   dask_warm_s=t_dask_warm, overhead_s=t_dask - t_proc, overhead_warm_s=t_dask_warm - t_proc_warm,
                   identical=True)
        break
    return out


def new_sections(ds, args, tmp: Path) -> None:
    "Print the transcription cost and the Dask comparison."
    tc = transcription_cost(ds, args.transcribe_items)
    if tc:
        print(f"transcription (basic-pitch, ONNX, one process, {tc['clips']} clips of {tc['audio_s']:.1f} s on average):")
        print(f"  per clip: {tc['cpu_s']:.2f} s CPU, {tc['wall_s']:.2f} s wall ({tc['cpu_per_audio_second']:.3f} s CPU per second of audio)")
        print(f"  whole dataset ({tc['n_audio']} clips with audio), projected: {tc['all_cpu_1_min']:.1f} min on 1 idle core, "
              f"{tc['all_cpu_1_min'] / 2:.1f} min on 2; at this run's wall time per clip {tc['all_1_worker_min']:.1f} min on 1 worker, "
              f"{tc['all_2_workers_min']:.1f} min on 2\n", flush=True)
    else: print("transcription: basic-pitch not installed (skipped)\n")
    try: import distributed  # noqa: F401
    except ImportError: print("dask: distributed not installed (skipped)"); return
    d = dask_vs_processes(ds, args.dask_items, tmp / "dask")
    if "dask_s" not in d: print(f"dask: {d}"); return
    print(f"audio + MIDI groups of {d['items']} items, cold feature cache, 2 workers (first call: workers start and import; "
          "second: the same workers again):")
    print(f"  local processes             first {d['processes_s']:6.1f} s, second {d['processes_warm_s']:6.1f} s")
    print(f"  Dask LocalCluster ({d['dask_workers']:9}) first {d['dask_s']:6.1f} s, second {d['dask_warm_s']:6.1f} s "
          f"(+ {d['dask_start_s']:.1f} s to start the cluster)")
    print(f"  Dask overhead: {d['overhead_s']:+.1f} s first, {d['overhead_warm_s']:+.1f} s second; "
          f"feature sets identical: {d['identical']}\n", flush=True)


def main(args):
    import numpy as np
    globals()["np"] = np
    from music_vae_nb.datasets import load_dataset
    ds = load_dataset(args.dataset, quick=args.quick)                  # build it first (not timed)
    n = len(ds.ids("all"))
    tmp = Path(tempfile.mkdtemp(prefix="bench-features-"))
    from music_vae_nb.store import available_feature_names, group_of
    all_groups = ",".join(dict.fromkeys(group_of(n) for n in available_feature_names()))
    file_groups = "audio,midi"
    try:
        print(f"dataset {ds.name}: {n} items; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}", flush=True)
        if args.new_only: new_sections(ds, args, tmp); return
        ex = extractor_costs(ds)
        print(f"\nCPU ms per clip, one process, {ex['clips']} clips of {ex['mean_seconds']:.1f} s on average:")
        for k, v in ex.items():
            if k not in ("clips", "mean_seconds"): print(f"  {k:24} {v:7.1f}")
        new = ex["audio_music"] + ex["midi_music"]
        print(f"  new music extractors     {new:7.1f} ms per clip = {new * 30 / ex['mean_seconds']:.1f} ms per 30 s clip (target <= 30)\n", flush=True)
        if args.extractors_only: return
        new_sections(ds, args, tmp)
        c0 = control_speedup()
        runs = [run("cold-2", args.dataset, args.quick, all_groups, 2, tmp / "c2"),
                run("cold-1", args.dataset, args.quick, file_groups, 1, tmp / "c1"),
                run("cached", args.dataset, args.quick, all_groups, 2, tmp / "c2"),
                run("double-2", args.dataset, args.quick, all_groups, 2, tmp / "cx2",
                    root=double_dataset(ds, tmp / "x2").root)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    R = {r["label"]: r for r in runs}
    print(f"\n{'config':9} {'items':>6} {'group':14} {'seconds':>8} {'items/s':>8} {'CPU ms/item':>11} {'cached':>6}")
    for r in runs:
        for g, x in r["groups"].items():
            print(f"{r['label']:9} {r['items']:>6} {g:14} {x['seconds']:8.2f} {x['items_per_s']:8.1f} "
                  f"{x['cpu_ms_per_item']:11.1f} {str(x['cached']):>6}")
    print(f"\n{'config':9} {'wall s':>7} {'peak tree MB':>13} {'max proc MB':>12}")
    for r in runs:
        print(f"{r['label']:9} {r['wall']:7.1f} {r['peak_tree_mb']:13.0f} {max(r['max_rss_self_mb'], r['max_rss_children_mb']):12.0f}")
    cold = sum(x["seconds"] for x in R["cold-2"]["groups"].values())
    sp = {g: R["cold-1"]["groups"][g]["seconds"] / R["cold-2"]["groups"][g]["seconds"] for g in ("audio", "midi")}
    f1 = sum(R["cold-1"]["groups"][g]["seconds"] for g in ("audio", "midi"))
    f2 = sum(R["cold-2"]["groups"][g]["seconds"] for g in ("audio", "midi"))
    cached = sum(x["seconds"] for x in R["cached"]["groups"].values())
    ratio = R["double-2"]["peak_tree_mb"] / R["cold-2"]["peak_tree_mb"]
    c1 = control_speedup()
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (other work on the machine slows every figure)")
    print(f"control: pure-CPU speed-up of 2 workers over 1 = {c0:.2f}x before, {c1:.2f}x after the runs "
          "(2.0x on an idle 2-core machine; lower means other processes hold the cores)")
    print(f"\nall sets cold, 2 workers:     {cold:7.1f} s   (target < 180 s)")
    print(f"speed-up 2 workers over 1:    audio {sp['audio']:.2f}x, midi {sp['midi']:.2f}x, audio+midi {f1 / f2:.2f}x   (target >= 1.6x)")
    print(f"cached rerun:                 {cached:7.2f} s in the call, {R['cached']['wall']:.1f} s whole process incl. imports   (target < 5 s)")
    print(f"peak memory, process tree:    {R['cold-2']['peak_tree_mb']:.0f} MB; doubled dataset ({R['double-2']['items']} items): "
          f"{R['double-2']['peak_tree_mb']:.0f} MB = {ratio:.2f}x   (target < 2048 MB, not doubling)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="m21-vocal"); ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child", action="store_true"); ap.add_argument("--groups", default="")
    ap.add_argument("--jobs", type=int, default=2); ap.add_argument("--cache", default=None)
    ap.add_argument("--root", default=None)
    ap.add_argument("--extractors-only", action="store_true", help="only the per-extractor CPU costs")
    ap.add_argument("--new-only", action="store_true", help="only the transcription cost and the Dask comparison")
    ap.add_argument("--transcribe-items", type=int, default=16, help="clips timed for the transcription cost")
    ap.add_argument("--dask-items", type=int, default=64, help="items of the Dask vs local processes comparison")
    a = ap.parse_args()
    child(a) if a.child else main(a)
