"""Datasets of the benchmark tasks: loading, normalisation and train-time augmentation.

Every dataset is a frozen dataclass registered in :data:`DATASETS` with a decorator; its fields are
the dataset's keyword arguments (``dataset_args`` of a task), so an unknown or mistyped argument is a
:class:`~pruners.registry.ConfigError` before anything is read from disk.  Two entry points:

* :func:`dataset_info` — input shape, number of outputs and task type, *without* loading the data
  (``benchmark.tasks.base.build_model`` calls it to size the model);
* :func:`load_data` — a :class:`Data` object: in-memory tensors (``train_x`` …) for the small data
  sets, or ``torch.utils.data.Dataset`` objects (``train_set`` / ``test_set``) for folder data sets
  such as ImageNet.

Nothing is downloaded unless a task asks for it with ``download = true`` in its ``dataset_args``.
Fashion-MNIST is taken from the Debian package ``dataset-fashion-mnist`` when torchvision's raw folder
is empty.  The data root is the ``root`` argument, else ``$SPARSEBENCH_DATA``, else
``~/.cache/sparsebench/data``.  Everything is deterministic: synthetic data sets draw from their own
``data_seed`` generator, never from the global RNG, and the digits split uses a fixed seed.
"""
from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from pruners.registry import ConfigError, Registry, coerce_value, did_you_mean

#: Where the Debian package ``dataset-fashion-mnist`` installs the IDX files (gzipped).
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

#: Normalisation constants (mean, std) per channel, as in the public code of the papers
#: (torchvision examples for MNIST; SynFlow's ``Utils/load.py`` for CIFAR; ImageNet's usual values).
MNIST_STATS = ((0.1307,), (0.3081,))
FASHION_MNIST_STATS = ((0.2860,), (0.3530,))
CIFAR10_STATS = ((0.491, 0.482, 0.447), (0.247, 0.243, 0.262))
CIFAR100_STATS = ((0.507, 0.487, 0.441), (0.267, 0.256, 0.276))
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a data set (no data loaded).

    Attributes:
        input_shape: shape of one input without the batch dimension, e.g. ``(1, 28, 28)``.
        num_outputs: classes for classification, output dimension (1) for regression.
        task_type: ``"classification"`` or ``"regression"``.
    """

    input_shape: tuple[int, ...]
    num_outputs: int
    task_type: str


Augment = Callable[[Tensor, torch.Generator], Tensor]


@dataclass
class Data:
    """A loaded data set.

    In-memory data sets fill ``train_x``/``train_y``/``test_x``/``test_y`` (already normalised float
    inputs; int64 labels for classification, float ``(n, 1)`` targets for regression); folder data sets
    fill ``train_set``/``test_set`` (``torch.utils.data.Dataset`` with their own transforms).
    ``augment`` is a batched train-time augmentation ``(x, generator) -> x`` for in-memory data
    (deterministic given the generator, works on CPU and GPU tensors); ``extra`` holds data-set
    specific values such as the ground truth ``x_star`` of the sparse-regression toy.
    """

    info: DatasetInfo
    train_x: Tensor | None = None
    train_y: Tensor | None = None
    test_x: Tensor | None = None
    test_y: Tensor | None = None
    train_set: torch.utils.data.Dataset | None = None
    test_set: torch.utils.data.Dataset | None = None
    augment: Augment | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def in_memory(self) -> bool:
        """True when the data are tensors (use TensorLoader), False for folder data sets."""
        return self.train_x is not None

    def num_train(self) -> int:
        """Number of training examples."""
        if self.train_x is not None:
            return int(self.train_x.shape[0])
        return len(self.train_set)  # type: ignore[arg-type]


DATASETS: Registry[type] = Registry("dataset")


# --------------------------------------------------------------------------------------------------
# Public API

def _make(name: str, kwargs: Mapping[str, Any]) -> Any:
    """Instantiate the dataset class ``name`` from ``kwargs``, refusing unknown or ill-typed keys."""
    cls = DATASETS.get(name)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    clean: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key not in fields:
            valid = ", ".join([*fields, *(g for g in GENERIC_ARGS if g not in fields)])
            raise ConfigError(f"unknown dataset_args key {key!r} for dataset {name!r}"
                              f"{did_you_mean(key, list(fields))}; valid keys: {valid}")
        f = fields[key]
        default = f.default if f.default is not dataclasses.MISSING else None
        clean[key] = value if default is None else coerce_value(f"dataset {name} {key}", value, default)
    obj = cls(**clean)
    check = getattr(obj, "check", None)
    if check is not None:
        check()
    return obj


VALIDATION = "validation"
IMAGE_SIZE = "image_size"
GENERIC_ARGS = (VALIDATION, IMAGE_SIZE)
"""``dataset_args`` keys every in-memory data set takes, on top of its own (:func:`holdout`, :func:`resize`)."""


def _generic(name: str, kwargs: Mapping[str, Any]) -> tuple[int, int, dict[str, Any]]:
    """Split the generic arguments (``validation``: held-out training samples; ``image_size``: side of the
    resized images, 0 = as stored) off a dataset's own ones."""
    kw = dict(kwargs)
    own = {f.name for f in dataclasses.fields(DATASETS.get(name))}   # ImageNet has its own image_size
    n, size = kw.pop(VALIDATION, 0), (0 if IMAGE_SIZE in own else kw.pop(IMAGE_SIZE, 0))
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"dataset {name} validation must be a number of training samples >= 0, got {n!r}; "
                          "set e.g. validation = 10000")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ConfigError(f"dataset {name} image_size must be a side length in pixels >= 0 (0 keeps the stored "
                          f"size), got {size!r}; set e.g. image_size = 14")
    return n, size, kw


