"""Datasets: registry, info without loading, on-disk formats (tiny files, no downloads), toys."""
from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from benchmark.tasks import datasets as D
from benchmark.tasks.datasets import DATASETS, crop_flip_augment, dataset_info, fingerprint, load_data
from pruners.registry import ConfigError


# ------------------------------------------------------------------------------------------------
# helpers writing the real on-disk formats

def idx_bytes(array: np.ndarray) -> bytes:
    """IDX (LeCun) encoding of a uint8 array: magic 0x0000_08_<ndim>, big-endian dims, data."""
    header = struct.pack(">I", 0x0800 + array.ndim) + b"".join(struct.pack(">I", s) for s in array.shape)
    return header + array.astype(np.uint8).tobytes()


def tiny_idx(n_train: int = 12, n_test: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_idx(folder, arrays, gz: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        if gz:
            with gzip.open(folder / f"{name}.gz", "wb") as fh:
                fh.write(idx_bytes(arr))
        else:
            (folder / name).write_bytes(idx_bytes(arr))


@pytest.fixture
def no_debian(monkeypatch, tmp_path):
    monkeypatch.setattr(D, "DEBIAN_FASHION_MNIST", tmp_path / "no-such-package")


@pytest.fixture
def cifar_md5_skipped(monkeypatch):
    """torchvision checks the md5 of the real CIFAR files; tiny test files cannot match it, so the
    test (only) replaces the md5 check by an existence check."""
    import os
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))


