"""CSR export of pruned Linear layers (benchmark.sparse_export): same function, fewer stored weights."""
from __future__ import annotations

import torch
from torch import nn

from benchmark.sparse_export import CSRLinear, sparse_speedup, to_sparse
from benchmark.tasks.models import MODELS
from pruners import Masks, prunable_parameters


def _masked_mlp(density: float, dtype=torch.float64, hidden=(30, 20)):
    torch.manual_seed(0)
    model = MODELS.get("mlp")(input_shape=(1, 6, 6), num_outputs=5, hidden=list(hidden)).to(dtype)
    g = torch.Generator().manual_seed(1)
    masks = Masks({n: torch.rand(p.shape, generator=g) < density for n, p in prunable_parameters(model).items()})
    masks.apply_(model)
    return model, masks


def test_csr_export_equals_dense_forward_float64():
    model, masks = _masked_mlp(0.1)
    sparse = to_sparse(model, masks)
    x = torch.randn(7, 1, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(sparse(x), model(x), rtol=1e-12, atol=1e-12)
    linears = [m for m in sparse.modules() if isinstance(m, CSRLinear)]
    assert len(linears) == 3 and not any(type(m) is nn.Linear for m in sparse.modules())
    # exactly the kept weights are stored
    assert sum(m.nnz for m in linears) == sum(int(m.sum()) for m in masks.values())
    # the original model is untouched
    assert all(type(m) is not CSRLinear for m in model.modules())


def test_csr_export_applies_the_mask_and_keeps_unmasked_layers_dense():
    model, masks = _masked_mlp(0.5, dtype=torch.float32)
    # weights not yet zeroed at masked entries: the export must apply the mask itself
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    first = "layers.0.weight"
    only = {first: masks[first]}
    sparse = to_sparse(model, only)
    assert isinstance(sparse.layers[0], CSRLinear) and type(sparse.layers[2]) is nn.Linear
    x = torch.randn(4, 36)
    w = model.layers[0].weight.detach() * masks[first]
    ref = x @ w.t() + model.layers[0].bias.detach()
    with torch.no_grad():
        torch.testing.assert_close(sparse.layers[0](x), ref, rtol=1e-5, atol=1e-5)
    assert sparse.layers[0].nnz == int(masks[first].sum())


def test_min_sparsity_and_nonzero_pattern_without_masks():
    model, masks = _masked_mlp(0.3)
    # no masks: the nonzero pattern of each Linear weight is exported
    sparse = to_sparse(model)
    assert sum(m.nnz for m in sparse.modules() if isinstance(m, CSRLinear)) == \
        sum(int((p != 0).sum()) for n, p in model.named_parameters() if n.endswith("weight"))
    # a sparsity threshold above every layer's sparsity exports nothing
    assert not any(isinstance(m, CSRLinear) for m in to_sparse(model, masks, min_sparsity=0.99).modules())


def test_csr_linear_keeps_leading_dimensions_and_no_bias():
    lin = nn.Linear(6, 3, bias=False).double()
    mask = torch.tensor([[1, 0, 0, 1, 0, 0]] * 3, dtype=torch.bool)
    c = CSRLinear(lin, mask)
    x = torch.randn(2, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(c(x), x @ (lin.weight.detach() * mask).t(), rtol=1e-12, atol=1e-12)
    assert c.nnz == 6


def test_sparse_speedup_reports_both_latencies():
    model, masks = _masked_mlp(0.05, dtype=torch.float32)
    r = sparse_speedup(model, masks, torch.randn(8, 1, 6, 6), reps=2, inner=1, warmup=1)
    assert r["dense_s"] > 0 and r["sparse_s"] > 0 and r["speedup"] > 0


def test_runner_records_sparse_speedup_only_when_asked(tmp_path):
    from benchmark.runner import execute
    from benchmark.spec import make_spec

    recipe = {"epochs": 1, "max_train_batches": 2}
    plain = make_spec("digits-mlp", pruner="random", sparsity=0.9, allocation="uniform", recipe=recipe)
    asked = make_spec("digits-mlp", pruner="random", sparsity=0.9, allocation="uniform", recipe=recipe,
                      analysis={"sparse_latency": True})
    # spec.json records the key; at its default it is left out of the hash (as every default)
    assert plain.analysis["sparse_latency"] is False and "analysis" not in plain.hashed_dict()
    assert asked.run_id != plain.run_id
    r0 = execute(plain, tmp_path)
    r1 = execute(asked, tmp_path)
    assert r0["status"] == r1["status"] == "ok", (r0["reason"], r1["reason"])
    assert r0["sparse_speedup"] is None
    assert r1["sparse_speedup"] > 0
    assert r1["final_top1"] == r0["final_top1"]  # a measurement only: same training, same result
