"""``ham-regression``: Hyperbolic Aware Minimization (Jacobs, Gadhikar, Rubio-Madrigal, Burkholz, ICLR 2026)
on the sparse-regression toy (PAPERS.md §4).

GD + HAM has the limit flow dθ = −(1 + α|θ|) ∇f dt: its implicit bias moves from L2 (α = 0, plain GD)
to L1-like as α grows, while the inverse metric stays ≥ 1, so weights near zero move at GD's speed.
x = m ⊙ w with the γ-split has the inverse metric sqrt(4x² + γ²) = γ·sqrt(1 + (2|x|/γ)²) — for
γ = 2/α the same shape as HAM's up to the factor γ: the same kind of bias, but slowed down by γ near
zero.  We compare GD, GD + HAM (the project's ``ham`` wrapper) for growing α and m ⊙ w (the ``pilot``
reparam with α_PILoT = 0 and split target γ = 2/α) on the PILoT problem.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmark.reproduce import Result, register_reproduction
from benchmark.reproduce.loop import (diagonal_init, plt, save_figure, sparse_regression, stacked_linear,
                                      stacked_mse, train_toy)
from reparam.ham import HAM
from reparam.pilot import PILoT


def _train(kind: str, alpha: float, x0, X, y, x_star, h_max: float, max_time: float, tol: float,
           record: int) -> dict:
    """Train until the mean train MSE < tol · initial or the flow time reaches ``max_time``."""
    model = stacked_linear(x0)
    x_max = float(x_star.abs().max())
    if kind == "ham":
        reparam, metric = HAM(alpha=alpha, beta=0.0), 1.0 + alpha * x_max
    elif kind == "m⊙w":
        gamma = 2.0 / alpha
        reparam, metric = PILoT(alpha=0.0, gamma=gamma), math.sqrt(4 * x_max ** 2 + gamma ** 2)
    else:
        reparam, metric = None, 1.0
    if reparam is not None:
        reparam.validate()
    lr = min(0.05, 1.0 / (h_max * metric))  # half the stability limit 2 / (H · M) at the solution's scale
    max_steps = int(math.ceil(max_time / lr))
    with torch.no_grad():
        loss0 = float(stacked_mse(model(X), y)) / len(x0)
    t_fit, curve, loss = None, [], loss0

    def probe(state, steps: int) -> bool:
        nonlocal t_fit, loss
        loss = float(state.loss) / len(x0)
        t = steps * lr
        if t_fit is None and loss < 1e-3 * loss0:
            t_fit = t
        if steps % record == 0:
            with torch.no_grad():
                curve.append((t, float((model.weight - x_star).norm(dim=1).mean() / x_star.norm()), loss))
        return loss < tol * loss0

    steps = train_toy(model, reparam, lambda ps: torch.optim.SGD(ps, lr=lr), (X, y), stacked_mse, max_steps,
                      probe=probe).state.step
    with torch.no_grad():
        x = model.weight.detach().clone()
    err = (x - x_star).norm(dim=1) / x_star.norm()
    return dict(x=x, lr=lr, steps=steps, t_fit=t_fit, t_end=steps * lr, curve=curve,
                rel_error=float(err.mean()), l1_ratio=float((x.abs().sum(1) / x_star.abs().sum()).mean()),
                final_mse=loss)


@register_reproduction(
    "ham-regression", source="Hyperbolic Aware Minimization (Jacobs et al., ICLR 2026), §3 / limit flow; "
                             "sparse-regression toy of Mask in the Mirror",
    claim="on 40 × 100 sparse regression, GD + HAM moves from the L2 to an L1-like solution as α grows, without "
          "the slow-down of m ⊙ w near zero (compare GD, GD + HAM, m ⊙ w)")
def run(quick: bool, out_dir: Path) -> Result:
    X, y, x_star = sparse_regression(n_samples=40, n_features=100, k=5, data_seed=0)
    n_init = 2 if quick else 5
    alphas = [4.0] if quick else [1.0, 4.0, 16.0, 64.0]
    h_max = float(torch.linalg.eigvalsh(2.0 * X.T @ X / X.shape[0]).max())
    x0 = [diagonal_init(100, seed, scale=1e-3).linear.weight.detach() for seed in range(n_init)]
    tol, max_time = (1e-6, 60.0) if quick else (1e-8, 400.0)
    record = 20 if quick else 50
    out = {"gd": _train("gd", 0.0, x0, X, y, x_star, h_max, max_time, tol, record)}
    for a in alphas:
        out[f"gd+ham α={a:g}"] = _train("ham", a, x0, X, y, x_star, h_max, max_time, tol, record)
        out[f"m⊙w γ={2 / a:g}"] = _train("m⊙w", a, x0, X, y, x_star, h_max, max_time, tol, record)
    rows = []
    for label, r in out.items():
        rows.append(dict(run=label, lr=r["lr"], steps=r["steps"], t_fit=r["t_fit"] if r["t_fit"] is not None else float("nan"),
                         final_train_mse=r["final_mse"], rel_error=r["rel_error"], l1_over_l1_star=r["l1_ratio"]))
    table = pd.DataFrame(rows)
    gd = out["gd"]
    hams = [out[f"gd+ham α={a:g}"] for a in alphas]
    mws = [out[f"m⊙w γ={2 / a:g}"] for a in alphas]
    errs = [gd["rel_error"]] + [h["rel_error"] for h in hams]
    l1s = [gd["l1_ratio"]] + [h["l1_ratio"] for h in hams]

    def tf(r: dict) -> float:
        return r["t_fit"] if r["t_fit"] is not None else float("inf")

    checks = {
        "HAM's L1 norm and error to x* fall as α grows (α = 0 is GD)":
            all(a > b for a, b in zip(l1s, l1s[1:])) and all(a > b for a, b in zip(errs, errs[1:])),
        "largest α is L1-like: error to x* below half of GD's": hams[-1]["rel_error"] < 0.5 * gd["rel_error"],
        "no slow-down: HAM fits (MSE < 1e-3 × initial) in at most GD's flow time": all(tf(h) <= tf(gd) * 1.05 for h in hams),
        # the slow-down of m ⊙ w near zero is the regime γ < 1 (for γ ≥ 1 its inverse metric is ≥ 1 as well)
        "m ⊙ w with the matching γ = 2/α < 1 needs over 2× HAM's flow time to fit":
            all(tf(m) > 2 * tf(h) for a, m, h in zip(alphas, mws, hams) if 2 / a < 1),
    }
    verdict = all(checks.values())

    fig_path = out_dir / "ham-regression.png"
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 2, figsize=(9.0, 3.6))
    for i, (label, r) in enumerate(out.items()):
        c = np.array(r["curve"])
        if not len(c):
            continue
        style = "-" if label.startswith("gd+ham") else ("--" if label.startswith("m⊙w") else ":")
        axes[0].plot(c[:, 0], c[:, 1], style, label=label, color=f"C{i}")
        axes[1].plot(c[:, 0], c[:, 2] / c[0, 2], style, label=label, color=f"C{i}")
    axes[0].set_ylabel("‖x_t − x*‖ / ‖x*‖ (mean over inits)")
    axes[1].set_ylabel("train MSE / initial")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("flow time t = Σ η")
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=7)
    save_figure(fig, fig_path)

    last = alphas[-1]
    ours = (f"relative error to x*: GD {gd['rel_error']:.3f} → " + ", ".join(
        f"HAM α={a:g} {h['rel_error']:.3f}" for a, h in zip(alphas, hams)) +
        f"; flow time to fit: GD {tf(gd):.2f}, HAM α={last:g} {tf(hams[-1]):.2f}, m⊙w γ={2 / last:g} {tf(mws[-1]):.2f}")
    verdict_line = ("Holds: " if verdict else "Does not fully hold: ") + "; ".join(
        f"{k} — {'yes' if v else 'NO'}" for k, v in checks.items())
    setting = (
        f"* Data: `sparse-regression` (40 × 100, 5-sparse x*, data_seed 0), mean squared error; {n_init} "
        f"initialisations x₀ ~ N(0, 1e-3²) from the `diagonal` factory (seeds 0..{n_init - 1}), trained at once as the "
        f"rows of one bias-free linear layer (summed per-row losses).\n"
        f"* GD: full-batch SGD without momentum.  GD + HAM: the project's `ham` reparam wrapping that SGD (α ∈ "
        f"{alphas}, β = 0, the wrapper's defaults otherwise: clamp ±5, max-norm 1000, zeros kept).  m ⊙ w: the `pilot` "
        f"reparam with α_PILoT = 0 and split target γ = 2/α (the m ⊙ w flow whose metric has HAM's shape, scaled by γ).\n"
        f"* Step size per run: η = min(0.05, 1/(H·M)) with H = {h_max:.2f} the largest eigenvalue of the loss Hessian "
        f"in x and M the method's inverse metric at |x| = max|x*| (half the GD stability limit) — each method runs "
        f"at its own stable step, so we compare flow times t = Σ η, and list the steps.\n"
        f"* A run stops when the train MSE falls below {tol:g} × its initial value or at t = {max_time:g}; `t_fit` is the "
        f"flow time at which the MSE first falls below 1e-3 × initial.  `l1_over_l1_star` = ‖x_T‖₁ / ‖x*‖₁.")
    differences = [
        "HAM's paper states the flow and its implicit bias (L2 → L1 with α) and demonstrates it on networks; the "
        "regression comparison here is our construction on the PILoT problem (the brief's setting), so there is "
        "no published number to match.",
        "The no-slow-down claim is about flow time.  In *steps* the picture is different: at the large entries of x "
        "HAM's inverse metric 1 + α|x| is as large as that of m ⊙ w divided by γ, so a stable HAM step must be about "
        "γ times smaller and the step counts of HAM and m ⊙ w come out comparable (see `steps`).  The HAM wrapper's "
        "exponent clamp (±5) did not bind at these step sizes.",
        "For α = 1 the matching m ⊙ w has γ = 2 > 1: its inverse metric is ≥ 2 everywhere and it is *faster* than "
        "HAM — the slow-down claim concerns the L1-like regime γ < 1, so the timing check only uses α > 2.",
        "m ⊙ w with γ = 2/α is not the same implicit bias as HAM(α) (the potentials differ beyond the local metric "
        "shape), so its final error is listed rather than assumed equal.",
        *(["This is the --quick size: one α = 4, 2 initialisations, stop at MSE < 1e-6 × initial."] if quick else []),
    ]
    return Result(table=table, figure=fig_path,
                  published="limit flow dθ = −(1 + α|θ|)∇f: L2-like bias for small α, L1-like for large α, inverse "
                            "metric ≥ 1 (no slow-down at 0, unlike m ⊙ w); no regression numbers published",
                  ours=ours, verdict=verdict, verdict_line=verdict_line, setting=setting,
                  differences=differences, checks=checks)
