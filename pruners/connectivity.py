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

1. A float64 copy of the model gets weights = masks (0/1), biases = 0, every other parameter 1, batch
   norm as the identity (running mean 0, variance 1, eval mode).  Every operation then maps
   non-negative inputs to non-negative outputs, and a unit is positive exactly when a path of kept
   weights reaches it.
2. Forward pass (input: ones of ``input_shape``): after each prunable layer the output is binarised
   (x > 0), so path counts cannot overflow.  This gives, per layer, which input units and which output
   units are reachable from the input.
3. Backward pass: each prunable layer's output is replaced by ones (keeping every ReLU open) with a
   custom backward that binarises the incoming gradient; R = Σ outputs.  A unit's output gradient is
   positive exactly when some output is reachable from it.
4. A weight (unit i → unit j) is effective iff it is kept, i is reachable from the input and j reaches
   an output.  Convolutions are treated at channel level: channel i → channel j is connected when any
   kernel entry is kept, and a kept kernel entry counts as effective when its channel pair lies on a path.

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

import copy
from typing import Any, Mapping

import torch
from torch import nn

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


def _prepare(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> nn.Module:
    net = copy.deepcopy(model).double().eval()
    prunable = prunable_parameters(net)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name in prunable:
                p.copy_(masks[name].to(device=p.device, dtype=p.dtype))
            elif name.rsplit(".", 1)[-1] == "bias":
                p.zero_()
            else:
                p.fill_(1.0)
            p.requires_grad_(False)
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats \
                    and module.running_mean is not None:
                module.running_mean.zero_()
                module.running_var.fill_(1.0)
    return net


def connectivity(model: nn.Module, masks: Mapping[str, torch.Tensor],
                 input_shape: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Effective sparsity, dead units and collapsed layers of ``model`` under ``masks``.

    Args:
        model: the network (not modified; a float64 copy is analysed).
        masks: bool masks over the prunable parameters (a :class:`Masks` or a plain dict).
        input_shape: the shape of one input sample, e.g. ``ctx.input_shape``; may be omitted when the
            first prunable layer is Linear (then ``(in_features,)``).

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
    net = _prepare(model, masks)
    device = next(iter(prunable_parameters(net).values())).device
    modules = {name: mod for name, mod in net.named_modules()
               if isinstance(mod, PRUNABLE_MODULES) and f"{name}.weight" in params}
    fwd_in: dict[str, torch.Tensor] = {}
    fwd_out: dict[str, torch.Tensor] = {}
    bwd_out: dict[str, torch.Tensor] = {}

    def forward_hook(name: str):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
            fwd_in[name] = _unit_alive(inputs[0], module)
            fwd_out[name] = _unit_alive(output, module)
            return (output > 0).to(output.dtype)
        return hook

    def backward_hook(name: str):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
            ones = _OnesWithBinaryGrad.apply(output)

            def record(grad: torch.Tensor) -> None:
                bwd_out[name] = _unit_alive(grad, module)
            ones.register_hook(record)
            return ones
        return hook

    x = torch.ones((1, *shape), dtype=torch.float64, device=device)
    handles = [m.register_forward_hook(forward_hook(n)) for n, m in modules.items()]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    handles = [m.register_forward_hook(backward_hook(n)) for n, m in modules.items()]
    try:
        xg = x.clone().requires_grad_(True)
        out = net(xg)
        if out.requires_grad:
            torch.autograd.grad(out.sum(), xg, allow_unused=True)
    finally:
        for h in handles:
            h.remove()

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
