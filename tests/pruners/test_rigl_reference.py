"""RigL's reference counting and timing (``counting = "reference"``, ``timing = "replace_step"``) against
verbose-void/rigl-torch's RigLScheduler, run once in a throwaway folder on the setting of
:func:`tests.pruners.test_dst.run_dst` (numbers and source in data/rigl_reference.json)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from tests.pruners.test_dst import run_dst

REFERENCE = json.loads((Path(__file__).with_name("data") / "rigl_reference.json").read_text())
REFERENCE_ARGS = {"counting": "reference", "timing": "replace_step"}


def run(case: str, **options):
    ref = REFERENCE["cases"][case]
    args = {"update_interval": ref["delta"], "drop_fraction": ref["alpha"], "end": 0.75, **options}
    _, state, enf, _ = run_dst("rigl", args, sparsity=ref["sparsity"], epochs=REFERENCE["epochs"],
                               steps_per_epoch=REFERENCE["steps_per_epoch"], seed=ref["seed"],
                               weight_decay=ref["wd"])
    hashes = []
    for event in enf.events:
        h = hashlib.sha256()
        for name, m in event["new"].items():
            h.update(name.encode())
            h.update(m.to(torch.bool).numpy().tobytes())
        hashes.append(h.hexdigest())
    hw = hashlib.sha256()
    for name, p in state.model.named_parameters():
        hw.update(name.encode())
        hw.update((p.detach() + 0.0).numpy().tobytes())
    return hashes, hw.hexdigest()


@pytest.mark.parametrize("case", sorted(REFERENCE["cases"]))
def test_reference_options_give_rigl_torch_masks_and_weights_bit_for_bit(case):
    ref = REFERENCE["cases"][case]
    hashes, params = run(case, **REFERENCE_ARGS)
    assert hashes == [u["masks_sha256"] for u in ref["updates"]]
    assert params == ref["final_params_sha256"]


def test_the_default_counting_and_timing_differ_from_the_reference_code():
    differ = 0
    for case, ref in REFERENCE["cases"].items():
        hashes, params = run(case)
        differ += hashes != [u["masks_sha256"] for u in ref["updates"]]
        assert params != ref["final_params_sha256"]
    assert differ == len(REFERENCE["cases"])


def test_replace_step_skips_the_optimiser_update_of_an_update_iteration():
    """On an update iteration the weights change only by the drop (to 0); grown ones start at 0."""
    _, state, enf, _ = run_dst("rigl", {"update_interval": 4, **REFERENCE_ARGS}, epochs=2, steps_per_epoch=5)
    assert [len(enf.events)] == [1]       # t = 4 only (end 0.75 of 10 steps)
    ev = enf.events[0]
    for name, new in ev["new"].items():
        before, after = ev["before"][name], ev["after"][name]
        assert torch.equal(after, before * new)


def test_update_at_start_needs_replace_step():
    from pruners import ConfigError
    with pytest.raises(ConfigError, match="update_at_start needs timing = 'replace_step'"):
        run_dst("rigl", {"update_at_start": True}, epochs=1)


def test_update_at_start_updates_on_the_first_batch_at_the_full_fraction():
    pruner, state, enf, _ = run_dst("rigl", {"update_interval": 4, "drop_fraction": 0.5, "update_at_start": True,
                                             **REFERENCE_ARGS}, epochs=2, steps_per_epoch=5)
    updates = pruner._schedule._cb.updates
    assert [u["t"] for u in updates] == [1, 4]          # the first batch, then t = 4 (end 0.75 of 10 steps)
    assert updates[0]["fraction"] == 0.5
    first = enf.events[0]
    n_active = {n: int(m.sum()) for n, m in first["old"].items()}
    grown = {n: int((first["new"][n] & ~first["old"][n]).sum()) for n in n_active}
    assert all(grown[n] <= int(0.5 * n_active[n]) for n in n_active)
    assert sum(grown.values()) > 0
    assert torch.equal(first["after"]["0.weight"], first["before"]["0.weight"] * first["new"]["0.weight"])
