"""Masks: named boolean tensors over a model's prunable parameters (DESIGN.md, "Masks").

A mask maps a parameter name such as ``"features.0.weight"`` to a bool tensor of that parameter's
shape; ``True`` keeps the weight.  By default the prunable parameters are the weights of Linear and
Conv layers; biases and normalisation parameters are not pruned.  Sparsity is always the fraction
of *pruned* prunable weights, and what we report is the achieved value computed from the masks.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator, Mapping

import torch
from torch import nn

from pruners.registry import ConfigError

PRUNABLE_MODULES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def prunable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The weights of Linear and Conv layers, by parameter name, in module order.

    A module may override the default by defining ``sparsebench_prunable = False`` (skip it) or by
    being a Linear/Conv subclass; anything else is never pruned.
    """
    out: dict[str, nn.Parameter] = {}
    for mod_name, module in model.named_modules():
        if not isinstance(module, PRUNABLE_MODULES) or not getattr(module, "sparsebench_prunable", True):
            continue
        weight = getattr(module, "weight", None)
        if isinstance(weight, nn.Parameter):
            out[f"{mod_name}.weight" if mod_name else "weight"] = weight
    return out


def _atomic_bytes(path: Path, data: bytes) -> None:
    from benchmark.runfolder import atomic_write_bytes  # the one atomic writer (temp name unique per writer)

    atomic_write_bytes(path, data)


