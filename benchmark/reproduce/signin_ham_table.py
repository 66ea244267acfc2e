"""``signin-ham-table``: a CPU analogue of the HAM paper's main table (Jacobs, Gadhikar, Rubio-Madrigal,
Burkholz, ICLR 2026, ImageNet ResNet-50; PAPERS.md §4) with the Sign-In combinations (Gadhikar, Jacobs, Zhou,
Burkholz, NeurIPS 2025; PAPERS.md §2).

Claim, as the papers state it: HAM improves random pruning at initialisation, AC/DC and RigL at 80 / 90 /
95 % sparsity (HAM, Table 1: every cell of "+ HAM" is above its base); Sign-In improves random PaI at every
sparsity (Sign-In's headline); AC/DC and RigL beat random PaI.

How: ``grids/signin-ham-table.toml`` (no weight decay, as the task) and ``grids/signin-ham-table-wd.toml``
(weight decay 5e-4, the papers' CIFAR value: Sign-In's reset acts through γ, which only weight decay
shrinks) run through the suite's driver into ``results/signin-ham``, and ``grids/signin-ham-lenet5.toml``
(LeNet-5, no normalisation) and ``grids/signin-ham-resnet8.toml`` (the batch-norm ResNet-8), both at
90 / 95 % with weight decay, into results folders of their own (finished runs are skipped, so the page is
regenerated from the stored runs) on the converged task recipes.  A gain is the paired difference
over seeds (the same seed gives the two runs the same initialisation, mask and data order) with its 95 %
t-interval (:func:`leaderboard.table.paired_gains`); a check *holds* only where every gain's interval
lies above zero.  Diverged runs are counted, never averaged in.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.reproduce import Result, register_reproduction
from benchmark.reproduce.loop import plt, save_figure
from benchmark.stats import paired_difference

REPO = Path(__file__).resolve().parents[2]
GRIDS = (REPO / "grids" / "signin-ham-table.toml", REPO / "grids" / "signin-ham-table-wd.toml",
         REPO / "grids" / "signin-ham-lenet5.toml", REPO / "grids" / "signin-ham-resnet8.toml")
RESULTS = REPO / "results" / "signin-ham"
#: grids whose runs live in a results folder of their own (the convolutional tasks: 1–3 h of CPU each)
OWN_RESULTS = {name: REPO / "results" / name for name in ("signin-ham-lenet5", "signin-ham-resnet8")}

#: published ImageNet ResNet-50 top-1 (%) at 80 / 90 / 95 % sparsity (PAPERS.md §2 and §4)
PUBLISHED: dict[tuple[str, str], tuple[float, float, float]] = {
    ("random", "none"): (73.87, 71.56, 68.72),
    ("random", "signin"): (74.12, 72.19, 69.38),
    ("random", "ham"): (74.84, 72.72, 70.05),
    ("acdc", "none"): (75.83, 74.75, 72.59),
    ("acdc", "signin"): (75.90, 74.74, 72.88),
    ("acdc", "ham"): (77.20, 76.66, 75.45),
    ("rigl", "none"): (75.02, 73.70, 71.89),
    ("rigl", "signin"): (75.02, 74.27, 73.07),
    ("rigl", "ham"): (76.22, 74.83, 72.93),
}
SPARSITIES = (0.8, 0.9, 0.95)
BASES = ("random", "acdc", "rigl")
NAMES = {"random": "Random", "acdc": "AC/DC", "rigl": "RigL", "dense": "Dense", "none": "", "signin": " + Sign-In",
         "ham": " + HAM"}


def quick_grid_text(text: str) -> str:
    """The --quick grid: the committed grid's pruners and reparams (same hyperparameters) on the 8 × 8
    digits, one sparsity (90 %), two seeds (a paired interval needs two), 2 epochs of 4 batches."""
    subs = {r"^tasks = .*$": 'tasks = ["digits-mlp"]', r"^sparsities = .*$": "sparsities = [0.9]",
            r"^seeds = .*$": "seeds = [0, 1]", r"^\[recipe\]$": "[recipe]\nepochs = 2\nmax_train_batches = 4",
            r'^name = "signin-ham-table"$': 'name = "signin-ham-table-quick"'}
    for pat, rep in subs.items():
        text, n = re.subn(pat, rep, text, count=1, flags=re.M)
        if n != 1:
            raise RuntimeError(f"grids/signin-ham-table.toml has no line matching {pat!r}")
    return text


def run_table_grid(grid_path: Path, out: Path, workers: int, skip_dense: bool = False) -> pd.DataFrame:
    """Run the grid through the driver (finished runs are skipped) and return its runs' results
    (``skip_dense``: leave out the dense reference runs)."""
    import benchmark
    from benchmark.driver import run_grid
    from benchmark.executors.local import LocalExecutor
    from benchmark.grid import load_grid

    grid = load_grid(grid_path)
    if skip_dense:
        grid.specs = [s for s in grid.specs if s.pruner != "dense"]
    run_grid(grid.specs, out, LocalExecutor(workers=workers), grid=grid.name, progress=False,
             echo=lambda line: None, resources=grid.resources)
    df = benchmark.results(out)
    ids = {s.run_id for s in grid.specs}
    return df[df.run_id.isin(ids)].copy()


def _pruner(base_method: str) -> str:
    return re.split(r"[/\[]", str(base_method))[0]


def gains_table(df: pd.DataFrame) -> pd.DataFrame:
    """Paired gains of Sign-In and HAM over their base (random, AC/DC, RigL), and of AC/DC and RigL over
    random PaI, per task label and sparsity, with the published ImageNet gain beside them."""
    from leaderboard.table import add_method, paired_gains, per_seed

    g = paired_gains(df)
    g = g[g["base_method"].map(_pruner).isin(BASES)].copy()
    g["base"], g["variant"] = g["base_method"].map(_pruner), g["reparam"]
    rows = [g]
    d = add_method(df)
    d = d[(d["status"] == "ok") & ((d["reparam"] == "none") | d["reparam"].isna())]
    for (task, s), sub in d.groupby(["task", "target_sparsity"]):
        rand = per_seed(sub[sub["pruner"] == "random"], "final_top1").to_dict()
        for b in ("acdc", "rigl"):
            other = per_seed(sub[sub["pruner"] == b], "final_top1").to_dict()
            if rand and other:
                e = paired_difference(rand, other)
                rows.append(pd.DataFrame([dict(task=task, target_sparsity=s, base="random", variant=b, pairs=e.n,
                                               gain_mean=e.mean, gain_std=e.std, gain_lo=e.lo, gain_hi=e.hi,
                                               distinguishable=e.excludes_zero, variant_diverged=0)]))
    out = pd.concat(rows, ignore_index=True)

    def published(r: pd.Series) -> float:
        s = [i for i, x in enumerate(SPARSITIES) if np.isclose(x, r.target_sparsity)]
        if not s:
            return np.nan
        if r.base == "random" and r.variant in BASES:
            return PUBLISHED[(r.variant, "none")][s[0]] - PUBLISHED[("random", "none")][s[0]]
        return PUBLISHED[(r.base, r.variant)][s[0]] - PUBLISHED[(r.base, "none")][s[0]]
    out["published"] = out.apply(published, axis=1)
    return out[["task", "base", "variant", "target_sparsity", "pairs", "gain_mean", "gain_std", "gain_lo", "gain_hi",
                "distinguishable", "variant_diverged", "published"]].sort_values(
        ["task", "base", "variant", "target_sparsity"]).reset_index(drop=True)


def judge(gains: pd.DataFrame) -> str:
    """``shown`` when every gain's interval lies above zero, ``contradicted`` when one lies below, else
    ``not distinguishable`` (``no data`` without pairs)."""
    if gains.empty:
        return "no data"
    if (gains["gain_hi"] < 0).any():
        return "contradicted"
    return "shown" if (gains["gain_lo"] > 0).all() else "not distinguishable"


def _claims(gains: pd.DataFrame) -> dict[tuple[str, str], tuple[str, str]]:
    """(task, claim) → (what the claim says, judgement)."""
    out = {}
    for task in sorted(set(gains.task)):
        g = gains[gains.task == task]
        for b in BASES:
            out[(task, f"ham-{b}")] = (f"+ HAM improves {NAMES[b]} at every sparsity",
                                       judge(g[(g.base == b) & (g.variant == "ham")]))
        out[(task, "signin-random")] = ("+ Sign-In improves random PaI at every sparsity",
                                        judge(g[(g.base == "random") & (g.variant == "signin")]))
        out[(task, "d2s")] = ("AC/DC and RigL beat random PaI at every sparsity",
                              judge(g[(g.base == "random") & g.variant.isin(["acdc", "rigl"])]))
    return out


def _label(base: str, variant: str) -> str:
    if base == "random" and variant in BASES:
        return f"{NAMES[variant]} vs Random"
    return f"{NAMES[base]}{NAMES.get(variant, ' + ' + variant)} vs {NAMES[base]}"


def _cell(r: pd.Series) -> str:
    if r.pairs < 2:
        return "—" if r.pairs == 0 else f"{r.gain_mean:+.2f} (1 pair)"
    mark = " ✓" if r.gain_lo > 0 else (" ✗" if r.gain_hi < 0 else "")
    return f"{r.gain_mean:+.2f} [{r.gain_lo:+.2f}, {r.gain_hi:+.2f}]{mark}"


@register_reproduction(
    "signin-ham-table", source="HAM (Jacobs et al., ICLR 2026), ImageNet ResNet-50 main table; Sign-In "
                               "(Gadhikar et al., NeurIPS 2025), combinations table",
    claim="random PaI, AC/DC and RigL at 80 / 90 / 95 %: + HAM improves each base method at every sparsity; "
          "+ Sign-In improves random PaI at every sparsity; AC/DC and RigL beat random PaI (CPU analogue on "
          "Fashion-MNIST, judged by paired gains over seeds with 95 % intervals)")
def run(quick: bool, out_dir: Path) -> Result:
    from leaderboard.table import aggregate

    if quick:
        with tempfile.TemporaryDirectory() as tmp:
            g = Path(tmp) / "signin-ham-table-quick.toml"
            g.write_text(quick_grid_text(GRIDS[0].read_text(encoding="utf-8")), encoding="utf-8")
            df = run_table_grid(g, Path(tmp) / "results", workers=1, skip_dense=True)
    else:
        df = pd.concat([run_table_grid(g, OWN_RESULTS.get(g.stem, RESULTS), workers=2) for g in GRIDS],
                       ignore_index=True)
    agg = aggregate(df)
    gains = gains_table(df)
    claims = _claims(gains)
    checks = {f"{task}: {text} (paired 95 % interval above 0)": j == "shown" for (task, _), (text, j) in claims.items()}
    verdict = bool(checks) and all(checks.values())

    # the page's table: the paired gains, ours beside the published ImageNet gain
    table = pd.DataFrame({
        "task": gains.task, "comparison": [_label(b, v) for b, v in zip(gains.base, gains.variant)],
        "sparsity (%)": [f"{100 * s:g}" for s in gains.target_sparsity],
        "ours: paired gain [95 % CI]": [_cell(r) for r in gains.itertuples()],
        "pairs": gains.pairs.astype(int), "diverged": gains.variant_diverged.astype(int),
        "published (ImageNet)": [f"{p:+.2f}" if np.isfinite(p) else "—" for p in gains.published]})

    # figure: top-1 (mean, 95 % CI) vs sparsity per task; our gains vs the published ones
    tasks = sorted(set(agg.task))
    fig_path = out_dir / "signin-ham-table.png"
    pyplot = plt()
    fig, axes = pyplot.subplots(1, len(tasks) + 1, figsize=(4.6 * (len(tasks) + 1), 3.9), squeeze=False)
    axes = axes[0]
    style = {"none": "-", "signin": "--", "ham": ":"}
    for ax, task in zip(axes, tasks):
        a = agg[(agg.task == task) & agg.seeds.gt(0)]
        for i, base in enumerate(BASES):
            for rep in ("none", "signin", "ham"):
                c = a[(a.pruner == base) & (a.reparam == rep)].sort_values("target_sparsity")
                if c.empty:
                    continue
                err = (c.top1_ci_hi - c.top1_mean).fillna(0)
                ax.errorbar(100 * c.target_sparsity, c.top1_mean, yerr=err, fmt="o" + style[rep], color=f"C{i}",
                            ms=3, capsize=2, lw=1.2, label=NAMES[base] + NAMES[rep])
        d = a[(a.pruner == "dense") & (a.reparam == "none")]
        if len(d):
            ax.axhline(float(d.top1_mean.iloc[0]), color="k", lw=0.8, label="dense")
        ax.set_title(f"{task}: mean top-1, 95 % CI", fontsize=8)
        ax.set_xlabel("sparsity (%)")
        ax.set_ylabel("top-1 (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    ax = axes[-1]
    for i, (b, v) in enumerate(sorted(set(zip(gains.base, gains.variant)))):
        g = gains[(gains.base == b) & (gains.variant == v) & gains.published.notna()]
        ax.errorbar(g.published, g.gain_mean, yerr=(g.gain_hi - g.gain_mean).fillna(0), fmt="o", ms=3, capsize=2,
                    color=f"C{i}", label=_label(b, v))
    ax.axhline(0, color="k", lw=0.6)
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xlabel("published gain, ImageNet ResNet-50 (points)")
    ax.set_ylabel("our paired gain, 95 % CI (points)")
    ax.set_title("gains: ours vs published (all tasks)", fontsize=8)
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
    save_figure(fig, fig_path)

    summary = {k: j for k, (_, j) in claims.items()}
    ours = "; ".join(f"{task}: " + ", ".join(f"{text} — {j}" for (t, _), (text, j) in claims.items() if t == task)
                     for task in tasks)
    published = ("ImageNet ResNet-50, gain over the base at 80 / 90 / 95 %: "
                 + "; ".join(f"{NAMES[b]}{NAMES[r]} " + " / ".join(
                     f"{PUBLISHED[(b, r)][i] - PUBLISHED[(b, 'none')][i]:+.2f}" for i in range(3))
                     for b in BASES for r in ("signin", "ham")))
    verdict_line = ("All parts are shown: " if verdict else "Not every part is shown: ") + "; ".join(
        f"{task} {key} {j}" for (task, key), j in summary.items())
    dense = agg[(agg.pruner == "dense") & (agg.reparam == "none")]
    setting = (
        f"* Grids {', '.join(f'`grids/{g.name}`' for g in GRIDS)}"
        f"{' (quick size: the first grid on the 8 × 8 digits, 90 %, seeds 0–1, 2 epochs × 4 batches, no dense runs)' if quick else ''}"
        ": random PaI (ERK layer ratios), AC/DC (the paper's phase plan scaled to the run, global magnitude), "
        "RigL (ERK), each plain, + Sign-In and + HAM, at 80 / 90 / 95 % on LeNet-300-100; on LeNet-5 (10 epochs) "
        "and the batch-norm ResNet-8 (fmnist-resnet8, 15 epochs), both with weight decay 5e-4, random ± Sign-In "
        "± HAM, AC/DC ± HAM and RigL ± HAM at 90 / 95 %; seeds per task: "
        + ", ".join(f"{t} {n}" for t, n in df.groupby("task")["seed"].nunique().items())
        + "; hyperparameters and their sources in the grid files (HAM's α and RigL's ΔT chosen on a validation "
        "split, grids/sweep-fmnist.toml, docs/results-reparam.md).\n"
        "* Converged recipes of the tasks (docs/tasks.md): full-data epochs, SGD momentum 0.9, cosine; the `-wd` "
        "grid adds weight decay 5e-4 (task labels `[weight_decay=0.0005]`).  Accuracy = final test top-1 of the "
        "saved model.\n"
        "* A gain is the paired difference over seeds with its 95 % t-interval; ✓ = interval above 0, ✗ = below.\n"
        + ("* Dense references: " + "; ".join(f"{r.task} {r.top1_mean:.2f} ± {r.top1_std:.2f}" for r in dense.itertuples())
           if len(dense) else ""))
    diagnosis = "" if verdict else (
        "What was checked: HAM's update against the paper's mirror step (tests/reparam/test_ham.py: the "
        "exponentiated step |θ|·exp(−α·lr·sign(θ)·g − lr·β) against a hand computation), Sign-In's reset "
        "against its formula (tests/reparam), and this page's judgement, which now requires the paired interval "
        "to exclude zero instead of a positive mean.\n\n"
        "What was found: on these networks the gains the papers report on ImageNet are about as large as the "
        "seed-to-seed noise of a 3-seed CPU run; where an interval includes zero the claim is *not "
        "distinguishable* here, which is different from contradicted (✗).  The 300-step tables committed before "
        "(HAM +0.9 / +1.2) measured an early-training effect: see the anytime accuracy at 300 and 1,000 steps in "
        "docs/results-reparam.md.  Without weight decay Sign-In's reset cannot act (γ stays near 1), which is why "
        "the `-wd` grid exists.  Where the task has headroom the papers' sign shows: on the batch-norm ResNet-8 "
        "with 5 seeds random + HAM is above zero at 90 and 95 % and random + Sign-In at 90 %; on LeNet-5 random + "
        "HAM (90 %), AC/DC + HAM (90 %) and RigL + HAM (95 %) are.  LeNet-5's random PaI at 95 % never leaves "
        "chance in most seeds, with or without a reparameterisation (vanishing input-layer gradients of the "
        "un-normalised masked network; the 'seeds at chance' column and the diagnosis in "
        "docs/results-reparam.md), so its 95 % pairs rank nothing.\n\n"
        "What would settle it: more seeds (10) where an interval still straddles zero, and the GPU ResNet-20 "
        "evidence run of the performance issue (pending until a GPU run is committed).")
    differences = [
        *(["This is the --quick size: two seeds, one sparsity, 8 training steps on the 8 × 8 digits — it checks "
           "the pipeline, not the claim."] if quick else []),
        "Scale: LeNet-300-100, LeNet-5 and a ResNet-8 on (14 × 14) Fashion-MNIST on CPU instead of ResNet-50 on ImageNet for 100 epochs; "
        "absolute accuracies cannot be compared, only the signs and rough sizes of the gains.",
        "HAM's α is chosen on a validation split (the ImageNet 200 diverges at lr 0.1 here: α multiplies lr · g).",
        "Published numbers are ImageNet ResNet-50 from the HAM and Sign-In papers (PAPERS.md §2, §4); the "
        "published Sign-In gains are themselves small (−0.01 to +1.18 points).",
    ]
    return Result(table=table, figure=fig_path, published=published, ours=ours, verdict=verdict,
                  verdict_line=verdict_line, setting=setting, differences=differences, checks=checks,
                  diagnosis=diagnosis)
