"""The `make bench` harness (benchmark.perf) and the optimisations it measures.

No timing assertions: the smoke test only checks the report is produced; the other tests check that the
optimised code computes exactly what it replaced, and the FLOP counting against closed forms.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def test_perf_quick_step_smoke(tmp_path):
    out = tmp_path / "bench.md"
    res = subprocess.run([sys.executable, "-m", "benchmark.perf", "--quick", "--only", "step", "--write", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks") and "Command: `make bench`" in text
    assert "## Masked training step vs dense step" in text
    rows = [ln for ln in text.splitlines() if ln.startswith("| LeNet-300-100") or ln.startswith("| ResNet-20")]
    assert len(rows) == 5  # 2 models × SGD, AdamW, plus fused AdamW on LeNet-300-100


def test_perf_quick_smoke_of_every_fast_section(tmp_path):
    """Every section but the slow process-level ones (workers, memory: whole grids / fresh processes)
    runs in quick mode and lands in the report, so a section cannot break unnoticed until `make bench`."""
    from benchmark.perf.__main__ import SECTIONS

    fast = [name for name, *_ in SECTIONS if name not in ("workers", "memory", "step")]
    out = tmp_path / "bench.md"
    res = subprocess.run([sys.executable, "-m", "benchmark.perf", "--quick", "--only", ",".join(fast),
                          "--write", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    text = out.read_text(encoding="utf-8")
    for name in fast:
        assert f"<!-- section:{name} -->" in text, name
    assert "| ResNet-20 | HAM + SGD momentum |" in text and "| LeNet-5 | Sign-In" in text


def test_perf_unknown_section_is_refused():
    res = subprocess.run([sys.executable, "-m", "benchmark.perf", "--only", "nope"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "unknown section(s) nope" in res.stderr


def test_layer_macs_match_closed_forms():
    from benchmark.metrics import inference_flops, layer_macs
    from benchmark.perf.flops import resnet20_macs
    from benchmark.tasks.models import MODELS
    from pruners import Masks, prunable_parameters

    lenet = MODELS.get("mlp")(input_shape=(1, 28, 28), num_outputs=10)
    macs = layer_macs(lenet, torch.zeros(2, 1, 28, 28))
    assert macs == {"layers.0.weight": 784 * 300, "layers.2.weight": 300 * 100, "layers.4.weight": 100 * 10}
    # density scaling: 2 × Σ MACs × layer density
    masks = Masks({n: torch.arange(p.numel()).reshape(p.shape) % 4 == 0 for n, p in prunable_parameters(lenet).items()})
    assert inference_flops(macs, masks) == pytest.approx(2 * 266_200 / 4)
    resnet = MODELS.get("resnet20")(input_shape=(3, 32, 32), num_outputs=10)
    assert sum(layer_macs(resnet, torch.zeros(1, 3, 32, 32)).values()) == resnet20_macs() == 40_813_184


def test_flops_tracker_charges_each_step_the_masks_it_ran_with():
    from benchmark.metrics import FlopsTracker
    from pruners import Masks

    full = Masks({"w": torch.ones(10, dtype=torch.bool)})
    half = Masks({"w": torch.arange(10) < 5})
    tenth = Masks({"w": torch.arange(10) < 1})
    holder = SimpleNamespace(masks=full)
    state = SimpleNamespace(step=0, masks=holder)
    t = FlopsTracker({"w": 100})            # dense: 200 FLOPs per sample
    t.on_epoch_start(state)
    for s in range(10):                     # the schedule switches to `half` in the after_step of step 3
        state.step = s
        if s == 3:
            holder.masks = half
        t.after_step(state)
        state.step = s + 1
    holder.masks = tenth                    # an epoch-end prune counts from the next epoch on
    t.on_epoch_end(state)
    t.on_epoch_start(state)
    state.step = 12
    t.on_epoch_end(state)
    # steps 0-3 dense (200), 4-9 half (100), 10-11 a tenth (20)
    expected = (4 * 200 + 6 * 100 + 2 * 20) / (12 * 200)
    assert t.train_flops_rel() == pytest.approx(expected)


def _signin_run(marked: bool, steps: int = 15) -> list[torch.Tensor]:
    import reparam.factorized as factorized
    from benchmark.bench_reparam import make_variant

    g = torch.Generator().manual_seed(3)
    batch = (torch.randn(16, 1, 28, 28, generator=g), torch.randint(0, 10, (16,), generator=g))
    saved = factorized.mark_grad_zero_where_masked
    if not marked:
        factorized.mark_grad_zero_where_masked = lambda *ps: None
    try:
        step = make_variant("signin", {}, "adamw", 0.2, batch)
    finally:
        factorized.mark_grad_zero_where_masked = saved
    for _ in range(steps):
        step()
    opt = step.optimizer
    return [p.detach().clone() for p in step.model.parameters()] + \
        [v.clone() for st in opt.state.values() for v in st.values() if torch.is_tensor(v) and v.dim()]


def test_enforcer_gradient_skip_for_factors_is_bit_identical():
    from pruners.enforce import GRAD_ZERO_ATTR

    a, b = _signin_run(True), _signin_run(False)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x, y) and torch.equal(torch.signbit(x), torch.signbit(y))
    # the marks are set by the reparam and make the enforcer skip exactly the factors' gradients
    from benchmark.bench_reparam import make_variant

    step = make_variant("signin", {}, "sgd", 0.2, (torch.zeros(2, 1, 28, 28), torch.zeros(2, dtype=torch.long)))
    marked = [n for n, p in step.model.named_parameters() if getattr(p, GRAD_ZERO_ATTR, False)]
    assert marked and all(n.endswith(("original0", "original1")) for n in marked)


def test_ham_foreach_step_is_bit_identical_to_the_loop():
    from benchmark.perf.optim import HamLoop
    from reparam.ham import HamOptimizer

    def run(loop: bool, clamp: float) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(12, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
        with torch.no_grad():
            model[0].weight[:, :4] = 0.0                   # exact zeros stay zero
        opt = HamOptimizer(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), alpha=50.0, beta=1e-2,
                           clamp=clamp, max_norm=3.0, kernel="eager")   # the eager (foreach) path
        stepper = HamLoop(opt) if loop else opt
        g = torch.Generator().manual_seed(1)
        for _ in range(12):
            x = torch.randn(5, 12, generator=g, dtype=torch.float64)
            opt.zero_grad()
            model(x).pow(2).sum().backward()
            stepper.step()
        return [p.detach().clone() for p in model.parameters()]

    for clamp in (5.0, 0.0):
        for a, b in zip(run(False, clamp), run(True, clamp)):
            assert torch.equal(a, b)


def test_perf_only_updates_sections_in_place(tmp_path):
    out = tmp_path / "bench.md"
    cmd = [sys.executable, "-m", "benchmark.perf", "--quick", "--only", "gpu", "--write", str(out)]
    for _ in range(2):  # first a new (incomplete) report, then an in-place update of the same section
        res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr[-2000:]
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks") and "**Incomplete" in text
    assert text.count("<!-- section:gpu -->") == 1 and text.count("<!-- /section:gpu -->") == 1
    assert "## GPU check (lent NVIDIA H200)" in text and "signin / dense" in text


def test_nanoadam_state_bytes_count_moments_and_selection():
    """NanoAdam's reported optimiser memory = two dense moments + 8 bytes per selected entry."""
    import math

    from benchmark.perf.nanoadam import _state_bytes, _variant

    torch.manual_seed(0)
    base = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    batch = (torch.randn(5, 12), torch.randint(0, 3, (5,)))
    step = _variant(base, batch, "adamw", 0.1, mask_interval=4)
    step()
    opt = step.optimizer
    params = list(opt.state)
    moments = sum(2 * p.numel() * 4 for p in params)
    selected = math.ceil(0.1 * 12 * 7)   # only the first weight matrix is selectable (the head is not)
    assert sum(i.numel() for i in opt.selection.values()) == selected
    assert _state_bytes(opt) == moments + 8 * selected


