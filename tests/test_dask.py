"The Dask executor: an in-process `LocalCluster` (2 workers) gives the same results as local runs."
import numpy as np
import torch   # imported before the workers start, as in a notebook that trains
import pytest

distributed = pytest.importorskip("distributed")
from music_vae_nb.core import parallel_map, resolve_scheduler


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with Client(cluster, set_as_default=False) as c:
            yield c


def _square(x): return x * x
def _noisy(seed): return np.random.default_rng(seed).normal(size=4)
def _torch_threads(_):
    import torch
    return torch.get_num_threads()
def _bad(x):
    if x == 3: raise ValueError("item 3 is bad")
    return x


def test_parallel_map_on_dask_equals_local(client):
    items = list(range(12))
    local = parallel_map(_noisy, items, scheduler="local")
    on_dask = parallel_map(_noisy, items, scheduler=client)
    on_address = parallel_map(_noisy, items, scheduler=client.scheduler.address)
    for a, b, c in zip(local, on_dask, on_address):
        np.testing.assert_array_equal(a, b); np.testing.assert_array_equal(a, c)
    assert parallel_map(_square, items, scheduler=client) == [x * x for x in items]   # in the order of items


def test_dask_calls_run_with_one_thread_and_raise(client):
    assert set(parallel_map(_torch_threads, range(4), scheduler=client)) == {1}
    with pytest.raises(ValueError, match="item 3 is bad"):
        parallel_map(_bad, range(5), scheduler=client)


def test_resolve_scheduler_keeps_a_client(client):
    assert resolve_scheduler(client) is client
    assert resolve_scheduler(client.cluster) == client.scheduler.address


def test_fit_embed_many_same_on_local_processes_and_dask(client):
    from music_vae_nb.models import VAE
    from music_vae_nb.train import TrainConfig, fit_embed_many, toy_data
    data, _ = toy_data(90, {"audio": 8}, seed=7)
    ids = data.ids
    tasks = [dict(model=lambda d: VAE(d["audio"], 2, (8,)), data=data, train_ids=ids[:60], valid_ids=ids[60:75],
                  embed_ids={"test": ids[75:]}, cfg=TrainConfig(epochs=3, kl_warmup_epochs=1, seed=s, progress=False))
             for s in (0, 1, 2)]
    runs = {s: fit_embed_many(tasks, n_jobs=2, scheduler=s) for s in ("local", "processes", client)}
    ref = runs["local"]
    for name, res in runs.items():
        for x, y in zip(ref, res):
            np.testing.assert_array_equal(x.Z["test"], y.Z["test"], err_msg=str(name))
            assert x.ids["test"].tolist() == y.ids["test"].tolist()
    assert not np.array_equal(ref[0].Z["test"], ref[1].Z["test"])
