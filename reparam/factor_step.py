"""The fused training step of θ = m ⊙ w under torch's SGD (Sign-In, PILoT, spred; issue 10).

Speed, not method: the step computes exactly what the eager path computes — autograd's backward of the
product, torch's SGD on both factors, the product again for the next forward — in one native pass per
step (:mod:`reparam.native`) instead of about ten eager kernels.  Why it matters: on LeNet-300-100 the
eager path costs 1.3–1.4× the plain step (docs/benchmarks.md), all of it memory-bound elementwise work;
the target is ≤ 1.3.

How the pieces fit:

* :class:`ThetaCache` keeps θ of one factorised weight as a *leaf* tensor.  The module's ``weight``
  getter (:func:`reparam.factorized._install_fast_weight`) returns it instead of computing ``m * w``:
  the forward pays no product, and the backward stops at θ.  A post-accumulate-grad hook on θ then
  writes ``m.grad = ∇θ ⊙ w`` and ``w.grad = ∇θ ⊙ m`` in one pass (:func:`native.factor_grads`, the same
  products as autograd's ``MulBackward0``, bit for bit), so every callback between the backward and the
  step sees the gradients of m and w as before — unless the training loop says that none needs them
  (:meth:`FactorSGD.before_backward`, :attr:`pruners.hooks.Callback.needs_factor_gradients`): then the
  hook keeps ∇θ and the step's pass computes ∇m and ∇w itself.  The cache checks the version counters and storage of
  m and w on every access and recomputes θ when anything else changed them (the enforcer, a re-split,
  a mask update, ``load_state_dict``), so it is never stale.
* :class:`FactorSGD` wraps the recipe's ``torch.optim.SGD``.  For the factors it runs
  :func:`native.factor_sgd` — torch's SGD update (momentum, dampening, Nesterov, coupled weight decay;
  the momentum buffers stay in the base optimiser's state, in its format) of m and w and θ = m ⊙ w, in
  one pass — and ``base.step()`` for every other parameter.  PILoT hands its penalty ``2 α_t`` to
  :meth:`FactorSGD.add_factor_penalty`, which the same pass adds to the gradients.

On a CPU with FMA the native step is the eager step to the bit (tests/reparam/test_factor_step.py);
elsewhere it can differ in the last bit.  The path is taken only where it applies (the base is exactly
``torch.optim.SGD``; CPU, contiguous, float32 / float64 tensors; the native library builds) and is
recorded in each run's ``versions.native_kernels``; everything else — other optimisers, GPUs,
``SPARSEBENCH_NATIVE=0`` — runs the eager parametrisation unchanged.

Limits, by design: while the cache is installed θ is a leaf, so ``torch.autograd.grad(loss, [m, w])``
through the model does not reach m and w (the suite computes such gradients with respect to θ
itself, :func:`pruners.schedules.theta_gradients`), and hooks registered on m or w for gradient
accumulation do not fire (their ``.grad`` is assigned by the hook on θ).  ``Reparam.merge`` removes
the caches.
"""
from __future__ import annotations

import weakref
from typing import Any, Callable, Sequence

import torch
from torch import nn

from pruners.hooks import Callback
from reparam import native
from reparam.base import OptimizerWrapper

#: The installed caches, keyed by the parametrisation list of each factorised weight (weak keys: a copy
#: of the model, e.g. ``copy.deepcopy``, has no cache and computes ``m * w`` as usual).
_CACHES: "weakref.WeakKeyDictionary[nn.Module, ThetaCache]" = weakref.WeakKeyDictionary()


def cache_of(plist: nn.Module) -> "ThetaCache | None":
    """The cache installed on a parametrisation list, if any (the weight getter's lookup)."""
    return _CACHES.get(plist)


