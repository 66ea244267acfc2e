"""``signin-neuron``: Sign-In to the Lottery (Gadhikar*, Jacobs*, Zhou, Burkholz, NeurIPS 2025), the
single-hidden-neuron theory (Thms 5.1–5.4; PAPERS.md §2).

Teacher f*(x) = relu(x) (a* = 1, w* = 1, d = 1); student f(x) = a relu(w x) started in one of the four
sign cases (sign a₀, sign w₀).  Claim: gradient flow recovers the teacher only from (+, +); Sign-In
also from (a < 0, w > 0); nothing recovers w < 0 (at w = 0 the ReLU is dead on the teacher's side).

Mechanism as we understand it: for a ReLU neuron, a ∂L/∂a = w ∂L/∂w, so under any flow whose inverse
metric acts per parameter, dθ = −h(θ) ∇L, the quantity G(a) − G(w) with G'(x) = x / h(x) is
conserved.  From (−, +), a must reach 0 before w does: gradient flow (h = 1, G = x²/2) does iff
|a₀| < |w₀|.  Sign-In's θ = m ⊙ w flow has h = sqrt(4θ² + γ²) and G(x) = (sqrt(4x² + γ²) − γ)/4 —
if *both* a and w are reparameterised the condition is again |a₀| < |w₀|; if only the outer weight
a is, a crosses first iff G(|a₀|) < w₀²/2, a strictly larger set; with per-layer targets γ_a > γ_w
(Sign-In's ``layer_gamma``) a crosses first iff G_{γ_a}(|a₀|) < G_{γ_w}(w₀), also strictly larger — the
theorem's case.  We run all three.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from benchmark.reproduce import Result, register_reproduction
from benchmark.reproduce.loop import plt, save_figure, train_toy
from reparam.signin import SignIn

CASES = [(1, 1), (-1, 1), (1, -1), (-1, -1)]
#: Sign-In with per-layer split targets: the outer weight a gets γ_a = OUTER_GAMMA, the inner w γ_w = 1
PER_LAYER = "Sign-In (per-layer γ: γ_a = 4, γ_w = 1)"
OUTER_GAMMA = 4.0


def _students(mags: list[float], mags_w: list[float]):
    """The project's ``teacher-student`` model (width R = 4 · len(mags) · len(mags_w), float64) whose hidden unit r is
    one independent student (a_r, w_r); returns the model and the (sign case, |a₀|, |w₀|) of each unit.
    The |a₀| and |w₀| grids share no value, so no initialisation lies on gradient flow's boundary |a₀| = |w₀|
    (a saddle where floating-point rounding decides the outcome)."""
    from benchmark.tasks import MODELS

    combos = [(case, ma, mw) for case in CASES for ma, mw in itertools.product(mags, mags_w)]
    model = MODELS.get("teacher-student")((1,), 1, width=len(combos), antisymmetric=False).double()
    with torch.no_grad():
        for r, ((sa, sw), ma, mw) in enumerate(combos):
            model.out.weight[0, r] = sa * ma
            model.hidden.weight[r, 0] = sw * mw
    return model, combos


class PerUnit(nn.Module):
    """The students side by side: output column r is a_r relu(w_r x), unit r's own prediction."""

    def __init__(self, students: nn.Module) -> None:
        super().__init__()
        self.students = students

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.students.hidden(x)) * self.students.out.weight  # (n, R)


