"""Model factories: output shapes, exact parameter counts, seeded init, toys, argument errors."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from benchmark.tasks.models import MODELS, count_parameters
from pruners.masks import prunable_parameters
from pruners.registry import ConfigError

SHAPES = [
    ("mlp", (1, 8, 8), 10, {}),
    ("mlp", (5,), 3, {"hidden": [7]}),
    ("lenet5", (1, 28, 28), 10, {}),
    ("lenet5", (3, 32, 32), 10, {}),
    ("resnet20", (3, 32, 32), 10, {}),
    ("resnet20", (3, 32, 32), 10, {"shortcut": "pad"}),
    ("resnet32", (3, 16, 16), 10, {}),
    ("resnet56", (3, 16, 16), 100, {}),
    ("resnet18", (3, 32, 32), 100, {}),
    ("vgg11", (3, 32, 32), 10, {}),
    ("vgg16", (3, 32, 32), 10, {}),
    ("vgg19", (3, 32, 32), 100, {}),
    ("resnet50", (3, 64, 64), 7, {}),
]


@pytest.mark.parametrize("name,shape,out,kwargs", SHAPES)
def test_output_shapes(name, shape, out, kwargs):
    torch.manual_seed(0)
    model = MODELS.get(name)(input_shape=shape, num_outputs=out, **kwargs).eval()
    batch = 1 if name == "resnet50" else 2
    with torch.no_grad():
        y = model(torch.randn(batch, *shape))
    assert y.shape == (batch, out) and torch.isfinite(y).all()
    assert prunable_parameters(model), "every model has prunable Linear/Conv weights"


def test_lenet_300_100_parameter_count():
    model = MODELS.get("mlp")((1, 28, 28), 10)
    by_hand = (784 * 300 + 300) + (300 * 100 + 100) + (100 * 10 + 10)
    assert count_parameters(model) == by_hand == 266_610
    assert list(prunable_parameters(model)) == ["layers.0.weight", "layers.2.weight", "layers.4.weight"]


def cifar_resnet_by_hand(shortcut: str, blocks: int = 3, widths: tuple[int, int, int] = (16, 32, 64),
                         channels: int = 3) -> int:
    conv = lambda cin, cout, k=3: cin * cout * k * k  # noqa: E731
    bn = lambda c: 2 * c  # noqa: E731
    total = conv(channels, widths[0]) + bn(widths[0]) + widths[2] * 10 + 10            # stem, classifier
    for cin, cout in zip((widths[0], *widths[:2]), widths):
        for block in range(blocks):
            c_in = cin if block == 0 else cout
            total += conv(c_in, cout) + bn(cout) + conv(cout, cout) + bn(cout)
            if block == 0 and c_in != cout and shortcut == "conv":
                total += conv(c_in, cout, 1) + bn(cout)
    return total


def test_resnet20_parameter_counts():
    pad = MODELS.get("resnet20")((3, 32, 32), 10, shortcut="pad")
    conv = MODELS.get("resnet20")((3, 32, 32), 10, shortcut="conv")
    assert count_parameters(pad) == cifar_resnet_by_hand("pad") == 269_722      # He et al.'s "0.27M" (option A)
    assert count_parameters(conv) == cifar_resnet_by_hand("conv") == 272_474    # option B, our default
    assert "layers.1.0.shortcut.0.weight" in prunable_parameters(conv)
    assert len(prunable_parameters(pad)) == 20 - 1 + 0 + 1  # 19 convs + fc


def test_resnet8_and_its_widths_match_a_hand_count_and_bad_widths_are_refused():
    """fmnist-resnet8's model: one block per stage; ``widths`` scales the three stages."""
    r8 = MODELS.get("resnet8")((1, 14, 14), 10)
    assert count_parameters(r8) == cifar_resnet_by_hand("conv", blocks=1, channels=1) == 77_754
    narrow = MODELS.get("resnet8")((1, 14, 14), 10, widths=[8, 16, 32])
    assert count_parameters(narrow) == cifar_resnet_by_hand("conv", 1, (8, 16, 32), 1)
    assert narrow(torch.zeros(2, 1, 14, 14)).shape == (2, 10)
    with pytest.raises(ConfigError, match="widths must be three positive"):
        MODELS.get("resnet8")((1, 14, 14), 10, widths=[8, 16])


def test_other_known_counts():
    assert count_parameters(MODELS.get("lenet5")((1, 28, 28), 10)) == 61_706
    assert count_parameters(MODELS.get("resnet18")((3, 32, 32), 10)) == 11_173_962
    assert count_parameters(MODELS.get("vgg16")((3, 32, 32), 10)) == 14_728_266
    assert count_parameters(MODELS.get("resnet50")((3, 224, 224), 1000)) == 25_557_032


@pytest.mark.parametrize("name,shape", [("mlp", (1, 8, 8)), ("resnet20", (3, 32, 32)), ("lenet5", (1, 28, 28)),
                                        ("diagonal", (10,)), ("teacher-student", (2,))])
