"""The enforcer's native gradient mask (pruners/native.py, pruners/csrc/masks.c): the float-mask multiply
to the bit with the mask read as packed bits, the fallback, and the shared builder's library cache."""
from __future__ import annotations

import pytest
import torch

from pruners import native
from pruners.enforce import MaskEnforcer
from pruners.masks import Masks

needs_native = pytest.mark.skipif(native.mask_library() is None,
                                  reason=f"no native kernels here ({native._MASKS.status()})")


def test_pack_bits_puts_entry_i_in_bit_i_mod_8_of_byte_i_div_8():
    mask = torch.tensor([True, False, False, True, False, False, False, False, True, True])
    bits = native.pack_bits(mask)
    assert bits.dtype is torch.uint8 and bits.numel() == 2          # padded to a 16-bit word
    assert bits.tolist() == [0b00001001, 0b00000011]


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [1, 15, 16, 17, 1000, 40_001])       # tails, one vector, and the threaded size
def test_mask_grad_is_the_float_multiply_to_the_bit(dtype, n):
    g = torch.Generator().manual_seed(n)
    grad = torch.randn(n, generator=g, dtype=dtype)
    grad[::7] = -grad[::7].abs()                                     # negative gradients at pruned entries: -0
    grad[3::11] = float("nan")
    grad[5::13] = float("-inf")
    mask = torch.rand(n, generator=g) < 0.3
    expected = grad * mask.to(dtype)
    assert native.mask_grad(grad, native.pack_bits(mask))
    assert torch.equal(torch.signbit(grad), torch.signbit(expected))
    torch.testing.assert_close(grad, expected, rtol=0, atol=0, equal_nan=True)


@needs_native
def test_mask_grad_refuses_what_it_cannot_do():
    mask = torch.rand(8, 8) < 0.5
    bits = native.pack_bits(mask)
    strided = torch.randn(8, 8).t()
    before = strided.clone()
    assert not native.mask_grad(strided, bits)
    assert torch.equal(strided, before)
    assert not native.mask_grad(torch.randn(8, 8, dtype=torch.float16), bits)
    assert not native.mask_grad(torch.randn(400), bits)               # a mask too short for the gradient


@pytest.mark.parametrize("switch", ["1", "0"])
def test_enforcer_masks_gradients_alike_with_and_without_the_kernel(monkeypatch, switch):
    saved = dict(native._MASKS.state)
    monkeypatch.setenv(native.ENV_SWITCH, switch)
    native._MASKS.reset()
    try:
        lin = torch.nn.Linear(40, 30)
        g = torch.Generator().manual_seed(0)
        keep = torch.rand(30, 40, generator=g) < 0.2
        enforcer = MaskEnforcer({"weight": [lin.weight]}, Masks({"weight": keep}))
        enforcer.attach(torch.optim.SGD(lin.parameters(), lr=0.1))
        x = torch.randn(5, 40, generator=g)
        lin(x).pow(2).sum().backward()
        native_used = native._MASKS.status().startswith("native")
    finally:
        native._MASKS.reset()
        native._MASKS.state.update(saved)
    ref = torch.nn.Linear(40, 30)
    ref.load_state_dict(lin.state_dict())
    ref(x).pow(2).sum().backward()
    assert torch.equal(lin.weight.grad, ref.weight.grad * keep.float())
    assert native_used == (switch == "1" and native.mask_library() is not None)


def test_bit_mask_option_gives_the_same_gradients_as_the_float_multiply():
    g = torch.Generator().manual_seed(1)
    keep = torch.rand(30, 40, generator=g) < 0.2
    x = torch.randn(5, 40, generator=g)
    grads = {}
    for bit_mask in (True, False):
        torch.manual_seed(0)
        lin = torch.nn.Linear(40, 30)
        enforcer = MaskEnforcer({"weight": [lin.weight]}, Masks({"weight": keep}), bit_mask=bit_mask)
        enforcer.attach(torch.optim.SGD(lin.parameters(), lr=0.1))
        lin(x).pow(3).sum().backward()
        grads[bit_mask] = lin.weight.grad
    assert torch.equal(grads[True], grads[False])
    assert torch.equal(torch.signbit(grads[True]), torch.signbit(grads[False]))
    assert not grads[True][~keep].any()
