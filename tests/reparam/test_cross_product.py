"""Every registered pruner × every reparam of this package through the real pipeline
(``benchmark.runner.execute`` on digits-mlp, 1 epoch of 2 batches): the run succeeds or the pair is
refused up front with a one-line reason, pruned weights are exactly zero in the saved (merged) model,
and sign flips are recorded from the reparam's effective weights."""
from __future__ import annotations

import pytest
import torch

from benchmark.runner import execute
from benchmark.spec import make_spec
from pruners import PRUNERS, Masks
from pruners.registry import ConfigError

MINE = {
    "signin": {},
    "pilot": {"final_sparsity": 0.0},
    "spred": {},
    "ham": {"alpha": 20.0},
    "nanoadam": {"density": 0.2, "mask_interval": 1},
    "steepest": {"q": 1.5},
    "wd_schedule": {"t_off": 0.5},
}
RECIPE = {"epochs": 1, "max_train_batches": 2, "batch_size": 32, "eval_batch_size": 2000}

PAIRS = [(p, r) for r in sorted(MINE) for p in PRUNERS.names()]


def _spec(pruner: str, reparam: str):
    cls = PRUNERS.get(pruner)
    sparsity = 0.8 if cls.uses_sparsity else 0.0
    return make_spec(task="digits-mlp", pruner=pruner, sparsity=sparsity, seed=0, allocation="global",
                     reparam=reparam, reparam_args=MINE[reparam], recipe=RECIPE)


@pytest.mark.parametrize("pruner,reparam", PAIRS)
def test_pair_runs_or_is_refused(pruner, reparam, tmp_path):
    torch.set_num_threads(1)
    try:
        spec = _spec(pruner, reparam)
    except ConfigError as exc:
        msg = str(exc)
        assert "cannot be combined" in msg and "\n" not in msg, msg
        return
    rec = execute(spec, tmp_path)
    assert rec["status"] == "ok", rec["reason"]
    folder = next(p.parent for p in tmp_path.rglob("spec.json") if spec.run_id in str(p.parent))
    masks = Masks.load(folder / "masks.pt")
    state = torch.load(folder / "model.pt", weights_only=True)
    for name, m in masks.items():
        assert bool((state[name][~m] == 0).all()), name        # the zero-mask invariant
    assert isinstance(rec["sign_flips"], int)
    assert rec["achieved_sparsity"] == pytest.approx(masks.sparsity())


def test_basic_pruners_run_with_every_reparam():
    """The pairs that must never be refused: dense / random / magnitude with every reparam."""
    for r in MINE:
        for p in ("dense", "random", "magnitude"):
            _spec(p, r)
