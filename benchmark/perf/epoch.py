"""The suite's training epoch against a bare PyTorch loop, masked against dense, each reparam against plain,
on the models of the three CPU tasks (LeNet-300-100, LeNet-5, the batch-norm ResNet-8).

Every variant trains one epoch over the same in-memory tensors (a Fashion-MNIST-shaped random set,
batch 128, a :class:`benchmark.tasks.TensorLoader`) from the same initialisation:

* ``bare``: the loop a researcher would write — ``zero_grad``, forward, cross-entropy, ``backward``,
  ``step``, the lr scheduler's ``step`` — with the recipe's optimiser (SGD, momentum 0.9);
* ``dense``: the suite's session and loop (:func:`pruners.session.build_session`,
  :func:`pruners.session.fit`) on the same model and optimiser, with its per-step divergence check;
* ``masked``: the same at 90 % sparsity (uniform random masks kept by the enforcer);
* ``signin`` / ``pilot`` / ``ham``: the masked session with that reparam (its recipe optimiser: SGD).

A fresh session is built for every timed epoch (outside the timer), since ``fit`` starts and ends a
session; the epochs of all variants are interleaved in rotating order after a warm-up epoch each
(:func:`benchmark.perf.timing.interleaved`), and each ratio is the median over rounds.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn.functional as F

from benchmark.perf.timing import clock, clock_name, interleaved, load_average, ratio

#: name -> (model factory, its arguments, label, input shape): the three CPU tasks' models
MODELS = {"lenet300": ("mlp", {"hidden": [300, 100]}, "LeNet-300-100", (1, 28, 28)),
          "lenet5": ("lenet5", {}, "LeNet-5", (1, 28, 28)),
          "resnet8": ("resnet8", {"init": "kaiming_normal"}, "ResNet-8 (fmnist-resnet8, 14 × 14)", (1, 14, 14))}
REPARAMS = {"signin": {}, "pilot": {"alpha": 1e-4}, "ham": {"alpha": 20.0}}


def _variants(model_name: str, samples: int, batch: int = 128) -> dict[str, Callable[[], None]]:
    from benchmark.tasks import TensorLoader
    from benchmark.tasks.models import MODELS as FACTORIES
    from benchmark.train import build_optimizer, build_scheduler
    from benchmark.tasks.base import Recipe
    from pruners import ALLOCATIONS, prunable_parameters
    from pruners.registry import build_config
    from pruners.session import build_session, fit
    from reparam import REPARAMS as REGISTRY

    factory, args, _, shape = MODELS[model_name]
    torch.manual_seed(0)
    base = FACTORIES.get(factory)(input_shape=shape, num_outputs=10, **args)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(samples, *shape, generator=g), torch.randint(0, 10, (samples,), generator=g)
    loader = TensorLoader(x, y, batch_size=batch, shuffle=True, seed=0)
    recipe = Recipe(epochs=1, batch_size=batch, optimizer="sgd", lr=0.01, momentum=0.9)
    scores = {n: torch.rand(p.shape, generator=g) for n, p in prunable_parameters(base).items()}
    masks = ALLOCATIONS.get("uniform")().masks(scores, 0.1)

    def bare() -> None:
        model = copy.deepcopy(base)
        opt = build_optimizer(model.parameters(), recipe)
        sched = build_scheduler(opt, recipe, len(loader))
        for xb, yb in loader:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
            sched.step()

    def suite(sparse: bool, reparam: str = "none") -> Callable[[], None]:
        def epoch() -> None:
            model = copy.deepcopy(base)
            rp = build_config(REGISTRY.get(reparam), REPARAMS.get(reparam, {}), reparam)
            session = build_session(model, masks if sparse else None, lambda ps: build_optimizer(ps, recipe),
                                    reparam=rp, scheduler=lambda o: build_scheduler(o, recipe, len(loader)),
                                    steps_per_epoch=len(loader))
            fit(session, loader, F.cross_entropy)
        return epoch

    return {"bare": bare, "dense": suite(False), "masked": suite(True),
            **{name: suite(True, name) for name in REPARAMS}}


def measure(model_name: str, quick: bool = False) -> dict[str, float]:
    """Median seconds per epoch of ``bare`` and the ratios of the module docstring."""
    times = interleaved(_variants(model_name, 1024 if quick else 8192), warmup=1, reps=3 if quick else 7,
                        inner=1, clock=clock())
    out = {"bare_s": sorted(times["bare"])[len(times["bare"]) // 2], "suite/bare": ratio(times, "dense", "bare"),
           "masked/dense": ratio(times, "masked", "dense")}
    out.update({f"{r}/masked": ratio(times, r, "masked") for r in REPARAMS})
    return out


def section(quick: bool = False) -> str:
    rows = [(MODELS[m][2], measure(m, quick)) for m in MODELS]
    samples = 1024 if quick else 8192
    lines = ["## Training epoch: the suite against a bare PyTorch loop", "",
             f"One epoch of {samples} Fashion-MNIST-shaped samples (28 × 28; 14 × 14 for ResNet-8, as its task; "
             "batch 128, in memory), SGD momentum 0.9 with "
             f"the recipe's cosine schedule, {clock_name()}, load {load_average():.1f}; median over interleaved "
             "rounds of the per-round ratio (`benchmark/perf/epoch.py`). Targets: suite / bare ≤ 1.05, "
             "masked / dense ≤ 1.05.", "",
             "| model | bare epoch (s) | suite / bare | masked / dense | Sign-In / masked | PILoT / masked | "
             "HAM / masked |", "|---|---|---|---|---|---|---|"]
    for label, r in rows:
        lines.append(f"| {label} | {r['bare_s']:.3f} | **{r['suite/bare']:.3f}** | **{r['masked/dense']:.3f}** | "
                     f"{r['signin/masked']:.3f} | {r['pilot/masked']:.3f} | {r['ham/masked']:.3f} |")
    lines += ["", "Sign-In and PILoT train θ = m ⊙ w through `torch.nn.utils.parametrize` (the product is "
              "recomputed in every forward and differentiated in every backward); HAM adds its foreach mirror "
              "step after SGD's. Their GPU figures are in the GPU section.", ""]
    return "\n".join(lines)
