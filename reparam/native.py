"""Native CPU kernels: the fused elementwise passes of ``reparam/csrc/kernels.c`` (issue 10).

Why.  On a small model the reparams' extra cost is elementwise passes over weight-sized tensors, each
a separate kernel in eager PyTorch.  HAM's mirror step is six of them (sign, addcmul, clamp, exp, mul,
norm); on LeNet-300-100 they made the whole training step 1.3× the base optimiser's, against a target of
1.10.  One fused pass reads θ and the gradient once and writes θ once (docs/benchmarks.md).  The
factorised reparams θ = m ⊙ w (Sign-In, PILoT, spred) under SGD take one pass for the backward of the
product, the SGD update of both factors and the new θ (:mod:`reparam.factor_step`; 1.3–1.4× before,
target 1.3).

How.  The C file is compiled on first use, cached and loaded by :class:`pruners.native.NativeLibrary`
(the machine's C compiler, ``-O3 -march=native -fopenmp``, a cache keyed by source, flags, compiler and
CPU, written atomically; see there).  Threads: the torch intra-op count (``torch.get_num_threads()``),
through the same OpenMP runtime torch loaded.

Fallback.  Every caller keeps its eager PyTorch path and uses it when this module gives ``None``: no
compiler, a failed build, ``SPARSEBENCH_NATIVE=0``, or tensors that do not qualify (not on the CPU, not
contiguous, not float32 / float64).  HAM's two paths agree to float32 rounding
(tests/reparam/test_native.py); the factor kernels equal the eager path to the bit on a CPU with FMA
(tests/reparam/test_factor_step.py); within one machine the choice is fixed, so runs stay deterministic.
:func:`status` says which path a process took; run folders record it (``versions.native_kernels``).
"""
from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Sequence

import torch

from pruners.native import ENV_CACHE, ENV_SWITCH, NativeLibrary

__all__ = ["ENV_CACHE", "ENV_SWITCH", "HAM_MAX_CLAMP", "library", "status", "ham_step", "factor_grads",
           "factor_sgd", "factor_kernels_fma", "exp_f32"]

SOURCE = Path(__file__).with_name("csrc") / "kernels.c"

#: Largest HAM exponent clamp the float32 kernel takes (its exp is exact to < 1 ulp on |x| <= 87).
HAM_MAX_CLAMP = 80.0


def _declare(lib: ctypes.CDLL) -> None:
    p, i64, i32, f32, f64 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_float, ctypes.c_double
    lib.ham_step_f32.argtypes = [i64, p, p, p, f32, f32, f32, i32, p]
    lib.ham_step_f64.argtypes = [i64, p, p, p, f64, f64, f64, i32, p]
    lib.exp_f32_array.argtypes = [p, p, i64]
    lib.factor_grads_f32.argtypes = lib.factor_grads_f64.argtypes = [i64, p, p, p, p, p, i32]
    lib.factor_sgd_f32.argtypes = [i64, p, p, p, p, p, p, p, p, p, p, f32, f32, f32, f32, f32, i32, i32]
    lib.factor_sgd_f64.argtypes = [i64, p, p, p, p, p, p, p, p, p, p, f64, f64, f64, f64, f64, i32, i32]
    lib.factor_kernels_fma.argtypes = []
    lib.factor_kernels_fma.restype = ctypes.c_int
    for fn in (lib.ham_step_f32, lib.ham_step_f64, lib.exp_f32_array, lib.factor_grads_f32, lib.factor_grads_f64,
               lib.factor_sgd_f32, lib.factor_sgd_f64):
        fn.restype = None


_LIBRARY = NativeLibrary(SOURCE, "kernels", _declare)
_state = _LIBRARY.state   # the process's outcome ("lib", "status"); tests save and restore it


def library() -> ctypes.CDLL | None:
    """The loaded kernel library, building it on first call; ``None`` (and :func:`status` says why)
    when disabled or unavailable."""
    return _LIBRARY.get()


def status() -> str:
    """Which path this process uses: ``"native (kernels-<hash>.so)"``, ``"eager: <why>"``, or
    ``"unused"`` when nothing asked for a kernel yet."""
    return _LIBRARY.status()


def _reset_for_tests() -> None:
    _LIBRARY.reset()


_FLOATS = (torch.float32, torch.float64)


def _qualifies(t: torch.Tensor, dtype: torch.dtype) -> bool:
    """A contiguous strided CPU tensor of ``dtype`` (cheap attribute reads: this runs every step)."""
    return t.is_cpu and t.dtype is dtype and t.layout is torch.strided and t.is_contiguous()


def ham_step(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], lr: float, alpha: float,
             beta: float, clamp: float) -> list[float] | None:
    """HAM's mirror step in place on every ``params[i]`` with gradient ``grads[i]`` (one fused pass each):
    ``θ ← θ ⊙ exp(clamp(−lr·β + (−lr·α·sign θ) ⊙ g, −clamp, clamp))``; returns each new ‖θ‖², or ``None``
    without touching anything when the kernels are unavailable or the tensors do not qualify (CPU,
    contiguous, strided, one float dtype, no aliasing; ``0 < clamp <= 80``)."""
    if not params or not 0.0 < clamp <= HAM_MAX_CLAMP or params[0].dtype not in _FLOATS:
        return None
    dtype = params[0].dtype
    p_ptrs, g_ptrs, sizes = [], [], []
    for p, g in zip(params, grads):
        if not (_qualifies(p, dtype) and _qualifies(g, dtype)):
            return None
        pp, gp, n = p.data_ptr(), g.data_ptr(), p.numel()
        if pp == gp or g.numel() != n:
            return None
        p_ptrs.append(pp)
        g_ptrs.append(gp)
        sizes.append(n)
    lib = library()
    if lib is None:
        return None
    k = len(p_ptrs)
    out = (ctypes.c_double * k)()
    fn = lib.ham_step_f32 if dtype is torch.float32 else lib.ham_step_f64
    fn(k, (ctypes.c_void_p * k)(*p_ptrs), (ctypes.c_void_p * k)(*g_ptrs), (ctypes.c_int64 * k)(*sizes),
       -lr * alpha, -lr * beta, clamp, torch.get_num_threads(), out)
    torch.autograd.graph.increment_version(list(params))   # in-place behind torch's back: say so
    return list(out)


