"""SET and RigL: constant per-layer density, gradient growth, zero-initialised grown weights with reset
optimiser state, stop fraction, FLOP accounting, bad input."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.runner import execute
from benchmark.spec import make_spec
from pruners.session import build_session, fit
from pruners import ALLOCATIONS, PRUNERS, ConfigError, PruneContext
from pruners.schedules.periodic import drop_grow
from pruners.registry import build_config
from pruners.schedules import theta_gradients


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 24), nn.ReLU(), nn.Linear(24, 16), nn.ReLU(), nn.Linear(16, 3)).double()


def record_updates(enforcer, model) -> None:
    """Make ``enforcer`` record every mask update: old / new masks, weights and optimiser state right after it."""
    enforcer.events = []
    update = enforcer.update

    def recording(new, optimizer=None, grown_value=0.0):
        old = enforcer.masks
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        changed = update(new, optimizer, grown_value)
        params = dict(model.named_parameters())
        opt_state = {n: {k: v.clone() for k, v in optimizer.state.get(p, {}).items() if torch.is_tensor(v)}
                     for n, p in params.items()}
        enforcer.events.append({"old": old, "new": new, "before": before, "opt": opt_state,
                                "after": {n: p.detach().clone() for n, p in params.items()}})
        return changed

    enforcer.update = recording


def run_dst(name: str, args: dict, sparsity: float = 0.8, epochs: int = 6, steps_per_epoch: int = 5,
            optimizer: str = "sgd", allocation: str = "uniform", seed: int = 0, weight_decay: float = 0.0):
    model = tiny_model(seed)
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(steps_per_epoch * 16, 8, generator=g, dtype=torch.float64)
    y = (X[:, 0] > 0).long() + (X[:, 1] > 0).long()
    loader = [(X[i * 16:(i + 1) * 16], y[i * 16:(i + 1) * 16]) for i in range(steps_per_epoch)]
    pruner = build_config(PRUNERS.get(name), args, name)
    alloc = build_config(ALLOCATIONS.get(allocation), {}, allocation)
    ctx = PruneContext(seed=seed, batches=None, loss_fn=F.cross_entropy, device=torch.device("cpu"),
                       num_classes=3, input_shape=(8,))
    masks = pruner.initial_masks(model, ctx, sparsity, alloc)
    session = build_session(model, masks, (lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=weight_decay)) if optimizer == "sgd"
                            else (lambda ps: torch.optim.Adam(ps, lr=0.01)), pruner=pruner, allocation=alloc,
                            sparsity=sparsity, ctx=ctx, epochs=epochs, steps_per_epoch=steps_per_epoch)
    record_updates(session.enforcer, model)
    fit(session, loader, F.cross_entropy, test_batches=loader[:1])
    return pruner, session.state, session.enforcer, loader


def test_drop_grow_by_hand():
    mask = torch.tensor([True, True, True, False, False, False])
    w = torch.tensor([0.5, -0.1, 2.0, 0.0, 0.0, 0.0])
    g = torch.tensor([9.0, 9.0, 9.0, 0.3, -0.7, 0.1])
    # drop the active entry with the smallest |w| (index 1); it may be regrown, but |g| is larger at index 1
    new = drop_grow(mask, w.abs(), g.abs(), 1)
    assert new.tolist() == [True, True, True, False, False, False]
    g2 = torch.tensor([0.0, 0.2, 0.0, 0.3, -0.7, 0.1])
    new2 = drop_grow(mask, w.abs(), g2.abs(), 2)     # drop indices 1 and 0; grow the two largest |g| inactive: 4, 3
    assert new2.tolist() == [False, False, True, True, True, False]
    assert int(new2.sum()) == int(mask.sum())


def test_theta_gradients_match_autograd():
    model = tiny_model()
    x = torch.randn(7, 8, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    theta = {n: p.detach() for n, p in model.named_parameters() if n.endswith("weight")}
    grads, macs = theta_gradients(model, theta, (x, y), F.cross_entropy)
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    for n, g in grads.items():
        assert torch.allclose(g, dict(model.named_parameters())[n].grad)
    assert macs == {"0.weight": 8 * 24, "2.weight": 24 * 16, "4.weight": 16 * 3}
    assert "forward" not in model[0].__dict__


@pytest.mark.parametrize("name", ["rigl", "set"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_updates_keep_layer_counts_grow_at_zero_with_fresh_state(name, optimizer):
    pruner, state, enf, _ = run_dst(name, {"update_interval": 4, "drop_fraction": 0.5, "end": 0.75},
                                    optimizer=optimizer)
    assert len(enf.events) == pruner.extra_results()["updates"] > 0
    total_grown = 0
    for ev in enf.events:
        for n, m_old in ev["old"].items():
            m_new = ev["new"][n]
            assert int(m_old.sum()) == int(m_new.sum())                 # per-layer density constant
            grown = m_new & ~m_old
            total_grown += int(grown.sum())
            assert bool((ev["after"][n][grown] == 0).all())             # grown weights start at zero
            for key, buf in ev["opt"][n].items():
                if buf.shape == m_new.shape:
                    assert bool((buf[grown] == 0).all()), key            # momentum / Adam moments reset
            assert bool((ev["after"][n][~m_new] == 0).all())
    assert total_grown > 0


def test_no_update_after_end_fraction_and_interval():
    pruner, state, enf, _ = run_dst("rigl", {"update_interval": 3, "end": 0.5}, epochs=6, steps_per_epoch=5)
    T = state.total_steps                          # 30
    steps = [u["t"] for u in pruner.mask_schedule._cb.updates]
    assert steps == [t for t in range(3, T + 1, 3) if t < 0.5 * T] == [3, 6, 9, 12]
    fr = [u["fraction"] for u in pruner.mask_schedule._cb.updates]
    import math
    assert fr == pytest.approx([0.15 * (1 + math.cos(math.pi * t / 15)) for t in steps])


def test_rigl_grows_at_largest_gradient_among_inactive():
    pruner, state, enf, loader = run_dst("rigl", {"update_interval": 5, "drop_fraction": 0.3, "end": 0.5},
                                         epochs=4, steps_per_epoch=5)
    ev = enf.events[0]                              # update at t = 5, after the last batch of epoch 0
    t = pruner.mask_schedule._cb.updates[0]["t"]
    assert t == 5
    model = tiny_model()
    model.load_state_dict({k: v for k, v in ev["before"].items()})
    grads, _ = theta_gradients(model, {n: ev["before"][n] for n in ev["old"]}, loader[4], F.cross_entropy)
    for n, m_old in ev["old"].items():
        m_new = ev["new"][n]
        k = int(round(pruner.mask_schedule._cb.updates[0]["fraction"] * int(m_old.sum())))
        # the kept part: the n - k largest |θ| of the active weights
        w = ev["before"][n].abs()
        after_drop = torch.zeros_like(m_old).reshape(-1)
        order = torch.sort(torch.where(m_old, w, torch.full_like(w, -1.0)).reshape(-1), descending=True,
                           stable=True).indices
        after_drop[order[: int(m_old.sum()) - k]] = True
        after_drop = after_drop.view_as(m_old)
        grown = m_new & ~after_drop
        assert int(grown.sum()) == k
        cand = grads[n].abs()[~after_drop]
        kth = torch.sort(cand, descending=True).values[k - 1]
        assert bool((grads[n].abs()[grown] >= kth).all())


def test_rigl_counts_dense_gradient_flops():
    pruner, state, enf, _ = run_dst("rigl", {"update_interval": 4}, sparsity=0.8, epochs=4)
    macs = {"0.weight": 8 * 24, "2.weight": 24 * 16, "4.weight": 16 * 3}
    dens = state.masks.masks.layer_density()            # per-layer density is constant during training
    per_update = sum(2 * m for m in macs.values()) - sum(2 * m * dens[n] for n, m in macs.items())
    n = len(pruner.mask_schedule._cb.updates)
    assert state.extra_train_flops == pytest.approx(n * per_update)
    _, state_set, _, _ = run_dst("set", {"update_interval": 4}, sparsity=0.8, epochs=4)
    assert state_set.extra_train_flops == 0.0


@pytest.mark.parametrize("args,match", [({"update_interval": 0}, "positive"),
                                        ({"start": 0.5, "end": 0.4}, "must be after start"),
                                        ({"drop_fraction": 0.0}, "outside"),
                                        ({"decay": "linear"}, "cosine")])
def test_bad_input(args, match):
    for name in ("rigl", "set"):
        with pytest.raises(ConfigError, match=match):
            make_spec("digits-mlp", name, 0.9, pruner_args=args)


def test_runner_rigl_erk(tmp_path):
    alloc = "erk" if "erk" in ALLOCATIONS else "uniform"
    spec = make_spec("digits-mlp", "rigl", 0.9, allocation=alloc, pruner_args={"update_interval": 4},
                     recipe={"epochs": 2, "max_train_batches": 8})
    rec = execute(spec, tmp_path)
    assert rec["status"] == "ok", rec["reason"]
    assert rec["achieved_sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert rec["extra"]["updates"] == 2          # t = 4, 8 < 0.75 · 16 = 12
    assert rec["train_flops_rel"] > 0.1
