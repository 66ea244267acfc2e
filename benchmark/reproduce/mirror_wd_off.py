"""``mirror-wd-off``: Mirror, Mirror of the Flow (Jacobs, Zhou, Burkholz, ICML 2025; PAPERS.md §7).

x = m ⊙ w on the sparse-regression toy with weight decay switched off at T_off (the project's
``wd_schedule`` reparam, ``switch_off``).  With SGD weight decay ``wd`` on both factors (= L2 α = wd/2 in
PAPERS.md §1's convention), m² − w² = γ₀ · exp(−2 · D) with the dose D = Σ η · wd (``wd_dose``): the
accumulated regularisation changes the mirror potential from L2-like (γ large) to L1-like (γ small).
Claims: runs with equal dose end at the same solution; more dose gives a sparser solution; the bias
persists after the switch-off (γ stays at its value, the solution stays away from the dose-0 one).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmark.reproduce import Result, register_reproduction
from benchmark.reproduce.loop import diagonal_init, plt, save_figure, sparse_regression, train_toy
from pruners import Callback, TrainState
from reparam.wd_schedule import WdSchedule


class GammaProbe(Callback):
    """Records mean m² − w² after every step, and its value when weight decay is switched off."""

    def __init__(self, record: int) -> None:
        self.record, self.trace, self.at_off, self.factor = record, [], None, 1.0

    def after_step(self, state: TrainState) -> None:
        model = state.model
        wd = float(state.optimizer.param_groups[0]["weight_decay"])
        self.factor *= (1.0 - float(state.optimizer.param_groups[0]["lr"]) * wd) ** 2
        with torch.no_grad():
            gamma = model.factors[0] ** 2 - model.linear.weight ** 2
        if wd == 0.0 and self.at_off is None:
            self.at_off = gamma.detach().clone()
        if state.step % self.record == 0:
            self.trace.append((state.step, float(gamma.mean())))


def _run(dose: float, t_off: float, X, y, x_star, lr: float, steps: int, record: int) -> dict:
    model = diagonal_init(X.shape[1], 0, scale=0.1, depth=2, init="pilot", gamma=1.0)
    wd = dose / (lr * steps * t_off) if dose > 0 else 0.0
    reparam = WdSchedule(schedule="switch_off", t_off=t_off, unit="fraction")
    reparam.validate()
    probe = GammaProbe(record)
    errs = []

    def record_error(state, done: int) -> None:
        if done % record == 0:
            with torch.no_grad():
                errs.append((done * lr, float((model.effective_weight() - x_star).norm() / x_star.norm())))

    session = train_toy(model, reparam, lambda ps: torch.optim.SGD(ps, lr=lr, weight_decay=wd), (X, y),
                        lambda out, t: ((out.reshape(-1) - t) ** 2).mean(), steps, callbacks=[probe],
                        probe=record_error)
    with torch.no_grad():
        x = model.effective_weight().detach().clone()
        gamma_T = (model.factors[0] ** 2 - model.linear.weight ** 2).reshape(-1)
        mse = float(((X @ x - y) ** 2).mean())
    wd_dose = session.callbacks[0].dose  # the reparam's own accounting Σ η · wd
    law = math.exp(-2.0 * wd_dose)
    at_off = probe.at_off.reshape(-1) if probe.at_off is not None else gamma_T
    return dict(x=x, wd=wd, wd_dose=wd_dose, gamma_law=law, gamma_mean=float(gamma_T.mean()),
                law_rel_error=float(((gamma_T - law).abs() / law).max()),
                after_off_rel_change=float(((gamma_T - at_off).abs() / at_off.abs()).max()),
                discrete_rel_error=float(((gamma_T - probe.factor).abs() / probe.factor).max()),
                mse=mse, errs=errs, trace=probe.trace,
                rel_error=float((x - x_star).norm() / x_star.norm()), l1=float(x.abs().sum()),
                active=int((x.abs() > 1e-2).sum()))


@register_reproduction(
    "mirror-wd-off", source="Mirror, Mirror of the Flow (Jacobs, Zhou, Burkholz, ICML 2025), sparse-regression toy",
    claim="x = m ⊙ w with weight decay switched off at T_off: runs with equal ∫α end at the same solution; more dose "
          "gives a sparser solution; the bias persists after switch-off")
def run(quick: bool, out_dir: Path) -> Result:
    X, y, x_star = sparse_regression(n_samples=40, n_features=100, k=5, data_seed=0)
    lr, steps, record = (0.03, 1500, 20) if quick else (0.02, 10000, 50)
    if quick:
        grid = [(0.0, 0.5), (1.0, 0.15), (2.5, 0.15), (2.5, 0.3)]
    else:
        grid = [(0.0, 0.5)] + [(d, f) for d in (1.0, 2.0, 3.0) for f in (0.1, 0.2, 0.4)]
    out = {(d, f): _run(d, f, X, y, x_star, lr, steps, record) for d, f in grid}
    rows = [dict(dose=d, t_off=f, T_off=f * steps * lr, wd=r["wd"], wd_dose=r["wd_dose"], gamma_law=r["gamma_law"],
                 gamma_mean=r["gamma_mean"], gamma_law_rel_error=r["law_rel_error"],
                 gamma_change_after_off=r["after_off_rel_change"], train_mse=r["mse"],
                 rel_error_to_x_star=r["rel_error"], l1=r["l1"], entries_above_1e_2=r["active"])
            for (d, f), r in out.items()]
    table = pd.DataFrame(rows)
    doses = sorted({d for d, _ in grid if d > 0})
    nx = float(x_star.norm())
    spread = {}
    for d in doses:
        xs = [out[(dd, f)]["x"] for dd, f in grid if dd == d]
        spread[d] = max(float((a - b).norm()) / nx for i, a in enumerate(xs) for b in xs[i + 1:]) if len(xs) > 1 else 0.0
    gap = min(float((out[(a, fa)]["x"] - out[(b, fb)]["x"]).norm()) / nx
              for a, fa in grid for b, fb in grid if a != b)
    l1_by_dose = [float(table[table.dose == d].l1.mean()) for d in [0.0, *doses]]
    x0 = out[(0.0, 0.5)]["x"]
    checks = {
        "equal dose, different T_off: solutions within 5 % of ‖x*‖ of each other, and closer than any two doses":
            all(s < 0.05 for s in spread.values() if s > 0) and max(spread.values()) < gap,
        "more dose gives a sparser solution (‖x_T‖₁ falls with the dose)": all(a > b for a, b in zip(l1_by_dose, l1_by_dose[1:])),
        "the bias persists: m² − w² changes by < 1 % (every coordinate) between the switch-off and the end":
            all(out[k]["after_off_rel_change"] < 0.01 for k in out if k[0] > 0),
        "γ law: mean m² − w² within 5 % of γ₀e^{−2D}":
            all(abs(out[k]["gamma_mean"] - out[k]["gamma_law"]) / out[k]["gamma_law"] < 0.05 for k in out),
        "the dosed solutions stay away from the dose-0 solution (> 10 % of ‖x*‖)":
            all(float((out[k]["x"] - x0).norm()) / nx > 0.10 for k in out if k[0] > 0),
    }
    verdict = all(checks.values())

    fig_path = out_dir / "mirror-wd-off.png"
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 2, figsize=(9.5, 3.6))
    for i, ((d, f), r) in enumerate(out.items()):
        color = f"C{[0.0, *doses].index(d)}"
        style = ["-", "--", ":"][[ff for dd, ff in grid if dd == d].index(f) % 3]
        e = np.array(r["errs"])
        axes[0].plot(e[:, 0], e[:, 1], style, color=color, label=f"dose {d:g}, T_off {f * steps * lr:g}")
        t = np.array(r["trace"], dtype=float)
        axes[1].plot(t[:, 0] * lr, t[:, 1], style, color=color)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("time t = Σ η")
    axes[0].set_ylabel("‖x_t − x*‖ / ‖x*‖")
    axes[0].legend(fontsize=6)
    axes[1].set_yscale("log")
    axes[1].set_xlabel("time t = Σ η")
    axes[1].set_ylabel("mean m² − w²  (γ₀ = 1)")
    save_figure(fig, fig_path)

    ours = ("max distance between equal-dose solutions / ‖x*‖: " + ", ".join(f"dose {d:g}: {s:.1e}" for d, s in spread.items())
            + f" (closest different doses: {gap:.2f}); mean ‖x_T‖₁ by dose {', '.join(f'{v:.2f}' for v in l1_by_dose)} "
            f"(‖x*‖₁ = {float(x_star.abs().sum()):.2f})")
    verdict_line = ("Holds. " if verdict else "Does not fully hold. ") + "; ".join(
        f"{k} — {'yes' if v else 'NO'}" for k, v in checks.items())
    setting = (
        f"* Data: `sparse-regression` (40 × 100, 5-sparse x*, data_seed 0), MSE.  Model: the `diagonal` factory, "
        f"depth 2, init `pilot` (x₀ ~ N(0, 0.1²), balanced split with m² − w² = γ₀ = 1; seed 0).\n"
        f"* Optimiser: full-batch SGD without momentum, lr {lr}, {steps} steps (t = {lr * steps:g}), weight decay wd on "
        f"both factors, switched off at the fraction t_off of training by the project's `wd_schedule` reparam "
        f"(`switch_off`, unit `fraction`).  For a target dose D, wd = D / (η · t_off · steps), so Σ η · wd = D.\n"
        f"* Grid (dose, t_off): {grid}.  The law is m² − w² = γ₀ · exp(−2 D) (∫α = D/2 in PAPERS.md §1's convention).\n"
        f"* `gamma_law_rel_error`: max over coordinates of |m² − w² − γ₀e^{{−2D}}| / γ₀e^{{−2D}} at the end; "
        f"`gamma_change_after_off`: max relative change of m² − w² between the switch-off and the end.")
    differences = [
        "The paper states the theory and shows the toy as figures; its step size, doses and switch-off times are not "
        "public in PAPERS.md — ours are above.",
        "Equal dose gives the same *potential* after the switch-off, but the point from which the flow continues "
        "differs (a long weak decay shrinks x differently from a short strong one), so the solutions agree only "
        "approximately; the table lists the spread.",
        "Discrete steps: the factor per step is (1 − η·wd)² instead of exp(−2η·wd), and every GD step on (m, w) "
        "multiplies m² − w² by (1 − η²(∂f/∂x)²) — visible in the dose-0 row, whose γ drifts with no weight decay at all. "
        "So the law holds for the mean up to the listed error, and per coordinate (`gamma_law_rel_error`, the max "
        "over coordinates) less tightly; PAPERS.md asks for an exact check, which only the flow satisfies.",
        *(["This is the --quick size: doses 1 and 2.5 with t_off 0.15 / 0.3, lr 0.03, 1500 steps."] if quick else []),
    ]
    return Result(table=table, figure=fig_path,
                  published="equal cumulative ∫α ends with the same bias; the bias type moves L2 → L1 with ∫α; the change "
                            "is stored after switch-off (figures, no numbers)",
                  ours=ours, verdict=verdict, verdict_line=verdict_line, setting=setting,
                  differences=differences, checks=checks)
