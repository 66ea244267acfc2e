"""One run end to end: determinism, records, divergence and failures."""
import json
import math

import pytest
import torch

from benchmark.runfolder import read_result, run_dir
from benchmark.runner import execute
from benchmark.spec import make_spec
from pruners import Masks
from pruners.registry import ConfigError

TINY = {"epochs": 2}


def test_two_runs_of_one_spec_give_identical_masks_and_metrics(tmp_path):
    spec = make_spec("digits-mlp", "random", 0.8, seed=3, allocation="uniform", recipe=TINY)
    a = execute(spec, tmp_path / "a")
    b = execute(spec, tmp_path / "b")
    assert a["status"] == b["status"] == "ok"
    for key in ("final_top1", "final_test_loss", "final_train_loss", "achieved_sparsity", "sign_flips"):
        assert a[key] == b[key], key
    ma = Masks.load(run_dir(tmp_path / "a", spec.run_id) / "masks.pt")
    mb = Masks.load(run_dir(tmp_path / "b", spec.run_id) / "masks.pt")
    assert ma.equal(mb)
    la = (run_dir(tmp_path / "a", spec.run_id) / "metrics.jsonl").read_text().splitlines()
    lb = (run_dir(tmp_path / "b", spec.run_id) / "metrics.jsonl").read_text().splitlines()
    strip = lambda lines: [{k: v for k, v in json.loads(l).items() if "time" not in k} for l in lines]
    assert strip(la) == strip(lb)


def test_run_folder_record_and_final_weights(tmp_path):
    spec = make_spec("digits-mlp", "magnitude", 0.9, seed=0, recipe=TINY)
    rec = execute(spec, tmp_path)
    folder = run_dir(tmp_path, spec.run_id)
    assert {p.name for p in folder.iterdir()} == \
        {"spec.json", "metrics.jsonl", "masks.pt", "model.pt", "log.txt", "result.json"}
    assert read_result(folder) == json.loads(json.dumps(rec))
    assert abs(rec["achieved_sparsity"] - 0.9) < 1e-3
    assert len((folder / "metrics.jsonl").read_text().splitlines()) == 2
    weights = torch.load(folder / "model.pt")
    masks = Masks.load(folder / "masks.pt")
    for name, m in masks.items():
        assert torch.count_nonzero(weights[name][~m]) == 0       # pruned weights are exactly zero
    assert rec["flops_sparse"] < rec["flops_dense"]
    assert rec["train_flops_rel"] == pytest.approx(rec["inference_flops_rel"])  # static mask
    assert rec["mask_time_fb"] > 0
    assert rec["effective_sparsity"] >= rec["achieved_sparsity"] - 1e-12
    assert rec["dead_neurons"] >= 0 and rec["disconnected"] in (False, True)
    assert rec["versions"]["torch_threads"] == str(torch.get_num_threads())   # results depend on it on CPU


def test_divergence_is_recorded_with_its_step(tmp_path):
    spec = make_spec("digits-mlp", "dense", recipe={"epochs": 2, "lr": 1e6, "lr_schedule": "constant"})
    rec = execute(spec, tmp_path)
    assert rec["status"] == "diverged"
    assert isinstance(rec["diverged_step"], int) and rec["diverged_step"] >= 0
    assert "at step" in rec["reason"]


def test_a_run_that_raises_is_recorded_as_failed_with_traceback(tmp_path, monkeypatch):
    import pruners.basic as basic

    def boom(self, model, ctx):
        raise RuntimeError("scorer exploded")

    monkeypatch.setattr(basic.Random, "scores", boom)
    spec = make_spec("digits-mlp", "random", 0.5, recipe=TINY)
    rec = execute(spec, tmp_path)
    assert rec["status"] == "failed" and rec["reason"] == "RuntimeError: scorer exploded"
    assert "Traceback" in (run_dir(tmp_path, spec.run_id) / "log.txt").read_text()


def test_final_metrics_are_those_of_the_saved_model(tmp_path):
    """A change after the last epoch's evaluation (here a one-shot prune at the end) is evaluated."""
    from benchmark.tasks import get_task, load_data, make_loaders
    from benchmark.train import loss_function
    from pruners.session import evaluate
    from benchmark.tasks.base import Recipe
    from pruners.registry import build_config

    spec = make_spec("digits-mlp", "oneshot", 0.98, pruner_args={"finetune_epochs": 0}, recipe=TINY)
    rec = execute(spec, tmp_path)
    task = get_task("digits-mlp")
    model = __import__("benchmark.tasks", fromlist=["build_model"]).build_model(task)
    model.load_state_dict(torch.load(run_dir(tmp_path, spec.run_id) / "model.pt"))
    recipe = build_config(Recipe, dict(spec.recipe), "recipe")
    _, test_loader = make_loaders(load_data("digits"), 64, 1000, 0)
    expected = evaluate(model, test_loader, loss_function(recipe))
    assert rec["final_top1"] == pytest.approx(expected["test_top1"])
    assert abs(rec["achieved_sparsity"] - 0.98) < 1e-3