def per_unit_loss(preds: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Σ_r mean_i (a_r relu(w_r x_i) − y_i)²: every hidden unit is its own single-neuron student."""
    return ((preds - y) ** 2).mean(0).sum()


def _run(method: str, mags, mags_w, data, lr: float, steps: int, reset_every_steps: int):
    model, combos = _students(mags, mags_w)
    reparam = None
    if method != "gradient flow":
        layer_gamma = {"students.out.weight": OUTER_GAMMA} if method == PER_LAYER else {}
        reparam = SignIn(reset_every=1, gamma=1.0, reset_state="zero", layer_gamma=layer_gamma)
        reparam.validate()
        if method == "Sign-In (outer weight a only)":
            model.hidden.sparsebench_prunable = False  # the reparam factorises only the prunable out.weight
    x, y = data.train_x.double(), data.train_y.double()
    train_toy(PerUnit(model), reparam, lambda ps: torch.optim.SGD(ps, lr=lr), (x, y), per_unit_loss,
              steps, steps_per_epoch=reset_every_steps)
    tx, ty = data.test_x.double(), data.test_y.double()
    with torch.no_grad():
        a = model.out.weight.detach().reshape(-1)
        w = model.hidden.weight.detach().reshape(-1)
        test = ((torch.relu(tx @ w.unsqueeze(0)) * a - ty) ** 2).mean(0)
    recovered = (test < 1e-3 * float((ty ** 2).mean())).tolist()
    return [dict(method=method, sign_a0="+" if c[0] > 0 else "−", sign_w0="+" if c[1] > 0 else "−",
                 a0=c[0] * ma, w0=c[1] * mw, a_T=float(a[i]), w_T=float(w[i]), test_mse=float(test[i]),
                 recovered=bool(recovered[i])) for i, (c, ma, mw) in enumerate(combos)]


def _g(x: float, gamma: float = 1.0) -> float:
    return (float(np.sqrt(4 * x * x + gamma * gamma)) - gamma) / 4


@register_reproduction(
    "signin-neuron", source="Sign-In to the Lottery (Gadhikar, Jacobs, Zhou, Burkholz, NeurIPS 2025), Thms 5.1–5.4",
    claim="single hidden neuron f(x) = a σ(w x), four sign cases of the initialisation: gradient flow recovers the "
          "teacher only from (+, +); Sign-In also from (a < 0, w > 0); nothing recovers w < 0")
def run(quick: bool, out_dir: Path) -> Result:
    from benchmark.tasks import load_data

    data = load_data("teacher-student", d=1, n_train=200, n_test=1000, teacher_neurons=((1.0, 1.0),), data_seed=0)
    mags = [0.5, 1.0, 2.0] if quick else [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0]
    mags_w = [0.4, 0.9, 1.6] if quick else [0.2, 0.4, 0.65, 0.9, 1.1, 1.4, 1.8]
    lr, steps, per_epoch = (0.05, 800, 20) if quick else (0.02, 10000, 50)
    methods = ["gradient flow", PER_LAYER, "Sign-In (both layers)", "Sign-In (outer weight a only)"]
    rows = [r for m in methods for r in _run(m, mags, mags_w, data, lr, steps, per_epoch)]
    df = pd.DataFrame(rows)
    table = (df.groupby(["method", "sign_a0", "sign_w0"], sort=False)["recovered"]
             .agg(recovered="sum", of="count").reset_index())
    table["fraction"] = table["recovered"] / table["of"]

    def frac(method: str, sa: str, sw: str) -> float:
        t = table[(table.method == method) & (table.sign_a0 == sa) & (table.sign_w0 == sw)]
        return float(t.fraction.iloc[0])

    neg_pos = df[(df.sign_a0 == "−") & (df.sign_w0 == "+")]
    gf = neg_pos[neg_pos.method == "gradient flow"].set_index(["a0", "w0"]).recovered
    both = neg_pos[neg_pos.method == "Sign-In (both layers)"].set_index(["a0", "w0"]).recovered
    outer = neg_pos[neg_pos.method == "Sign-In (outer weight a only)"].set_index(["a0", "w0"]).recovered
    layer = neg_pos[neg_pos.method == PER_LAYER].set_index(["a0", "w0"]).recovered
    # the conservation-law predictions (module docstring) for the (−, +) case
    pred_gf = pd.Series({k: abs(k[0]) < abs(k[1]) for k in gf.index})
    pred_outer = pd.Series({k: _g(abs(k[0])) < k[1] ** 2 / 2 for k in outer.index})
    pred_layer = pd.Series({k: _g(abs(k[0]), OUTER_GAMMA) < _g(k[1], 1.0) for k in layer.index})
    checks = {
        "gradient flow recovers every (+, +) initialisation": frac("gradient flow", "+", "+") == 1.0,
        "gradient flow fails on (−, +) wherever |a₀| ≥ |w₀|": not any(gf[[k for k in gf.index if abs(k[0]) >= abs(k[1])]]),
        "Sign-In with the outer weight's γ larger (per-layer γ) recovers (−, +) initialisations gradient flow cannot":
            bool((layer & ~gf).any()),
        "Sign-In with one γ on both weights recovers the same (−, +) set as gradient flow (the conserved quantity is "
        "the same)": bool((both == gf).all()),
        "Sign-In on the outer weight only recovers (−, +) initialisations gradient flow cannot":
            bool((outer & ~gf).any()),
        "no method recovers w₀ < 0": not bool(df[df.sign_w0 == "−"].recovered.any()),
    }
    consistent = (bool((pred_gf == gf).all()) and bool((pred_outer.reindex(outer.index) == outer).all())
                  and bool((pred_layer.reindex(layer.index) == layer).all()))
    verdict = all(checks.values())

    fig_path = out_dir / "signin-neuron.png"
    pyplot = plt()
    fig, axes = pyplot.subplots(1, len(methods), figsize=(3.5 * len(methods), 3.6), sharey=True)
    for ax, m in zip(axes, methods):
        sub = neg_pos[neg_pos.method == m]
        ok = sub[sub.recovered]
        bad = sub[~sub.recovered]
        ax.scatter(-ok.a0, ok.w0, marker="o", color="C2", label="recovered")
        ax.scatter(-bad.a0, bad.w0, marker="x", color="C3", label="not recovered")
        grid = np.linspace(0, max(mags + mags_w) * 1.05, 200)
        ax.plot(grid, grid, "k:", lw=0.8, label="|a₀| = |w₀|")
        ax.plot(grid, [np.sqrt(2 * _g(v)) for v in grid], "b--", lw=0.8, label="G(|a₀|) = w₀²/2")
        ax.plot(grid, [np.sqrt(((4 * _g(v, OUTER_GAMMA) + 1) ** 2 - 1) / 4) for v in grid], "g-.", lw=0.8,
                label="G₄(|a₀|) = G₁(w₀)")
        ax.set_title(m, fontsize=9)
        ax.set_xlabel("|a₀| (a₀ < 0)")
    axes[0].set_ylabel("w₀ > 0")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle("(a₀ < 0, w₀ > 0): which initialisations recover the teacher relu(x)", fontsize=10)
    save_figure(fig, fig_path)

    fr = {m: frac(m, "−", "+") for m in methods}
    ours = (f"(+, +) recovered by gradient flow {frac('gradient flow', '+', '+'):.0%}; (−, +): gradient flow "
            f"{fr['gradient flow']:.0%}, Sign-In with per-layer γ (γ_a = {OUTER_GAMMA:g}, γ_w = 1) {fr[PER_LAYER]:.0%}, "
            f"Sign-In with one γ on every weight {fr['Sign-In (both layers)']:.0%}, Sign-In on a only "
            f"{fr['Sign-In (outer weight a only)']:.0%}; w₀ < 0: "
            f"{int(df[df.sign_w0 == '−'].recovered.sum())} of {int((df.sign_w0 == '−').sum())} runs recovered")
    verdict_line = ("Holds. " if verdict else "Does not hold as stated. ") + "; ".join(
        f"{k} — {'yes' if v else 'NO'}" for k, v in checks.items()) + (
        ". The recovered sets match the conservation-law predictions of the module docstring exactly."
        if consistent else ". Some runs deviate from the conservation-law predictions (discrete steps / finite time).")
    setting = (
        f"* Data: the project's `teacher-student` data set with d = 1, teacher_neurons = [[1, 1]] (f*(x) = relu(x)), "
        f"200 training inputs x ~ N(0, 1), 1000 test inputs, data_seed 0; loss MSE.\n"
        f"* Students: the `teacher-student` model (no antisymmetry) whose R = 4 × {len(mags)} × {len(mags_w)} hidden units are R "
        f"independent single-neuron students f_r(x) = a_r relu(w_r x), each with its own loss (the per-unit losses are "
        f"summed, so no unit sees another's gradient).  Initialisations: every sign case × |a₀| ∈ {mags} × |w₀| ∈ {mags_w} (the grids share no "
        f"value: on the boundary |a₀| = |w₀| gradient flow runs into the saddle (0, 0) and rounding decides).\n"
        f"* Gradient flow: full-batch GD, lr {lr}, {steps} steps (t = {lr * steps:g}).  Sign-In: the project's `signin` "
        f"reparam (θ = m ⊙ w, γ = 1 split, re-split every epoch = {per_epoch} steps, momentum state zeroed — there is "
        f"none) on the same GD.  \"per-layer γ\" splits a with γ_a = {OUTER_GAMMA:g} and w with γ_w = 1 (the `signin` "
        f"hyperparameter `layer_gamma = {{\"students.out.weight\": {OUTER_GAMMA:g}}}`); \"both layers\" uses γ = 1 on every prunable "
        f"weight; \"outer weight a only\" marks the hidden layer non-prunable so only a = m ⊙ w.  No weight decay.\n"
        f"* Recovered: test MSE < 1e-3 × E[y²].  Published: theorems, no numbers.")
    differences = [
        "The paper's exact theorem assumptions (input distribution, initialisation scale, which weights Sign-In "
        "reparameterises, weight decay) are not in PAPERS.md and were not checked against the paper's text; the "
        "setting above is our choice.",
        "With Sign-In on *both* a and w and no weight decay, a ∂L/∂a = w ∂L/∂w makes G(a) − G(w) a conserved "
        "quantity with the same G for both weights, so the (−, +) initialisations that recover are exactly those of "
        "gradient flow (|a₀| < |w₀|); the resets change nothing in θ because γ is conserved up to O(η²).  This is why "
        "the one-γ variant recovers nothing more.  The theorem's case needs the scalings to differ by layer with the "
        "outer weight's larger: with γ_a > γ_w, a crosses zero first iff G_{γ_a}(|a₀|) < G_{γ_w}(w₀), a strictly larger "
        "set — which is what the per-layer variant shows and the check asks of Sign-In.",
        "No variant recovers every (−, +) initialisation on our grid (large |a₀| with small |w₀| still fails); the "
        "recovered set grows with γ_a / γ_w.",
        *(["This is the --quick size: |a₀| ∈ {0.5, 1, 2}, |w₀| ∈ {0.4, 0.9, 1.6}, lr 0.05, 800 steps."] if quick else []),
    ]
    table = table.merge(pd.DataFrame([
        dict(method=m, sign_a0="−", sign_w0="+", predicted=int(p.sum()))
        for m, p in (("gradient flow", pred_gf), ("Sign-In (both layers)", pred_gf), (PER_LAYER, pred_layer),
                     ("Sign-In (outer weight a only)", pred_outer))]), how="left", on=["method", "sign_a0", "sign_w0"])
    table["predicted"] = table["predicted"].astype("Int64")
    return Result(table=table, figure=fig_path,
                  published="theorems: gradient flow recovers only (+, +); Sign-In also (a < 0, w > 0); no continuous "
                            "reparameterisation recovers w < 0",
                  ours=ours, verdict=verdict, verdict_line=verdict_line, setting=setting, differences=differences,
                  checks=checks, diagnosis=DIAGNOSIS)


DIAGNOSIS = (
    "What was checked: the Sign-In step against its formula (the balanced split m² − w² = γ at initialisation and "
    "after every reset, θ unchanged; tests/reparam/test_factorized.py), the toy against the theorem's setting (one "
    "ReLU neuron, teacher relu(x), the four sign cases), and the check against the claim.\n\n"
    "What was found: the earlier page applied one γ to both weights.  For a ReLU neuron a ∂L/∂a = w ∂L/∂w, so "
    "under any per-parameter metric h the quantity G(a) − G(w) with G' = x / h is conserved; with the same h on "
    "both weights and no weight decay the reparameterised flow recovers exactly the (a < 0, w > 0) "
    "initialisations that gradient flow does (|a₀| < |w₀|), and the check \"Sign-In recovers more\" could not "
    "pass in that model.  The theorem's mechanism needs the outer weight's scaling larger.  Sign-In now has a "
    "per-layer split target (`layer_gamma`), and with γ_a = 4, γ_w = 1 the recovered set is strictly larger than "
    "gradient flow's and equal, initialisation by initialisation, to the conservation-law prediction "
    "G_{γ_a}(|a₀|) < G_{γ_w}(w₀).\n\n"
    "What would settle it: the paper's own constants for the two scalings (PAPERS.md does not give them) — the "
    "recovered share of the (−, +) case grows with γ_a / γ_w, so the published statement is qualitative.")
