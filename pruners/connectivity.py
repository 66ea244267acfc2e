"""Layer collapse and effective sparsity of a masked network (Vysogorets & Kempe, "Connectivity
Matters: Neural Network Pruning Through the Lens of Effective Sparsity", JMLR 2023).

A kept weight is *effective* when it lies on at least one path from an input to an output of the
masked network; the others could be removed without changing the function (up to biases).
*Effective sparsity* is the share of prunable weights that are not effective — it is never below the
nominal sparsity, and it reaches 1 when a layer collapses and disconnects the network (Tanaka et al.
2020's layer collapse).  A *dead unit* (neuron of a Linear layer, channel of a convolution) is an output
unit of a prunable layer that is not reachable from the input or from which no output is reachable.

How it is computed — matrix propagation through the model's own forward pass, so residual additions,
pooling, flattening and shortcuts are handled by the architecture itself (no hand-written graph):

1. The model runs (``torch.func.functional_call``, no copy of it; eval mode while it runs) with
   weights = masks (0/1), biases = 0, every other parameter 1, batch norm as the identity (running
   mean 0, variance 1).  Every operation then maps non-negative inputs to non-negative outputs, and a
   unit is positive exactly when a path of kept weights reaches it.
2. Forward pass (input: ones of ``input_shape``): after each prunable layer the output is binarised
   (x > 0), so path counts cannot overflow.  This gives, per layer, which input units and which output
   units are reachable from the input.
3. Backward pass: each prunable layer's output is replaced by ones (keeping every ReLU open) with a
   custom backward that binarises the incoming gradient; R = Σ outputs.  A unit's output gradient is
   positive exactly when some output is reachable from it.
4. A weight (unit i → unit j) is effective iff it is kept, i is reachable from the input and j reaches
   an output.  Convolutions are treated at channel level: channel i → channel j is connected when any
   kernel entry is kept, and a kept kernel entry counts as effective when its channel pair lies on a path.

Precision: only "zero or positive" is read from the propagated values, and they are reset to 0/1 at
every prunable layer, so between two binarisations a value is a sum of at most fan-in × (number of
merged branches) terms of size ≥ 1/(pooling window).  float32 represents every such value exactly
enough to decide > 0, so the propagation runs in float32 (the float64 of earlier versions gave the
same answers at 2–10× the time on convolutional nets: tests/pruners/test_connectivity.py compares
the two).  As a guard, a pass that meets a non-finite value or a positive value below 2^-100
(possible only with long chains of non-prunable layers) is repeated in float64.

Coverage: exact (at channel level for convolutions) for networks built from Linear / Conv layers,
batch norm, ReLU (and other activations with f(0) = 0 and f(x) > 0 for x > 0, e.g. GELU, SiLU),
max / average pooling, flatten / reshape, residual additions, concatenation, zero-padding shortcuts —
every model of ``benchmark/tasks/models.py`` (MLP, LeNet-5, CIFAR ResNets, ResNet-18/50, VGG).  Biases
are ignored (a unit fed only by a bias counts as unreachable), as in Vysogorets & Kempe.  Not covered:
operations that can turn zero into non-zero or cancel positive values (LayerNorm / GroupNorm mean
subtraction, sigmoid, softmax attention, subtraction); for those the result is an approximation.
The tests compare against networkx path search on small MLP, residual and convolutional nets.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn
from torch.func import functional_call

from pruners.masks import PRUNABLE_MODULES, Masks, prunable_parameters
from pruners.registry import ConfigError


class _OnesWithBinaryGrad(torch.autograd.Function):
    """Forward: ones (every downstream ReLU open); backward: 1[grad > 0]."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.ones_like(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return (grad > 0).to(grad.dtype)