def test_anytime_accuracy_is_recorded_at_the_asked_step_counts(tmp_path):
    import math

    from benchmark.tasks import get_task, load_data

    task = get_task("digits-mlp")
    steps = 2 * math.ceil(load_data(task.dataset, **task.dataset_args).num_train() / task.recipe.batch_size)
    spec = make_spec("digits-mlp", "random", 0.5, recipe={**TINY, "eval_at_steps": [5, steps, 10 * steps]})
    rec = execute(spec, tmp_path)
    assert set(rec["anytime_top1"]) == {"5", str(steps)}                # a step past the end is left out
    assert rec["anytime_top1"][str(steps)] == pytest.approx(rec["final_top1"])   # the last step: same model
    assert 0 <= rec["anytime_top1"]["5"] <= 100



def _compile_pair(tmp_path, monkeypatch, device: str):
    from benchmark.runfolder import read_result, run_dir
    from benchmark.runner import COMPILE_ENV, execute
    from benchmark.spec import make_spec

    spec = make_spec("digits-mlp", "random", 0.8, recipe={"epochs": 2, "max_train_batches": 3})
    recs = {}
    for mode in ("eager", "compiled"):
        if mode == "compiled":
            monkeypatch.setenv(COMPILE_ENV, "1")
        else:
            monkeypatch.delenv(COMPILE_ENV, raising=False)
        execute(spec, tmp_path / mode, device=device)
        recs[mode] = read_result(run_dir(tmp_path / mode, spec.run_id))
    return spec, recs


def test_compile_on_cpu_runs_eager_says_so_and_keeps_the_run_id(tmp_path, monkeypatch):
    """Issue 22 (1): --compile is recorded in versions, not in the id; on the CPU the run stays eager."""
    spec, recs = _compile_pair(tmp_path, monkeypatch, "cpu")
    assert recs["eager"]["versions"]["compile"] == "off"
    assert recs["compiled"]["versions"]["compile"].startswith("eager on cpu (requested")
    assert recs["eager"]["run_id"] == recs["compiled"]["run_id"] == spec.run_id
    assert recs["eager"]["final_top1"] == recs["compiled"]["final_top1"]


def test_bf16_and_channels_last_recipes_train_keep_pruned_weights_zero_and_are_their_own_runs(tmp_path):
    """Issue 22 (1): the GPU path's recipe options, run here on the CPU on a tiny batch-norm ResNet.
    channels_last changes only the memory layout (same run otherwise: result within float tolerance);
    bf16 autocasts the training forward (a different run id, a different but finite result); in every
    run the pruned weights of the saved model are exactly zero."""
    base = {"epochs": 1, "max_train_batches": 4, "batch_size": 32}
    variants = {"fp32": {}, "channels_last": {"channels_last": True}, "bf16": {"precision": "bf16"}}
    recs = {}
    for name, extra in variants.items():
        spec = make_spec("digits-mlp", "random", 0.8, model="resnet8", model_args={"widths": [4, 8, 8]},
                         recipe={**base, **extra})
        recs[name] = execute(spec, tmp_path)
        folder = run_dir(tmp_path, spec.run_id)
        weights = torch.load(folder / "model.pt", weights_only=True)
        masks = Masks.load(folder / "masks.pt")
        assert all(int(torch.count_nonzero(weights[n][~m])) == 0 for n, m in masks.items()), name
    assert len({r["run_id"] for r in recs.values()}) == 3
    assert recs["channels_last"]["final_test_loss"] == pytest.approx(recs["fp32"]["final_test_loss"], abs=1e-4)
    assert math.isfinite(recs["bf16"]["final_test_loss"])
    assert recs["bf16"]["final_test_loss"] != recs["fp32"]["final_test_loss"]
    with pytest.raises(ConfigError, match="unknown recipe precision 'fp16'; choose one of fp32, bf16"):
        make_spec("digits-mlp", "random", 0.8, recipe={"precision": "fp16"})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch.compile runs only on CUDA (no GPU here)")
def test_compiled_and_eager_runs_agree_on_cuda(tmp_path, monkeypatch):
    spec, recs = _compile_pair(tmp_path, monkeypatch, "cuda")
    assert recs["compiled"]["versions"]["compile"] == "torch.compile"
    assert abs(recs["eager"]["final_top1"] - recs["compiled"]["final_top1"]) <= 1.0   # float tolerance, 2 epochs
    assert abs(recs["eager"]["final_test_loss"] - recs["compiled"]["final_test_loss"]) <= 1e-2
