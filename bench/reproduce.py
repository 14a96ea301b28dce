"""Wall time and peak memory of `music-vae reproduce`: per notebook, per stage, the dataset build and the features.

Usage: python bench/reproduce.py (--empty | --cached | --rerun) [--quick] [--only NOTEBOOK ...] [--data-dir PATH]
                                 [--keep] [--interval 0.25] [-- more reproduce options, e.g. --scheduler local]

Three starting points:
- `--empty`: a fresh, empty data folder (MUSIC_VAE_DATA in a temp folder): the dataset is built and every feature
  set extracted, then the notebooks run (what a first run on a new machine costs);
- `--cached`: the existing data folder (`--data-dir`, default `<repo>/data`) with its dataset and feature cache, but
  without the fit cache (`<dataset>/cache/fits`, which holds the fits and the clusterings): every fit and every
  clustering is redone. The folder is not touched: the run sees a temp folder of symbolic links to it, with an empty
  fit cache;
- `--rerun`: the existing data folder as it is (fits and clusterings cached); the notebooks are executed
  (`--force`), so this measures a run that only reads caches.

The notebooks run in a throw-away copy of the project (`settings.ini`, `nbs/`: MUSIC_VAE_ROOT), so the
repository's reports and figures are untouched (`--keep` keeps the copy and prints where it is).

Reported: the wall time of each notebook (from `runs.json`) and of each of its stages (the `core.StageTimes` table
each notebook keeps, which the runner copies into `runs.json`), the dataset load / build time (`dataset_seconds`),
the feature time (00_features, plus the `features` stage of the others), the whole command's wall time, and the
peak memory: the resident set size summed over the runner's process tree (runner, notebook kernels, their worker
processes), sampled every `--interval` seconds, overall and while each notebook ran (notebooks that run side by side
share it); and, for each phase (the set of notebooks running together), its wall seconds and the CPU seconds the tree
used, with `cores busy` = CPU seconds / wall seconds (2.0 on two fully used cores).

Before the run, a fixed single-threaded reference workload (`machine_reference`: an MLP VAE trained on synthetic data
of the audio view's shape, K-Means on a 16-d sample) prints its CPU seconds, so runs on different machines can be
compared: the notebooks' CPU scales with it (`--reference-only` prints it and stops).
"""
from __future__ import annotations

import argparse, json, os, shutil, signal, subprocess, sys, tempfile, threading, time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
DATASET = "m21-vocal"


def tree_rss(proc: psutil.Process) -> int:
    "Resident bytes of `proc` and all its descendants (processes that vanish meanwhile count 0)."
    total = 0
    try: procs = [proc, *proc.children(recursive=True)]
    except psutil.Error: return 0
    for p in procs:
        try: total += p.memory_info().rss
        except psutil.Error: pass
    return total


def project_copy(dst: Path) -> Path:
    """A minimal project root for the run: `settings.ini`, the notebooks and the package (imported from here through
    PYTHONPATH, so editing the repository while the benchmark runs cannot change what it measures)."""
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "settings.ini", dst)
    skip = shutil.ignore_patterns(".ipynb_checkpoints", "_proc", "__pycache__")
    shutil.copytree(REPO / "nbs", dst / "nbs", ignore=skip)
    shutil.copytree(REPO / "music_vae_nb", dst / "music_vae_nb", ignore=skip)
    return dst


def linked_data(src: Path, dst: Path) -> Path:
    "`dst` mirrors data folder `src` through symbolic links, except each dataset's fit cache, which starts empty."
    dst.mkdir(parents=True, exist_ok=True)
    for ds in src.iterdir():
        if not ds.is_dir(): os.symlink(ds, dst / ds.name); continue
        (dst / ds.name).mkdir()
        for item in ds.iterdir():
            if item.name != "cache": os.symlink(item, dst / ds.name / item.name); continue
            (dst / ds.name / "cache").mkdir()
            for c in item.iterdir():
                if c.name != "fits": os.symlink(c, dst / ds.name / "cache" / c.name)
    return dst


