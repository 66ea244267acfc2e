"""Loaders: deterministic per-epoch order independent of the global RNG, lengths, devices, folders."""
from __future__ import annotations

import pytest
import torch

from benchmark.tasks.datasets import Data, DatasetInfo, load_data
from benchmark.tasks.loader import SeededDataLoader, TensorLoader, epoch_seed, make_loaders
from pruners.registry import ConfigError


def xy(n=10):
    return torch.arange(n, dtype=torch.float32).view(n, 1), torch.arange(n)


def order(loader):
    return torch.cat([yb for _, yb in loader]).tolist()


def test_epoch_seed_is_stable():
    assert epoch_seed(0, 0) == epoch_seed(0, 0) != epoch_seed(0, 1) != epoch_seed(1, 0)
    assert 0 <= epoch_seed(12345, 7) < 2 ** 63
    assert epoch_seed(0, 0) == 5166863507532562223  # fixed forever: changing it changes every run


def test_lengths_and_max_batches():
    x, y = xy(10)
    assert len(TensorLoader(x, y, 3)) == 4 and len(TensorLoader(x, y, 3, drop_last=True)) == 3
    capped = TensorLoader(x, y, 3, max_batches=2)
    assert len(capped) == 2 and len(list(capped)) == 2
    assert [len(b) for b, _ in TensorLoader(x, y, 3)] == [3, 3, 3, 1]
    assert order(TensorLoader(x, y, 4)) == list(range(10))  # no shuffle: in order


def test_shuffle_is_per_epoch_and_independent_of_global_rng():
    x, y = xy(50)
    loader = TensorLoader(x, y, 8, shuffle=True, seed=3)
    torch.manual_seed(0)
    e0 = order(loader)
    torch.manual_seed(999)
    assert order(loader) == e0                      # same epoch, different global RNG
    assert sorted(e0) == list(range(50)) and e0 != list(range(50))
    loader.set_epoch(1)
    e1 = order(loader)
    assert e1 != e0 and sorted(e1) == list(range(50))
    other = TensorLoader(x, y, 8, shuffle=True, seed=4)
    assert order(other) != e0
    loader.set_epoch(0)
    assert order(loader) == e0
    for xb, yb in loader:                           # x and y stay paired
        assert torch.equal(xb[:, 0].long(), yb)


def test_augment_uses_epoch_generator():
    x, y = xy(6)
    calls = []

    def augment(xb, g):
        noise = torch.rand(xb.shape, generator=g)
        calls.append(noise)
        return xb + noise

    loader = TensorLoader(x, y, 6, shuffle=True, seed=0, augment=augment)
    a = next(iter(loader))[0]
    b = next(iter(loader))[0]
    assert torch.equal(a, b) and not torch.equal(a, x[torch.argsort(next(iter(loader))[1])])
    loader.set_epoch(1)
    assert not torch.equal(next(iter(loader))[0], a)


def test_bad_arguments():
    x, y = xy(4)
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        TensorLoader(x, y, 0)
    with pytest.raises(ConfigError, match="x has 4 examples but y has 3"):
        TensorLoader(x, y[:3], 2)
    with pytest.raises(ConfigError, match="max_batches"):
        TensorLoader(x, y, 2, max_batches=-1)


def test_make_loaders_in_memory():
    data = load_data("sparse-regression", n_samples=40, n_test=30)
    train, test = make_loaders(data, batch_size=16, eval_batch_size=25, seed=1, device="cpu", max_train_batches=2)
    assert isinstance(train, TensorLoader) and isinstance(test, TensorLoader)
    assert len(train) == 2 and len(test) == 2 and train.shuffle and not test.shuffle
    xb, yb = next(iter(test))
    assert torch.equal(xb, data.test_x[:25]) and yb.shape == (25, 1)


def test_make_loaders_folder_dataset():
    x, y = xy(20)
    ds = torch.utils.data.TensorDataset(x, y)
    data = Data(DatasetInfo((1,), 20, "classification"), train_set=ds, test_set=ds)
    train, test = make_loaders(data, 4, 10, seed=0, device="cpu", max_train_batches=3)
    assert isinstance(train, SeededDataLoader) and len(train) == 3 and len(test) == 2
    torch.manual_seed(5)
    e0 = order(train)
    torch.manual_seed(6)
    assert order(train) == e0 and len(e0) == 12
    train.set_epoch(1)
    assert order(train) != e0
    assert order(test) == list(range(20))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_tensor_loader_on_gpu_matches_cpu():
    data = load_data("digits")
    cpu_train, _ = make_loaders(data, 64, 500, seed=0, device="cpu")
    gpu_train, _ = make_loaders(data, 64, 500, seed=0, device="cuda")
    for (xc, yc), (xg, yg) in zip(cpu_train, gpu_train):
        assert xg.is_cuda and torch.equal(xc, xg.cpu()) and torch.equal(yc, yg.cpu())
