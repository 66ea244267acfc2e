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


def test_perf_quick_smoke_of_every_fast_section(tmp_path):
    """Every section but the slow process-level ones (workers, memory: whole grids / fresh processes)
    runs in quick mode and lands in the report, so a section cannot break unnoticed until `make bench`."""
    from benchmark.perf.__main__ import SECTIONS

    fast = [name for name, *_ in SECTIONS if name not in ("workers", "memory")]
    out = tmp_path / "bench.md"
    res = subprocess.run([sys.executable, "-m", "benchmark.perf", "--quick", "--only", ",".join(fast),
                          "--write", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks") and "Command: `make bench`" in text
    for name in fast:
        assert f"<!-- section:{name} -->" in text, name
    assert "## Training epoch: the suite against a bare PyTorch loop" in text
    assert sum(ln.startswith(("| LeNet-300-100 | 0.", "| LeNet-5 | 0.")) for ln in text.splitlines()) == 2


def test_epoch_variants_train_through_the_session_and_keep_pruned_weights_at_zero(monkeypatch):
    """The timed suite epochs are real masked training: each variant's epoch runs without error, and a
    masked session built as the benchmark builds it ends with every pruned weight exactly zero."""
    from benchmark.perf import epoch

    built = []
    from pruners import session as session_mod
    real = session_mod.build_session

    def spy(*a, **k):
        built.append(real(*a, **k))
        return built[-1]

    monkeypatch.setattr(session_mod, "build_session", spy)
    variants = epoch._variants("lenet300", samples=256)
    assert set(variants) == {"bare", "dense", "masked", "signin", "pilot", "ham"}
    for fn in variants.values():
        fn()
    masked = [s for s in built if s.enforcer is not None]
    assert len(masked) == 4
    for s in masked:
        s.reparam.merge(s.model)
        for name, w in s.reparam.effective_weights(s.model).items():
            assert torch.count_nonzero(w[~s.masks[name]]) == 0, name


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