def machine_reference(seed: int = 0) -> dict[str, float]:
    """CPU seconds of two fixed single-threaded workloads, the shapes of the run's heaviest stages: `train`, 40 epochs of
    the MLP VAE on 1,000 synthetic items of 120 features (batch 64, AdamW); `cluster`, K-Means (k = 8, 10 starts) on
    100,000 items of a 16-d latent (8 overlapping blobs). Best of 3, so a busy moment does not count."""
    import numpy as np, torch
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits
    from music_vae_nb.models import VAE
    threads = torch.get_num_threads(); torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    X = torch.tensor(rng.normal(size=(1000, 120)), dtype=torch.float32)
    Z = rng.normal(size=(100_000, 16)) + np.repeat(rng.normal(scale=0.5, size=(8, 16)), 12_500, axis=0)

    def train():
        torch.manual_seed(seed); model = VAE(120, latent_dim=16, modality="audio")
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(seed)
        for _ in range(40):
            for idx in torch.randperm(len(X), generator=g).split(64):
                b = {"audio": X[idx], "mask": {"audio": torch.ones(len(idx), dtype=torch.bool)}}
                loss = model.loss(b, model(b), 1.0)["total"]
                opt.zero_grad(set_to_none=True); loss.backward(); opt.step()

    def cluster():
        with threadpool_limits(1): KMeans(8, n_init=10, random_state=seed).fit(Z)

    out = {}
    for name, f in (("train", train), ("cluster", cluster)):
        best = np.inf
        for _ in range(3):
            t = time.process_time(); f(); best = min(best, time.process_time() - t)
        out[name] = best
    torch.set_num_threads(threads)
    return out


def reference_line(ref: dict[str, float]) -> str:
    return ("machine reference (CPU s, 1 thread, best of 3): " + ", ".join(f"{k} {v:.2f}" for k, v in ref.items())
            + f"; total {sum(ref.values()):.2f}")


def tree_cpu(proc: psutil.Process, seen: dict) -> float:
    """CPU seconds (user + system) used so far by `proc` and its descendants: `seen` keeps each process's last
    reading, so a process that has ended still counts (up to one sampling interval of its last work)."""
    try: procs = [proc, *proc.children(recursive=True)]
    except psutil.Error: procs = []
    for p in procs:
        try: c = p.cpu_times(); seen[p.pid] = c.user + c.system
        except psutil.Error: pass
    return sum(seen.values())


def run(cmd: list[str], env: dict, interval: float) -> tuple[float, int, dict, str, dict]:
    """Run `cmd`; return wall seconds, peak tree RSS, peak tree RSS per notebook (while it ran: shared with any notebook
    running beside it), the output, and the phases: for each set of notebooks that ran together (by the runner's ▶ and
    ✔ lines), its wall seconds and the CPU seconds of the process tree."""
    t0, peak, per_nb, running, lines = time.perf_counter(), 0, {}, set(), []
    seen, phases, last, t_last = {}, {}, 0.0, time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    ps = psutil.Process(proc.pid)

    def read():
        for line in proc.stdout:
            lines.append(line); sys.stdout.write("  | " + line); sys.stdout.flush()
            if line.startswith("▶ "): running.add(line[2:].split()[0])
            elif line.startswith("✔ "): running.discard(line[2:].split()[0])
    reader = threading.Thread(target=read, daemon=True); reader.start()

    def forward(signum, frame):                    # the runner stops its kernels and workers on the same signal
        proc.send_signal(signum)
        try: proc.wait(timeout=60)
        except subprocess.TimeoutExpired: proc.kill()
        raise SystemExit(128 + signum)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP): signal.signal(sig, forward)
    while proc.poll() is None:
        rss, now, names = tree_rss(ps), time.perf_counter(), tuple(sorted(running)); peak = max(peak, rss)
        cpu = tree_cpu(ps, seen)
        for n in names: per_nb[n] = max(per_nb.get(n, 0), rss)
        if names:
            w, c = phases.get(names, (0.0, 0.0)); phases[names] = (w + now - t_last, c + cpu - last)
        last, t_last = cpu, now
        time.sleep(interval)
    reader.join(timeout=5)
    return time.perf_counter() - t0, peak, per_nb, "".join(lines), phases


