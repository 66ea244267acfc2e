"""Graphon analysis of the suite's pruners and runs (Pham et al., *The Graphon Limit Hypothesis*, NeurIPS 2025,
arXiv 2510.17515; PAPERS.md §8, docs/graphon.md).

This module is the glue between :mod:`graphon` (which knows only masks) and the suite (tasks, pruners,
runs).  It builds the mask functions of the convergence sweep from registered pruners, runs the Graphon
NTK experiment on pruned MLPs, estimates the graphons of a finished run's masks, and computes the per-run
summary that the runner attaches with ``analysis = { graphon = true }``.

Networks used by the sweep and the NTK experiment
-------------------------------------------------
``benchmark.tasks.models.MLP(d, [width] * depth, C)``: ``depth`` is the number of **hidden layers** (so a
depth-4 MLP has 5 Linear layers and 3 hidden→hidden masks), ``d`` the flattened input size of the task's
dataset (Fashion-MNIST: 784), ``C`` its outputs; PyTorch's default initialisation, seeded per trial.  The
whole network is pruned (input layer, hidden layers, readout) by the registered pruner under the chosen
allocation (default ``global``) with a :class:`pruners.PruneContext` built like the runner's: the seeded
pruning sample is the first samples of a fixed permutation of the training set (seed + 7), batches of
``prune_batch_size``.  Only the hidden→hidden masks enter the convergence sweep (the paper's choice: they
are square and both sides are exchangeable neurons); the graphon NTK uses all of them.

Biases: the sweep's MLPs have biases (the task catalogue's MLP; they matter only to SynFlow, whose flow
includes |b|); the NTK experiment's MLPs are bias-free by default, the architecture the Graphon NTK covers.
Both are switchable (``bias``).

Fixed NTK batch of the per-run summary: the first :data:`NTK_SAMPLES` (256) **test** samples of the task's
dataset, flattened, in float64 (:func:`fixed_batch`).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from graphon.estimate import METHODS
from graphon.ntk import masks_ntk, mlp_coverage
from graphon.spectrum import spectrum_metrics
from graphon.summary import summarize_masks
from graphon.sweep import convergence_sweep
from pruners import ALLOCATIONS, PRUNERS, Masks, PruneContext, TrainState
from pruners.base import density_of
from pruners.registry import ConfigError, build_config
from pruners.session import AfterStep, build_session, fit

NTK_SAMPLES = 256
DEFAULT_K = 64
"""Cells per side of the graphon estimates unless a layer is narrower (then its side)."""
"""Size of the fixed batch (first test samples) of the per-run NTK summary."""

#: pruners whose masks are decided at initialisation (the sweep and the NTK experiment prune at init)
AT_INIT_FAMILIES = ("pai",)


# ----------------------------------------------------------------------------------------------------
# Data, networks, pruning
# ----------------------------------------------------------------------------------------------------
@dataclass
class TaskData:
    """A task's in-memory dataset with what the analysis needs: flattened input size and outputs."""

    name: str
    data: Any
    d: int
    num_outputs: int
    input_shape: tuple[int, ...]
    classification: bool


def task_data(task: str) -> TaskData:
    """Load the dataset of the registered task ``task`` (cached per process, as in the runner).

    Raises:
        ConfigError: unknown task, missing dataset, or a folder dataset (not held in memory).
    """
    from benchmark.tasks import cached_data, get_task

    t = get_task(task)
    data = cached_data(t.dataset, t.dataset_args)
    if not data.in_memory:
        raise ConfigError(f"task {task!r} uses a folder dataset; the graphon sweep and NTK need an in-memory "
                          "dataset such as fashion-mnist (e.g. --task fmnist-lenet300)")
    shape = tuple(int(s) for s in data.info.input_shape)
    return TaskData(task, data, int(math.prod(shape)), int(data.info.num_outputs), shape,
                    data.info.task_type == "classification")


