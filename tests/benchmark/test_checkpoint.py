"""Resumable runs: a run killed mid-training resumes from its last epoch checkpoint and ends with the
same metrics, masks and final weights as an uninterrupted run (same seed, CPU)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pytest
import torch

from benchmark.checkpoint import CHECKPOINT, load_checkpoint
from benchmark.runfolder import read_result, run_dir
from benchmark.runner import execute
from benchmark.spec import make_spec
from pruners import PRUNERS, Callback, register_pruner
from pruners.basic import Magnitude

KILL_ENV = "SPARSEBENCH_TEST_KILL_AT_STEP"


class _Noise(Callback):
    """Consumes the global torch RNG every step (perturbs biases) and counts steps: a resume must
    restore both the RNG state and this callback's state to reproduce the run bit for bit."""

    def __init__(self) -> None:
        self.count = 0

    def after_step(self, state) -> None:
        self.count += 1
        with torch.no_grad():
            for name, p in state.model.named_parameters():
                if name.endswith("bias"):
                    p.add_(torch.randn_like(p) * 1e-3)
        kill = os.environ.get(KILL_ENV)
        if kill and state.step + 1 == int(kill):
            raise KeyboardInterrupt  # like a SIGINT / kill: escapes execute() without a result

    def on_epoch_end(self, state) -> None:
        state.metrics["noise_count"] = self.count

    def state_dict(self) -> dict:
        return {"count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.count = state["count"]


if "test-noisy" not in PRUNERS:
    @register_pruner("test-noisy")
    @dataclass
    class _NoisyMagnitude(Magnitude):
        def callbacks(self, sparsity, allocation):
            return [_Noise()]


def _spec(pruner: str = "test-noisy", epochs: int = 4, **args):
    return make_spec(task="digits-mlp", pruner=pruner, sparsity=0.8, seed=3, pruner_args=args,
                     recipe={"epochs": epochs, "max_train_batches": 8})


def _metrics(folder):
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if not k.endswith("_time_s")} for line in lines]


def _tensors(path):
    obj = torch.load(path, map_location="cpu", weights_only=False)
    return obj.get("masks", obj) if isinstance(obj, dict) else obj


def _assert_same_run(a, b):
    fa, fb = a["folder"], b["folder"]
    assert _metrics(fa) == _metrics(fb)
    for name in ("model.pt", "masks.pt"):
        ta, tb = _tensors(fa / name), _tensors(fb / name)
        assert set(ta) == set(tb)
        for k in ta:
            assert torch.equal(ta[k], tb[k]), f"{name}:{k} differs"
    for key in ("status", "final_top1", "final_test_loss", "final_train_loss", "best_top1", "achieved_sparsity",
                "layer_density", "sign_flips", "train_flops_rel"):
        assert a["rec"][key] == b["rec"][key], key


def _run(spec, out):
    rec = execute(spec, out)
    return {"rec": rec, "folder": run_dir(out, spec.run_id)}


def test_killed_run_resumes_to_the_identical_result(tmp_path, monkeypatch):
    spec = _spec()
    ref = _run(spec, tmp_path / "ref")
    assert ref["rec"]["status"] == "ok"
    assert not (ref["folder"] / CHECKPOINT).exists(), "a finished run keeps no checkpoint"
    assert len(_metrics(ref["folder"])) == 4

    out = tmp_path / "killed"
    monkeypatch.setenv(KILL_ENV, str(8 * 2 + 3))   # in the middle of epoch 3 (8 steps per epoch)
    with pytest.raises(KeyboardInterrupt):
        execute(spec, out)
    folder = run_dir(out, spec.run_id)
    assert read_result(folder) is None
    ckpt = load_checkpoint(folder, spec.run_id, spec.to_dict())
    assert ckpt is not None and ckpt["next_epoch"] == 2 and ckpt["step"] == 16
    assert len(_metrics(folder)) == 2
    # a metrics line written after the checkpoint (killed between the two writes) is not duplicated
    with open(folder / "metrics.jsonl", "a") as fh:
        fh.write((folder / "metrics.jsonl").read_text().splitlines()[-1] + "\n")

    monkeypatch.delenv(KILL_ENV)
    resumed = _run(spec, out)
    assert "resume" in (folder / "log.txt").read_text()
    assert [m["epoch"] for m in _metrics(folder)] == [1, 2, 3, 4]
    _assert_same_run(ref, resumed)
    assert not (folder / CHECKPOINT).exists()


def test_checkpoint_of_another_spec_or_corrupt_is_ignored(tmp_path, monkeypatch):
    spec = _spec(epochs=3)
    out = tmp_path / "o"
    monkeypatch.setenv(KILL_ENV, "12")
    with pytest.raises(KeyboardInterrupt):
        execute(spec, out)
    folder = run_dir(out, spec.run_id)
    assert load_checkpoint(folder, spec.run_id, spec.to_dict()) is not None
    other = _spec(epochs=4)
    assert load_checkpoint(folder, other.run_id, other.to_dict()) is None
    (folder / CHECKPOINT).write_bytes(b"truncated")
    assert load_checkpoint(folder, spec.run_id, spec.to_dict()) is None
    monkeypatch.delenv(KILL_ENV)
    rec = execute(spec, out)   # starts over: no stale lines survive
    assert rec["status"] == "ok"
    assert [m["epoch"] for m in _metrics(folder)] == [1, 2, 3]
    assert "resume" not in (folder / "log.txt").read_text()


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")
@pytest.mark.parametrize("pruner, args, reparam", [("gmp", {"start": 0.0, "end": 0.6, "frequency": 4}, "none"),
                                                   ("rigl", {"update_interval": 5}, "none"),
                                                   ("imp", {"rate": 0.5}, "none"),
                                                   # the fused factor step (θ cache, momentum buffers of m, w,
                                                   # re-splits; with RigL's regrowth) resumes exactly too
                                                   ("random", {}, "signin"),
                                                   ("rigl", {"update_interval": 5}, "signin")])