class ThetaCache:
    """θ = m ⊙ w of one factorised weight as a leaf tensor whose gradient is passed on to m and w."""

    __slots__ = ("m", "w", "theta", "owner", "pending", "_seen", "_handle", "__weakref__")

    def __init__(self, m: torch.Tensor, w: torch.Tensor) -> None:
        self.m, self.w = m, w
        self.theta: torch.Tensor = torch.empty(0)
        self.owner: FactorSGD | None = None        # the wrapper that may defer the gradients into its step
        self.pending: torch.Tensor | None = None   # ∇θ of a deferred backward, not yet passed on to m and w
        self._seen: tuple[int, int, int, int] | None = None
        self._handle: Any = None
        self._new_leaf()

    def _new_leaf(self) -> None:
        if self._handle is not None:
            self._handle.remove()
        with torch.no_grad():
            self.theta = torch.mul(self.m, self.w)
        self.theta.requires_grad_(self.m.requires_grad or self.w.requires_grad)
        self._handle = (self.theta.register_post_accumulate_grad_hook(self._pass_gradient)
                        if self.theta.requires_grad else None)
        self.mark_current()

    def mark_current(self) -> None:
        """Record that θ equals m ⊙ w as they are now (after a pass that wrote all three)."""
        m, w = self.m, self.w
        self._seen = (m._version, w._version, m.data_ptr(), w.data_ptr())

    def get(self) -> torch.Tensor:
        """θ, recomputed first if m or w changed since it was last written."""
        m, w = self.m, self.w
        if self._seen != (m._version, w._version, m.data_ptr(), w.data_ptr()):
            th = self.theta
            if th.shape != m.shape or th.dtype != m.dtype or th.device != m.device:
                self._new_leaf()
            else:
                with torch.no_grad():
                    torch.mul(m, w, out=th)
                self.mark_current()
        return self.theta

    def _pass_gradient(self, theta: torch.Tensor) -> None:
        """Post-accumulate-grad hook of θ: ∇m = ∇θ ⊙ w, ∇w = ∇θ ⊙ m (accumulated like autograd would) —
        or, while the owner defers, ∇θ kept for the optimiser step."""
        g = theta.grad
        theta.grad = None
        if g is None:
            return
        if self.owner is not None and self.owner.deferring:
            self.pending = g if self.pending is None else self.pending + g
            return
        self.materialize()
        self._to_factors(g)

    def materialize(self) -> None:
        """Pass a deferred ∇θ on to ``m.grad`` and ``w.grad`` now."""
        g, self.pending = self.pending, None
        if g is not None:
            self._to_factors(g)

    def _to_factors(self, g: torch.Tensor) -> None:
        m, w = self.m, self.w
        pair = native.factor_grads(g, m, w) if m.grad is None and w.grad is None else None
        if pair is None:
            with torch.no_grad():
                pair = (g * w, g * m)
        for p, gp in zip((m, w), pair):
            if not p.requires_grad:
                continue
            if p.grad is None:
                p.grad = gp
            else:
                with torch.no_grad():
                    p.grad.add_(gp)

    def remove(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


def install(plists_and_pairs: Sequence[tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]]) -> list[ThetaCache]:
    """Install a :class:`ThetaCache` on each factorised weight; returns them in order."""
    caches = []
    for plist, (m, w) in plists_and_pairs:
        old = _CACHES.pop(plist, None)
        if old is not None:
            old.remove()
        cache = _CACHES[plist] = ThetaCache(m, w)
        caches.append(cache)
    return caches


def uninstall(caches: Sequence[ThetaCache]) -> None:
    """Remove the caches (the getters compute ``m * w`` again)."""
    ids = {id(c) for c in caches}
    for plist, cache in list(_CACHES.items()):
        if id(cache) in ids:
            cache.remove()
            del _CACHES[plist]


