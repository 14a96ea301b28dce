"""The peer libraries beside our models: multivae's MoPoE and MMVAE+, clustpy's DEC, IDEC and VaDE, fitted on the
same feature matrices, through the same outer folds, scored the same way as our VAEs, PCA and the raw features.

    pip install -e .[peers] && pip install --no-deps multivae==1.0.3 clustpy==0.0.3
    MUSIC_VAE_DATA=data .venv/bin/python bench/peers.py m21-vocal --quick
    .venv/bin/python bench/peers.py m21-vocal --views midi_music,audio_music --folds 5 --epochs 100

Per outer fold r (the dataset's outer folds by group; fold r is tested once): every view standardised with the fold's training items;
the items that have every view; each representation fitted on the training items without labels; the fold's validation
items choose what needs choosing (our mixture model's k, by the silhouette rule of `train.choose_components`);
K-Means at k = the label's number of classes scores the validation and test embeddings (`protocol.score_embedding`).
Methods that cluster by themselves (DEC, IDEC, VaDE, our mixture prior) are also scored on their own assignment
(`... (own)` rows). The table: test AMI per label, mean over folds, with the validation AMI in brackets.

The peers import torchvision at import time (for image datasets we never load). When no torchvision that matches
the installed torch imports here, a stub stands in for it and the script says so in one line; a peer that still
fails to import or to fit is skipped with one line.
"""
import argparse, contextlib, importlib, io, importlib.abc, importlib.machinery, os, sys, tempfile, time, types, warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from music_vae_nb.core import seed_everything
from music_vae_nb.cluster import external_scores
from music_vae_nb.datasets import load_dataset
from music_vae_nb.models import (PCAEmbedder, VAE, MultiModalVAE, MixtureVAE, MixtureMultiModalVAE, PrivateSharedVAE)
from music_vae_nb.protocol import Protocol, label_frame, score_embedding
from music_vae_nb.store import FeatureScaler, compute_features
from music_vae_nb.train import MultiModalData, TrainConfig, choose_components, component_probabilities, embed, fit_model

PEERS = ("MoPoE", "MMVAE+", "DEC", "IDEC", "VaDE")


# ---------------------------------------------------------------- torchvision
class _Anything(types.ModuleType):
    "A module whose every attribute is a harmless class (so `from torchvision.x import Y` works)."
    __path__ = []                                        # a package: submodules resolve through the finder below
    def __getattr__(self, name):
        if name.startswith("__"): raise AttributeError(name)
        return type(name, (), {"__init__": lambda self, *a, **k: None})

class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        return importlib.machinery.ModuleSpec(name, self, is_package=True) if name.split(".")[0] == "torchvision" else None
    def create_module(self, spec): return _Anything(spec.name)
    def exec_module(self, module): pass

def torchvision_or_stub() -> str:
    "Import torchvision; when it is missing or does not match torch, put a stub in its place. Returns what happened."
    try:
        import torchvision  # noqa: F401
        return f"torchvision {torchvision.__version__}"
    except Exception as e:
        for k in [k for k in sys.modules if k.split(".")[0] == "torchvision"]: del sys.modules[k]
        sys.meta_path.insert(0, _StubFinder())
        return f"torchvision not importable beside torch {torch.__version__} ({type(e).__name__}: {str(e)[:60]}); a stub stands in (the peers use it for image datasets only)"


# ---------------------------------------------------------------- data
FOLDS = 5                                        # outer folds (set from --folds)

def fold_data(ds, feats: dict, views: list, r: int) -> tuple[MultiModalData, dict]:
    "Views standardised with the training items of outer fold `r`, the items that have every view, and their split ids."
    ids = {s: np.asarray(v).astype(str) for s, v in ds.fold_ids(r, FOLDS).items()}
    scaled = {v: FeatureScaler().fit(feats[v].take(ids["train"])).transform(feats[v]) for v in views}
    data = MultiModalData.from_features(scaled, ids["all"])
    full = set(data.ids[np.all([data.masks[v] for v in views], axis=0)])
    ids = {s: np.array([i for i in ids[s] if i in full]) for s in ("train", "valid", "test")}
    return data.take(list(np.concatenate([ids["train"], ids["valid"], ids["test"]]))), ids

