"""The GPU check script runs end to end (on CPU, a tiny model) and keeps pruned weights at zero."""
from benchmark import gpu_check


def test_gpu_check_smoke_on_cpu(capsys):
    rc = gpu_check.main(["--device", "cpu", "--model", "mlp", "--epochs", "1", "--samples", "256",
                         "--batch", "64", "--sync-every-step"])
    out = capsys.readouterr().out
    assert rc == 0
    lines = {line.split()[0]: line for line in out.splitlines() if " epoch " in line}
    assert set(lines) == {"dense", "masked", "signin", "ham"}
    assert all("pruned weights exactly zero: True" in line for line in lines.values())
    assert "masked / dense = " in out and "ham / masked = " in out