def test_seeded_initialisation_is_deterministic(name, shape):
    out = 1 if name in ("diagonal", "teacher-student") else 10

    def state(seed):
        torch.manual_seed(seed)
        return MODELS.get(name)(shape, out).state_dict()

    a, b, c = state(0), state(0), state(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_kaiming_normal_init():
    torch.manual_seed(0)
    model = MODELS.get("mlp")((1, 28, 28), 10, hidden=[1000], init="kaiming_normal")
    w = model.layers[0].weight
    assert w.std().item() == pytest.approx(math.sqrt(2 / 784), rel=0.02)
    assert torch.count_nonzero(model.layers[0].bias) == 0
    torch.manual_seed(0)
    default = MODELS.get("mlp")((1, 28, 28), 10, hidden=[1000])
    assert default.layers[0].weight.abs().max() <= 1 / math.sqrt(784) + 1e-6  # PyTorch's uniform bound


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="unknown model_args key 'hiden'.*did you mean 'hidden'"):
        MODELS.get("mlp")((1, 8, 8), 10, hiden=[3])
    with pytest.raises(ConfigError, match="unknown init 'kaiming'"):
        MODELS.get("resnet20")((3, 32, 32), 10, init="kaiming")
    with pytest.raises(ConfigError, match="unknown shortcut"):
        MODELS.get("resnet20")((3, 32, 32), 10, shortcut="identity")
    with pytest.raises(ConfigError, match="needs image inputs"):
        MODELS.get("resnet20")((100,), 10)
    with pytest.raises(ConfigError, match="unknown model 'resnet-20'.*did you mean"):
        MODELS.get("resnet-20")
    with pytest.raises(ConfigError, match="hidden must be a list"):
        MODELS.get("mlp")((4,), 2, hidden=[0])


def test_diagonal_network_inits_and_forward():
    torch.manual_seed(0)
    model = MODELS.get("diagonal")((30,), 1)          # pilot, depth 2, gamma 1
    w, m = model.linear.weight, model.factors[0]
    torch.testing.assert_close(m ** 2 - w ** 2, torch.ones_like(m))
    assert (m > 0).all() and model.depth == 2
    X = torch.randn(4, 30)
    torch.testing.assert_close(model(X), X @ (w * m).reshape(-1, 1))
    assert list(prunable_parameters(model)) == ["linear.weight"]

    spred = MODELS.get("diagonal")((30,), 1, depth=3, init="spred")
    mags = [spred.linear.weight.abs(), *[f.abs() for f in spred.factors]]
    assert all(torch.allclose(mags[0], g) for g in mags[1:])
    saddle = MODELS.get("diagonal")((30,), 1, depth=3, init="saddle", value=0.5)
    assert torch.count_nonzero(saddle.effective_weight()) == 0 and (saddle.factors[1] == 0.5).all()
    const = MODELS.get("diagonal")((30,), 1, depth=2, init="constant", value=0.3)
    torch.testing.assert_close(const.effective_weight(), torch.full((30,), 0.09))
    with pytest.raises(ConfigError, match="balanced split of depth 2"):
        MODELS.get("diagonal")((30,), 1, depth=3, init="pilot")
    with pytest.raises(ConfigError, match="regression data set"):
        MODELS.get("diagonal")((1, 8, 8), 10)


def test_teacher_student_antisymmetric_student():
    torch.manual_seed(0)
    model = MODELS.get("teacher-student")((2,), 1, width=20)
    a = model.out.weight[0]
    torch.testing.assert_close(a[:10], -a[10:])
    assert torch.allclose(model(torch.randn(50, 2)), torch.zeros(50, 1), atol=1e-6)   # tied hidden → f ≡ 0 at init
    assert isinstance(model.hidden, nn.Linear) and model.hidden.bias is None
    untied = MODELS.get("teacher-student")((2,), 1, width=200, tie_hidden=False)
    assert model.hidden.weight.std().item() == pytest.approx(1 / math.sqrt(20), rel=0.5)
    assert untied.hidden.weight.std().item() == pytest.approx(1 / math.sqrt(200), rel=0.15)
    with pytest.raises(ConfigError, match="even"):
        MODELS.get("teacher-student")((2,), 1, width=5)


def test_wrn22_2_shapes_and_blocks():
    import torch

    from benchmark.tasks.models import MODELS, WideBlock

    model = MODELS.get("wrn22-2")(input_shape=(3, 32, 32), num_outputs=10)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    blocks = [m for m in model.modules() if isinstance(m, WideBlock)]
    assert len(blocks) == 9                                   # (22 - 4) / 6 = 3 blocks per group
    assert [b.conv2.out_channels for b in blocks[::3]] == [32, 64, 128]  # widths 16k, 32k, 64k with k = 2
    assert sum(b.shortcut is not None for b in blocks) == 3  # one projection per group (width / stride change)