def _plain_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def eligible_reason(optimizer: torch.optim.Optimizer, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> str | None:
    """``None`` when the fused step can serve these factor pairs under ``optimizer``, else why not."""
    if type(optimizer) is not torch.optim.SGD:
        return f"eager (the fused factor step serves torch.optim.SGD; the optimiser is {type(optimizer).__name__})"
    for m, w in pairs:
        for t in (m, w):
            if not (t.is_cpu and t.dtype in (torch.float32, torch.float64) and t.is_contiguous()):
                return "eager (the factors are not contiguous float32 / float64 CPU tensors)"
    if native.library() is None:
        return native.status()
    return None


class FactorSGD(OptimizerWrapper):
    """torch's SGD with the factor pairs (m, w) stepped by :func:`native.factor_sgd` (module docstring),
    from their gradients or from a deferred ∇θ.

    Every parameter that is not a factor of an installed cache, and every factor whose step does not
    qualify (a group option the kernel lacks: ``maximize``, ``differentiable``, a tensor lr; a gradient
    that is not a contiguous CPU tensor), is stepped by ``base.step()`` as before.
    """

    preserves_zeros = True   # torch's SGD keeps (p, g, buffer) = 0 at 0, and so does the fused step

    def __init__(self, base: torch.optim.Optimizer, caches: Sequence[ThetaCache]) -> None:
        super().__init__(base)
        self.caches = list(caches)
        for c in self.caches:
            c.owner = self
        self.paths_taken: set[str] = set()
        self.deferring = False
        self._penalty = 0.0
        self._plan_key: tuple | None = None
        self._plan: list[tuple[dict[str, Any], list[ThetaCache]]] = []

    def before_backward(self, callbacks: Sequence[object]) -> None:
        """Called by the training loop (:func:`pruners.hooks.run_step`) before each backward: when none of
        the step's ``callbacks`` needs the factors' gradients before the step
        (:attr:`pruners.hooks.Callback.needs_factor_gradients`), the backward keeps ∇θ and the step
        computes ∇m = ∇θ ⊙ w and ∇w = ∇θ ⊙ m inside its pass (one pass per step instead of two); the
        factors' ``.grad`` then stays empty.  Otherwise, and outside the loop, the hook fills them."""
        self.deferring = bool(self.caches) and all(
            type(cb).before_step is Callback.before_step or not getattr(cb, "needs_factor_gradients", True)
            for cb in callbacks)

    def materialize(self) -> None:
        """Pass every deferred ∇θ on to ``m.grad`` / ``w.grad`` (before something changes m or w)."""
        for c in self.caches:
            if c.pending is not None:
                c.materialize()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for c in self.caches:
            c.pending = None
        self.base_optimizer.zero_grad(set_to_none=set_to_none)

    def add_factor_penalty(self, coefficient: float) -> None:
        """Add ``coefficient · p`` to the gradient of every factor p at the next step (PILoT's
        ``2 α_t``), inside the fused pass where it runs and as an eager add otherwise."""
        self._penalty += float(coefficient)

    def detach(self) -> None:
        """Stop serving the factors (after ``merge``): from now on this is the base optimiser."""
        self.caches = []
        self._plan_key = None

    def _groups_plan(self) -> list[tuple[dict[str, Any], list[ThetaCache]]]:
        groups = self.base_optimizer.param_groups
        key = tuple((id(g["params"]), len(g["params"])) for g in groups) + (len(self.caches),)
        if key != self._plan_key:
            where = {id(p): i for i, g in enumerate(groups) for p in g["params"]}
            plan: list[tuple[dict[str, Any], list[ThetaCache]]] = [(g, []) for g in groups]
            for c in self.caches:
                gi = where.get(id(c.m))
                if gi is not None and where.get(id(c.w)) == gi:
                    plan[gi][1].append(c)
            self._plan = [(g, cs) for g, cs in plan if cs]
            self._plan_key = key
        return self._plan

    @staticmethod
    def _group_ok(group: dict[str, Any]) -> bool:
        return (not group.get("maximize", False) and not group.get("differentiable", False)
                and all(_plain_number(group.get(k, 0.0)) for k in ("lr", "momentum", "dampening", "weight_decay")))

    def step(self, closure: Callable[[], float] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.deferring = False
        penalty, self._penalty = self._penalty, 0.0
        state = self.base_optimizer.state
        stepped: list[ThetaCache] = []
        for group, caches in self._groups_plan():
            if not self._group_ok(group):
                continue
            for c in caches:   # a deferred ∇θ with gradients already on m or w: add it to them
                if c.pending is not None and (c.m.grad is not None or c.w.grad is not None):
                    c.materialize()
            deferred = [c for c in caches if c.pending is not None]
            given = [c for c in caches if c.pending is None and c.m.grad is not None and c.w.grad is not None]
            for todo, grads in ((deferred, [(c.pending,) for c in deferred]),
                                (given, [(c.m.grad, c.w.grad) for c in given])):
                if todo and self._fused(state, group, todo, grads, penalty):
                    for c in todo:
                        c.pending = None
                    stepped.extend(todo)
        self.materialize()   # whatever the fused pass did not take goes to the base step
        rest = {id(p) for c in stepped for p in (c.m, c.w)}
        if penalty != 0.0:   # the factors left to the base step get PILoT's penalty as an eager add
            grads_params = [(p.grad, p) for c in self.caches for p in (c.m, c.w)
                            if id(p) not in rest and p.grad is not None]
            if grads_params:
                grads, params = zip(*grads_params)
                with torch.no_grad():
                    torch._foreach_add_(list(grads), list(params), alpha=penalty)
        if stepped:
            self.paths_taken.add("native")
        if any(c.m.grad is not None and id(c.m) not in rest for c in self.caches):
            self.paths_taken.add("eager")
        # the base step for everything else: the stepped factors are hidden from it by a None gradient
        saved = [(p, p.grad) for c in stepped for p in (c.m, c.w) if p.grad is not None]
        for p, _ in saved:
            p.grad = None
        try:
            self.base_optimizer.step()
        finally:
            for p, g in saved:
                p.grad = g
        return loss

    @staticmethod
    def _fused(state: Any, group: dict[str, Any], todo: list[ThetaCache], grads: list[tuple[torch.Tensor, ...]],
               penalty: float) -> bool:
        """One native pass over ``todo`` (gradients ``grads``: (∇m, ∇w) or (∇θ,) each); False if refused."""
        momentum = float(group["momentum"])
        bms: list[torch.Tensor | None] = []
        bws: list[torch.Tensor | None] = []
        first: list[bool] = []
        for c in todo:
            bm = state[c.m].get("momentum_buffer") if momentum != 0 else None
            bw = state[c.w].get("momentum_buffer") if momentum != 0 else None
            new = momentum != 0 and (bm is None or bw is None)
            if new:   # the kernel writes the first direction into them (torch's clone)
                bm, bw = torch.empty_like(c.m), torch.empty_like(c.w)
            bms.append(bm)
            bws.append(bw)
            first.append(new)
        ok = native.factor_sgd([c.m for c in todo], [c.w for c in todo], grads, bms, bws, [c.theta for c in todo],
                               first, lr=float(group["lr"]), momentum=momentum,
                               dampening=float(group["dampening"]), weight_decay=float(group["weight_decay"]),
                               l2=penalty, nesterov=bool(group["nesterov"]))
        if ok:
            for c, bm, bw, new in zip(todo, bms, bws, first):
                if new:
                    state[c.m]["momentum_buffer"], state[c.w]["momentum_buffer"] = bm, bw
                c.mark_current()
        return ok
