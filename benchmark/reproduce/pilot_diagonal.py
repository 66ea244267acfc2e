"""``pilot-diagonal``: Mask in the Mirror (Jacobs & Burkholz, ICLR 2025), Fig. 1 (PAPERS.md §3).

Underdetermined sparse regression (40 samples, 100 features, 5-sparse truth, Gaussian design, MSE)
with x = m ⊙ w.  PILoT (the project's ``pilot`` reparam: γ = 1 split, L2 strength α_t on both
factors) with a decaying schedule should reach the ground truth x*; spred (the ``spred`` reparam,
γ = 0 split) should not at any strength; L1 on x (plain x, GD with the subgradient of α_t‖x‖₁) should
be best with a constant schedule.  Metric: ‖x_T − x*‖₂ over 5 initialisations.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmark.reproduce import Result, register_reproduction
from benchmark.reproduce.loop import (diagonal_init, plt, save_figure, sparse_regression, stacked_linear,
                                      stacked_mse, train_toy)
from pruners import Callback, TrainState
from reparam.pilot import PILoT, alpha_at
from reparam.spred import Spred


class L1OnX(Callback):
    """Baseline "L1 on x": adds the subgradient α_k · sign(x) of α_k ‖x‖₁ to the gradient of the plain
    weights, with the α_k of :func:`reparam.pilot.alpha_at` (the same schedules as PILoT)."""

    def __init__(self, alpha: float, schedule: str, decay: float) -> None:
        self.alpha, self.schedule, self.decay = alpha, schedule, decay

    def before_step(self, state: TrainState) -> None:
        a = alpha_at(self.schedule, self.alpha, state.epoch + 1, self.decay)
        for p in state.model.parameters():
            if p.grad is not None:
                p.grad.add_(torch.sign(p.detach()), alpha=a)


def _train(method: str, alpha: float, schedule: str, x0: list[torch.Tensor], X, y, cfg: dict) -> tuple[torch.Tensor, list]:
    """Train the stacked runs; return the final x (R × n) and the error curve [(t, errors per run)]."""
    model = stacked_linear(x0)
    cbs: list[Callback] = []
    if method == "pilot":
        reparam = PILoT(alpha=alpha, schedule=schedule, decay=cfg["decay"], gamma=1.0)
    elif method == "spred":
        reparam = Spred(alpha=alpha, schedule=schedule, decay=cfg["decay"])
    else:  # l1 on plain x
        reparam = None
        cbs.append(L1OnX(alpha, schedule, cfg["decay"]))
    if reparam is not None:
        reparam.validate()
    lr = cfg["lr"]
    x_star = cfg["x_star"]
    with torch.no_grad():
        curve = [(0.0, (model.weight - x_star).norm(dim=1).tolist())]
    steps = cfg["steps_per_epoch"] * cfg["epochs"]

    def probe(state, done: int) -> None:   # the error before each recorded step (after the previous one)
        if done % cfg["record_every"] == 0 and done < steps:
            with torch.no_grad():
                curve.append((done * lr, (model.weight - x_star).norm(dim=1).tolist()))

    train_toy(model, reparam, lambda ps: torch.optim.SGD(ps, lr=lr), (X, y), stacked_mse, steps,
              steps_per_epoch=cfg["steps_per_epoch"], callbacks=cbs, probe=probe)
    with torch.no_grad():
        x = model.weight.detach().clone()
    curve.append((steps * lr, (x - x_star).norm(dim=1).tolist()))
    return x, curve


@register_reproduction(
    "pilot-diagonal", source="Mask in the Mirror (Jacobs & Burkholz, ICLR 2025), Fig. 1",
    claim="x = m ⊙ w on 40 × 100 sparse regression: PILoT with a decaying α schedule reaches the 5-sparse "
          "truth; spred (γ = 0) does not at any strength; L1 on x is best with a constant schedule")
def run(quick: bool, out_dir: Path) -> Result:
    X, y, x_star = sparse_regression(n_samples=40, n_features=100, k=5, data_seed=0)
    n_init = 3 if quick else 5
    strengths = [0.03, 0.1, 0.3]
    cfg = dict(lr=0.03 if quick else 0.02, decay=0.8 if quick else 0.9, steps_per_epoch=30 if quick else 100,
               epochs=60 if quick else 100, record_every=30 if quick else 200, x_star=x_star)
    x0 = [diagonal_init(100, seed, scale=0.1).linear.weight.detach() for seed in range(n_init)]
    rows, curves = [], {}
    runs = []
    if quick:  # one strength per method and schedule (the CPU-seconds size of the tests)
        grid = [("pilot", "geometric", 0.5), ("spred", "geometric", 0.5), ("l1", "geometric", 0.1),
                ("l1", "constant", 0.1)]
        strengths = sorted({a for _, _, a in grid})
    else:
        runs += [("gd on x (α = 0)", "l1", 0.0, "constant"), ("pilot α = 0", "pilot", 0.0, "constant")]
        grid = [(m, s, a) for m in ("pilot", "spred", "l1") for s in ("geometric", "constant") for a in strengths]
    runs += [(f"{m} {s} α = {a:g}", m, a, s) for m, s, a in grid]
    for label, method, a, schedule in runs:
        x, curve = _train(method, a, schedule, x0, X, y, cfg)
        err = (x - x_star).norm(dim=1) / x_star.norm()
        loss = ((X @ x.T - y.unsqueeze(1)) ** 2).mean(0)
        rows.append(dict(run=label, method=method if a > 0 else "none", schedule=schedule, alpha=a,
                         rel_error_mean=float(err.mean()), rel_error_max=float(err.max()),
                         train_mse=float(loss.mean()),
                         support_ok=float(((x.abs() > 1e-2) == (x_star.abs() > 0)).all(dim=1).double().mean())))
        curves[label] = curve
    table = pd.DataFrame(rows)

    def best(method: str, schedule: str) -> pd.Series:
        sub = table[(table.method == method) & (table.schedule == schedule)]
        return sub.loc[sub.rel_error_mean.idxmin()]

    pilot_dec, spred_best = best("pilot", "geometric"), table[table.method == "spred"].rel_error_mean.min()
    l1_const, l1_dec = best("l1", "constant"), best("l1", "geometric")
    checks = {
        "PILoT (decaying) reaches x* (relative error < 5 % for every init)": bool(pilot_dec.rel_error_max < 0.05),
        "spred misses x* at every strength (best mean relative error > 10 %)": bool(spred_best > 0.10),
        "L1 on x: constant schedule beats the decaying one": bool(l1_const.rel_error_mean < l1_dec.rel_error_mean),
    }
    verdict = all(checks.values())

    fig_path = out_dir / "pilot-diagonal.png"
    pyplot = plt()
    fig, ax = pyplot.subplots(1, 1, figsize=(6.4, 4.0))
    spred_best_row = table[table.method == "spred"].sort_values("rel_error_mean").iloc[0]
    show = {f"pilot geometric α = {pilot_dec.alpha:g}": "C0", f"pilot constant α = {pilot_dec.alpha:g}": "C1",
            str(spred_best_row.run): "C3",
            f"l1 constant α = {l1_const.alpha:g}": "C2", f"l1 geometric α = {l1_dec.alpha:g}": "C4",
            "gd on x (α = 0)": "k"}
    for label, color in show.items():
        if label not in curves:
            continue
        t = np.array([c[0] for c in curves[label]])
        e = np.array([c[1] for c in curves[label]]) / float(x_star.norm())
        ax.plot(t, e.mean(1), color=color, label=label)
        ax.fill_between(t, e.min(1), e.max(1), color=color, alpha=0.15)
    ax.set_yscale("log")
    ax.set_xlabel("time t = Σ η")
    ax.set_ylabel("‖x_t − x*‖ / ‖x*‖")
    ax.set_title(f"sparse regression 40×100, 5-sparse, {n_init} inits (band: min–max)")
    ax.legend(fontsize=7)
    save_figure(fig, fig_path)

    spred_rows = table[table.method == "spred"]
    ours = (f"PILoT geometric (α = {pilot_dec.alpha:g}): relative error {pilot_dec.rel_error_mean:.2e} mean, "
            f"{pilot_dec.rel_error_max:.2e} max; spred best over {len(spred_rows)} strength/schedule pairs: "
            f"{spred_best:.3f}; L1 on x best constant {l1_const.rel_error_mean:.3f} (α = {l1_const.alpha:g}) vs "
            f"best decaying {l1_dec.rel_error_mean:.3f}")
    verdict_line = ("All three parts hold: " if verdict else "Not all parts hold: ") + "; ".join(
        f"{k} — {'yes' if v else 'NO'}" for k, v in checks.items())
    setting = (
        f"* Data: the project's `sparse-regression` data set (n_samples = 40, n_features = 100, k = 5, noise 0, "
        f"data_seed 0): Gaussian design, x* with 5 N(0, 1) entries.  Loss: mean squared error.\n"
        f"* Initialisations: {n_init} draws x₀ ~ N(0, 0.1²) from the `diagonal` model factory (seeds 0..{n_init - 1}); "
        f"every method starts from the same x₀.\n"
        f"* PILoT: the `pilot` reparam (γ = 1 balanced split of x₀, L2 α_t(m² + w²) on both factors added to the "
        f"gradient by its callback); spred: the `spred` reparam (m = |w| = sqrt|x₀|, same α_t); L1 on x: plain x with "
        f"the subgradient α_t sign(x) added to the gradient (no project implementation — a 3-line callback here).\n"
        f"* Optimiser: full-batch GD (SGD without momentum), lr η = {cfg['lr']} (the paper: 1e-4; we take a larger "
        f"step to fit the CPU budget — the flow time t = Σ η is what matters), {cfg['epochs']} \"epochs\" × "
        f"{cfg['steps_per_epoch']} steps = t = {cfg['lr'] * cfg['epochs'] * cfg['steps_per_epoch']:g}.\n"
        f"* Schedules (`reparam.pilot.alpha_at`, k = epoch): `constant` α_k = α; `geometric` α_k = α · {cfg['decay']}^(k−1) "
        f"(the early version's 0.95^k).  Strengths α ∈ {strengths}.\n"
        f"* The R = {n_init} initialisations are trained at once as the rows of one bias-free linear layer (the "
        f"depth-1 `diagonal` model stacked); the loss is the sum of the rows' own MSEs, so every row gets "
        f"exactly its own gradient.\n"
        f"* \"Reaches the truth\": relative error ‖x_T − x*‖/‖x*‖ < 5 % for every initialisation; `support_ok` is the "
        f"fraction of inits whose entries above 1e-2 are exactly the support of x*.")
    differences = [
        *(["This is the --quick size: one strength per method and schedule (no spred constant run), 3 initialisations, lr 0.03, "
           "decay 0.8 per 30 steps, t = 54."]
          if quick else []),
        "The paper plots ‖x_t − x*‖ curves for its own α grid and schedule constants, which are not public; we "
        "compare the best strength per method and schedule on our grid, so \"at any strength\" means \"at any strength "
        f"of {strengths}\".",
        f"Step size {cfg['lr']} instead of 1e-4 (a 100× shorter run in steps); the dynamics are those of the flow up to "
        "O(η) effects — we checked no run diverged (train MSE in the table).",
        *([f"L1 on x with the decaying schedule reaches x* here (best relative error {l1_dec.rel_error_mean:.1e} at "
           f"α = {l1_dec.alpha:g}), better than any constant strength: with a slow decay (factor {cfg['decay']} per "
           f"{cfg['steps_per_epoch']} steps) GD tracks the lasso path, whose λ → 0 limit is the minimum-L1 interpolant "
           "(= x* on this problem) — a continuation method.  The published figure's decaying schedules may decay "
           "faster (at the --quick size, factor 0.8 per 30 steps, the decaying L1 run stops far from x* and the "
           "constant one wins), so this part of the claim depends on the decay speed, which is not public."]
          if not checks["L1 on x: constant schedule beats the decaying one"] else []),
        "spred fails here for a structural reason: with γ = 0 the sign of each x_i is fixed by its initialisation "
        "(x_t = x₀ ⊙ exp(…) under the flow), so a support entry initialised with the wrong sign can never reach "
        "x*; its error does not depend much on α.",
    ]
    return Result(table=table, figure=fig_path,
                  published="PILoT with a decaying schedule reaches x*; spred (γ = 0) cannot at any strength; "
                            "L1 on x is best with a constant schedule (figures only, no numbers)",
                  ours=ours, verdict=verdict, verdict_line=verdict_line, setting=setting,
                  differences=differences, checks=checks, diagnosis="" if verdict else DIAGNOSIS)


DIAGNOSIS = (
    "What was checked: PILoT's update against its formula (L2 α_t(m² + w²) on both factors, the dose ∫α and "
    "γ_t = γ₀ exp(−4∫α); tests/reparam/test_pilot.py), spred's γ = 0 split, the toy against PAPERS.md §3 (40 × 100 "
    "Gaussian design, 5-sparse truth, MSE, 5 initialisations; our step 0.02 instead of 1e-4 at the same flow time), "
    "and the check against the claim.\n\n"
    "What was found: the PILoT and spred parts hold.  The L1-on-x part fails because of the schedule, not the "
    "method: our decaying schedule loses a factor 0.9 per 100 steps, so over t = 200 it lowers α by 4 orders of "
    "magnitude slowly enough that L1 on x follows the regularisation path down to the minimum-L1 interpolant, which "
    "is x* on this problem (a continuation method) — it then beats every constant strength.  The paper asks for a "
    "strong, fast-decaying schedule, under which the explicit penalty is gone before x is sparse while PILoT keeps "
    "the bias in γ; with our slow decay the comparison cannot separate the two.\n\n"
    "What would settle it: the paper's schedule constants (α₀ and the decay per step at its step 1e-4, e.g. "
    "0.95^k per step), run on this toy with a strength large enough that PILoT's dose is reached within the first "
    "few hundred steps.  Not run in this session (CPU budget); the schedule speed is a hyperparameter "
    "(`decay`) of the reproduction.")
