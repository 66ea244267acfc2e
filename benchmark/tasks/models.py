"""Model factories of the benchmark tasks, registered in :data:`MODELS`.

Every factory has the signature ``(input_shape, num_outputs, **kwargs) -> nn.Module``; the input shape
and the number of outputs come from :func:`benchmark.tasks.datasets.dataset_info`, the keyword
arguments from a task's ``model_args``.  An unknown keyword is a ConfigError with a did-you-mean.

All models are plain ``nn.Module`` trees without parametrisations; their prunable parameters are the
weights of Linear and Conv layers (``pruners.masks.prunable_parameters``).  Classification models
accept ``init = "default"`` (PyTorch's initialisation) or ``"kaiming_normal"`` (PILoT's: Kaiming
normal, fan-in, ReLU gain, on every Linear / Conv weight; biases zero; batch norm γ = 1, β = 0).
Initialisation draws from the global RNG: seed it (the harness does) before building a model.
"""
from __future__ import annotations

import functools
import inspect
import math
from typing import Any, Callable, Sequence

import torch
import torchvision
from torch import Tensor, nn
import torch.nn.functional as F

from pruners.registry import ConfigError, Registry, did_you_mean

ModelFactory = Callable[..., nn.Module]
MODELS: Registry[ModelFactory] = Registry("model")

