"""STR and CS: soft-threshold formula, threshold gradients, rising sparsity, temperature schedule,
final folding / hard mask, learned-sparsity reporting, reparam refusal."""
from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.runner import execute
from benchmark.spec import make_spec
from pruners.session import build_session, fit
from pruners import ALLOCATIONS, PRUNERS, Callback, PruneContext
from pruners.cs import temperature
from pruners.registry import build_config
from pruners.str_pruner import soft_threshold
from reparam import REPARAMS, Identity, Reparam


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 24), nn.ReLU(), nn.Linear(24, 16), nn.ReLU(), nn.Linear(16, 3)).double()


def run(name: str, args: dict, epochs: int = 6, steps_per_epoch: int = 5, extra=(), lr: float = 0.05):
    model = tiny_model()
    g = torch.Generator().manual_seed(0)
    X = torch.randn(steps_per_epoch * 16, 8, generator=g, dtype=torch.float64)
    y = (X[:, 0] > 0).long() + (X[:, 1] > 0).long()
    loader = [(X[i * 16:(i + 1) * 16], y[i * 16:(i + 1) * 16]) for i in range(steps_per_epoch)]
    pruner = build_config(PRUNERS.get(name), args, name)
    alloc = build_config(ALLOCATIONS.get("global"), {}, "global")
    ctx = PruneContext(seed=0, batches=None, loss_fn=F.cross_entropy, device=torch.device("cpu"),
                       num_classes=3, input_shape=(8,))
    masks = pruner.initial_masks(model, ctx, 0.9, alloc)
    session = build_session(model, masks, lambda ps: torch.optim.SGD(ps, lr=lr, momentum=0.9), pruner=pruner,
                            allocation=alloc, sparsity=0.9, callbacks=extra, ctx=ctx, epochs=epochs,
                            steps_per_epoch=steps_per_epoch)
    hist = fit(session, loader, F.cross_entropy, test_batches=loader)
    return pruner, model, hist


def test_soft_threshold_formula():
    w = torch.tensor([0.5, -0.5, 0.01, -0.02, 0.0], dtype=torch.float64)
    s = torch.tensor(-2.0, dtype=torch.float64)
    g = 1 / (1 + math.exp(2.0))
    expected = torch.tensor([0.5 - g, -(0.5 - g), 0.0, 0.0, 0.0], dtype=torch.float64)
    assert torch.allclose(soft_threshold(w, s), expected)


def test_str_thresholds_get_gradients_and_sparsity_rises():
    grads = []

    class GradSpy(Callback):
        def before_step(self, state):
            grads.append([float(m.str_s.grad) for m in state.model if isinstance(m, nn.Linear)])

    pruner, model, hist = run("str", {"s_init": -4.0, "decay": 0.05}, epochs=6, extra=(GradSpy(),))
    assert any(abs(g) > 0 for step in grads for g in step)
    spars = [h["str_sparsity"] for h in hist]
    assert spars[-1] > spars[0] > 0 and spars[-1] > 0.2
    # folded: plain weights hold θ_eff with exact zeros, the threshold parameters and the forward are gone
    zeros = sum(int((m.weight == 0).sum()) for m in model if isinstance(m, nn.Linear))
    total = sum(m.weight.numel() for m in model if isinstance(m, nn.Linear))
    assert zeros / total == pytest.approx(spars[-1])
    assert not any("str_s" in n for n, _ in model.named_parameters())
    assert all("forward" not in m.__dict__ for m in model)


def test_cs_temperature_schedule_and_hard_mask():
    seen = {}

    class Spy(Callback):
        def on_epoch_start(self, state):
            seen[state.epoch] = pruner_ref[0]._cb.beta

        def on_end(self, state):
            pass

    pruner_ref = []
    orig = PRUNERS.get("cs").callbacks

    def capture(self, s, a):
        pruner_ref.append(self)
        return orig(self, s, a)

    PRUNERS.get("cs").callbacks = capture
    try:
        pruner, model, hist = run("cs", {"penalty": 1e-3, "final_temperature": 100.0}, epochs=5, extra=(Spy(),))
    finally:
        PRUNERS.get("cs").callbacks = orig
    expected = [100.0 ** (e / 4) for e in range(5)]
    assert [seen[e] for e in range(5)] == pytest.approx(expected)
    assert [h["cs_temperature"] for h in hist] == pytest.approx(expected)
    assert temperature(0, 5, 100.0) == 1.0 and temperature(4, 5, 100.0) == pytest.approx(100.0)
    # after training: w ← w ⊙ 1[s > 0] / σ(s_0) — the zeros are exactly the non-positive logits
    logits = pruner._cb.logits
    for i, (n, s) in zip((0, 2, 4), logits.items()):
        assert torch.equal(model[i].weight == 0, (s <= 0) | (model[i].weight == 0))
        assert int((model[i].weight[s <= 0] != 0).sum()) == 0
    assert hist[-1]["cs_hard_sparsity"] > 0


@pytest.mark.parametrize("name,args", [("str", {"s_init": -5.0, "decay": 0.01}), ("cs", {"penalty": 1e-4})])
def test_runner_reports_learned_sparsity(tmp_path, name, args):
    spec = make_spec("digits-mlp", name, 0.9, pruner_args=args, recipe={"epochs": 3, "max_train_batches": 8})
    rec = execute(spec, tmp_path)
    assert rec["status"] == "ok", rec["reason"]
    assert rec["learned_sparsity"] is True
    from benchmark.runfolder import run_dir

    state = torch.load(run_dir(tmp_path, spec.run_id) / "model.pt", weights_only=True)
    assert 0.0 < rec["achieved_sparsity"] < 1.0
    ws = [v for k, v in state.items() if k.endswith("weight")]
    zeros = sum(int((w == 0).sum()) for w in ws)
    assert zeros / sum(w.numel() for w in ws) == pytest.approx(rec["achieved_sparsity"])
    assert not any(k.endswith(("str_s", "cs_s")) for k in state)


@dataclass
class _Factorised(Reparam):
    def apply(self, model, masks):  # pragma: no cover - only its presence matters
        pass


@pytest.mark.parametrize("name", ["str", "cs"])
def test_refuses_reparams_that_reparameterise_weights(name):
    pruner = build_config(PRUNERS.get(name), {}, name)
    assert pruner.compatible_reparam(Identity()) is None
    reason = pruner.compatible_reparam(_Factorised())
    assert reason and "apply" in reason
    for rname, cls in REPARAMS.items():                  # every registered parameterising reparam is refused
        obj = build_config(cls, {}, rname)
        if pruner.compatible_reparam(obj):
            from pruners import ConfigError
            with pytest.raises(ConfigError, match="cannot be combined"):
                make_spec("digits-mlp", name, 0.9, reparam=rname)
