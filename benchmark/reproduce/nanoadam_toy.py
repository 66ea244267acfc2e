"""``nanoadam-toy``: Pay Attention to Small Weights (Zhou, Jacobs, Gadhikar, Burkholz, NeurIPS 2025),
the teacher-student fine-tuning toy (PAPERS.md §5).

A 20-neuron student f = Σ aᵢ relu(wᵢ · x) (the project's ``teacher-student`` model: antisymmetric
init aᵢ = −a_{i+10}, entries N(0, 1/20)) is pretrained by GD on a 2-neuron ReLU teacher in 2-d
(the ``teacher-student`` data set), then fine-tuned on the teacher plus one extra neuron while only a
fraction ``density`` of the entries of each layer is updated: either the smallest |θ| (NanoAdam's
selection, :func:`reparam.nanoadam.bottom_k_indices`) or the largest |∇| (the baseline).  Published
(10 seeds): small weights reach test loss 0.0094 ± 0.012 with ℓ2 parameter shift 0.027; large
gradients 0.017 ± 0.015 with shift 0.057.

The toy's update is plain GD on the selected entries (PAPERS.md: "10k steps lr 1"), not Adam; the
seeds are trained at once as a batch of independent students (stacked weights, summed per-seed
losses), each initialised by the ``teacher-student`` factory with its own seed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmark.reproduce import Result, register_reproduction
from benchmark.reproduce.loop import plt, save_figure
from benchmark.tasks.datasets import DEFAULT_TEACHER
from reparam.nanoadam import bottom_k_indices

#: The extra teacher neuron of the fine-tuning task (PAPERS.md leaves it open): output weight 1, a unit
#: vector into the third quadrant, where neither pretrained teacher neuron is active.
EXTRA_NEURON = (1.0, -0.7071067811865476, -0.7071067811865476)


def _students(seeds: list[int], width: int) -> list[torch.Tensor]:
    """Stacked (S, width, 2) hidden and (S, width) output weights from the ``teacher-student`` factory."""
    from benchmark.tasks import MODELS

    hidden, out = [], []
    for s in seeds:
        torch.manual_seed(s)
        m = MODELS.get("teacher-student")((2,), 1, width=width).double()
        hidden.append(m.hidden.weight.detach().clone())
        out.append(m.out.weight.detach().reshape(-1).clone())
    return [torch.stack(hidden).requires_grad_(True), torch.stack(out).requires_grad_(True)]


def _forward(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    W, a = params
    return torch.einsum("sni,si->sn", torch.relu(torch.einsum("sij,nj->sni", W, x)), a)


def _loss(params, x, y) -> torch.Tensor:
    """Σ_seeds ½ mean_i (f_s(x_i) − y_i)² (the ½ convention of the theory papers; with plain MSE the
    published lr 2 diverges)."""
    return 0.5 * ((_forward(params, x) - y.reshape(1, -1)) ** 2).mean(1).sum()


def _per_seed_loss(params, x, y) -> torch.Tensor:
    """Test loss per seed: ½ mean squared error (the training loss' convention)."""
    with torch.no_grad():
        return 0.5 * ((_forward(params, x) - y.reshape(1, -1)) ** 2).mean(1)


def _select(kind: str, p: torch.Tensor, g: torch.Tensor, density: float) -> torch.Tensor:
    """Flat indices into ``p`` (S × per-seed entries) of the entries to update, per seed and layer."""
    per = p[0].numel()
    if kind == "small weights":
        return bottom_k_indices(p.detach(), density, chunk_size=per)  # NanoAdam's selection, one chunk per seed
    k = int(np.ceil(density * per - 1e-9))
    top = g.detach().abs().reshape(p.shape[0], per).topk(k, dim=1).indices
    return (top + torch.arange(p.shape[0]).unsqueeze(1) * per).reshape(-1)


def _gd(params, x, y, lr: float, steps: int, select: str | None = None, density: float = 1.0) -> None:
    for _ in range(steps):
        for p in params:
            p.grad = None
        _loss(params, x, y).backward()
        with torch.no_grad():
            for p in params:
                if select is None:
                    p.sub_(lr * p.grad)
                else:
                    idx = _select(select, p, p.grad, density)
                    flat = p.view(-1)
                    flat.index_add_(0, idx, -lr * p.grad.reshape(-1).index_select(0, idx))


@register_reproduction(
    "nanoadam-toy", source="Pay Attention to Small Weights (Zhou, Jacobs, Gadhikar, Burkholz, NeurIPS 2025), "
                           "teacher-student toy",
    claim="teacher-student fine-tuning (2 → 3 teacher neurons, 20-neuron student): updating the smallest weights "
          "beats updating the largest gradients on test loss and parameter shift (published 0.0094 vs 0.017)")
def run(quick: bool, out_dir: Path) -> Result:
    from benchmark.tasks import load_data

    seeds = list(range(3 if quick else 10))
    pre_steps, ft_steps = (1000, 1000) if quick else (10000, 10000)
    pre_lr, ft_lr, density, width = 2.0, 1.0, 0.2, 20
    pre = load_data("teacher-student", d=2, n_train=100, n_test=1000, teacher_neurons=DEFAULT_TEACHER, data_seed=0)
    ft = load_data("teacher-student", d=2, n_train=100, n_test=1000,
                   teacher_neurons=(*DEFAULT_TEACHER, EXTRA_NEURON), data_seed=0)
    x, tx = pre.train_x.double(), pre.test_x.double()
    params = _students(seeds, width)
    _gd(params, x, pre.train_y.double(), pre_lr, pre_steps)
    pre_test = _per_seed_loss(params, tx, pre.test_y.double())
    start = [p.detach().clone() for p in params]
    rows, results = [], {}
    for kind in ("small weights", "large gradients", "full"):
        ps = [p.detach().clone().requires_grad_(True) for p in start]
        _gd(ps, x, ft.train_y.double(), ft_lr, ft_steps, None if kind == "full" else kind, density)
        test = _per_seed_loss(ps, tx, ft.test_y.double())
        shift = torch.sqrt(sum(((p.detach() - s) ** 2).reshape(len(seeds), -1).sum(1) for p, s in zip(ps, start)))
        results[kind] = (test, shift)
        rows.append(dict(update=kind, density=density if kind != "full" else 1.0, test_loss_mean=float(test.mean()),
                         test_loss_std=float(test.std()), l2_shift_mean=float(shift.mean()),
                         l2_shift_std=float(shift.std()), seeds=len(seeds)))
    rows.append(dict(update="pretrained (before fine-tuning)", density=0.0,
                     test_loss_mean=float(_per_seed_loss(start, tx, ft.test_y.double()).mean()),
                     test_loss_std=float(_per_seed_loss(start, tx, ft.test_y.double()).std()),
                     l2_shift_mean=0.0, l2_shift_std=0.0, seeds=len(seeds)))
    table = pd.DataFrame(rows)
    (sw_t, sw_s), (lg_t, lg_s) = results["small weights"], results["large gradients"]
    checks = {
        "small weights reach a lower mean test loss than large gradients": float(sw_t.mean()) < float(lg_t.mean()),
        "small weights shift the parameters less (mean ℓ2)": float(sw_s.mean()) < float(lg_s.mean()),
    }
    verdict = all(checks.values())

    fig_path = out_dir / "nanoadam-toy.png"
    pyplot = plt()
    fig, ax = pyplot.subplots(1, 1, figsize=(5.2, 3.8))
    ax.scatter(sw_s.numpy(), sw_t.numpy(), label="smallest |θ| (NanoAdam selection)", color="C0")
    ax.scatter(lg_s.numpy(), lg_t.numpy(), label="largest |∇|", color="C3", marker="s")
    ax.scatter([0.027], [0.0094], marker="*", s=120, color="C0", edgecolor="k", label="published, small weights")
    ax.scatter([0.057], [0.017], marker="*", s=120, color="C3", edgecolor="k", label="published, large gradients")
    ax.set_xlabel("ℓ2 parameter shift")
    ax.set_ylabel("test loss after fine-tuning")
    ax.set_yscale("log")
    ax.set_title(f"{len(seeds)} seeds, density {density:g} per layer", fontsize=9)
    ax.legend(fontsize=7)
    save_figure(fig, fig_path)

    ours = (f"small weights {float(sw_t.mean()):.4f} ± {float(sw_t.std()):.4f} (ℓ2 shift {float(sw_s.mean()):.3f}) vs "
            f"large gradients {float(lg_t.mean()):.4f} ± {float(lg_t.std()):.4f} (shift {float(lg_s.mean()):.3f}); "
            f"{len(seeds)} seeds")
    verdict_line = ("Holds. " if verdict else "Does not hold. ") + "; ".join(
        f"{k} — {'yes' if v else 'NO'}" for k, v in checks.items()) + (
        f". Our absolute numbers differ from the published ones (pretrained test loss {float(pre_test.mean()):.1e} on "
        f"the 2-neuron teacher).")
    setting = (
        f"* Data: the project's `teacher-student` data set, d = 2, 100 training and 1000 test inputs x ~ N(0, I), "
        f"data_seed 0.  Pretraining teacher: the default 2 neurons {list(DEFAULT_TEACHER)} (rows [a, w₁, w₂]); "
        f"fine-tuning teacher: those plus the extra neuron {list(EXTRA_NEURON)} (our choice: not public).\n"
        f"* Student: the `teacher-student` model, width {width}, antisymmetric init aᵢ = −a_{{i+10}} with tied hidden "
        f"weights (the factory's default, so f₀ = 0), entries N(0, 1/{width}); seeds {seeds[0]}..{seeds[-1]}, trained at "
        f"once as a batch of independent students.\n"
        f"* Pretraining: full-batch GD, lr {pre_lr:g}, {pre_steps} steps, loss ½·MSE (train and test).  Fine-tuning: full-batch GD, lr "
        f"{ft_lr:g}, {ft_steps} steps, updating in each layer (hidden 20 × 2 and output 20) only the fraction "
        f"density = {density:g} of entries (rounded up: 8 and 4), reselected every step: the smallest |θ| "
        f"(`reparam.nanoadam.bottom_k_indices`, NanoAdam's selection rule) or the largest |∇| (baseline, a top-k here). "
        f"`full` updates every entry, for reference.\n"
        f"* Test loss: ½·MSE on the 1000 test inputs of the 3-neuron teacher; shift: ℓ2 norm of θ_fine-tuned − θ_pretrained "
        f"over both layers.  Mean ± std over seeds.")
    differences = [
        "The fraction of entries updated per layer, the reselection interval, the extra neuron, the number of "
        "training samples and the loss normalisation are not given in PAPERS.md; ours are above (density 0.2, every "
        "step, loss ½·MSE — with plain MSE the published pretraining lr 2 diverged in our first run).  The absolute numbers depend on them, so only the comparison is expected to carry over.",
        f"Our ℓ2 shifts ({float(sw_s.mean()):.2f} and {float(lg_s.mean()):.2f}) are about "
        f"{float(lg_s.mean()) / 0.057:.0f}× the published ones (0.027 / 0.057): the published fine-tuning task must "
        "change the function far less than adding our unit-norm extra neuron with output weight 1 (probably a smaller "
        "or overlapping extra neuron).  In our task the selected entries must move far, and the largest-gradient "
        "selection, which moves the entries that matter most, fits better; the small-weight advantage the paper "
        "reports is a small-perturbation effect our task does not probe.",
        f"Pretraining is imperfect for some seeds (test loss on the 2-neuron teacher: median "
        f"{float(pre_test.median()):.1e}, max {float(pre_test.max()):.1e}) — dead or misaligned student neurons "
        "after 10k GD steps.",
        "The update is plain GD on the selected entries, as the toy describes; NanoAdam itself (Adam moments, mask "
        "interval, head excluded) is what the `nanoadam` reparam implements for real networks.",
        *(["This is the --quick size: 3 seeds, 1000 pretraining and 1000 fine-tuning steps."] if quick else []),
    ]
    return Result(table=table, figure=fig_path,
                  published="small weights: test loss 0.0094 ± 0.012, ℓ2 shift 0.027; large gradients: 0.017 ± 0.015, "
                            "shift 0.057 (10 seeds)",
                  ours=ours, verdict=verdict, verdict_line=verdict_line, setting=setting,
                  differences=differences, checks=checks, diagnosis="" if verdict else DIAGNOSIS.format(
                      rms=f"{float(sw_s.mean()) / (3 * width) ** 0.5:.3f} / {float(lg_s.mean()) / (3 * width) ** 0.5:.3f}"))


DIAGNOSIS = (
    "What was checked: the selection rule against NanoAdam's (`reparam.nanoadam.bottom_k_indices`, per layer and "
    "per seed; tests/reproduce/test_toys.py checks it on a hand example), the toy against PAPERS.md §5 (20-neuron "
    "antisymmetric student, N(0, 1/n) entries, pretraining 10k GD steps at lr 2, fine-tuning 10k steps at lr 1), "
    "and the check against the claim.\n\n"
    "What was found: (1) distance normalisation does not explain the gap — divided by √(number of parameters) "
    "our shifts are {rms} (small weights / large gradients), still several times the published 0.027 / 0.057, "
    "and small weights move further than large gradients here.  (2) The task — our extra "
    "neuron (output weight 1, unit input direction) is as large as the pretrained ones, so fine-tuning is not a "
    "small perturbation, and updating the entries with the largest gradients fits it better.  (3) Drawing a "
    "teacher and an extra neuron per seed (unit directions at random angles) was tried while preparing this page: "
    "pretraining at the published lr 2 diverged (NaN) in at least one seed, so the paper's teacher distribution "
    "must differ from that draw (or its loss is normalised differently) — the fixed teacher above is kept.\n\n"
    "What would settle it: the appendix's teacher distribution, extra-neuron scale, update density and distance "
    "definition; a per-seed draw that pretrains stably at lr 2, then a density sweep.")