def concat(data: MultiModalData) -> np.ndarray:
    "The views side by side, each weighted 1/sqrt(width) (every view the same say in a distance, as for our baselines)."
    return np.concatenate([X.reshape(len(X), -1) / np.sqrt(np.prod(X.shape[1:])) for X in data.arrays.values()], 1)


# ---------------------------------------------------------------- representations: each returns {split: (Z, own assignment or None)}
def ours(name, data, ids, args, seed):
    views = list(data.modalities)
    single = len(views) == 1
    cfg = TrainConfig(epochs=args.epochs, patience=max(10, args.epochs // 5), kl_warmup_epochs=min(10, args.epochs // 3),
                      seed=seed, progress=False)
    train, valid = data.take(ids["train"]), data.take(ids["valid"])
    d = data.dims
    seed_everything(seed)
    if name == "vae":
        m = VAE(d[views[0]], args.latent_dim, modality=views[0]) if single else MultiModalVAE(d, args.latent_dim, fusion="poe")
        fit_model(m, train, valid, cfg)
    elif name == "mixture vae":
        make = ((lambda k: MixtureVAE(d[views[0]], k, args.latent_dim, modality=views[0])) if single else
                (lambda k: MixtureMultiModalVAE(d, k, args.latent_dim, fusion="poe")))
        k, m, _ = choose_components(make, train, valid, ks=args.ks, cfg=cfg)
    else:                                                   # private-shared, scored on its shared part and on all
        part = name.split("(")[1].rstrip(")")
        m = PrivateSharedVAE(d, args.latent_dim, private_dim=4)
        fit_model(m, train, valid, cfg); m.part = part
    out = {}
    for s in ("valid", "test"):
        x = data.take(ids[s])
        own = component_probabilities(m, x).argmax(1) if name == "mixture vae" else None
        out[s] = (embed(m, x), own)
    return out

def _multivae(name, data, ids, args, seed):
    from multivae.data.datasets.base import MultimodalBaseDataset
    from multivae.models import MoPoE, MoPoEConfig, MMVAEPlus, MMVAEPlusConfig
    from multivae.models.nn.base_architectures import BaseMultilatentEncoder
    from pythae.models.base.base_model import BaseDecoder
    from pythae.models.nn.base_architectures import BaseEncoder
    from multivae.trainers import BaseTrainer, BaseTrainerConfig
    from pythae.models.base.base_utils import ModelOutput
    from torch import nn

    style = 4 if name == "MMVAE+" else 0
    class Enc(BaseMultilatentEncoder if style else BaseEncoder):
        def __init__(self, d):
            super().__init__(); self.net = nn.Sequential(nn.Linear(d, 128), nn.ReLU())
            self.mu, self.lv = nn.Linear(128, args.latent_dim), nn.Linear(128, args.latent_dim)
            if style: self.smu, self.slv = nn.Linear(128, style), nn.Linear(128, style)
        def forward(self, x):
            h = self.net(x); o = ModelOutput(embedding=self.mu(h), log_covariance=self.lv(h))
            if style: o["style_embedding"], o["style_log_covariance"] = self.smu(h), self.slv(h)
            return o
    class Dec(BaseDecoder):                                 # Gaussian likelihood: a linear output, no sigmoid
        def __init__(self, d):
            super().__init__(); self.net = nn.Sequential(nn.Linear(args.latent_dim + style, 128), nn.ReLU(), nn.Linear(128, d))
        def forward(self, z): return ModelOutput(reconstruction=self.net(z))

    views = list(data.modalities)
    dims = {v: int(np.prod(data.arrays[v].shape[1:])) for v in views}
    common = dict(n_modalities=len(views), latent_dim=args.latent_dim, input_dims={v: (dims[v],) for v in views},
                  decoders_dist={v: "normal" for v in views})
    cfg = (MMVAEPlusConfig(**common, modalities_specific_dim=style, K=1, prior_and_posterior_dist="normal")
           if style else MoPoEConfig(**common))
    torch.manual_seed(seed)
    model = (MMVAEPlus if style else MoPoE)(cfg, encoders={v: Enc(dims[v]) for v in views}, decoders={v: Dec(dims[v]) for v in views})
    ds_of = lambda s: MultimodalBaseDataset({v: torch.from_numpy(data.take(ids[s]).arrays[v].reshape(len(ids[s]), -1)) for v in views})
    with tempfile.TemporaryDirectory() as tmp:
        tc = BaseTrainerConfig(output_dir=tmp, num_epochs=args.epochs, learning_rate=1e-3, per_device_train_batch_size=64,
                               seed=seed, no_cuda=True, steps_saving=None)
        trainer = BaseTrainer(model, ds_of("train"), ds_of("valid"), tc)
        trainer.train()
        model = trainer._best_model                          # the best on validation (the "final" saved copy may be untrained)
    model.eval()
    out = {}
    with torch.no_grad():
        for s in ("valid", "test"):
            z = model.encode(ds_of(s), cond_mod="all", return_mean=True).z
            out[s] = (z.reshape(len(ids[s]), -1).numpy(), None)
    return out

def _clustpy(name, data, ids, k, args, seed):
    from clustpy.deep import DEC, IDEC, VaDE
    from clustpy.deep.neural_networks import FeedforwardAutoencoder, VariationalAutoencoder
    X = {s: concat(data.take(ids[s])).astype(np.float32) for s in ("train", "valid", "test")}
    if name == "VaDE":                                      # its default loss (BCE) needs inputs in [0, 1]: train min-max
        lo, hi = X["train"].min(0), X["train"].max(0)
        X = {s: np.clip((x - lo) / np.where(hi > lo, hi - lo, 1), 0, 1).astype(np.float32) for s, x in X.items()}
    d = X["train"].shape[1]
    net = (VariationalAutoencoder if name == "VaDE" else FeedforwardAutoencoder, {"layers": [d, 256, 128, args.latent_dim]})
    cls = {"DEC": DEC, "IDEC": IDEC, "VaDE": VaDE}[name]
    algo = cls(n_clusters=k, batch_size=64, pretrain_epochs=args.epochs, clustering_epochs=args.epochs, neural_network=net,
               embedding_size=args.latent_dim, random_state=seed, device="cpu")
    algo.fit(X["train"])
    return {s: (algo.transform(X[s]), algo.predict(X[s])) for s in ("valid", "test")}

def baseline(name, data, ids, args, seed):
    if name == "features": return {s: (concat(data.take(ids[s])), None) for s in ("valid", "test")}
    p = PCAEmbedder(args.latent_dim, random_state=seed).fit(concat(data.take(ids["train"])))
    return {s: (p.embed(concat(data.take(ids[s]))), None) for s in ("valid", "test")}


# ---------------------------------------------------------------- scoring
def score(ds, protocol, rep, name, out, labels, r) -> list[dict]:
    "AMI rows: K-Means at the number of classes on each split's embedding, and the method's own assignment."
    rows = []
    for s, (Z, own) in out.items():
        ids = list(rep[s])
        scored, _ = score_embedding(Z, ids, ds, protocol, dict(model=name, split=s, fold=r), seed=r)
        rows += [x for x in scored if x["metric"] == "ami" and x["label"]]
        if own is not None:
            y = label_frame(ds, ids, labels)
            for l in labels:
                ok = y[l].notna().to_numpy()
                if y[l][ok].nunique() < 2: continue              # as score_embedding: a label needs two classes
                rows.append(dict(model=f"{name} (own)", split=s, fold=r, label=l, metric="ami",
                                 value=external_scores(y[l].to_numpy()[ok], np.asarray(own)[ok])["ami"]))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", nargs="?", default="m21-vocal")
    ap.add_argument("--quick", action="store_true", help="the quick subset of the dataset, 30 epochs, 2 outer folds")
    ap.add_argument("--views", default="midi_music,audio_music", help="feature sets, comma-separated (each one view)")
    ap.add_argument("--folds", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--latent-dim", type=int, default=8)
    ap.add_argument("--ks", default="2,3,4,6,8", help="candidate k of our mixture model (chosen on validation)")
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument("--out", default=None, help="also write the rows as CSV here")
    args = ap.parse_args(argv)
    args.epochs = args.epochs or (30 if args.quick else 100)
    reps = args.folds or (2 if args.quick else 5)
    global FOLDS; FOLDS = reps
    args.ks = tuple(int(k) for k in args.ks.split(","))
    views = args.views.split(",")
    torch.set_num_threads(1)
    print(torchvision_or_stub())

    ds = load_dataset(args.dataset, quick=args.quick)
    feats = compute_features(ds, views, progress=False)
    protocol = Protocol(algorithms=("kmeans",), k_rules=("n_classes",), within=None, min_items=5)
    labels = protocol.labels_for(ds)
    names = ["features", "pca", "vae", "mixture vae"] + (["private-shared vae (shared)", "private-shared vae (all)"] if len(views) > 1 else [])
    peers = [p for p in args.peers.split(",") if p] if args.peers else []
    peers = [p for p in peers if p in ("DEC", "IDEC", "VaDE") or len(views) > 1]
    skipped, rows, seconds = {}, [], {}
    for r in range(reps):
        data, rep = fold_data(ds, feats, views, r)
        k = int(label_frame(ds, list(rep["train"]), [ds.primary_label])[ds.primary_label].nunique())
        print(f"fold {r}: {len(rep['train'])} train, {len(rep['valid'])} valid, {len(rep['test'])} test items with {'+'.join(views)}; peers cluster at k = {k} ({ds.primary_label})")
        for name in names + [p for p in peers if p not in skipped]:
            t0 = time.perf_counter()
            try:
                quiet = io.StringIO()                        # the peers' progress bars and logs
                with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                    warnings.simplefilter("ignore")
                    if name in ("features", "pca"): out = baseline(name, data, rep, args, r)
                    elif name in ("MoPoE", "MMVAE+"): out = _multivae(name, data, rep, args, r)
                    elif name in ("DEC", "IDEC", "VaDE"): out = _clustpy(name, data, rep, k, args, r)
                    else: out = ours(name, data, rep, args, r)
            except Exception as e:
                if name not in PEERS: raise
                skipped[name] = f"{type(e).__name__}: {str(e)[:120]}"
                print(f"skipped {name}: {skipped[name]}"); continue
            seconds[name] = seconds.get(name, 0) + time.perf_counter() - t0
            rows += score(ds, protocol, rep, name, out, labels, r)
    R = pd.DataFrame(rows)
    if args.out: R.to_csv(args.out, index=False)
    mean = R.groupby(["model", "label", "split"]).value.mean().unstack("split")
    cell = mean.apply(lambda x: f"{x['test']:.2f} ({x['valid']:.2f})", axis=1).unstack("label")
    order = [n for n in ["features", "pca", "vae", "mixture vae", "mixture vae (own)", "private-shared vae (shared)",
                         "private-shared vae (all)", *[q for p in PEERS for q in (p, f"{p} (own)")]] if n in cell.index]
    cell = cell.loc[order]
    cell["seconds per fit"] = [f"{seconds.get(n.replace(' (own)', ''), np.nan) / reps:.1f}" for n in cell.index]
    print(f"\n{ds.name}, views {'+'.join(views)}: test AMI (valid AMI), K-Means at the number of classes "
          f"(own: the method's assignment), mean of {reps} outer folds, {args.epochs} epochs, latent {args.latent_dim}")
    print(cell.to_string())
    for p, why in skipped.items(): print(f"{p}: skipped ({why})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