def factor_grads(grad: torch.Tensor, m: torch.Tensor, w: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The backward of θ = m ⊙ w in one pass: new tensors ``(grad ⊙ w, grad ⊙ m)`` (bit-identical to
    autograd's ``MulBackward0``), or ``None`` when the kernels are unavailable or the tensors do not
    qualify (CPU, contiguous, one float dtype, one size)."""
    dtype = m.dtype
    if dtype not in _FLOATS or not (_qualifies(grad, dtype) and _qualifies(m, dtype) and _qualifies(w, dtype)):
        return None
    n = m.numel()
    if grad.numel() != n or w.numel() != n:
        return None
    lib = library()
    if lib is None:
        return None
    gm, gw = torch.empty_like(m), torch.empty_like(w)
    fn = lib.factor_grads_f32 if dtype is torch.float32 else lib.factor_grads_f64
    fn(n, grad.data_ptr(), m.data_ptr(), w.data_ptr(), gm.data_ptr(), gw.data_ptr(), torch.get_num_threads())
    return gm, gw


def factor_sgd(ms: Sequence[torch.Tensor], ws: Sequence[torch.Tensor], grads: Sequence[Sequence[torch.Tensor]],
               bms: Sequence[torch.Tensor | None], bws: Sequence[torch.Tensor | None], thetas: Sequence[torch.Tensor],
               first: Sequence[bool], lr: float, momentum: float, dampening: float, weight_decay: float, l2: float,
               nesterov: bool) -> bool:
    """torch's SGD step on both factors of every pair (m, w) and ``θ ← m ⊙ w``, in one pass (kernels.c,
    ``factor_sgd``); ``l2`` is added to the gradients first as ``g + l2 · p`` (PILoT's penalty).

    ``grads[i]`` is pair i's ``(∇m, ∇w)``, or ``(∇θ,)`` — then the pass computes ``∇m = ∇θ ⊙ w`` and
    ``∇w = ∇θ ⊙ m`` from the factors before the step (all pairs of one call alike).  ``bms`` / ``bws`` are
    the momentum buffers (ignored for ``momentum = 0``); ``first[i]`` says pair i's buffers are new and
    receive the first step's update direction, as torch's ``clone``.  Returns False without touching
    anything when the kernels are unavailable or a tensor does not qualify (CPU, contiguous, one float
    dtype, matching sizes, no aliasing).  Bumps the version counters of everything it wrote."""
    if not ms or ms[0].dtype not in _FLOATS:
        return False
    dtype = ms[0].dtype
    use_buf = momentum != 0
    from_theta = len(grads[0]) == 1
    n_grads = 1 if from_theta else 2
    cols: list[list[int]] = [[] for _ in range(5 + n_grads)]
    sizes, written = [], []
    for i, m in enumerate(ms):
        if len(grads[i]) != n_grads:
            return False
        row = (m, ws[i], thetas[i], *grads[i], *((bms[i], bws[i]) if use_buf else (m, ws[i])))
        n = m.numel()
        for t in row:
            if t is None or not _qualifies(t, dtype) or t.numel() != n:
                return False
        ptrs = [t.data_ptr() for t in row]
        distinct = ptrs if use_buf else ptrs[:3 + n_grads]
        if len(set(distinct)) != len(distinct):
            return False
        for col, ptr in zip(cols, ptrs):
            col.append(ptr)
        sizes.append(n)
        written.extend((m, ws[i], thetas[i], *((bms[i], bws[i]) if use_buf else ())))
    lib = library()
    if lib is None:
        return False
    k = len(sizes)
    arr = [(ctypes.c_void_p * k)(*col) for col in cols]
    m_a, w_a, th_a = arr[:3]
    g_a = arr[3:3 + n_grads]
    bm_a, bw_a = arr[3 + n_grads:]
    gm_a, gw_a, big_g = (None, None, g_a[0]) if from_theta else (g_a[0], g_a[1], None)
    fn = lib.factor_sgd_f32 if dtype is torch.float32 else lib.factor_sgd_f64
    fn(k, m_a, w_a, gm_a, gw_a, big_g, bm_a, bw_a, th_a, (ctypes.c_int64 * k)(*sizes),
       (ctypes.c_int32 * k)(*(int(f) for f in first)), -lr, momentum, 1.0 - dampening, weight_decay, l2,
       int(bool(nesterov)), torch.get_num_threads())
    torch.autograd.graph.increment_version(written)
    return True


def factor_kernels_fma() -> bool:
    """Whether the factor kernels use fused multiply-adds, as ATen's AVX2 / AVX-512 kernels do (then
    the fused factor step equals torch's eager SGD to the bit); False when unavailable."""
    lib = library()
    return bool(lib is not None and lib.factor_kernels_fma())


def exp_f32(x: torch.Tensor) -> torch.Tensor | None:
    """The kernels' float32 exp over a contiguous CPU tensor (for the accuracy test); ``None`` if
    unavailable."""
    lib = library()
    if lib is None or not _qualifies(x, torch.float32):
        return None
    out = torch.empty_like(x)
    lib.exp_f32_array(x.data_ptr(), out.data_ptr(), x.numel())
    return out