def resize(data: Data, size: int) -> Data:
    """``data`` with its images resized to ``size × size`` by area interpolation (an average pool when the
    stored side is a multiple of ``size``), applied once to the normalised tensors.

    For CPU analogues of the papers' conv-net tasks at a cost a laptop affords: ``fmnist-resnet8`` trains a
    batch-norm ResNet on 14 × 14 Fashion-MNIST (docs/tasks.md).  In-memory image data sets only.
    """
    info = _resized_info(data.info, size)
    if not data.in_memory:
        raise ConfigError("image_size needs an in-memory image dataset; this one is read from folders — remove "
                          "image_size")

    def area(x: Tensor) -> Tensor:
        return torch.nn.functional.interpolate(x, size=(size, size), mode="area")

    return dataclasses.replace(data, info=info, train_x=area(data.train_x), test_x=area(data.test_x),
                               extra={**data.extra, "image_size": size})


def _resized_info(info: DatasetInfo, size: int) -> DatasetInfo:
    """``info`` with its images ``size × size`` (ConfigError when its inputs are not images)."""
    if len(info.input_shape) != 3:
        raise ConfigError(f"image_size needs images (channels, height, width), and this data set's inputs have "
                          f"shape {tuple(info.input_shape)}; remove image_size")
    return dataclasses.replace(info, input_shape=(info.input_shape[0], size, size))


def holdout(data: Data, n: int, split_seed: int = 0) -> Data:
    """``data`` with ``n`` training samples held out as its evaluation set: the last ``n`` of a fixed
    permutation (``split_seed``) become ``test_x / test_y`` and the rest the training set.

    For choosing hyperparameters without the test set (issue 20, point 5): a grid with
    ``dataset_args = { validation = 10000 }`` trains on 50k Fashion-MNIST images and reports accuracy on
    the other 10k; the real test set is not touched.  In-memory data sets only.
    """
    if not data.in_memory:
        raise ConfigError("a validation split needs an in-memory dataset and this one is read from folders; "
                          "hold out a folder of its training images instead")
    total = data.num_train()
    if not 0 < n < total:
        raise ConfigError(f"validation = {n} must be between 1 and {total - 1} (the training set has {total} samples)")
    perm = torch.randperm(total, generator=torch.Generator().manual_seed(split_seed))
    keep, held = perm[: total - n].sort().values, perm[total - n:].sort().values
    return dataclasses.replace(data, train_x=data.train_x[keep], train_y=data.train_y[keep],
                               test_x=data.train_x[held], test_y=data.train_y[held],
                               extra={**data.extra, "split": f"validation ({n} held-out training samples)"})