def report(runs_json: Path, wall: float, peak: int, per_nb: dict, mode: str, phases: dict) -> None:
    info = json.loads(runs_json.read_text())
    runs = info["runs"]
    gb = lambda b: f"{b / 2**30:.2f}"
    print(f"\n== music-vae reproduce ({mode}{', quick' if info.get('quick') else ''}) on {info['dataset']} ==")
    print(f"dataset load / build: {info.get('dataset_seconds', float('nan')):.1f} s (in the runner, before the notebooks)")
    print(f"{'notebook':<14}{'status':<10}{'seconds':>9}{'peak GB':>9}")
    for r in runs:
        print(f"{r['name']:<14}{r.get('status', '?'):<10}{r.get('seconds', 0):>9.1f}{gb(per_nb.get(r['name'], 0)):>9}")
    print("\nphases (notebooks running together): wall seconds, CPU seconds of the process tree, cores busy (CPU / wall)")
    for names, (w, c) in phases.items():
        print(f"  {' + '.join(names):<48}{w:>8.1f}{c:>9.1f}{c / w if w else 0:>7.2f}")
    print("\nstages (seconds; from each notebook's StageTimes):")
    names = list(dict.fromkeys(s for r in runs for s in r.get("stages", {})))
    if names:
        w = max(len(s) for s in names) + 2
        print(f"{'notebook':<14}" + "".join(f"{s:>{w}}" for s in names))
        for r in runs:
            st = r.get("stages", {})
            print(f"{r['name']:<14}" + "".join(f"{st[s]:>{w}.1f}" if s in st else f"{'':>{w}}" for s in names))
    feats = sum(r.get("seconds", 0) for r in runs if r["name"] == "00_features")
    feats_stage = sum(r.get("stages", {}).get("features", 0) for r in runs)
    print(f"\nfeatures: 00_features {feats:.1f} s (extraction, when not cached, and the floor), "
          f"'features' stages of the others {feats_stage:.1f} s")
    print(f"notebooks: {sum(r.get('seconds', 0) for r in runs):.1f} s; whole command: {wall:.1f} s; "
          f"peak memory (process tree): {gb(peak)} GB")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group(required="--reference-only" not in (argv if argv is not None else sys.argv))
    mode.add_argument("--empty", action="store_true", help="fresh data folder: build the dataset, extract features")
    mode.add_argument("--cached", action="store_true", help="existing dataset and features, fit / clustering cache empty")
    mode.add_argument("--rerun", action="store_true", help="everything cached; the notebooks still execute (--force)")
    ap.add_argument("--quick", action="store_true", help="the quick subset and settings")
    ap.add_argument("--only", action="append", metavar="NOTEBOOK", help="only this notebook (repeatable)")
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("MUSIC_VAE_DATA") or REPO / "data"))
    ap.add_argument("--keep", action="store_true", help="keep the temp project (reports, executed notebooks)")
    ap.add_argument("--interval", type=float, default=0.25, help="memory sampling interval [s]")
    ap.add_argument("--reference-only", action="store_true", help="print the machine reference and stop")
    a, extra = ap.parse_known_args(argv)
    extra = [x for x in extra if x != "--"]
    ref = machine_reference()
    print(reference_line(ref), flush=True)
    if a.reference_only: return 0

    tmp = Path(tempfile.mkdtemp(prefix="bench-reproduce-"))
    root = project_copy(tmp / "project")
    if a.empty: data = tmp / "data"; data.mkdir()
    elif a.cached: data = linked_data(a.data_dir.resolve(), tmp / "data")
    else: data = a.data_dir.resolve()
    mode_name = "empty data" if a.empty else "cached data, no fits" if a.cached else "everything cached"
    print(f"project copy: {root}\ndata: {data} ({mode_name})")

    cmd = [str(Path(sys.executable).parent / "music-vae"), "reproduce", "--no-html"]
    cmd += ["--quick"] if a.quick else []
    cmd += [x for n in (a.only or []) for x in ("--only", n)]
    cmd += ["--force"] if a.rerun else []
    cmd += extra
    env = {**os.environ, "MUSIC_VAE_ROOT": str(root), "MUSIC_VAE_DATA": str(data),
           "PYTHONPATH": os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
    print("$ " + " ".join(cmd))
    wall, peak, per_nb, out, phases = run(cmd, env, a.interval)
    runs_json = root / "reports" / ("quick" if a.quick else "") / DATASET / "runs.json"
    if runs_json.exists(): report(runs_json, wall, peak, per_nb, mode_name, phases)
    else: print("no runs.json written: the run failed before the first notebook")
    print(reference_line(ref))
    if a.keep: print(f"kept: {tmp}")
    else: shutil.rmtree(tmp, ignore_errors=True)
    return 0 if "✘" not in out else 1


if __name__ == "__main__":
    sys.exit(main())