INITS = ("default", "kaiming_normal")


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Register a factory under ``name``, wrapped so that unknown keyword arguments are ConfigErrors."""

    def deco(factory: ModelFactory) -> ModelFactory:
        params = inspect.signature(factory).parameters
        allowed = [p for p in params if p not in ("input_shape", "num_outputs")]

        @functools.wraps(factory)
        def wrapper(input_shape: Sequence[int], num_outputs: int, **kwargs: Any) -> nn.Module:
            for key in kwargs:
                if key not in allowed:
                    raise ConfigError(f"unknown model_args key {key!r} for model {name!r}"
                                      f"{did_you_mean(key, allowed)}; valid keys: {', '.join(allowed) or 'none'}")
            if not isinstance(num_outputs, int) or num_outputs < 1:
                raise ConfigError(f"model {name!r} needs num_outputs >= 1, got {num_outputs!r}")
            return factory(tuple(int(s) for s in input_shape), num_outputs, **kwargs)

        MODELS.add(name, wrapper)
        return wrapper

    return deco


def apply_init(model: nn.Module, init: str) -> nn.Module:
    """Re-initialise ``model`` in place according to ``init`` (see the module docstring); returns it."""
    if init not in INITS:
        raise ConfigError(f"unknown init {init!r}{did_you_mean(init, INITS)}; choose one of {', '.join(INITS)}")
    if init == "kaiming_normal":
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
                if module.weight is not None:
                    nn.init.ones_(module.weight)
                    nn.init.zeros_(module.bias)
    return model


def _need_image(name: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ConfigError(f"model {name!r} needs image inputs (channels, height, width), got input_shape "
                          f"{input_shape}; use 'mlp' for flat inputs")
    return input_shape  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------------
# MLP and LeNet-5

class MLP(nn.Module):
    """Fully connected ReLU network on flattened inputs: Linear → ReLU → … → Linear."""

    def __init__(self, in_features: int, hidden: Sequence[int], num_outputs: int, bias: bool = True) -> None:
        super().__init__()
        widths = [in_features, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b, bias=bias), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], num_outputs, bias=bias))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x.flatten(1))


@register_model("mlp")
def mlp(input_shape: tuple[int, ...], num_outputs: int, hidden: Sequence[int] = (300, 100), bias: bool = True,
        init: str = "default") -> nn.Module:
    """MLP with ReLU hidden layers of widths ``hidden``; the default [300, 100] is LeNet-300-100
    (LeCun et al. 1998; the lottery-ticket MNIST network, 266,610 parameters on 28×28 inputs)."""
    if not isinstance(hidden, (list, tuple)) or not all(isinstance(h, int) and h > 0 for h in hidden):
        raise ConfigError(f"mlp hidden must be a list of positive integers, got {hidden!r}; e.g. [300, 100]")
    return apply_init(MLP(math.prod(input_shape), list(hidden), num_outputs, bias=bias), init)


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) with ReLU and max pooling, as in the pruning literature.

    conv 6@5×5 → pool 2 → conv 16@5×5 → pool 2 → fc 120 → fc 84 → fc out.  Inputs smaller than 32×32
    (MNIST's 28×28) get 2-pixel padding in the first convolution so the classic 16×5×5 geometry holds;
    the flatten size is computed from the input shape.
    """

    def __init__(self, input_shape: tuple[int, int, int], num_outputs: int) -> None:
        super().__init__()
        c, h, w = input_shape
        pad = 2 if min(h, w) < 32 else 0

        def out(size: int) -> int:
            size = (size + 2 * pad - 4) // 2
            return (size - 4) // 2

        oh, ow = out(h), out(w)
        if oh < 1 or ow < 1:
            raise ConfigError(f"lenet5 needs inputs of at least 12×12 pixels, got {h}×{w}; use 'mlp' instead")
        self.features = nn.Sequential(
            nn.Conv2d(c, 6, 5, padding=pad), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(
            nn.Linear(16 * oh * ow, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, num_outputs))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


@register_model("lenet5")
def lenet5(input_shape: tuple[int, ...], num_outputs: int, init: str = "default") -> nn.Module:
    """LeNet-5 for 28×28 or 32×32 single- or multi-channel images (61,706 parameters on MNIST)."""
    return apply_init(LeNet5(_need_image("lenet5", input_shape), num_outputs), init)


# --------------------------------------------------------------------------------------------------
# CIFAR ResNets (He et al. 2016, §4.2)

class PadShortcut(nn.Module):
    """Option-A shortcut: subsample by 2 and zero-pad the channels (no parameters)."""

    def __init__(self, planes_out: int, planes_in: int) -> None:
        super().__init__()
        self.extra = planes_out - planes_in

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, ::2, ::2]
        lo = self.extra // 2
        return nn.functional.pad(x, (0, 0, 0, 0, lo, self.extra - lo))


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers with an identity, 1×1-conv (option B) or padding (option A) shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int, shortcut: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            if shortcut == "conv":
                self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                              nn.BatchNorm2d(planes))
            else:
                if stride != 2:
                    raise ConfigError("the 'pad' shortcut only supports stride-2 downsampling; use shortcut = 'conv'")
                self.shortcut = PadShortcut(planes, in_planes)

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """A ResNet of ``BasicBlock`` stages: 3×3 stem conv + BN (no max-pool), global average pool, linear."""

    def __init__(self, in_channels: int, widths: Sequence[int], blocks: Sequence[int], num_outputs: int,
                 shortcut: str) -> None:
        super().__init__()
        if shortcut not in ("conv", "pad"):
            raise ConfigError(f"unknown shortcut {shortcut!r}; choose 'conv' (1×1 conv + BN, option B) or 'pad' "
                              "(option A)")
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages = []
        in_planes = widths[0]
        for i, (planes, n) in enumerate(zip(widths, blocks)):
            layer = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                layer.append(BasicBlock(in_planes, planes, stride, shortcut))
                in_planes = planes
            stages.append(nn.Sequential(*layer))
        self.layers = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_outputs)

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.pool(self.layers(out))
        return self.fc(out.flatten(1))


def _cifar_resnet(depth: int) -> ModelFactory:
    n = (depth - 2) // 6

    def factory(input_shape: tuple[int, ...], num_outputs: int, shortcut: str = "conv",
                init: str = "default", widths: Sequence[int] = (16, 32, 64)) -> nn.Module:
        c, _, _ = _need_image(f"resnet{depth}", input_shape)
        if len(widths) != 3 or not all(isinstance(w, int) and w > 0 for w in widths):
            raise ConfigError(f"resnet{depth} widths must be three positive channel counts, got {list(widths)!r}; "
                              "set e.g. widths = [16, 32, 64]")
        return apply_init(CifarResNet(c, tuple(widths), (n, n, n), num_outputs, shortcut), init)

    factory.__name__ = f"resnet{depth}"
    factory.__doc__ = (f"ResNet-{depth} for CIFAR (He et al. 2016 §4.2): 3 stages of {n} basic blocks with "
                       "``widths`` channels (16/32/64), batch norm; ``shortcut='conv'`` (1×1 conv + BN, option "
                       "B, the default of open_lth / SynFlow sparse-training code) or ``'pad'`` (option A).")
    return factory


