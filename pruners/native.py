"""Building and loading the suite's native CPU kernels (issue 10), shared by :mod:`pruners` and
:mod:`reparam` (imports flow from ``reparam`` to ``pruners``, so the builder lives here).

Why.  On a small model the cost of sparsity and of the reparams is elementwise passes over weight-sized
tensors, each a separate kernel in eager PyTorch and each bound by memory traffic; a kernel that does
several of them in one pass, or reads a smaller operand, is cheaper (docs/benchmarks.md).

How.  A C file is compiled on first use with the machine's C compiler (``$CC``, else ``cc`` / ``gcc`` /
``clang``) as ``-O3 -march=native -fopenmp`` (falling back to fewer flags where the compiler refuses
one), cached under ``$SPARSEBENCH_KERNEL_CACHE`` (default ``~/.cache/sparsebench/kernels``) by a hash of
the source, the flags, the compiler's version and the CPU's feature flags — so a home directory shared
by nodes of different CPUs builds one library per CPU kind — and loaded with :mod:`ctypes`; a build
takes well under a second and is written atomically (compile to a temporary name, then rename).  The
same design as DeepSpeed's JIT-built CPU Adam, without the C++ / pybind11 toolchain: the kernels only
need raw pointers.  Threads: the torch intra-op count (``torch.get_num_threads()``), through the same
OpenMP runtime torch loaded.

Fallback.  Every caller keeps its eager PyTorch path and uses it when a :class:`NativeLibrary` gives
``None``: no compiler, a failed build, no writable directory, or ``SPARSEBENCH_NATIVE=0``; its
:meth:`NativeLibrary.status` says why.  Within one machine the choice is fixed, so runs stay
deterministic.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Callable

import torch

ENV_SWITCH = "SPARSEBENCH_NATIVE"
ENV_CACHE = "SPARSEBENCH_KERNEL_CACHE"

#: Flag sets tried in order; the first that compiles is used.
FLAG_SETS: tuple[tuple[str, ...], ...] = (
    ("-O3", "-march=native", "-fopenmp"),
    ("-O3", "-fopenmp"),
    ("-O3", "-march=native"),
    ("-O3",),
)
COMMON_FLAGS = ("-std=gnu11", "-fPIC", "-shared")


def enabled() -> bool:
    """False when ``$SPARSEBENCH_NATIVE`` is ``0`` / ``false`` / ``no`` / ``off``."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def compiler() -> str | None:
    """``$CC`` or the first of ``cc``, ``gcc``, ``clang`` on ``PATH``."""
    cc = os.environ.get("CC", "").strip()
    if cc:
        return cc
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name)
        if found:
            return found
    return None


def cache_dir() -> Path:
    raw = os.environ.get(ENV_CACHE, "").strip()
    if raw:
        return Path(raw)
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "sparsebench" / "kernels"


def _cpu_signature() -> str:
    """The CPU's model and feature flags (what ``-march=native`` compiles for)."""
    parts = [platform.machine(), platform.processor()]
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key = line.split(":", 1)[0].strip()
                if key in ("flags", "Features", "model name", "CPU part"):
                    parts.append(line.strip())
                if line.strip() == "":
                    break   # the first processor is enough
    except OSError:
        pass
    return "\n".join(parts)


def _compiler_version(cc: str) -> str:
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.splitlines()[0] if out.stdout else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def build(source_path: Path, stem: str, cc: str) -> tuple[Path | None, str]:
    """Compile ``source_path`` (or find it in the cache) as ``<stem>-<hash>.so``; returns (path, "") or
    (None, why)."""
    source = source_path.read_bytes()
    version = _compiler_version(cc)
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        directory = Path(tempfile.gettempdir()) / "sparsebench-kernels"
        directory.mkdir(parents=True, exist_ok=True)
    errors = []
    for flags in FLAG_SETS:
        key = hashlib.sha256(b"\0".join([source, version.encode(), " ".join(flags + COMMON_FLAGS).encode(),
                                         _cpu_signature().encode()])).hexdigest()[:16]
        target = directory / f"{stem}-{key}.so"
        if target.exists():
            return target, ""
        tmp = directory / f".{stem}-{key}-{os.getpid()}-{threading.get_ident()}.so"
        cmd = [cc, *flags, *COMMON_FLAGS, "-o", str(tmp), str(source_path), "-lm"]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.SubprocessError) as exc:
            errors.append(f"{' '.join(flags)}: {exc}")
            continue
        if out.returncode == 0 and tmp.exists():
            os.replace(tmp, target)
            return target, ""
        tmp.unlink(missing_ok=True)
        first = (out.stderr.strip().splitlines() or ["no output"])[0]
        errors.append(f"{' '.join(flags)}: {first}")
    return None, "the C compiler failed (" + "; ".join(errors) + ")"


