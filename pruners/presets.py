"""The built-in dense-to-sparse and dynamic pruners as presets: a score with a fixed schedule (issue 19).

Each preset is the magnitude score (|θ| of the merged weights of the network being trained) under one
schedule of ``pruners.schedules``, with that schedule's hyperparameters as its own (so
``[[pruners]] name = "gmp", args = { start = 0.1 }`` keeps working and run ids are unchanged) and
the preset's fixed choices (``rigl`` grows by gradient) left out:

========  ============  =======================================================
preset    schedule      fixed
========  ============  =======================================================
oneshot   oneshot       —
gmp       gradual       —
imp       rounds        rewind = "weights"
lrr       rounds        rewind = "lr" (no rewind_epoch)
acdc      phases        —
set       periodic      init = "random", grow = "random"
rigl      periodic      init = "random", grow = "gradient"
========  ============  =======================================================

Any other score under any schedule is written in the grid instead: ``name = "snip", schedule =
"gradual", schedule_args = { ... }``.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from pruners.base import Pruner, register_pruner
from pruners.basic import Magnitude
from pruners.schedules import SCHEDULES, Schedule


def preset(name: str, schedule: str, *, family: str, description: str, paper: str, url: str,
           defaults: dict[str, Any] | None = None, fixed: dict[str, Any] | None = None) -> type[Pruner]:
    """Register ``name`` as magnitude × ``schedule``: a pruner whose fields are the schedule's (minus
    ``fixed``, with ``defaults`` replacing the schedule's defaults)."""
    sched_cls = SCHEDULES.get(schedule)
    fixed, defaults = dict(fixed or {}), dict(defaults or {})
    own = [f for f in dataclasses.fields(sched_cls) if f.init and f.name not in fixed]
    fields = [(f.name, f.type, dataclasses.field(default=defaults.get(f.name, f.default))) for f in own]

    def default_schedule(self: Pruner) -> Schedule:
        s = sched_cls(**{f.name: getattr(self, f.name) for f in own}, **fixed)
        s.__dict__["_label"] = name
        return s

    def validate(self: Pruner) -> None:
        self.default_schedule().validate()

    namespace = {"family": family, "description": description, "paper": paper, "url": url,
                 "schedule_preset": schedule, "score_name": "magnitude",
                 "default_schedule": default_schedule, "validate": validate,
                 "__doc__": f"{description} — magnitude × {schedule}"
                            + (f" ({', '.join(f'{k} = {v!r}' for k, v in fixed.items())})" if fixed else "")
                            + f".\n\n{sched_cls.__doc__ or ''}",
                 "__module__": __name__}
    cls = dataclasses.make_dataclass(name.upper().replace("-", "_"), fields, bases=(Magnitude,), namespace=namespace)
    return register_pruner(name)(cls)


ONESHOT = preset("oneshot", "oneshot", family="dense-to-sparse",
                 description="one-shot magnitude pruning after dense training, then fine-tuning",
                 paper="Han, Pool, Tran, Dally, NeurIPS 2015 (one prune step)", url="https://arxiv.org/abs/1506.02626")
GMP = preset("gmp", "gradual", family="dense-to-sparse",
             description="gradual magnitude pruning with the cubic schedule",
             paper="Zhu & Gupta, 'To prune, or not to prune', 2017 (ICLR-W 2018)", url="https://arxiv.org/abs/1710.01878")
IMP = preset("imp", "rounds", family="dense-to-sparse", fixed={"rewind": "weights"},
             description="iterative magnitude pruning with weight rewinding (lottery tickets)",
             paper="Frankle & Carbin, ICLR 2019; Frankle, Dziugaite, Roy, Carbin, ICML 2020",
             url="https://arxiv.org/abs/1912.05671")
LRR = preset("lrr", "rounds", family="dense-to-sparse", fixed={"rewind": "lr", "rewind_epoch": 0.0},
             description="iterative magnitude pruning with learning-rate rewinding",
             paper="Renda, Frankle, Carbin, ICLR 2020", url="https://arxiv.org/abs/2003.02389")
ACDC = preset("acdc", "phases", family="dense-to-sparse",
              description="AC/DC: alternating compressed / decompressed phases",
              paper="Peste, Iofinova, Vladu, Alistarh, NeurIPS 2021", url="https://arxiv.org/abs/2106.12379")
SET = preset("set", "periodic", family="dst", fixed={"init": "random", "grow": "random"},
             description="SET: magnitude drop, random grow", paper="Mocanu et al., Nature Communications 2018",
             url="https://arxiv.org/abs/1707.04780")
RIGL = preset("rigl", "periodic", family="dst", fixed={"init": "random", "grow": "gradient"},
              description="RigL: magnitude drop, gradient grow", paper="Evci, Gale, Menick, Castro, Elsen, ICML 2020",
              url="https://arxiv.org/abs/1911.11134")