def fixed_batch(data: Any, n: int = NTK_SAMPLES, split: str = "test") -> torch.Tensor:
    """The first ``n`` samples of ``split`` (``"test"`` or ``"train"``), flattened, float64, on the CPU."""
    x = data.test_x if split == "test" else data.train_x
    if x is None:
        raise ConfigError(f"the dataset has no in-memory {split} split; the NTK batch needs one")
    if n < 2:
        raise ConfigError(f"an NTK batch of {n} samples has no spectrum; use at least 2 (default {NTK_SAMPLES})")
    return x[: int(n)].detach().cpu().reshape(min(int(n), x.shape[0]), -1).to(torch.float64)


def build_mlp(d: int, width: int, depth: int, num_outputs: int, *, bias: bool = True, seed: int = 0) -> nn.Module:
    """``MLP(d, [width] * depth, num_outputs)`` (``depth`` hidden layers), PyTorch default init, seeded."""
    from benchmark.tasks.models import MLP

    if depth < 1 or width < 1:
        raise ConfigError(f"depth={depth}, width={width}; an MLP needs at least one hidden layer of width >= 1")
    torch.manual_seed(int(seed))
    return MLP(d, [int(width)] * int(depth), num_outputs, bias=bias)


def prune_context(td: TaskData, seed: int, batch_size: int = 128) -> PruneContext:
    """A :class:`PruneContext` like the runner's: seeded pruning sample of the training set, the task loss."""
    from benchmark.tasks import TensorLoader

    x, y = td.data.train_x, td.data.train_y

    def batches(n_samples: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(seed + 7)
        idx = torch.randperm(len(y), generator=g)[: min(n_samples, len(y))]
        return list(TensorLoader(x[idx], y[idx], batch_size=batch_size, shuffle=False, seed=seed))

    def loss_fn(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if td.classification:
            return nn.functional.cross_entropy(out, target)
        return nn.functional.mse_loss(out.reshape(target.shape) if out.numel() == target.numel() else out, target)

    return PruneContext(seed=seed, batches=batches, loss_fn=loss_fn, device=torch.device("cpu"),
                        num_classes=td.num_outputs, input_shape=td.input_shape, prune_batch_size=batch_size)


@dataclass(frozen=True)
class PrunerSpec:
    """A validated pruner + allocation (+ hyperparameters) for pruning at initialisation."""

    name: str
    allocation: str = "global"
    pruner_args: Mapping[str, Any] | None = None
    allocation_args: Mapping[str, Any] | None = None

    def build(self) -> tuple[Any, Any]:
        """``(pruner, allocation)`` objects; ConfigError for unknown names, bad arguments, or a pruner that
        does not prune at initialisation."""
        cls = PRUNERS.get(self.name)
        if cls.family not in AT_INIT_FAMILIES and self.name not in ("random", "magnitude"):
            raise ConfigError(f"pruner {self.name!r} (family {cls.family!r}) decides its masks during training; "
                              "the graphon sweep and NTK prune at initialisation: use random, magnitude, snip, "
                              "grasp or synflow, or estimate a finished run's masks with 'sparsebench graphon "
                              "estimate RUN'")
        pruner = build_config(cls, dict(self.pruner_args or {}), f"pruner {self.name!r}")
        alloc = build_config(ALLOCATIONS.get(self.allocation), dict(self.allocation_args or {}),
                             f"allocation {self.allocation!r}")
        return pruner, alloc

    @property
    def label(self) -> str:
        args = ",".join(f"{k}={v}" for k, v in sorted((self.pruner_args or {}).items()))
        alloc = "" if self.allocation == "global" else f"/{self.allocation}"
        return f"{self.name}{alloc}" + (f"({args})" if args else "")


def prune_model(model: nn.Module, spec: PrunerSpec, sparsity: float, ctx: PruneContext) -> Masks:
    """Masks of ``model`` at ``sparsity`` from the registered pruner (the model's weights are not changed)."""
    pruner, alloc = spec.build()
    masks = pruner.initial_masks(model, ctx, float(sparsity), alloc)
    masks.validate(model)
    return masks


def hidden_masks(masks: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The hidden→hidden masks of an MLP's masks (module order): all but the first (input) and last (readout)."""
    names = [n for n, m in masks.items() if m.dim() == 2]
    return {n: masks[n] for n in names[1:-1]}


def _check_sparsity(s: float) -> float:
    density_of(s)
    if s <= 0:
        raise ConfigError(f"sparsity {s} prunes nothing; use a fraction in (0, 1) such as 0.8")
    return float(s)


def pruner_mask_fn(td: TaskData, spec: PrunerSpec, sparsity: float, depth: int, *, bias: bool = True,
                   seed: int = 0) -> Callable[[int, int], dict[str, torch.Tensor]]:
    """``mask_fn(width, trial)`` for :func:`graphon.sweep.convergence_sweep`: a fresh MLP of that width
    (seed ``seed + trial``), pruned by ``spec``; returns its hidden→hidden masks."""
    if depth < 2:
        raise ConfigError(f"depth={depth} has no hidden->hidden layer; use --depth >= 2 (paper: 4 and 5)")
    _check_sparsity(sparsity)
    spec.build()  # validate before any network is built

    def mask_fn(width: int, trial: int) -> dict[str, torch.Tensor]:
        s = seed + trial
        model = build_mlp(td.d, width, depth, td.num_outputs, bias=bias, seed=s)
        masks = prune_model(model, spec, sparsity, prune_context(td, s))
        return hidden_masks(masks)

    return mask_fn


# ----------------------------------------------------------------------------------------------------
# Convergence sweep
# ----------------------------------------------------------------------------------------------------
def run_sweep(task: str, pruners: Sequence[PrunerSpec], sparsity: float, widths: Sequence[int], *,
              trials: int = 10, depth: int = 4, K: int = 64, method: str = "sas", bias: bool = True,
              seed: int = 0, out: str | Path | None = None,
              progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Convergence sweep of every pruner in ``pruners`` (PAPERS.md §8; the paper's Fig. 1 style).

    For each pruner, :func:`graphon.sweep.convergence_sweep` with :func:`pruner_mask_fn`.  With ``out``,
    writes ``sweep.csv``, ``sweep.md``, ``convergence.png`` (distance to the widest width vs width, one
    panel per pruner, one line per hidden→hidden layer) and ``graphons.png`` (the widest width's
    trial-averaged estimates, one row per pruner).

    Returns:
        The sweep DataFrame with columns ``pruner, depth, sparsity`` + :data:`graphon.sweep.COLUMNS`
        + ``seconds`` (wall time of that pruner's sweep).
    """
    from graphon.sweep import _validate

    ws = _validate(widths, trials, K)
    if method not in METHODS:
        raise ConfigError(f"unknown graphon estimation method {method!r}; choose one of {', '.join(METHODS)}")
    td = task_data(task)
    fns = [(p, pruner_mask_fn(td, p, sparsity, depth, bias=bias, seed=seed)) for p in pruners]
    frames, widest = [], {}
    for spec, fn in fns:
        t0 = time.perf_counter()
        df, est = convergence_sweep(fn, ws, trials, K, method=method, return_estimates=True)  # type: ignore[misc]
        df.insert(0, "sparsity", float(sparsity))
        df.insert(0, "depth", int(depth))
        df.insert(0, "pruner", spec.label)
        df["seconds"] = time.perf_counter() - t0
        frames.append(df)
        widest[spec.label] = {layer: m for (w, layer), m in est.items() if w == ws[-1]}
        if progress:
            progress(f"{spec.label}: {df['seconds'].iloc[0]:.1f}s")
    result = pd.concat(frames, ignore_index=True)
    if out is not None:
        from graphon.plots import plot_convergence_panels, plot_graphon_grid

        o = Path(out)
        o.mkdir(parents=True, exist_ok=True)
        result.to_csv(o / "sweep.csv", index=False)
        (o / "sweep.md").write_text(sweep_markdown(result) + "\n", encoding="utf-8")
        plot_convergence_panels(result, o / "convergence.png",
                                title=f"{task}, depth {depth}, sparsity {sparsity:g}, K={K}, {trials} trials")
        plot_graphon_grid(widest, o / "graphons.png", title=f"width {ws[-1]}, trial-averaged ({trials})")
    return result


def sweep_markdown(df: pd.DataFrame) -> str:
    """Markdown table of a sweep: distance to the widest width per pruner and width (mean over layers),
    with the widest width's heterogeneity and dead share."""
    from tabulate import tabulate

    widths = sorted(df["width"].unique())
    rows = []
    for (pruner, depth), g in df.groupby(["pruner", "depth"], sort=False):
        mean = g.groupby("width")[["distance", "distance_to_constant", "dead_share", "density"]].mean()
        widest = widths[-1]
        rows.append([pruner, depth, *[f"{mean.loc[w, 'distance']:.4f}" for w in widths[:-1]],
                     f"{mean.loc[widest, 'distance_to_constant']:.4f}", f"{mean.loc[widest, 'dead_share']:.3f}",
                     f"{mean.loc[widest, 'density']:.3f}"])
    headers = ["pruner", "depth", *[f"d({w}, {widths[-1]})" for w in widths[:-1]],
               f"dist. to const. @{widths[-1]}", f"dead share @{widths[-1]}", "density"]
    return tabulate(rows, headers=headers, tablefmt="github")


# ----------------------------------------------------------------------------------------------------
# Graphon NTK experiment
# ----------------------------------------------------------------------------------------------------
def train_loss_curve(model: nn.Module, masks: Mapping[str, torch.Tensor], td: TaskData, *, steps: int = 200,
                     lr: float = 1e-3, batch_size: int = 128, seed: int = 0) -> np.ndarray:
    """Training loss of the first ``steps`` Adam steps (``lr``) of the masked ``model`` (paper, Fig. 3).

    Trained through the suite's session and loop (:func:`pruners.session.build_session` /
    :func:`pruners.session.fit`: pruned weights, gradients and Adam state stay exactly zero), on
    mini-batches of ``batch_size`` from a seeded shuffle of the training set.  Returns the mini-batch loss
    before each step, shape ``(steps,)``; after a non-finite loss the rest is NaN.
    """
    from benchmark.tasks import TensorLoader

    losses: list[float] = []

    def record(state: TrainState) -> None:
        losses.append(float(state.loss))
        state.stop = len(losses) >= steps or not math.isfinite(losses[-1])

    loader = TensorLoader(td.data.train_x, td.data.train_y, batch_size=batch_size, shuffle=True, seed=seed)
    ctx = prune_context(td, seed)
    session = build_session(model, Masks(dict(masks)), lambda ps: torch.optim.Adam(ps, lr=lr),
                            callbacks=[AfterStep(record)], ctx=ctx, epochs=math.ceil(steps / len(loader)),
                            steps_per_epoch=len(loader))
    fit(session, loader, ctx.loss_fn, check_loss=False)
    losses += [float("nan")] * (steps - len(losses))
    return np.asarray(losses[:steps], dtype=np.float64)


def run_ntk(task: str, pruners: Sequence[PrunerSpec], sparsities: Sequence[float], *, width: int = 1024,
            depth: int = 4, K: int = 64, samples: int = NTK_SAMPLES, trials: int = 1, train_steps: int = 200,
            lr: float = 1e-3, batch_size: int = 128, bias: bool = False, seed: int = 0,
            out: str | Path | None = None, progress: Callable[[str], None] | None = None,
            per_pixel_input: bool = False) -> pd.DataFrame:
    """Graphon NTK spectra against sparsity, with the early training loss of the same networks (§8, Fig. 2–3).

    For every pruner, sparsity and trial: an MLP (``depth`` hidden layers of ``width``, seed ``seed + trial``)
    is pruned; the step graphons of all its masks (:func:`graphon.ntk.graphons_from_masks`, K cells) give the
    Graphon NTK on the first ``samples`` training samples (flattened) and its spectrum metrics
    (:mod:`graphon.spectrum`); then, with ``train_steps > 0``, the same masked network is trained
    ``train_steps`` Adam steps (``lr``, batches of ``batch_size``) and its loss curve recorded.  The dense
    network (sparsity 0) is added once per trial as the reference.

    With ``out``: ``ntk.csv`` (one row per pruner × sparsity × trial), ``ntk.md`` (means over trials),
    ``spectra.png`` (eigenvalue decay per pruner, one line per sparsity), ``ntk_metrics.png`` (top-5 energy,
    effective rank and decay rate against sparsity) and, with training, ``loss.png`` (mean loss curves)
    and ``loss.csv``.

    Returns:
        DataFrame with ``pruner, sparsity, trial, density, ntk_*`` metrics, ``path_density`` (λ₁ relative to
        the dense NTK's), ``loss_first20`` / ``loss_mean`` / ``loss_last20`` (means of the loss over steps
        1–20, all steps and the last 20 steps), ``dead_neuron_share``, ``seconds``.
    """
    sps = [_check_sparsity(s) for s in sparsities]
    if not sps:
        raise ConfigError("no sparsities given; pass e.g. --sparsities 0.5,0.8,0.9,0.95")
    if K < 1 or K > width:
        raise ConfigError(f"K={K} is larger than the width {width}; choose 1 <= K <= {width}")
    if trials < 1 or train_steps < 0 or samples < 2:
        raise ConfigError(f"trials={trials}, train_steps={train_steps}, samples={samples}; use trials >= 1, "
                          "train_steps >= 0 and samples >= 2")
    for p in pruners:
        p.build()
    td = task_data(task)
    x = fixed_batch(td.data, samples, split="train")
    rows: list[dict[str, Any]] = []
    eigs: dict[str, dict[str, np.ndarray]] = {}
    curves: dict[str, dict[float, list[np.ndarray]]] = {}
    for trial in range(trials):
        s_seed = seed + trial
        jobs: list[tuple[PrunerSpec | None, float]] = [(None, 0.0)] + [(p, s) for p in pruners for s in sps]
        for spec, sparsity in jobs:
            t0 = time.perf_counter()
            model = build_mlp(td.d, width, depth, td.num_outputs, bias=bias, seed=s_seed)
            if spec is None:
                from pruners.masks import prunable_parameters

                masks = Masks({n: torch.ones_like(p, dtype=torch.bool) for n, p in prunable_parameters(model).items()})
                label = "dense"
            else:
                masks = prune_model(model, spec, sparsity, prune_context(td, s_seed))
                label = spec.label
            theta = masks_ntk(masks, x, K, per_pixel_input=per_pixel_input)
            met = spectrum_metrics(theta)
            lam = np.linalg.eigvalsh(theta)[::-1]
            eigs.setdefault(label, {})[f"{100 * sparsity:g}%"] = lam if trial == 0 else eigs[label].get(
                f"{100 * sparsity:g}%", lam)
            row: dict[str, Any] = {"pruner": label, "sparsity": sparsity, "trial": trial,
                                   "density": masks.density(), **met.as_dict("ntk_")}
            summ = summarize_masks(masks, K)
            row["dead_neuron_share"] = summ.get("graphon_dead_neuron_share", float("nan"))
            row["hidden_heterogeneity"] = float(np.mean([summ["layers"][n]["heterogeneity"]
                                                         for n in hidden_masks(masks)]))
            row["input_heterogeneity"] = summ["layers"][next(iter(masks))]["heterogeneity"]
            if train_steps > 0:
                curve = train_loss_curve(model, masks, td, steps=train_steps, lr=lr, batch_size=batch_size,
                                         seed=s_seed)
                curves.setdefault(label, {}).setdefault(sparsity, []).append(curve)
                row.update(loss_first20=float(np.mean(curve[:20])), loss_mean=float(np.mean(curve)),
                           loss_last20=float(np.mean(curve[-20:])))
            row["seconds"] = time.perf_counter() - t0
            rows.append(row)
            if progress:
                progress(f"trial {trial} {label} @ {sparsity:g}: top5 {row['ntk_top5_energy']:.4f}, "
                         f"{row['seconds']:.1f}s")
    df = pd.DataFrame(rows)
    dense_l1 = df[df.pruner == "dense"].set_index("trial")["ntk_lambda_max"]
    df["path_density"] = df["ntk_lambda_max"] / df["trial"].map(dense_l1)
    if out is not None:
        from graphon.plots import plot_loss_curves, plot_ntk_metrics, plot_spectra_panels

        o = Path(out)
        o.mkdir(parents=True, exist_ok=True)
        df.to_csv(o / "ntk.csv", index=False)
        (o / "ntk.md").write_text(ntk_markdown(df) + "\n", encoding="utf-8")
        plot_spectra_panels(eigs, o / "spectra.png", title=f"Graphon NTK, {samples} samples, K={K}, "
                                                              f"{depth}x{width}")
        plot_ntk_metrics(df, o / "ntk_metrics.png")
        if curves:
            mean_curves = {lab: {s: np.nanmean(np.stack(c), 0) for s, c in d.items()} for lab, d in curves.items()}
            plot_loss_curves(mean_curves, o / "loss.png", title=f"first {train_steps} Adam steps, lr {lr:g}")
            long = [{"pruner": lab, "sparsity": s, "step": i + 1, "loss": float(v)}
                    for lab, d in mean_curves.items() for s, c in d.items() for i, v in enumerate(c)]
            pd.DataFrame(long).to_csv(o / "loss.csv", index=False)
    return df


def ntk_markdown(df: pd.DataFrame) -> str:
    """Markdown table of :func:`run_ntk`'s results, means over trials."""
    from tabulate import tabulate

    cols = ["density", "ntk_top5_energy", "ntk_effective_rank", "ntk_decay_rate", "ntk_spectral_gap",
            "path_density", "dead_neuron_share", "input_heterogeneity", "hidden_heterogeneity"]
    cols += [c for c in ("loss_first20", "loss_mean", "loss_last20") if c in df.columns]
    g = df.groupby(["pruner", "sparsity"], sort=False)[cols].mean().reset_index()
    headers = ["pruner", "sparsity", "density", "top-5 energy", "eff. rank", "decay α", "gap λ1/λ2",
               "λ1 / λ1(dense)", "dead neurons", "het. input", "het. hidden"]
    names = {"loss_first20": "loss 1–20", "loss_mean": "mean loss", "loss_last20": "loss last 20"}
    headers += [names[c] for c in cols if c in names]
    return tabulate(g.values.tolist(), headers=headers, tablefmt="github", floatfmt=".4g")


# ----------------------------------------------------------------------------------------------------
# A run's masks: estimates and the per-run summary
# ----------------------------------------------------------------------------------------------------
def load_masks(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """Masks of a run folder (its ``masks.pt``) or of a masks file (a ``torch.save``-d dict name → tensor,
    in module order), and the run's spec (``spec.json`` beside it) when there is one.  Tensors are returned
    as stored: bool, or numbers that :func:`estimate_masks` checks to be 0/1.

    Raises:
        ConfigError: the path does not exist, a folder without ``masks.pt``, a file that is not a dict of
        tensors.
    """
    p = Path(path)
    if p.is_dir():
        if not (p / "masks.pt").exists():
            raise ConfigError(f"{str(p)!r} has no masks.pt; pass a finished run folder or a masks.pt file")
        p = p / "masks.pt"
    if not p.is_file():
        raise ConfigError(f"{str(p)!r} does not exist; pass a run folder or its masks.pt")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"{str(p)!r} is not a torch file ({type(exc).__name__}); pass a run's masks.pt") from None
    if not isinstance(data, dict) or not data or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                         for k, v in data.items()):
        raise ConfigError(f"{str(p)!r} does not hold a non-empty dict of name -> tensor; pass a run's masks.pt")
    spec_path = p.parent / "spec.json"
    spec = json.loads(spec_path.read_text(encoding="utf-8")) if spec_path.exists() else None
    return data, spec


def estimate_masks(masks: Mapping[str, torch.Tensor], K: int | None = None, method: str = "sas", *,
                   out: str | Path | None = None, title: str | None = None) -> pd.DataFrame:
    """Per-layer graphon estimates of a run's masks (every 2-d mask; conv masks as channel connectivity).

    ``K = None`` (the CLI default) fits each layer: ``min(64, side)`` cells on each side, so a 10-output
    readout gets 10 × 64 cells; the chosen ``K_out``, ``K_in`` are columns of the table.  An explicit ``K``
    larger than a side of any layer is a ConfigError (choose ``K <= min side``).  With ``out``:
    ``estimate.csv``, ``estimate.md``, ``graphons.png`` and ``graphons.npz`` (the K × K matrices).
    """
    from graphon.distance import distance_to_constant
    from graphon.plots import plot_graphons
    from graphon.summary import layer_estimates

    if method not in METHODS:
        raise ConfigError(f"unknown graphon estimation method {method!r}; choose one of {', '.join(METHODS)}")
    for name, m in masks.items():
        if m.dim() < 2:
            raise ConfigError(f"mask {name!r} has shape {tuple(m.shape)}, not 2-d; graphons need (n_out, n_in) "
                              "layer masks (conv masks are read as channel connectivity)")
        side = min(m.shape[0], m.shape[1])
        if K is not None and K > side:
            raise ConfigError(f"K={K} is larger than a side of layer {name!r} (shape {tuple(m.shape[:2])}); "
                              f"choose --K <= {side}, or leave --K out to fit each layer")
    ests = layer_estimates(masks, DEFAULT_K if K is None else K, method=method)
    rows = [{"layer": name, "n_out": e.shape[0], "n_in": e.shape[1], "K_out": e.K[0], "K_in": e.K[1],
             "density": e.density, "heterogeneity": e.heterogeneity,
             "distance_to_constant": distance_to_constant(e.matrix, row_sizes=e.row_sizes, col_sizes=e.col_sizes),
             "dead_outputs": e.dead_outputs, "dead_inputs": e.dead_inputs, "dead_share": e.dead_share}
            for name, e in ests.items()]
    df = pd.DataFrame(rows)
    if out is not None:
        from tabulate import tabulate

        o = Path(out)
        o.mkdir(parents=True, exist_ok=True)
        df.to_csv(o / "estimate.csv", index=False)
        (o / "estimate.md").write_text(tabulate(df.values.tolist(), headers=list(df.columns), tablefmt="github",
                                                floatfmt=".4g") + "\n", encoding="utf-8")
        plot_graphons(ests, o / "graphons.png", title=title)
        np.savez_compressed(o / "graphons.npz", **{n.replace(".", "_"): e.matrix for n, e in ests.items()})
    return df


def run_graphon_summary(masks: Mapping[str, torch.Tensor], data: Any, *, K: int = 64,
                        samples: int = NTK_SAMPLES) -> dict[str, Any]:
    """The ``graphon`` column of a run (``analysis = { graphon = true }``).

    :func:`graphon.summary.summarize_masks` of the final masks — per layer heterogeneity, distance to the
    constant graphon, share of dead neurons — plus, when the masks form a plain MLP
    (:func:`graphon.ntk.mlp_coverage`; checked first), the Graphon NTK metrics on the fixed batch
    :func:`fixed_batch` (first ``samples`` test samples, flattened) and the per-layer K × K matrices
    (``layers[name]["matrix"]``, 4 decimals, for the leaderboard's pictures).  Otherwise
    ``ntk_skipped`` says why (e.g. a convolution).
    """
    items = [(n, m) for n, m in masks.items() if isinstance(m, torch.Tensor) and m.dim() >= 2]
    x = None
    why = "the dataset has no in-memory test split"
    if getattr(data, "test_x", None) is not None:
        x = fixed_batch(data, samples)
        why = mlp_coverage(items, int(x.shape[1]))
    if why is None:
        out = summarize_masks(masks, K, ntk_batch=x, include_matrices=True)
        out["ntk_samples"] = int(x.shape[0])  # type: ignore[union-attr]
        out["ntk_batch"] = f"first {int(x.shape[0])} test samples, flattened"  # type: ignore[union-attr]
    else:
        out = summarize_masks(masks, K)
        out["ntk_skipped"] = why
    return out
