"""Training throughput of the MLP VAE, the conv VAE and the multi-modal VAE on this CPU, trainer vs a bare loop.

    .venv/bin/python bench/train.py                 # throughput table (synthetic data of the real shapes)
    .venv/bin/python bench/train.py --notebooks     # also: full-mode wall time of 01_easy and 02_medium (papermill)

The bare loop is the same model, data, batch size, optimiser and thread count with nothing else: no validation
pass, no checks, no history, no progress bar. The trainer's overhead is (trainer time - bare time) / bare time over the same epochs;
the target is < 20 %. Numbers are the best of `--repeats` runs, interleaved, after a warm-up.
"""
import argparse, math, os, sys, tempfile, time
from pathlib import Path

import numpy as np
import torch

from music_vae_nb.core import seed_everything, project_root
from music_vae_nb.models import VAE, ConvVAE, MultiModalVAE
from music_vae_nb.train import MultiModalData, TrainConfig, fit_model, index_batch, toy_data

N_TRAIN, N_VALID = 1000, 150
SHAPES = {"audio": 120, "lyrics": 384, "midi": 60, "log_mel": (64, 128)}


def bare_loop(model, data: MultiModalData, epochs: int, batch_size: int, lr: float = 1e-3) -> float:
    "Seconds for `epochs` of plain minibatch training."
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    full, n = data.tensors(), len(data)
    g = torch.Generator().manual_seed(0)
    model.train(); t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for s in range(0, n, batch_size):
            b = index_batch(full, perm[s:s + batch_size])
            loss = model.loss(b, model(b), 1.0)["total"]
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    return time.perf_counter() - t0


def trainer(model, train, valid, epochs, batch_size, checkpoint_dir=None, checkpoint_every=1) -> float:
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, patience=10**6, kl_warmup_epochs=1, progress=True,
                      checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, num_threads=torch.get_num_threads())
    t0 = time.perf_counter(); fit_model(model, train, valid, cfg); return time.perf_counter() - t0


def bench(name, make, dims, epochs, batch_size, repeats):
    data, _ = toy_data(N_TRAIN + N_VALID, dims, missing={"lyrics": 0.2} if "lyrics" in dims else None)
    train, valid = data.take(data.ids[:N_TRAIN]), data.take(data.ids[N_TRAIN:])
    seed_everything(0); bare_loop(make(), train, 1, batch_size)                  # warm-up
    every = TrainConfig().checkpoint_every
    res = {"bare": [], "trainer": [], "trainer+ckpt": [], f"trainer+ckpt/{every}": []}
    for _ in range(repeats):
        seed_everything(0); res["bare"].append(bare_loop(make(), train, epochs, batch_size))
        seed_everything(0); res["trainer"].append(trainer(make(), train, valid, epochs, batch_size))
        with tempfile.TemporaryDirectory() as d:
            seed_everything(0); res["trainer+ckpt"].append(trainer(make(), train, valid, epochs, batch_size, d))
        with tempfile.TemporaryDirectory() as d:
            seed_everything(0); res[f"trainer+ckpt/{every}"].append(trainer(make(), train, valid, epochs, batch_size, d, every))
    best = {k: min(v) for k, v in res.items()}
    ips = {k: N_TRAIN * epochs / v for k, v in best.items()}
    n_par = sum(p.numel() for p in make().parameters())
    print(f"{name:<28} {n_par:>9,} params | bare {ips['bare']:8.0f} items/s | trainer {ips['trainer']:8.0f} items/s "
          f"(overhead {best['trainer'] / best['bare'] - 1:+6.1%}) | with checkpoints {ips['trainer+ckpt']:8.0f} items/s "
          f"(overhead {best['trainer+ckpt'] / best['bare'] - 1:+6.1%}) | s/epoch {best['trainer'] / epochs:.3f}", flush=True)
    ck1, ckn = best["trainer+ckpt"] - best["trainer"], best[f"trainer+ckpt/{every}"] - best["trainer"]
    print(f"{'':<28} checkpoint overhead: every epoch {ck1 / epochs * 1e3:+.1f} ms/epoch ({ck1 / best['trainer']:+.1%}), "
          f"checkpoint_every={every} {ckn / epochs * 1e3:+.1f} ms/epoch ({ckn / best['trainer']:+.1%})", flush=True)


def run_notebooks(names=("01_easy", "02_medium"), params=None):
    import papermill as pm
    root = project_root(); out = Path(tempfile.mkdtemp(prefix="bench_nb_"))
    total = 0.0
    for nb in names:
        t0 = time.perf_counter()
        pm.execute_notebook(str(root / "nbs" / f"{nb}.ipynb"), str(out / f"{nb}.ipynb"), parameters={"quick": False, **(params or {})},
                            kernel_name="python3", cwd=str(root / "nbs"), progress_bar=False)
        dt = time.perf_counter() - t0; total += dt
        print(f"{nb} full mode: {dt:.0f} s ({out / nb}.ipynb)", flush=True)
    print(f"together: {total:.0f} s = {total / 60:.1f} min (target < 8 min on 2 cores)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=5); ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64); ap.add_argument("--notebooks", action="store_true")
    ap.add_argument("--only-notebooks", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads for both loops (the trainer's default is 1)")
    ap.add_argument("--tiny", action="store_true", help="also a tiny VAE (20-d input, 2-d latent), where checkpoint writes weigh most")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cpus; "
          f"{N_TRAIN} train + {N_VALID} valid items, batch {a.batch_size}, {a.epochs} epochs, best of {a.repeats}")
    if not a.only_notebooks:
        if a.tiny: bench("tiny VAE (audio 20)", lambda: VAE(20, latent_dim=2, hidden=(16,), modality="audio"), {"audio": 20},
                         a.epochs, a.batch_size, a.repeats)
        bench("VAE (audio 120)", lambda: VAE(120, modality="audio"), {"audio": 120}, a.epochs, a.batch_size, a.repeats)
        bench("ConvVAE (log_mel 64x128)", lambda: ConvVAE((64, 128), modality="log_mel"), {"log_mel": (64, 128)},
              max(1, a.epochs // 2), a.batch_size, a.repeats)
        mm = {k: SHAPES[k] for k in ("audio", "lyrics", "midi")}
        for fusion in ("poe", "moe", "concat"):
            bench(f"MultiModalVAE {fusion} (a+l+m)", lambda f=fusion: MultiModalVAE(mm, fusion=f), mm, a.epochs, a.batch_size, a.repeats)
    if a.notebooks or a.only_notebooks: run_notebooks()