class NativeLibrary:
    """One C source built on first use (:func:`build`) and loaded with ctypes; ``declare(lib)`` sets the
    argument and result types of its functions.  Thread-safe; the outcome is kept for the process."""

    def __init__(self, source: Path, stem: str, declare: Callable[[ctypes.CDLL], None]) -> None:
        self.source, self.stem, self.declare = source, stem, declare
        self.state: dict[str, object] = {}   # "lib": CDLL | None, "status": str
        self._lock = threading.Lock()

    def get(self) -> ctypes.CDLL | None:
        """The loaded library, building it on first call; ``None`` (and :meth:`status` says why) when
        disabled or unavailable."""
        state = self.state
        if "lib" in state:
            return state["lib"]  # type: ignore[return-value]
        with self._lock:
            if "lib" in state:
                return state["lib"]  # type: ignore[return-value]
            lib, why = None, ""
            if not enabled():
                why = f"disabled by ${ENV_SWITCH}"
            elif (cc := compiler()) is None:
                why = "no C compiler found (set $CC or install gcc / clang)"
            else:
                try:
                    path, why = build(self.source, self.stem, cc)
                except OSError as exc:   # no writable cache directory, or the source was not installed
                    path, why = None, f"cannot build the kernels: {exc}"
                if path is not None:
                    try:
                        lib = ctypes.CDLL(str(path))
                        self.declare(lib)
                        why = f"native ({path.name})"
                    except (OSError, AttributeError) as exc:
                        lib, why = None, f"the built library did not load: {exc}"
            state["lib"] = lib
            state["status"] = why if lib is not None else f"eager: {why}"
            return lib

    def status(self) -> str:
        """``"native (<stem>-<hash>.so)"``, ``"eager: <why>"``, or ``"unused"`` before the first :meth:`get`."""
        return str(self.state.get("status", "unused"))

    def reset(self) -> None:
        """Forget the outcome (tests)."""
        self.state.clear()


# ------------------------------------------------------------------------------------------------
# the enforcer's kernel (pruners/csrc/masks.c)
MASK_SOURCE = Path(__file__).with_name("csrc") / "masks.c"


def _declare_masks(lib: ctypes.CDLL) -> None:
    p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    for fn in (lib.mask_grad_f32, lib.mask_grad_f64):
        fn.argtypes = [p, p, i64, i32]
        fn.restype = None


_MASKS = NativeLibrary(MASK_SOURCE, "masks", _declare_masks)

_BIT_WEIGHTS = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8)


def mask_library() -> ctypes.CDLL | None:
    """The enforcer's kernel library (built on first call), or ``None``."""
    return _MASKS.get()


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """A bool mask packed as the kernel reads it: bit i of byte i // 8, least significant bit first,
    zero-padded to whole 16-bit words (a CPU ``uint8`` tensor of ``ceil(n / 16) · 2`` bytes)."""
    flat = mask.detach().reshape(-1).to(device="cpu", dtype=torch.uint8)
    flat = torch.cat([flat, flat.new_zeros((-flat.numel()) % 16)]).reshape(-1, 8)
    return (flat * _BIT_WEIGHTS).sum(dim=1, dtype=torch.uint8)


def mask_grad(grad: torch.Tensor, bits: torch.Tensor) -> bool:
    """``grad *= mask`` in place with the mask as :func:`pack_bits` bits (bit-identical to multiplying
    by the float mask); False without touching anything when the library is unavailable or ``grad`` is
    not a contiguous float32 / float64 CPU tensor."""
    if not (grad.is_cpu and grad.dtype in (torch.float32, torch.float64) and grad.layout is torch.strided
            and grad.is_contiguous() and bits.numel() * 8 >= grad.numel()):
        return False
    lib = _MASKS.get()
    if lib is None:
        return False
    fn = lib.mask_grad_f32 if grad.dtype is torch.float32 else lib.mask_grad_f64
    fn(grad.data_ptr(), bits.data_ptr(), grad.numel(), torch.get_num_threads())
    return True