resnet8 = register_model("resnet8")(_cifar_resnet(8))
resnet20 = register_model("resnet20")(_cifar_resnet(20))
resnet32 = register_model("resnet32")(_cifar_resnet(32))
resnet56 = register_model("resnet56")(_cifar_resnet(56))


@register_model("resnet18")
def resnet18(input_shape: tuple[int, ...], num_outputs: int, init: str = "default") -> nn.Module:
    """ResNet-18, CIFAR variant (3×3 stem, no max-pool; 64-128-256-512, 1×1-conv shortcuts), as in the
    Sign-In and SynFlow code (11,173,962 parameters for 10 classes)."""
    c, _, _ = _need_image("resnet18", input_shape)
    return apply_init(CifarResNet(c, (64, 128, 256, 512), (2, 2, 2, 2), num_outputs, "conv"), init)


# --------------------------------------------------------------------------------------------------
# Wide ResNet (Zagoruyko & Komodakis, BMVC 2016), used by RigL / SET on CIFAR-10 (WRN-22-2)

class WideBlock(nn.Module):
    """Pre-activation wide basic block: BN-ReLU-conv3×3-BN-ReLU-conv3×3, 1×1-conv shortcut when the
    shape changes (Zagoruyko & Komodakis 2016, Fig. 1c without dropout)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = (nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False)
                         if stride != 1 or c_in != c_out else None)

    def forward(self, x: Tensor) -> Tensor:
        o = F.relu(self.bn1(x))
        y = self.conv1(o)
        y = self.conv2(F.relu(self.bn2(y)))
        return y + (self.shortcut(o) if self.shortcut is not None else x)


class WideResNet(nn.Module):
    """WRN-d-k for 32×32 inputs: a 3×3 stem with 16 channels, three groups of (d − 4) / 6 wide blocks
    with 16k, 32k, 64k channels (strides 1, 2, 2), BN-ReLU, global average pool, linear."""

    def __init__(self, c_in: int, depth: int, widen: int, num_outputs: int) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ConfigError(f"WideResNet depth {depth} must be 6n + 4 (e.g. 16, 22, 28)")
        n = (depth - 4) // 6
        widths = [16 * widen, 32 * widen, 64 * widen]
        self.stem = nn.Conv2d(c_in, 16, 3, 1, 1, bias=False)
        blocks, c = [], 16
        for i, w in enumerate(widths):
            for j in range(n):
                blocks.append(WideBlock(c, w, 2 if (i > 0 and j == 0) else 1))
                c = w
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, num_outputs)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn(self.blocks(self.stem(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


@register_model("wrn22-2")
def wrn22_2(input_shape: tuple[int, ...], num_outputs: int, init: str = "default") -> nn.Module:
    """WRN-22-2 (RigL's CIFAR-10 network, Evci et al. 2020)."""
    c, _, _ = _need_image("wrn22-2", input_shape)
    return apply_init(WideResNet(c, 22, 2, num_outputs), init)


# --------------------------------------------------------------------------------------------------
# VGG (open_lth / SynFlow CIFAR variant)

VGG_PLANS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512],
}


class VGG(nn.Module):
    """VGG with batch norm for CIFAR (open_lth / SynFlow ``lottery_vgg``): 3×3 conv-BN-ReLU stack with
    four max-pools, global average pool (``AvgPool2d(2)`` on the 2×2 map of a 32×32 input), one linear
    classifier 512 → out."""

    def __init__(self, in_channels: int, plan: Sequence[int | str], num_outputs: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for spec in plan:
            if spec == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(c, int(spec), 3, padding=1), nn.BatchNorm2d(int(spec)), nn.ReLU()]
                c = int(spec)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_outputs)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


def _vgg(depth: int) -> ModelFactory:
    def factory(input_shape: tuple[int, ...], num_outputs: int, init: str = "default") -> nn.Module:
        c, h, w = _need_image(f"vgg{depth}", input_shape)
        if min(h, w) < 16:
            raise ConfigError(f"vgg{depth} needs inputs of at least 16×16 pixels (four 2× max-pools), got {h}×{w}")
        return apply_init(VGG(c, VGG_PLANS[depth], num_outputs), init)

    factory.__name__ = f"vgg{depth}"
    factory.__doc__ = (f"VGG-{depth} with batch norm, CIFAR variant of the SynFlow / open_lth code (conv stack, "
                       "global average pool, one linear layer 512 → out).")
    return factory


