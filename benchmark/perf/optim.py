"""What the optimisations of issue 10 bought, each measured side by side against the code it replaced.

* Enforcer: the gradient mask is skipped for the factors m, w of θ = m ⊙ w (Sign-In / PILoT / spred),
  which are zero at every pruned entry, so ∇m = ∇θ ⊙ w and ∇w = ∇θ ⊙ m already are.  Measured on the eager
  parametrisation (the fused factor step never masks factor gradients): the Sign-In step with the skip vs
  the same step with the factors' marks removed (so the enforcer masks them again).
* The fused factor step (:mod:`reparam.factor_step`): Sign-In on it vs on the eager parametrisation.

* HAM: the post-step batched with ``torch._foreach_*`` over the group's matrices, the −ηβ tensor built once
  per group; vs :func:`ham_loop_reference`, the former per-tensor loop (kept here as the baseline; both
  give bit-identical weights — tested in tests/benchmark/test_perf.py).
"""
from __future__ import annotations

import torch

from benchmark.perf.timing import clock, clock_name, interleaved, median, ratio


def ham_loop_reference(opt, saved) -> None:
    """The HAM mirror step as a per-tensor loop (the implementation before issue 10), for comparison."""
    for group, params, grads in saved:
        lr = float(group["lr"])
        for p, g in zip(params, grads):
            e = torch.sign(p)
            torch.addcmul(torch.tensor(-lr * opt.beta, dtype=p.dtype, device=p.device), e, g,
                          value=-lr * opt.alpha, out=e)
            if opt.clamp > 0:
                e.clamp_(-opt.clamp, opt.clamp)
            e.exp_()
            if opt.keep_zeros and opt.clamp <= 0:
                e.masked_fill_(p == 0, 1.0)
            p.mul_(e)
        if opt.max_norm > 0 and params:
            norms = torch.stack(torch._foreach_norm(params))
            if bool((norms > opt.max_norm).any()):
                for p, n in zip(params, norms.tolist()):
                    if n > opt.max_norm:
                        p.mul_(opt.max_norm / n)


class HamLoop:
    """A :class:`reparam.ham.HamOptimizer` whose post-step is :func:`ham_loop_reference`."""

    def __init__(self, ham) -> None:
        self.ham = ham

    def __getattr__(self, name):
        return getattr(self.ham, name)

    @torch.no_grad()
    def step(self, closure=None):
        ham = self.ham
        saved = [(g, ham._targets(g), [p.grad for p in ham._targets(g)]) for g in ham.param_groups]
        loss = ham.base_optimizer.step()
        ham_loop_reference(ham, saved)
        return loss


def measure(quick: bool = False) -> dict[str, float]:
    import reparam.factorized as factorized
    from benchmark.bench_reparam import make_variant
    from pruners.enforce import GRAD_ZERO_ATTR

    g = torch.Generator().manual_seed(1)
    batch = (torch.randn(128, 1, 28, 28, generator=g), torch.randint(0, 10, (128,), generator=g))
    skip = make_variant("signin", {}, "sgd", 0.1, batch, kernel="eager")
    marked = factorized.mark_grad_zero_where_masked
    factorized.mark_grad_zero_where_masked = lambda *ps: None   # build the variant without the marks
    try:
        noskip = make_variant("signin", {}, "sgd", 0.1, batch, kernel="eager")
    finally:
        factorized.mark_grad_zero_where_masked = marked
    assert not any(getattr(p, GRAD_ZERO_ATTR, False) for p in noskip.model.parameters())
    fused = make_variant("signin", {}, "sgd", 0.1, batch)

    ham_new = make_variant("ham", {}, "sgd", 0.1, batch)
    ham_new.optimizer.kernel = "eager"   # the eager foreach path
    ham_old = make_variant("ham", {}, "sgd", 0.1, batch)
    kw = dict(warmup=3, reps=3, inner=2) if quick else dict(warmup=30, reps=30, inner=10)
    plain = make_variant("none", {}, "sgd", 0.1, batch)
    old_opt = HamLoop(ham_old.optimizer)
    _swap_optimizer(ham_old, old_opt)
    t = interleaved({"plain": plain, "signin": skip, "signin-noskip": noskip, "signin-fused": fused,
                     "ham": ham_new, "ham-loop": ham_old}, clock=clock(), **kw)
    return {"signin": ratio(t, "signin", "plain"), "signin_noskip": ratio(t, "signin-noskip", "plain"),
            "signin_gain": ratio(t, "signin", "signin-noskip"),
            "signin_fused": ratio(t, "signin-fused", "plain"), "fused_gain": ratio(t, "signin-fused", "signin"),

            "ham": ratio(t, "ham", "plain"), "ham_loop": ratio(t, "ham-loop", "plain"),
            "ham_gain": ratio(t, "ham", "ham-loop"), **{f"ms:{k}": 1e3 * median(v) for k, v in t.items()}}


def _swap_optimizer(step, new) -> None:
    """Make the step of :func:`benchmark.bench_reparam.make_variant` use another optimiser (its training
    state's optimiser is the one ``train_step`` steps)."""
    step.state.optimizer = new
    step.optimizer = new


def section(quick: bool = False) -> str:
    m = measure(quick)
    lines = ["## Optimisations made for these targets, and what they bought", "",
             f"Each measured side by side against the code it replaced (LeNet-300-100, batch 128, SGD momentum, "
             f"90 % random masks; {clock_name()}). Ratios are to the plain masked SGD step "
             "(the enforcer's bit-mask gradient pass is compared in the masked-step section).", "",
             "| change | before | after | after / before |", "|---|---|---|---|",
             f"| enforcer skips the gradient mask of Sign-In/PILoT factors (eager parametrisation; bit-identical) | "
             f"Sign-In {m['signin_noskip']:.3f} | Sign-In {m['signin']:.3f} | **{m['signin_gain']:.3f}** |",
             f"| fused factor step for θ = m⊙w under SGD (`reparam/factor_step.py`; bit-identical here) | "
             f"Sign-In {m['signin']:.3f} | Sign-In {m['signin_fused']:.3f} | **{m['fused_gain']:.3f}** |",

             f"| HAM post-step with `torch._foreach_*` (bit-identical) | HAM {m['ham_loop']:.3f} | HAM {m['ham']:.3f} | "
             f"**{m['ham_gain']:.3f}** |", ""]
    return "\n".join(lines)