def write_cifar(root, hundred: bool, n_train: int = 10, n_test: int = 4, seed: int = 0):
    import torchvision

    rng = np.random.default_rng(seed)
    cls = torchvision.datasets.CIFAR100 if hundred else torchvision.datasets.CIFAR10
    base = root / cls.base_folder
    base.mkdir(parents=True)
    classes = 100 if hundred else 10
    label_key = "fine_labels" if hundred else "labels"
    arrays = {}
    train_files = [f for f, _ in cls.train_list]
    per = n_train // len(train_files)
    for fname in train_files + [f for f, _ in cls.test_list]:
        n = n_test if fname in [f for f, _ in cls.test_list] else per
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)   # rows: R(1024) G(1024) B(1024)
        labels = rng.integers(0, classes, n).tolist()
        entry = {"batch_label": fname, "data": data, label_key: labels, "filenames": [f"{i}.png" for i in range(n)]}
        if hundred:
            entry["coarse_labels"] = [lab // 5 for lab in labels]
        with open(base / fname, "wb") as fh:
            pickle.dump(entry, fh)
        arrays[fname] = (data, labels)
    meta = {cls.meta["key"]: [f"class{i}" for i in range(classes)]}
    with open(base / cls.meta["filename"], "wb") as fh:
        pickle.dump(meta, fh)
    return arrays


# ------------------------------------------------------------------------------------------------
# registry and info

def test_registry_names_and_did_you_mean():
    for name in ("digits", "fashion-mnist", "mnist", "cifar10", "cifar100", "imagenet",
                 "sparse-regression", "teacher-student"):
        assert name in DATASETS
    with pytest.raises(ConfigError, match="did you mean 'cifar10'"):
        load_data("cifar-10")


def test_unknown_or_mistyped_kwargs_are_config_errors():
    with pytest.raises(ConfigError, match="unknown dataset_args key 'n_sample'.*did you mean 'n_samples'"):
        dataset_info("sparse-regression", n_sample=10)
    with pytest.raises(ConfigError, match="must be an integer"):
        dataset_info("sparse-regression", n_samples="40")
    with pytest.raises(ConfigError, match="k = 7 must be between 0 and n_features = 5"):
        dataset_info("sparse-regression", n_features=5, k=7)


def test_info_does_not_load(monkeypatch, tmp_path):
    def boom(self):
        raise AssertionError("info must not load data")

    for cls in set(dict(DATASETS.items()).values()):
        monkeypatch.setattr(cls, "load", boom)
    assert dataset_info("fashion-mnist", root=str(tmp_path / "absent")) == D.DatasetInfo((1, 28, 28), 10, "classification")
    assert dataset_info("cifar100").num_outputs == 100
    assert dataset_info("imagenet").input_shape == (3, 224, 224)
    assert dataset_info("sparse-regression", n_features=7) == D.DatasetInfo((7,), 1, "regression")
    assert dataset_info("teacher-student", d=3, teacher_neurons=[[1, 0, 0, 1]]).input_shape == (3,)
    assert dataset_info("digits").input_shape == (1, 8, 8)


def test_data_root_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("SPARSEBENCH_DATA", str(tmp_path / "env"))
    assert D.data_root("") == tmp_path / "env"
    assert D.data_root(str(tmp_path / "arg")) == tmp_path / "arg"
    monkeypatch.delenv("SPARSEBENCH_DATA")
    assert D.data_root(None).parts[-3:] == (".cache", "sparsebench", "data")


# ------------------------------------------------------------------------------------------------
# digits

def test_digits_split_standardisation_and_determinism():
    data = load_data("digits")
    assert data.train_x.shape == (1437, 1, 8, 8) and data.test_x.shape == (360, 1, 8, 8)
    assert data.train_x.dtype == torch.float32 and data.train_y.dtype == torch.int64
    assert abs(data.train_x.mean().item()) < 1e-5 and abs(data.train_x.std().item() - 1) < 1e-4
    # stratified: every class holds ~20 % of its examples in the test split
    counts = torch.bincount(data.test_y, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37
    torch.manual_seed(123)  # the split must not depend on the global RNG
    assert fingerprint(load_data("digits")) == fingerprint(data)
    assert data.augment is None and data.in_memory and data.num_train() == 1437


# ------------------------------------------------------------------------------------------------
# MNIST-format data sets

def test_fashion_mnist_from_debian_style_gz(monkeypatch, tmp_path):
    arrays = tiny_idx()
    pkg = tmp_path / "pkg"
    write_idx(pkg, arrays, gz=True)
    monkeypatch.setattr(D, "DEBIAN_FASHION_MNIST", pkg)
    root = tmp_path / "root"
    data = load_data("fashion-mnist", root=str(root))
    raw = root / "FashionMNIST" / "raw"
    assert all((raw / f).is_file() and (raw / f"{f}.gz").is_file() for f in arrays)
    assert data.train_x.shape == (12, 1, 28, 28) and data.test_x.shape == (6, 1, 28, 28)
    expected = (torch.from_numpy(arrays["train-images-idx3-ubyte"]).float() / 255 - 0.2860) / 0.3530
    torch.testing.assert_close(data.train_x[:, 0], expected)
    assert data.train_y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert data.test_y.dtype == torch.int64
    # a second load reads the copied files (package gone)
    monkeypatch.setattr(D, "DEBIAN_FASHION_MNIST", tmp_path / "gone")
    assert fingerprint(load_data("fashion-mnist", root=str(root))) == fingerprint(data)


def test_fashion_mnist_env_root(data_home, no_debian):
    write_idx(data_home / "FashionMNIST" / "raw", tiny_idx(seed=3), gz=False)
    assert load_data("fashion-mnist").train_x.shape[0] == 12


@pytest.mark.skipif(not D.DEBIAN_FASHION_MNIST.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_fashion_mnist_real_debian_files(tmp_path):
    data = load_data("fashion-mnist", root=str(tmp_path))
    assert data.train_x.shape == (60000, 1, 28, 28) and data.test_x.shape == (10000, 1, 28, 28)
    assert torch.bincount(data.train_y).tolist() == [6000] * 10
    assert abs(data.train_x.mean().item()) < 0.01 and abs(data.train_x.std().item() - 1) < 0.01


def test_fashion_mnist_missing_message(tmp_path, no_debian):
    with pytest.raises(ConfigError) as err:
        load_data("fashion-mnist", root=str(tmp_path))
    msg = str(err.value)
    assert f"Fashion-MNIST not found under {tmp_path}" in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "download = true" in msg
    assert "\n" not in msg


def test_mnist_tiny_idx(tmp_path):
    arrays = tiny_idx(n_train=8, n_test=5, seed=1)
    write_idx(tmp_path / "MNIST" / "raw", arrays, gz=False)
    data = load_data("mnist", root=str(tmp_path))
    assert data.train_x.shape == (8, 1, 28, 28) and data.test_y.shape == (5,)
    expected = (torch.from_numpy(arrays["t10k-images-idx3-ubyte"]).float() / 255 - 0.1307) / 0.3081
    torch.testing.assert_close(data.test_x[:, 0], expected)


def test_mnist_missing_message(tmp_path):
    with pytest.raises(ConfigError, match=r"MNIST not found under .*download = true"):
        load_data("mnist", root=str(tmp_path))


# ------------------------------------------------------------------------------------------------
# CIFAR

@pytest.mark.parametrize("hundred", [False, True])
def test_cifar_tiny_pickles(tmp_path, cifar_md5_skipped, hundred):
    arrays = write_cifar(tmp_path, hundred)
    name = "cifar100" if hundred else "cifar10"
    data = load_data(name, root=str(tmp_path))
    n_train = 10 if hundred else 10  # 5 CIFAR-10 batches of 2, or 1 CIFAR-100 file of 10
    assert data.train_x.shape == (n_train, 3, 32, 32) and data.test_x.shape == (4, 3, 32, 32)
    assert data.info.num_outputs == (100 if hundred else 10)
    test_raw, test_labels = arrays["test" if hundred else "test_batch"]
    assert data.test_y.tolist() == test_labels
    mean, std = D.CIFAR100_STATS if hundred else D.CIFAR10_STATS
    # pixel (row 3, col 5) of image 1, green channel: index 1024 + 3 * 32 + 5 in the flat row
    raw = test_raw[1, 1024 + 3 * 32 + 5] / 255.0
    assert data.test_x[1, 1, 3, 5].item() == pytest.approx((raw - mean[1]) / std[1], abs=1e-5)
    out = data.augment(data.train_x, torch.Generator().manual_seed(0))
    assert out.shape == data.train_x.shape


def test_cifar_missing_message(tmp_path):
    with pytest.raises(ConfigError, match=r"CIFAR-10 not found under .*download = true"):
        load_data("cifar10", root=str(tmp_path))
    with pytest.raises(ConfigError, match=r"CIFAR-100 not found under"):
        load_data("cifar100", root=str(tmp_path))


def test_cifar_corrupted_is_config_error(tmp_path):
    write_cifar(tmp_path, hundred=False)  # real md5 check: the tiny files cannot match
    with pytest.raises(ConfigError, match="corrupted"):
        load_data("cifar10", root=str(tmp_path))


# ------------------------------------------------------------------------------------------------
# ImageNet folder

def make_image_tree(base, classes=("n01", "n02"), per_class=2):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in classes:
            (base / split / c).mkdir(parents=True)
            for i in range(per_class):
                arr = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
                Image.fromarray(arr).save(base / split / c / f"img{i}.{'png' if i % 2 else 'jpg'}")


def test_imagenet_folder(tmp_path):
    make_image_tree(tmp_path / "imagenet")
    data = load_data("imagenet", root=str(tmp_path), num_classes=2, image_size=32, resize=36)
    assert not data.in_memory and data.num_train() == 4 and len(data.test_set) == 4
    x, y = data.train_set[0]
    assert x.shape == (3, 32, 32) and y == 0
    xv, yv = data.test_set[3]
    assert xv.shape == (3, 32, 32) and yv == 1
    assert data.info == D.DatasetInfo((3, 32, 32), 2, "classification")
    with pytest.raises(ConfigError, match="has 2 classes but num_classes = 1000"):
        load_data("imagenet", root=str(tmp_path))


def test_imagenet_missing_message(tmp_path):
    with pytest.raises(ConfigError, match="ImageNet not found under"):
        load_data("imagenet", root=str(tmp_path))


# ------------------------------------------------------------------------------------------------
# augmentation

def reference_crop_flip(x, offsets, flip, pad, fill):
    n, c, h, w = x.shape
    padded = torch.tensor(fill).view(1, c, 1, 1).expand(n, c, h + 2 * pad, w + 2 * pad).clone()
    padded[:, :, pad:pad + h, pad:pad + w] = x
    outs = []
    for i in range(n):
        img = padded[i, :, offsets[0, i]:offsets[0, i] + h, offsets[1, i]:offsets[1, i] + w]
        outs.append(img.flip(-1) if flip[i] else img)
    return torch.stack(outs)


def test_crop_flip_matches_reference_and_is_deterministic():
    x = torch.randn(16, 3, 8, 8)
    fill = (-1.0, -2.0, -3.0)
    aug = crop_flip_augment(pad=2, fill=fill)
    out = aug(x, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)   # the same draws, in the same order, as the augmentation
    offsets = torch.randint(0, 5, (2, 16), generator=g)
    flip = torch.rand(16, generator=g) < 0.5
    torch.testing.assert_close(out, reference_crop_flip(x, offsets, flip, 2, fill))
    assert 0 < int(flip.sum()) < 16 and not torch.equal(out, x)
    torch.testing.assert_close(aug(x, torch.Generator().manual_seed(5)), out)
    # pad = 0: each output is the image or its mirror image
    plain = crop_flip_augment(pad=0)(x, torch.Generator().manual_seed(1))
    assert all(torch.equal(plain[i], x[i]) or torch.equal(plain[i], x[i].flip(-1)) for i in range(16))
    # default fill is zero: crops of an all-ones batch hold zeros exactly where they overlap the padding
    ones = crop_flip_augment(pad=4)(torch.ones(64, 1, 6, 6), torch.Generator().manual_seed(2))
    assert set(torch.unique(ones).tolist()) == {0.0, 1.0}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_crop_flip_same_on_gpu():
    x = torch.randn(8, 3, 32, 32)
    aug = crop_flip_augment(4, (-1.0, -1.0, -1.0))
    cpu = aug(x, torch.Generator().manual_seed(0))
    gpu = aug(x.cuda(), torch.Generator().manual_seed(0))
    assert gpu.is_cuda and torch.equal(gpu.cpu(), cpu)


# ------------------------------------------------------------------------------------------------
# synthetic toys

def test_sparse_regression():
    data = load_data("sparse-regression")
    x_star = data.extra["x_star"]
    assert data.train_x.shape == (40, 100) and data.train_y.shape == (40, 1) and data.test_x.shape == (1000, 100)
    assert int((x_star != 0).sum()) == 5 and data.info.task_type == "regression"
    torch.testing.assert_close(data.train_y[:, 0], data.train_x @ x_star)
    torch.testing.assert_close(data.test_y[:, 0], data.test_x @ x_star)
    torch.manual_seed(99)
    again = load_data("sparse-regression")
    assert fingerprint(again) == fingerprint(data) and torch.equal(again.extra["x_star"], x_star)
    other = load_data("sparse-regression", data_seed=1)
    assert fingerprint(other) != fingerprint(data)
    noisy = load_data("sparse-regression", noise=0.5)
    assert not torch.allclose(noisy.train_y[:, 0], noisy.train_x @ noisy.extra["x_star"])


def test_teacher_student():
    data = load_data("teacher-student", n_train=50, n_test=20)
    teacher = data.extra["teacher"]
    assert teacher.shape == (2, 3) and data.train_x.shape == (50, 2) and data.train_y.shape == (50, 1)
    expected = torch.relu(data.train_x @ teacher[:, 1:].T) @ teacher[:, 0]
    torch.testing.assert_close(data.train_y[:, 0], expected)
    three = load_data("teacher-student", teacher_neurons=[[1, 1, 0], [1, 0, 1], [-0.5, 1, 1]])
    assert three.extra["teacher"].shape == (3, 3)
    assert fingerprint(load_data("teacher-student", n_train=50, n_test=20)) == fingerprint(data)
    with pytest.raises(ConfigError, match="teacher_neurons must be"):
        load_data("teacher-student", teacher_neurons=[[1.0, 2.0]])


def test_a_validation_split_holds_out_training_samples_and_leaves_the_test_set_alone():
    from benchmark.tasks import load_data

    full = load_data("digits")
    val = load_data("digits", validation=100)
    assert val.num_train() == full.num_train() - 100 and len(val.test_y) == 100
    rows = {tuple(r.tolist()) for r in full.train_x.flatten(1)}
    assert all(tuple(r.tolist()) in rows for r in val.test_x.flatten(1))     # held out from training ...
    assert torch.equal(load_data("digits", validation=100).test_x, val.test_x)   # ... by a fixed split
    with pytest.raises(ConfigError, match="validation = .* must be between"):
        load_data("digits", validation=10**6)


def test_image_size_area_resizes_every_image_and_the_shape_follows():
    """``image_size`` (fmnist-resnet8's 14 × 14): an 8 → 4 resize is the 2 × 2 average pool, the info and
    the stored data agree, and it composes with a validation split."""
    from benchmark.tasks import dataset_info, load_data

    full = load_data("digits")
    small = load_data("digits", image_size=4)
    assert small.info.input_shape == (1, 4, 4) == dataset_info("digits", image_size=4).input_shape
    torch.testing.assert_close(small.train_x, torch.nn.functional.avg_pool2d(full.train_x, 2))
    torch.testing.assert_close(small.test_x, torch.nn.functional.avg_pool2d(full.test_x, 2))
    both = load_data("digits", image_size=4, validation=100)
    assert both.train_x.shape[1:] == (1, 4, 4) and len(both.test_y) == 100
    for bad in (-1, 2.5, True):
        with pytest.raises(ConfigError, match="image_size must be a side length"):
            dataset_info("digits", image_size=bad)
    with pytest.raises(ConfigError, match="image_size needs images .* remove image_size"):
        dataset_info("sparse-regression", image_size=4)