vgg11 = register_model("vgg11")(_vgg(11))
vgg16 = register_model("vgg16")(_vgg(16))
vgg19 = register_model("vgg19")(_vgg(19))


# --------------------------------------------------------------------------------------------------
# ImageNet ResNet-50

@register_model("resnet50")
def resnet50(input_shape: tuple[int, ...], num_outputs: int, init: str = "default",
             zero_init_residual: bool = False) -> nn.Module:
    """torchvision's ResNet-50 (He et al. 2016; ``weights=None``), the ImageNet network of RigL, STR,
    PILoT, Sign-In and HAM.  Its stem expects 3 channels; ``zero_init_residual`` as in torchvision."""
    c, _, _ = _need_image("resnet50", input_shape)
    model = torchvision.models.resnet50(weights=None, num_classes=num_outputs,
                                        zero_init_residual=zero_init_residual)
    if c != 3:
        model.conv1 = nn.Conv2d(c, 64, 7, stride=2, padding=3, bias=False)
    return apply_init(model, init)


# --------------------------------------------------------------------------------------------------
# Theory toys

class DiagonalNet(nn.Module):
    """Deep diagonal linear network for regression: prediction ``X @ x`` with ``x = w_1 ⊙ … ⊙ w_L``.

    ``w_1`` is the weight of ``self.linear`` (an ``nn.Linear(n, 1, bias=False)``, shape ``(1, n)``) so
    that it is the prunable parameter: masking it masks ``x`` itself, and a reparameterisation of
    Linear weights (PILoT / Sign-In's θ = m ⊙ w) applies to it.  ``w_2 … w_L`` are plain parameters in
    ``self.factors`` (shape ``(1, n)`` each).  With ``depth = 1`` this is linear regression.
    """

    def __init__(self, n_features: int, depth: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, 1, bias=False)
        self.factors = nn.ParameterList([nn.Parameter(torch.ones(1, n_features)) for _ in range(depth - 1)])

    @property
    def depth(self) -> int:
        return 1 + len(self.factors)

    def effective_weight(self) -> Tensor:
        """``x = w_1 ⊙ … ⊙ w_L`` as a vector of shape ``(n,)``."""
        x = self.linear.weight
        for f in self.factors:
            x = x * f
        return x.reshape(-1)

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1) @ self.effective_weight().unsqueeze(1)


DIAGONAL_INITS = ("pilot", "spred", "constant", "saddle")


def _balanced_split(theta: Tensor, gamma: float) -> tuple[Tensor, Tensor]:
    """PILoT's split of θ into (m, w) with m·w = θ, m² − w² = γ, m > 0 (PAPERS.md §1)."""
    m = torch.sqrt((gamma + torch.sqrt(gamma ** 2 + 4 * theta ** 2)) / 2)
    return m, theta / m