def dataset_info(name: str, **kwargs: Any) -> DatasetInfo:
    """Input shape, number of outputs and task type of dataset ``name`` — without loading data.

    Raises ConfigError for an unknown dataset or bad ``kwargs``.
    """
    _, size, kw = _generic(name, kwargs)
    info = _make(name, kw).info()
    return _resized_info(info, size) if size else info


def load_data(name: str, **kwargs: Any) -> Data:
    """Load dataset ``name`` with its ``dataset_args`` (see each dataset's docstring).

    Raises ConfigError for an unknown dataset, bad arguments, or data missing on disk (the message
    says what to install or which argument to set).
    """
    n, size, kw = _generic(name, kwargs)
    data = _make(name, kw).load()
    data = resize(data, size) if size else data
    return holdout(data, n) if n else data


def cached_data(name: str, dataset_args: Mapping[str, Any] | None = None) -> Data:
    """:func:`load_data`, cached per process (a grid runs many specs on one dataset)."""
    return _cached(name, json.dumps(dict(dataset_args or {}), sort_keys=True))


@functools.lru_cache(maxsize=4)
def _cached(name: str, args_json: str) -> Data:
    return load_data(name, **json.loads(args_json))


def data_root(root: str | None) -> Path:
    """The data directory: ``root`` if given, else ``$SPARSEBENCH_DATA``, else ``~/.cache/sparsebench/data``."""
    if root:
        return Path(root).expanduser()
    env = os.environ.get("SPARSEBENCH_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "sparsebench" / "data"


# --------------------------------------------------------------------------------------------------
# Augmentation

def crop_flip_augment(pad: int = 4, fill: tuple[float, ...] | None = None) -> Augment:
    """CIFAR train-time augmentation: random crop with ``pad``-pixel padding + horizontal flip.

    The standard recipe (He et al. 2016; the SynFlow / Sign-In code: ``RandomCrop(32, padding=4)``,
    ``RandomHorizontalFlip()``) pads the *raw* image with black pixels before normalising; on
    normalised tensors black is ``(0 - mean) / std``, which is what ``fill`` should be (zeros when
    ``None``).  Vectorised: one gather per batch, no Python loop over samples.  Random numbers come
    from ``generator`` (on its own device) and are moved to the batch's device, so the result is the
    same on CPU and GPU for the same generator state.
    """

    def augment(x: Tensor, generator: torch.Generator) -> Tensor:
        n, c, h, w = x.shape
        offsets = torch.randint(0, 2 * pad + 1, (2, n), generator=generator, device=generator.device)
        flip = torch.rand(n, generator=generator, device=generator.device) < 0.5
        offsets, flip = offsets.to(x.device), flip.to(x.device)
        if fill is None:
            padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        else:
            padded = torch.as_tensor(fill, dtype=x.dtype, device=x.device).view(1, c, 1, 1).expand(
                n, c, h + 2 * pad, w + 2 * pad).clone()
            padded[:, :, pad:pad + h, pad:pad + w] = x
        ar_h = torch.arange(h, device=x.device)
        ar_w = torch.arange(w, device=x.device)
        rows = offsets[0, :, None] + ar_h                                   # (n, h)
        cols = offsets[1, :, None] + torch.where(flip[:, None], w - 1 - ar_w, ar_w)  # (n, w)
        idx_n = torch.arange(n, device=x.device)[:, None, None, None]
        idx_c = torch.arange(c, device=x.device)[None, :, None, None]
        return padded[idx_n, idx_c, rows[:, None, :, None], cols[:, None, None, :]]

    return augment


def _normalise(x: Tensor, stats: tuple[tuple[float, ...], tuple[float, ...]]) -> Tensor:
    """uint8 images (n, c, h, w) → float32 in [0, 1] → (x - mean) / std per channel."""
    mean = torch.tensor(stats[0]).view(1, -1, 1, 1)
    std = torch.tensor(stats[1]).view(1, -1, 1, 1)
    return (x.to(torch.float32).div_(255.0) - mean).div_(std)


def _black(stats: tuple[tuple[float, ...], tuple[float, ...]]) -> tuple[float, ...]:
    return tuple(-m / s for m, s in zip(*stats))


def _missing(name: str, root: Path, package: str | None = None) -> ConfigError:
    how = (f"install the Debian package '{package}' (apt-get install {package}) or " if package else
           "put the files there or ")
    return ConfigError(f"{name} not found under {root}: {how}set download = true in the task's dataset_args")


# --------------------------------------------------------------------------------------------------
# Scikit-learn digits (bundled, CPU-fast)

@DATASETS.register("digits")
@dataclass(frozen=True)
class Digits:
    """scikit-learn's 8×8 handwritten digits (1,797 images, 10 classes), bundled with scikit-learn.

    Pixels (0..16) are scaled to [0, 1] and then standardised with the scalar mean and std of the
    training split.  The split is a fixed stratified 80/20 split (``split_seed``, independent of the
    run seed, so every run sees the same test set): 1,437 train / 360 test images of shape (1, 8, 8).
    """

    split_seed: int = 0
    test_fraction: float = 0.2

    def check(self) -> None:
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"digits test_fraction must be in (0, 1), got {self.test_fraction}; use e.g. 0.2")

    def info(self) -> DatasetInfo:
        return DatasetInfo((1, 8, 8), 10, "classification")

    def load(self) -> Data:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        bunch = load_digits()
        x = torch.as_tensor(bunch.data, dtype=torch.float32).div_(16.0).view(-1, 1, 8, 8)
        y = torch.as_tensor(bunch.target, dtype=torch.int64)
        idx_train, idx_test = train_test_split(torch.arange(len(y)).numpy(), test_size=self.test_fraction,
                                               random_state=self.split_seed, stratify=bunch.target)
        idx_train, idx_test = torch.as_tensor(idx_train), torch.as_tensor(idx_test)
        train_x, test_x = x[idx_train], x[idx_test]
        mean, std = train_x.mean(), train_x.std()
        return Data(self.info(), (train_x - mean) / std, y[idx_train], (test_x - mean) / std, y[idx_test])


