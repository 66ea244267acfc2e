"""Peak memory of a masked training run vs a dense one (target ≤ 1.1).

Each variant runs in its own fresh Python process (the peak resident set only grows, so the variants
cannot share one; ``VmHWM`` of /proc/self/status, since ``ru_maxrss`` keeps the parent's peak across
exec): import torch and the package, record the resident set, build the session (model, optimiser
and — for the masked variant — the random 90 % masks and the enforcer, which keeps the masks as float
tensors of the weights' dtype), train ``steps`` steps on a fixed batch with ``fit``, and report the peak
resident set.  Reported: the ratio of the whole processes' peaks and the ratio of the increments above
the post-import baseline (the part the training itself adds).
"""
from __future__ import annotations

import json
import subprocess
import sys

WORKER = r"""
import json, resource, sys
import torch
import torch.nn.functional as F
torch.set_num_threads(1)
from benchmark.tasks.models import MODELS
from pruners import ALLOCATIONS, prunable_parameters
from pruners.session import build_session, fit
model_name, variant, opt_name, batch, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
def rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20
base = rss_mb()
shape = {"mlp": (1, 28, 28), "resnet20": (3, 32, 32)}[model_name]
torch.manual_seed(0)
model = MODELS.get(model_name)(input_shape=shape, num_outputs=10)
g = torch.Generator().manual_seed(1)
x = torch.randn(batch, *shape, generator=g); y = torch.randint(0, 10, (batch,), generator=g)
if opt_name == "sgd":
    make_opt = lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9, weight_decay=5e-4)
else:
    make_opt = lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.01, fused=True)  # as the recipes
masks = None
if variant == "masked":
    scores = {n: torch.rand(p.shape, generator=g) for n, p in prunable_parameters(model).items()}
    masks = ALLOCATIONS.get("uniform")().masks(scores, 0.1)
    del scores
fit(build_session(model, masks, make_opt, steps_per_epoch=steps), [(x, y)] * steps, F.cross_entropy)
# VmHWM: this process's peak resident set (ru_maxrss would also carry the parent's peak across exec)
with open("/proc/self/status") as fh:
    peak = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024
print(json.dumps({"base_mb": base, "peak_mb": peak}))
"""


def measure(model: str, optimizer: str, batch: int = 128, steps: int = 20) -> dict[str, float]:
    out = {}
    for variant in ("dense", "masked"):
        res = subprocess.run([sys.executable, "-c", WORKER, model, variant, optimizer, str(batch), str(steps)],
                             check=True, capture_output=True, text=True)
        out[variant] = json.loads(res.stdout.strip().splitlines()[-1])
    d, m = out["dense"], out["masked"]
    return {"dense_peak": d["peak_mb"], "masked_peak": m["peak_mb"],
            "dense_inc": d["peak_mb"] - d["base_mb"], "masked_inc": m["peak_mb"] - m["base_mb"]}


def section(quick: bool = False) -> str:
    rows = []
    for model in ("mlp", "resnet20"):
        for opt in ("sgd", "adamw"):
            r = measure(model, opt, batch=32 if quick else 128, steps=2 if quick else 20)
            rows.append((model, opt, r))
    names = {"mlp": "LeNet-300-100", "resnet20": "ResNet-20"}
    lines = ["## Peak memory: masked run vs dense run", "",
             "Peak resident set (`VmHWM`) of a fresh process training one model for "
             f"{2 if quick else 20} steps on a fixed batch of {32 if quick else 128}, dense vs masked (random 90 % "
             "masks kept by the enforcer). Increment = peak minus the resident set after importing torch and "
             "the package. Target: masked / dense ≤ 1.1.", "",
             "| model | optimiser | dense peak (MB) | masked peak (MB) | peak ratio | dense increment (MB) | "
             "masked increment (MB) | increment ratio |", "|---|---|---|---|---|---|---|---|"]
    for model, opt, r in rows:
        lines.append(f"| {names[model]} | {opt} | {r['dense_peak']:.0f} | {r['masked_peak']:.0f} | "
                     f"**{r['masked_peak'] / r['dense_peak']:.3f}** | {r['dense_inc']:.1f} | {r['masked_inc']:.1f} | "
                     f"{r['masked_inc'] / r['dense_inc']:.2f} |")
    lines += ["", "The enforcer keeps one float mask per pruned weight tensor (the weights' size again: "
              "4 bytes per weight); a dense run holds the weights, gradients and 1 (SGD momentum) or 2 (Adam) "
              "state tensors of the same size plus the activations, so the masks add at most 1/3 (SGD) or 1/4 "
              "(AdamW) of the parameter-sized memory and much less of the whole process.", ""]
    return "\n".join(lines)