@register_model("diagonal")
def diagonal(input_shape: tuple[int, ...], num_outputs: int, depth: int = 2, init: str = "pilot",
             scale: float = 0.1, gamma: float = 1.0, value: float = 0.1) -> nn.Module:
    """Deep diagonal linear network ``x = w_1 ⊙ … ⊙ w_L`` for the sparse-regression toys (PAPERS.md §3, §6, §7).

    The starting point ``θ_0 ~ N(0, scale²)`` per coordinate (global RNG; ``scale = 0`` gives θ_0 = 0) is
    factorised according to ``init``:

    * ``"pilot"`` (depth 2 only): balanced split with ``m² − w² = gamma`` (PILoT / Sign-In, γ = 1):
      ``w_2 = m = sqrt((γ + sqrt(γ² + 4θ²)) / 2)``, ``w_1 = θ / m``;
    * ``"spred"``: ``|w_i| = |θ_0|^{1/L}`` for every factor, the sign on ``w_1`` (Ziyin & Wang, γ = 0);
    * ``"constant"``: every factor equals ``value`` (θ_0 = value^L, ``scale`` unused);
    * ``"saddle"``: ``w_1 = 0``, ``w_i = value`` for i ≥ 2 (Never Saddle's escape initialisation, μ = λ^{q(L−1)}).

    The model maps ``(n, n_features)`` to ``(n, 1)``; see :class:`DiagonalNet`.
    """
    if len(input_shape) != 1 or num_outputs != 1:
        raise ConfigError(f"model 'diagonal' needs flat inputs and one output (a regression data set such as "
                          f"'sparse-regression'), got input_shape {input_shape}, num_outputs {num_outputs}")
    if not isinstance(depth, int) or depth < 1:
        raise ConfigError(f"diagonal depth must be an integer >= 1, got {depth!r}")
    if init not in DIAGONAL_INITS:
        raise ConfigError(f"unknown diagonal init {init!r}{did_you_mean(init, DIAGONAL_INITS)}; choose one of "
                          f"{', '.join(DIAGONAL_INITS)}")
    if init == "pilot" and depth != 2:
        raise ConfigError(f"diagonal init 'pilot' is the balanced split of depth 2, got depth {depth}; use "
                          "depth = 2 or init = 'spred' / 'constant' / 'saddle'")
    if scale < 0 or gamma < 0:
        raise ConfigError("diagonal scale and gamma must be >= 0")
    n = input_shape[0]
    model = DiagonalNet(n, depth)
    with torch.no_grad():
        theta = torch.randn(1, n) * scale if init in ("pilot", "spred") else None
        if init == "pilot":
            assert theta is not None
            m, w = _balanced_split(theta, gamma)
            model.linear.weight.copy_(w)
            model.factors[0].copy_(m)
        elif init == "spred":
            assert theta is not None
            mag = theta.abs().pow(1.0 / depth)
            model.linear.weight.copy_(torch.sign(theta) * mag)
            for f in model.factors:
                f.copy_(mag)
        elif init == "constant":
            model.linear.weight.fill_(value)
            for f in model.factors:
                f.fill_(value)
        else:  # saddle
            model.linear.weight.zero_()
            for f in model.factors:
                f.fill_(value)
    return model


class TwoLayerReLU(nn.Module):
    """``f(x) = Σ_i a_i relu(w_i · x)``: ``hidden`` holds the w_i (no bias), ``out`` the a_i (no bias)."""

    def __init__(self, d: int, width: int, num_outputs: int = 1) -> None:
        super().__init__()
        self.hidden = nn.Linear(d, width, bias=False)
        self.out = nn.Linear(width, num_outputs, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(torch.relu(self.hidden(x.flatten(1))))


@register_model("teacher-student")
def teacher_student(input_shape: tuple[int, ...], num_outputs: int, width: int = 20,
                    antisymmetric: bool = True, tie_hidden: bool = True) -> nn.Module:
    """Student of the NanoAdam teacher-student toy (PAPERS.md §5): ``f = Σ_i a_i relu(w_i · x)``.

    ``a_i`` and ``w_i`` entries are ``N(0, 1/width)``.  With ``antisymmetric`` the output weights satisfy
    ``a_i = −a_{i+width/2}``; ``tie_hidden`` (our choice — the paper states only the a-symmetry) also sets
    ``w_i = w_{i+width/2}``, which makes the initial function exactly zero, the usual purpose of the
    antisymmetric initialisation.  ``width`` must be even when ``antisymmetric``.
    """
    if len(input_shape) != 1:
        raise ConfigError(f"model 'teacher-student' needs flat inputs, got input_shape {input_shape}")
    if not isinstance(width, int) or width < 1 or (antisymmetric and width % 2):
        raise ConfigError(f"teacher-student width must be a positive (even, when antisymmetric) integer, got {width!r}")
    model = TwoLayerReLU(input_shape[0], width, num_outputs)
    std = 1.0 / math.sqrt(width)
    with torch.no_grad():
        model.hidden.weight.normal_(0.0, std)
        model.out.weight.normal_(0.0, std)
        if antisymmetric:
            half = width // 2
            model.out.weight[:, half:] = -model.out.weight[:, :half]
            if tie_hidden:
                model.hidden.weight[half:] = model.hidden.weight[:half]
    return model


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