def _unit_alive(t: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """Per unit (Linear: last dim; Conv: channel dim 1), whether any entry is positive."""
    if isinstance(module, nn.Linear):
        return (t > 0).reshape(-1, t.shape[-1]).any(0)
    return (t > 0).transpose(0, 1).reshape(t.shape[1], -1).any(1)


def _infer_input_shape(model: nn.Module) -> tuple[int, ...]:
    for module in model.modules():
        if isinstance(module, PRUNABLE_MODULES):
            if isinstance(module, nn.Linear):
                return (module.in_features,)
            break
    raise ConfigError("connectivity() needs input_shape for a convolutional model; pass "
                      "input_shape=ctx.input_shape (e.g. (3, 32, 32))")


#: A positive value below this (or a non-finite one) makes a float32 pass repeat in float64.
_TINY = 2.0 ** -100


def _substitutes(model: nn.Module, masks: Mapping[str, torch.Tensor], prunable: Mapping[str, nn.Parameter],
                 dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Parameters and buffers for the propagation: masks as weights, zero biases, other parameters 1,
    batch-norm running statistics (0, 1); other floating buffers keep their values in ``dtype``."""
    out: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters():
        if name in prunable:
            out[name] = masks[name].to(device=p.device, dtype=dtype)
        elif name.rsplit(".", 1)[-1] == "bias":
            out[name] = torch.zeros(p.shape, dtype=dtype, device=p.device)
        else:
            out[name] = torch.ones(p.shape, dtype=dtype, device=p.device)
    for mod_name, module in model.named_modules():
        norm = isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats \
            and module.running_mean is not None
        for bname, buf in module.named_buffers(recurse=False):
            if buf is None or not buf.is_floating_point():
                continue
            full = f"{mod_name}.{bname}" if mod_name else bname
            if norm and bname == "running_mean":
                out[full] = torch.zeros(buf.shape, dtype=dtype, device=buf.device)
            elif norm and bname == "running_var":
                out[full] = torch.ones(buf.shape, dtype=dtype, device=buf.device)
            else:
                out[full] = buf.detach().to(dtype)
    return out


def _suspect(seen: list[torch.Tensor]) -> bool:
    """True when a propagated value may have been decided wrongly: a non-finite value, or a positive
    one below ``_TINY`` (one check over all values of a pass: a few ops instead of a few per layer)."""
    if not seen:
        return False
    values = torch.cat([t.detach().reshape(-1) for t in seen])
    if not bool(torch.isfinite(values.max())):  # max propagates NaN; every value is >= 0 otherwise
        return True
    positive = values[values > 0]
    return bool(positive.numel()) and bool(positive.min() < _TINY)


def _propagate(model: nn.Module, masks: Mapping[str, torch.Tensor], prunable: Mapping[str, nn.Parameter],
               modules: Mapping[str, nn.Module], shape: tuple[int, ...], dtype: torch.dtype,
               device: torch.device) -> tuple[dict, dict, dict, bool]:
    """The forward and backward reachability passes (steps 2 and 3 of the module docstring).

    Returns per prunable module the input units reached from the input, the output units reached
    from the input, the output units that reach an output, and whether every value was safe
    (:func:`_suspect` found nothing).  ``model`` runs in eval mode with substituted tensors; its own
    parameters, buffers, modes and hooks are as before when this returns.
    """
    fwd_in: dict[str, torch.Tensor] = {}
    fwd_out: dict[str, torch.Tensor] = {}
    bwd_out: dict[str, torch.Tensor] = {}
    seen: list[torch.Tensor] = []   # every value the decisions read, checked once at the end
    tensors = _substitutes(model, masks, prunable, dtype)

    def forward_hook(name: str):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
            seen.extend((inputs[0], output))
            fwd_in[name] = _unit_alive(inputs[0], module)
            fwd_out[name] = _unit_alive(output, module)
            return (output > 0).to(output.dtype)
        return hook

    def backward_hook(name: str):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
            ones = _OnesWithBinaryGrad.apply(output)

            def record(grad: torch.Tensor) -> None:
                seen.append(grad)
                bwd_out[name] = _unit_alive(grad, module)
            ones.register_hook(record)
            return ones
        return hook

    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        x = torch.ones((1, *shape), dtype=dtype, device=device)
        handles = [m.register_forward_hook(forward_hook(n)) for n, m in modules.items()]
        try:
            with torch.no_grad():
                functional_call(model, tensors, (x,))
        finally:
            for h in handles:
                h.remove()
        handles = [m.register_forward_hook(backward_hook(n)) for n, m in modules.items()]
        try:
            xg = x.clone().requires_grad_(True)
            out = functional_call(model, tensors, (xg,))
            if out.requires_grad:
                torch.autograd.grad(out.sum(), xg, allow_unused=True)
        finally:
            for h in handles:
                h.remove()
    finally:
        for m, training in modes.items():
            m.training = training
    return fwd_in, fwd_out, bwd_out, not _suspect(seen)


def connectivity(model: nn.Module, masks: Mapping[str, torch.Tensor],
                 input_shape: tuple[int, ...] | None = None, dtype: torch.dtype | None = None) -> dict[str, Any]:
    """Effective sparsity, dead units and collapsed layers of ``model`` under ``masks``.

    Args:
        model: the network (not modified: it runs once in eval mode with substituted tensors).
        masks: bool masks over the prunable parameters (a :class:`Masks` or a plain dict).
        input_shape: the shape of one input sample, e.g. ``ctx.input_shape``; may be omitted when the
            first prunable layer is Linear (then ``(in_features,)``).
        dtype: the propagation's dtype; None = float32, repeated in float64 when a value is suspect
            (see "Precision" in the module docstring).  The tests pass float64 as the reference.

    Returns a dict:
        ``effective_sparsity``: fraction of prunable weights on no input→output path (float);
        ``effective_kept``: number of effective weights;
        ``effective_layer_density``: per layer, effective weights / weights;
        ``dead_neurons``: total dead output units of prunable layers (neurons / channels);
        ``dead_neurons_layer``: per layer, its dead output units;
        ``collapsed_layers``: layers without any effective weight (includes fully pruned layers);
        ``disconnected``: True when no input→output path is left at all.
    """
    params = prunable_parameters(model)
    if not params:
        raise ConfigError("connectivity(): the model has no prunable layers (Linear / Conv weights)")
    masks = Masks(masks) if not isinstance(masks, Masks) else masks
    masks.validate(model)
    shape = tuple(int(s) for s in (input_shape if input_shape is not None else _infer_input_shape(model)))
    device = next(iter(params.values())).device
    modules = {name: mod for name, mod in model.named_modules()
               if isinstance(mod, PRUNABLE_MODULES) and f"{name}.weight" in params}
    for dtype in ((torch.float32, torch.float64) if dtype is None else (dtype,)):
        fwd_in, fwd_out, bwd_out, safe = _propagate(model, masks, params, modules, shape, dtype, device)
        if safe:
            break

    effective_kept = 0
    total = 0
    layer_density: dict[str, float] = {}
    dead_layer: dict[str, int] = {}
    for mod_name, module in modules.items():
        pname = f"{mod_name}.weight"
        mask = masks[pname].to(device)
        n_out = mask.shape[0]
        f_in = fwd_in.get(mod_name, torch.zeros(mask.shape[1], dtype=torch.bool, device=device))
        f_out = fwd_out.get(mod_name, torch.zeros(n_out, dtype=torch.bool, device=device))
        b_out = bwd_out.get(mod_name, torch.zeros(n_out, dtype=torch.bool, device=device))
        groups = int(getattr(module, "groups", 1))
        if groups > 1:  # weight[j, i'] reads input channel (j // (n_out/groups)) * (n_in/groups) + i'
            per_in = mask.shape[1]
            f_in_w = f_in.reshape(groups, per_in).repeat_interleave(n_out // groups, dim=0)
        else:
            f_in_w = f_in.unsqueeze(0).expand(n_out, -1)
        view = (n_out, mask.shape[1]) + (1,) * (mask.dim() - 2)
        eff = mask & f_in_w.reshape(view) & b_out.reshape((n_out,) + (1,) * (mask.dim() - 1))
        kept = int(eff.sum())
        effective_kept += kept
        total += mask.numel()
        layer_density[pname] = kept / mask.numel()
        dead_layer[pname] = int((~(f_out & b_out)).sum())
    return {
        "effective_sparsity": 1.0 - effective_kept / total,
        "effective_kept": effective_kept,
        "effective_layer_density": layer_density,
        "dead_neurons": sum(dead_layer.values()),
        "dead_neurons_layer": dead_layer,
        "collapsed_layers": [n for n, d in layer_density.items() if d == 0.0],
        "disconnected": effective_kept == 0,
    }