# --------------------------------------------------------------------------------------------------
# MNIST-style IDX data sets through torchvision

def _copy_debian_idx(source: Path, raw: Path) -> bool:
    """Copy the gzipped IDX files of a Debian data package into torchvision's raw folder.

    torchvision reads the *uncompressed* IDX files (its own download keeps the .gz and extracts it),
    so each ``.gz`` is copied and extracted next to it, atomically (temp file + rename) so that a
    concurrent worker never sees half a file.  Returns False when the package files are absent.
    """
    if not all((source / f"{f}.gz").is_file() for f in _IDX_FILES):
        return False
    raw.mkdir(parents=True, exist_ok=True)
    for f in _IDX_FILES:
        target = raw / f
        if target.is_file():
            continue
        gz_target = raw / f"{f}.gz"
        if not gz_target.is_file():
            tmp = raw / f".{f}.gz.tmp-{os.getpid()}"
            shutil.copyfile(source / f"{f}.gz", tmp)
            os.replace(tmp, gz_target)
        tmp = raw / f".{f}.tmp-{os.getpid()}"
        with gzip.open(gz_target, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, target)
    return True


def _load_idx(tv_cls: Any, name: str, root: Path, download: bool, stats: Any,
              debian: Path | None, package: str | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Read an MNIST-format data set with torchvision; returns normalised (train_x, train_y, test_x, test_y)."""
    raw = root / tv_cls.__name__ / "raw"
    if not all((raw / f).is_file() for f in _IDX_FILES):
        gz_present = all((raw / f"{f}.gz").is_file() for f in _IDX_FILES)
        if gz_present:
            _copy_debian_idx(raw, raw)  # an interrupted earlier copy or a hand-placed .gz set
        elif debian is not None and _copy_debian_idx(debian, raw):
            pass
        elif not download:
            raise _missing(name, root, package)
    try:
        train = tv_cls(str(root), train=True, download=download)
        test = tv_cls(str(root), train=False, download=download)
    except RuntimeError as exc:
        raise ConfigError(f"{name} under {root} could not be read ({exc}); delete {raw} and load it again") from None
    out = []
    for ds in (train, test):
        out += [_normalise(ds.data.unsqueeze(1), stats), ds.targets.to(torch.int64)]
    return out[0], out[1], out[2], out[3]


@DATASETS.register("fashion-mnist")
@dataclass(frozen=True)
class FashionMNIST:
    """Fashion-MNIST (Xiao et al. 2017): 60k/10k 28×28 grey images, 10 classes.

    Read by ``torchvision.datasets.FashionMNIST`` from ``<root>/FashionMNIST/raw``; when that folder
    lacks the files they are copied from the Debian package ``dataset-fashion-mnist``
    (``/usr/share/datasets/fashion-mnist``), or downloaded by torchvision if ``download = true``.
    Normalised with the standard mean/std (0.2860, 0.3530); kept in memory as float tensors.
    """

    root: str = ""
    download: bool = False

    def info(self) -> DatasetInfo:
        return DatasetInfo((1, 28, 28), 10, "classification")

    def load(self) -> Data:
        import torchvision

        root = data_root(self.root)
        tx, ty, vx, vy = _load_idx(torchvision.datasets.FashionMNIST, "Fashion-MNIST", root, self.download,
                                   FASHION_MNIST_STATS, DEBIAN_FASHION_MNIST, "dataset-fashion-mnist")
        return Data(self.info(), tx, ty, vx, vy)


@DATASETS.register("mnist")
@dataclass(frozen=True)
class MNIST:
    """MNIST (LeCun et al. 1998): 60k/10k 28×28 grey digits, read by ``torchvision.datasets.MNIST``
    from ``<root>/MNIST/raw`` (or downloaded with ``download = true``); normalised with (0.1307, 0.3081)."""

    root: str = ""
    download: bool = False

    def info(self) -> DatasetInfo:
        return DatasetInfo((1, 28, 28), 10, "classification")

    def load(self) -> Data:
        import torchvision

        root = data_root(self.root)
        tx, ty, vx, vy = _load_idx(torchvision.datasets.MNIST, "MNIST", root, self.download, MNIST_STATS,
                                   None, None)
        return Data(self.info(), tx, ty, vx, vy)


# --------------------------------------------------------------------------------------------------
# CIFAR

def _load_cifar(tv_cls: Any, name: str, root: Path, download: bool, stats: Any) -> Data:
    base = root / tv_cls.base_folder
    files = [f for f, _ in tv_cls.train_list + tv_cls.test_list] + [tv_cls.meta["filename"]]
    if not download and not all((base / f).is_file() for f in files):
        raise _missing(name, root)
    try:
        train = tv_cls(str(root), train=True, download=download)
        test = tv_cls(str(root), train=False, download=download)
    except RuntimeError as exc:
        raise ConfigError(f"{name} under {root} is corrupted ({exc}); delete {base} and download it again "
                          "with download = true") from None
    tensors = []
    for ds in (train, test):
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # HWC uint8 → CHW
        tensors += [_normalise(x, stats), torch.as_tensor(ds.targets, dtype=torch.int64)]
    classes = 10 if tv_cls.__name__ == "CIFAR10" else 100
    return Data(DatasetInfo((3, 32, 32), classes, "classification"), *tensors,
                augment=crop_flip_augment(4, _black(stats)))


@DATASETS.register("cifar10")
@dataclass(frozen=True)
class CIFAR10:
    """CIFAR-10 (Krizhevsky 2009): 50k/10k 32×32 colour images, 10 classes, via
    ``torchvision.datasets.CIFAR10`` from ``<root>/cifar-10-batches-py``.  Normalised per channel
    (SynFlow's constants); train-time augmentation: 4-pixel padded random crop + horizontal flip."""

    root: str = ""
    download: bool = False

    def info(self) -> DatasetInfo:
        return DatasetInfo((3, 32, 32), 10, "classification")

    def load(self) -> Data:
        import torchvision

        return _load_cifar(torchvision.datasets.CIFAR10, "CIFAR-10", data_root(self.root), self.download,
                           CIFAR10_STATS)


@DATASETS.register("cifar100")
@dataclass(frozen=True)
class CIFAR100:
    """CIFAR-100 (fine labels), 50k/10k 32×32 colour images, 100 classes, via
    ``torchvision.datasets.CIFAR100`` from ``<root>/cifar-100-python``; same augmentation as CIFAR-10."""

    root: str = ""
    download: bool = False

    def info(self) -> DatasetInfo:
        return DatasetInfo((3, 32, 32), 100, "classification")

    def load(self) -> Data:
        import torchvision

        return _load_cifar(torchvision.datasets.CIFAR100, "CIFAR-100", data_root(self.root), self.download,
                           CIFAR100_STATS)


# --------------------------------------------------------------------------------------------------
# ImageNet (folder)

@DATASETS.register("imagenet")
@dataclass(frozen=True)
class ImageNet:
    """ImageNet-1k from ``<root>/imagenet/{train,val}`` (one sub-folder per class) via ``ImageFolder``.

    Standard transforms (torchvision reference recipe, as in the RigL / Sign-In / HAM ResNet-50 runs):
    train ``RandomResizedCrop(image_size)`` + horizontal flip, val ``Resize(resize)`` +
    ``CenterCrop(image_size)``, both normalised with the ImageNet mean/std.  Never downloaded.
    ``num_classes`` must match the number of class folders.
    """

    root: str = ""
    num_classes: int = 1000
    image_size: int = 224
    resize: int = 256

    def check(self) -> None:
        if self.num_classes < 2 or self.image_size < 8 or self.resize < self.image_size:
            raise ConfigError("imagenet needs num_classes >= 2, image_size >= 8 and resize >= image_size; "
                              "the defaults are 1000, 224 and 256")

    def info(self) -> DatasetInfo:
        return DatasetInfo((3, self.image_size, self.image_size), self.num_classes, "classification")

    def load(self) -> Data:
        from torchvision import datasets, transforms

        base = data_root(self.root) / "imagenet"
        if not (base / "train").is_dir() or not (base / "val").is_dir():
            raise ConfigError(f"ImageNet not found under {base}: put the class folders in {base}/train and "
                              f"{base}/val (the torchvision ImageFolder layout) or set root in dataset_args")
        norm = transforms.Normalize(*IMAGENET_STATS)
        train_tf = transforms.Compose([transforms.RandomResizedCrop(self.image_size),
                                       transforms.RandomHorizontalFlip(), transforms.ToTensor(), norm])
        val_tf = transforms.Compose([transforms.Resize(self.resize), transforms.CenterCrop(self.image_size),
                                     transforms.ToTensor(), norm])
        train_set = datasets.ImageFolder(str(base / "train"), transform=train_tf)
        test_set = datasets.ImageFolder(str(base / "val"), transform=val_tf)
        for split, ds in (("train", train_set), ("val", test_set)):
            if len(ds.classes) != self.num_classes:
                raise ConfigError(f"ImageNet {split} folder {base / split} has {len(ds.classes)} classes but "
                                  f"num_classes = {self.num_classes}; set num_classes in dataset_args")
        return Data(self.info(), train_set=train_set, test_set=test_set)


# --------------------------------------------------------------------------------------------------
# Synthetic theory toys

def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


@DATASETS.register("sparse-regression")
@dataclass(frozen=True)
class SparseRegression:
    """Underdetermined sparse linear regression, the PILoT / Mirror-Mirror toy (PAPERS.md §3, §7).

    Gaussian design ``X ~ N(0, 1)^{n_samples × n_features}``, a ``k``-sparse ground truth ``x*``
    (support uniform at random, non-zeros ``N(0, 1)``), targets ``y = X x* + noise · ε``.  The test set
    is a fresh sample of the same design (``n_test`` rows).  Everything is drawn from a generator
    seeded by ``data_seed`` — independent of the run seed, so all runs share the problem.
    ``Data.extra["x_star"]`` holds ``x*`` (shape ``(n_features,)``) for the ‖x_t − x*‖ metric; targets
    have shape ``(n, 1)`` to match a one-output model.
    """

    n_samples: int = 40
    n_features: int = 100
    k: int = 5
    noise: float = 0.0
    n_test: int = 1000
    data_seed: int = 0

    def check(self) -> None:
        if self.n_samples < 1 or self.n_features < 1 or self.n_test < 1:
            raise ConfigError("sparse-regression needs n_samples, n_features and n_test >= 1; e.g. 40, 100, 1000")
        if not 0 <= self.k <= self.n_features:
            raise ConfigError(f"sparse-regression k = {self.k} must be between 0 and n_features = "
                              f"{self.n_features}; lower k")
        if self.noise < 0:
            raise ConfigError(f"sparse-regression noise must be >= 0, got {self.noise}")

    def info(self) -> DatasetInfo:
        return DatasetInfo((self.n_features,), 1, "regression")

    def load(self) -> Data:
        g = _generator(self.data_seed)
        x_star = torch.zeros(self.n_features)
        support = torch.randperm(self.n_features, generator=g)[: self.k]
        x_star[support] = torch.randn(self.k, generator=g)
        train_x = torch.randn(self.n_samples, self.n_features, generator=g)
        test_x = torch.randn(self.n_test, self.n_features, generator=g)
        train_y = train_x @ x_star + self.noise * torch.randn(self.n_samples, generator=g)
        test_y = test_x @ x_star + self.noise * torch.randn(self.n_test, generator=g)
        return Data(self.info(), train_x, train_y.unsqueeze(1), test_x, test_y.unsqueeze(1),
                    extra={"x_star": x_star, "support": support.sort().values})


#: Default teacher of the NanoAdam toy (PAPERS.md §5: "teacher with 2 ReLU neurons in 2-d"); the
#: paper does not list the neurons — we use two unit-norm orthogonal neurons with output weight 1.
DEFAULT_TEACHER: tuple[tuple[float, ...], ...] = ((1.0, 1.0, 0.0), (1.0, 0.0, 1.0))


@DATASETS.register("teacher-student")
@dataclass(frozen=True)
class TeacherStudent:
    """Teacher-student regression with a two-layer ReLU teacher (NanoAdam toy, PAPERS.md §5).

    Inputs ``x ~ N(0, I_d)``; targets ``f*(x) = Σ_i a_i relu(w_i · x)`` with ``teacher_neurons`` a list
    of ``[a_i, w_i1, …, w_id]``.  The fine-tuning phase of the toy adds a neuron: pass a longer list.
    Train / test inputs come from a generator seeded by ``data_seed``; targets have shape ``(n, 1)``;
    ``Data.extra["teacher"]`` holds the neurons as a ``(m, d + 1)`` tensor.
    """

    d: int = 2
    n_train: int = 100
    n_test: int = 1000
    teacher_neurons: tuple = DEFAULT_TEACHER
    data_seed: int = 0

    def check(self) -> None:
        if self.d < 1 or self.n_train < 1 or self.n_test < 1:
            raise ConfigError("teacher-student needs d, n_train and n_test >= 1; e.g. d = 2, n_train = 100")
        neurons = self.teacher_neurons
        if not isinstance(neurons, (list, tuple)) or not neurons or any(
                not isinstance(n, (list, tuple)) or len(n) != self.d + 1
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in n) for n in neurons):
            raise ConfigError(f"teacher-student teacher_neurons must be a non-empty list of [a, w_1..w_d] "
                              f"lists of {self.d + 1} numbers, got {neurons!r}")

    def teacher(self) -> Tensor:
        """The teacher as a ``(m, d + 1)`` tensor of rows ``[a_i, w_i]``."""
        return torch.tensor([[float(v) for v in n] for n in self.teacher_neurons])

    def info(self) -> DatasetInfo:
        return DatasetInfo((self.d,), 1, "regression")

    def load(self) -> Data:
        g = _generator(self.data_seed)
        teacher = self.teacher()
        a, w = teacher[:, 0], teacher[:, 1:]
        train_x = torch.randn(self.n_train, self.d, generator=g)
        test_x = torch.randn(self.n_test, self.d, generator=g)

        def f(x: Tensor) -> Tensor:
            return (torch.relu(x @ w.T) @ a).unsqueeze(1)

        return Data(self.info(), train_x, f(train_x), test_x, f(test_x), extra={"teacher": teacher})


def fingerprint(data: Data) -> str:
    """A short SHA-256 of the in-memory tensors (to check that two loads are identical)."""
    h = hashlib.sha256()
    for t in (data.train_x, data.train_y, data.test_x, data.test_y):
        if t is not None:
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