class Masks(Mapping[str, torch.Tensor]):
    """An immutable mapping ``name -> bool tensor`` with density bookkeeping and persistence."""

    def __init__(self, masks: Mapping[str, torch.Tensor]) -> None:
        clean: dict[str, torch.Tensor] = {}
        for name, m in masks.items():
            if not isinstance(m, torch.Tensor):
                raise ConfigError(f"mask {name!r} is a {type(m).__name__}, not a tensor; masks must be "
                                  "bool tensors")
            if m.dtype != torch.bool:
                raise ConfigError(f"mask {name!r} has dtype {m.dtype}, not torch.bool; convert it with "
                                  "'.bool()' or threshold the scores first")
            clean[name] = m.detach()
        self._masks = clean
        self._counts: tuple[tuple[int, ...], dict[str, tuple[int, int]]] | None = None

    # Mapping protocol ------------------------------------------------------------------------
    def __getitem__(self, name: str) -> torch.Tensor:
        return self._masks[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._masks)

    def __len__(self) -> int:
        return len(self._masks)

    def __repr__(self) -> str:
        return f"Masks({len(self)} layers, density={self.density():.4f})"

    # Construction ----------------------------------------------------------------------------
    @classmethod
    def ones(cls, model: nn.Module) -> "Masks":
        """All-keep masks over the model's prunable parameters (the dense network)."""
        return cls({n: torch.ones_like(p, dtype=torch.bool) for n, p in prunable_parameters(model).items()})

    @classmethod
    def from_model_nonzero(cls, model: nn.Module) -> "Masks":
        """Masks of the non-zero prunable weights (e.g. after a reparam's merge)."""
        return cls({n: p.detach() != 0 for n, p in prunable_parameters(model).items()})

    # Densities ---------------------------------------------------------------------------------
    def counts(self) -> dict[str, tuple[int, int]]:
        """Per layer (kept, total).

        Computed once and reused by every density figure (a run reads them a dozen times: record,
        report, log; issue 10's per-run overhead); the cache is keyed on the tensors' in-place version
        counters, so a mask tensor changed in place is counted again."""
        versions = tuple(m._version for m in self._masks.values())
        if self._counts is None or self._counts[0] != versions:
            sums = [m.sum() for m in self._masks.values()]
            # one host sync when every mask is on one device (a GPU run), else one per mask
            kept = torch.stack(sums).tolist() if len({s.device for s in sums}) == 1 else [int(s) for s in sums]
            self._counts = (versions, {n: (int(k), m.numel()) for (n, m), k in zip(self._masks.items(), kept)})
        return dict(self._counts[1])

    def kept(self) -> int:
        return sum(k for k, _ in self.counts().values())

    def total(self) -> int:
        return sum(t for _, t in self.counts().values())

    def density(self) -> float:
        total = self.total()
        return self.kept() / total if total else 1.0

    def sparsity(self) -> float:
        return 1.0 - self.density()

    def layer_density(self) -> dict[str, float]:
        return {n: (k / t if t else 1.0) for n, (k, t) in self.counts().items()}

    def collapsed_layers(self) -> list[str]:
        """Layers left with no weight at all (layer collapse)."""
        return [n for n, (k, t) in self.counts().items() if t and k == 0]

    def report(self) -> dict:
        """The JSON sparsity report saved beside the mask tensors."""
        return {
            "density": self.density(),
            "sparsity": self.sparsity(),
            "kept": self.kept(),
            "total": self.total(),
            "layers": {n: {"shape": list(m.shape), "kept": k, "total": t, "density": (k / t if t else 1.0)}
                       for (n, m), (k, t) in zip(self._masks.items(), self.counts().values())},
            "collapsed_layers": self.collapsed_layers(),
        }

    # Validation and application ----------------------------------------------------------------
    def validate(self, model: nn.Module, *, require_all: bool = True) -> None:
        """Check names, shapes and dtype against ``model``; raise ConfigError on the first problem."""
        params = prunable_parameters(model)
        unknown = sorted(set(self._masks) - set(params))
        if unknown:
            raise ConfigError(f"mask names {unknown[:3]} are not prunable parameters of the model; "
                              f"expected names such as {list(params)[:3]}")
        if require_all:
            missing = [n for n in params if n not in self._masks]
            if missing:
                raise ConfigError(f"masks are missing prunable parameters {missing[:3]}; a mask must cover "
                                  "every prunable parameter")
        for n, m in self._masks.items():
            if tuple(m.shape) != tuple(params[n].shape):
                raise ConfigError(f"mask {n!r} has shape {tuple(m.shape)} but the parameter has shape "
                                  f"{tuple(params[n].shape)}; the mask was made for another model")

    def apply_(self, model: nn.Module) -> None:
        """Zero the pruned weights of ``model`` in place."""
        params = prunable_parameters(model)
        with torch.no_grad():
            for n, m in self._masks.items():
                params[n].mul_(m.to(device=params[n].device, dtype=params[n].dtype))

    def to(self, device: torch.device | str) -> "Masks":
        return Masks({n: m.to(device) for n, m in self._masks.items()})

    def to_torch_prune(self, model: nn.Module) -> None:
        """Attach the masks with ``torch.nn.utils.prune.custom_from_mask`` (weight_orig / weight_mask)."""
        from torch.nn.utils import prune

        self.validate(model, require_all=False)
        modules = dict(model.named_modules())
        for n, m in self._masks.items():
            mod_name, _, attr = n.rpartition(".")
            prune.custom_from_mask(modules[mod_name], attr, m.to(getattr(modules[mod_name], attr).device))

    def intersection(self, other: "Masks") -> "Masks":
        return Masks({n: m & other[n] for n, m in self._masks.items()})

    def equal(self, other: Mapping[str, torch.Tensor]) -> bool:
        return set(self) == set(other) and all(torch.equal(self[n], other[n]) for n in self)

    # Persistence -------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, report: bool = True) -> None:
        """Write ``path`` (``torch.save`` of a plain dict of bool tensors) and, with ``report``,
        ``path``.json (the :meth:`report`).  Each file is written atomically (temp file, fsync, rename).

        A run folder's masks are saved without the report: its ``result.json`` already records the
        sparsity, per-layer densities and collapsed layers, and each file costs an fsync per run."""
        import io

        path = Path(path)
        buf = io.BytesIO()
        torch.save({n: m.cpu() for n, m in self._masks.items()}, buf)
        _atomic_bytes(path, buf.getvalue())
        if report:
            _atomic_bytes(path.with_suffix(path.suffix + ".json"),
                          json.dumps(self.report(), indent=1, sort_keys=True).encode())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Masks":
        """Read a masks file written by :meth:`save`; a missing or corrupt file is a ConfigError."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"masks file {str(path)!r} does not exist; pass the masks.pt of a run folder")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ConfigError(f"masks file {str(path)!r} is corrupt or not a torch file ({type(exc).__name__}); "
                              "re-run the run that produced it") from None
        if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                 for k, v in data.items()):
            raise ConfigError(f"masks file {str(path)!r} does not hold a dict of name -> tensor; "
                              "it was not written by sparsebench")
        return cls(data)