@pytest.mark.parametrize("model_name", ["lenet5", "resnet20"])
@pytest.mark.parametrize("reparam,args,optimizer", [("signin", {}, "sgd"), ("ham", {"alpha": 1.0}, "adamw")])
def test_reparam_bench_variants_on_the_conv_models_train_and_keep_pruned_weights_at_zero(model_name, reparam, args,
                                                                                          optimizer):
    """The conv rows of the reparam benchmark time a real masked step: the loss moves and every pruned
    weight (of the merged θ) is still exactly zero after the steps."""
    from benchmark.bench_reparam import MODEL_SHAPES, make_variant

    g = torch.Generator().manual_seed(5)
    batch = (torch.randn(4, *MODEL_SHAPES[model_name], generator=g), torch.randint(0, 10, (4,), generator=g))
    step = make_variant(reparam, args, optimizer, 0.2, batch, model_name=model_name)
    before = {n: t.detach().clone() for n, t in step.model.state_dict().items()}
    for _ in range(3):
        step()
    after = step.model.state_dict()
    assert any(not torch.equal(before[n], after[n]) for n in before)
    from benchmark.bench_reparam import build_bench_model, random_masks
    from reparam import REPARAMS

    masks = random_masks(build_bench_model(model_name), 0.2)   # the variant's masks (same seed and shapes)
    theta = REPARAMS.get(reparam)().effective_weights(step.model)
    assert set(theta) == set(masks)
    for name, w in theta.items():
        assert torch.count_nonzero(w.detach()[~masks[name]]) == 0, name
        assert torch.count_nonzero(w.detach()[masks[name]]) > 0, name


def test_optimisations_section_runs_and_swaps_in_the_old_ham_step():
    """`make bench`'s "optimisations" section times the old per-tensor HAM loop in the same training
    step: the swap must really put the old step in place (it silently broke once)."""
    from benchmark.bench_reparam import make_variant
    from benchmark.perf.optim import HamLoop, _swap_optimizer, section

    batch = (torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,)))
    step = make_variant("ham", {}, "sgd", 0.2, batch)
    old = HamLoop(step.optimizer)
    _swap_optimizer(step, old)
    calls = []
    inner = old.step
    old.step = lambda *a, **k: (calls.append(1), inner(*a, **k))[1]
    step()
    assert calls == [1]
    text = section(quick=True)
    assert "| enforcer skips the gradient mask" in text and "HAM post-step" in text
