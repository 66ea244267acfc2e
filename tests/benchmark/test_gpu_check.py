"""The GPU check script runs end to end (on CPU, a tiny model) and keeps pruned weights at zero."""
from benchmark import gpu_check


def test_gpu_check_smoke_on_cpu(capsys):
    rc = gpu_check.main(["--device", "cpu", "--model", "mlp", "--epochs", "1", "--samples", "256",
                         "--batch", "64", "--sync-every-step"])
    out = capsys.readouterr().out
    assert rc == 0
    lines = {line.split()[0]: line for line in out.splitlines() if " epoch " in line}
    assert set(lines) == {"dense", "masked", "signin", "pilot", "ham", "nanoadam"}
    assert all("pruned weights exactly zero: True" in line for line in lines.values())
    assert "eager: masked / dense = " in out and "eager: ham / masked = " in out


def test_gpu_check_packs_runs_as_processes_on_cpu(capsys):
    """Issue 22 (3): runs per hour with k copies at once (CPU-simulated, tiny model)."""
    rc = gpu_check.main(["--device", "cpu", "--model", "mlp", "--epochs", "1", "--samples", "128", "--batch", "64",
                         "--pack", "1,2"])
    out = capsys.readouterr().out
    assert rc == 0
    packs = [line for line in out.splitlines() if line.startswith("pack ")]
    assert len(packs) == 2 and "exit codes [0]" in packs[1] and "runs/hour" in packs[1]