def test_stateful_schedules_resume_identically(tmp_path, monkeypatch, pruner, args, reparam):
    """Pruner schedules that change masks during training (GMP, RigL, IMP rounds) resume exactly."""
    if pruner not in PRUNERS:
        pytest.skip(f"pruner {pruner!r} is not registered in this checkout")
    spec = make_spec(task="digits-mlp", pruner=pruner, sparsity=0.75, seed=1, pruner_args=args,
                     reparam=reparam, recipe={"epochs": 2, "max_train_batches": 6})
    ref = _run(spec, tmp_path / "ref")
    assert ref["rec"]["status"] == "ok", ref["rec"]["reason"]
    n_epochs = len(_metrics(ref["folder"]))
    assert n_epochs >= 2

    # kill after epoch 1's checkpoint: raise KeyboardInterrupt at the first step of epoch 2
    import pruners.session as session_mod

    real_fit = session_mod.fit

    def killing_fit(session, *a, **kw):
        state = session.state
        orig_step = state.optimizer.step

        def step(*sa, **skw):
            if os.environ.get(KILL_ENV) and state.step == state.steps_per_epoch + 2:
                raise KeyboardInterrupt
            return orig_step(*sa, **skw)

        state.optimizer.step = step
        try:
            return real_fit(session, *a, **kw)
        finally:
            state.optimizer.step = orig_step

    import benchmark.runner as runner_mod

    monkeypatch.setattr(runner_mod, "fit", killing_fit)
    out = tmp_path / "killed"
    monkeypatch.setenv(KILL_ENV, "1")
    with pytest.raises(KeyboardInterrupt):
        execute(spec, out)
    folder = run_dir(out, spec.run_id)
    assert load_checkpoint(folder, spec.run_id, spec.to_dict())["next_epoch"] == 1
    monkeypatch.delenv(KILL_ENV)
    _assert_same_run(ref, _run(spec, out))


def test_every_file_is_durable_before_the_result_declares_the_run_done(tmp_path, monkeypatch):
    """Each file of the run folder is fsync'd before its rename, and all of them before result.json is
    renamed into place."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(src)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    spec = _spec(pruner="imp", rate=0.5, epochs=2)   # IMP also saves its tickets as artifacts
    rec = execute(spec, tmp_path)
    assert rec["status"] == "ok", rec["reason"]
    folder = run_dir(tmp_path, spec.run_id)

    def name(path: str) -> str:   # ".masks.pt.tmp-123" -> "masks.pt"
        base = os.path.basename(path)
        return base[1:].rsplit(".tmp-", 1)[0] if ".tmp-" in base else base

    done = next(i for i, (kind, p) in enumerate(events) if kind == "replace" and name(p) == "result.json")
    synced_before = {name(p) for kind, p in events[:done] if kind == "fsync"}
    files = {p.name for p in folder.iterdir()} - {"log.txt", "result.json", "heartbeat"}
    assert {"spec.json", "metrics.jsonl", "masks.pt", "model.pt"} <= files
    assert files <= synced_before, f"not on disk before result.json: {files - synced_before}"
    for i, (kind, p) in enumerate(events):   # every rename follows the fsync of its temp file
        if kind == "replace":
            assert ("fsync", p) in events[:i], p
    # the folder itself is fsync'd after result.json's rename, so that directory entry is durable too
    assert ("fsync", str(folder)) in events[done + 1:]


@pytest.mark.parametrize("err, outcome", [(28, "output error"), (5, "failed")])   # ENOSPC, EIO
def test_a_write_error_of_the_masks_is_classified_by_its_errno(tmp_path, monkeypatch, err, outcome):
    """A disk-full error while the masks are written stops the grid (OutputError) with no result;
    another OSError (EIO outside the output folder's check) is the run's failure, as before."""
    import pruners.masks as masks_mod
    from benchmark.runfolder import OutputError

    def broken(path, data):
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(masks_mod, "_atomic_bytes", broken)
    spec = _spec(pruner="magnitude", epochs=1)
    if outcome == "output error":
        with pytest.raises(OutputError):
            execute(spec, tmp_path)
        assert read_result(run_dir(tmp_path, spec.run_id)) is None
    else:
        rec = execute(spec, tmp_path)
        assert rec["status"] == "failed" and "Input/output error" in rec["reason"]


class _Planted:
    """A pickle that would write a file when unpickled with weights_only=False."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_planted_checkpoint_runs_no_code_on_resume(tmp_path):
    """Checkpoints load with weights_only=True: a checkpoint.pt planted in a shared results folder is
    ignored (the run starts over) and its payload never executes."""
    spec = _spec(epochs=2)
    folder = run_dir(tmp_path, spec.run_id)
    folder.mkdir(parents=True)
    (folder / "spec.json").write_text(json.dumps(spec.to_dict()))
    marker = tmp_path / "pwned"
    torch.save({"format": 1, "run_id": spec.run_id, "spec": spec.to_dict(), "evil": _Planted(marker)},
               folder / CHECKPOINT)
    assert load_checkpoint(folder, spec.run_id, spec.to_dict()) is None
    assert not marker.exists()
    assert execute(spec, tmp_path)["status"] == "ok" and not marker.exists()
