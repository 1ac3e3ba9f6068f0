"""What the machine can do: an accelerator, native bf16 on the CPU, how many threads to use.

torch is imported inside each function: the recipe reads this module, and the command line's ``--help`` must not
pay for torch.
"""

from __future__ import annotations

import functools
import logging
import os

logger = logging.getLogger(__name__)


def has_accelerator() -> bool:
    """Whether torch sees a CUDA, MPS or XPU device."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    xpu = getattr(torch, "xpu", None)
    return torch.cuda.is_available() or bool(mps and mps.is_available()) or bool(xpu and xpu.is_available())


@functools.cache
def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products natively (AVX512-BF16 or AMX), where autocast pays.

    Without it PyTorch emulates bf16 and autocast is slower than float32, so the recipe then trains in float32.
    """
    import torch

    check = getattr(getattr(torch.ops, "mkldnn", None), "_is_mkldnn_bf16_supported", None)
    try:
        if check is not None and not check():
            return False
    except RuntimeError:
        pass
    info = _cpuinfo()
    if info is None:
        return check is not None
    return bool({"avx512_bf16", "amx_bf16"} & _cpu_flags(info))


def _cpuinfo() -> str | None:
    """The text of /proc/cpuinfo, or None where there is none."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def _cpu_flags(info: str) -> set[str]:
    return set(
        next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    )


def describe_cpu() -> str:
    """The CPU's model name, its bf16 units and its logical cores, e.g. "AMD EPYC (AVX512-BF16), 2 logical cores":
    benchmark figures depend on all three, so reports name them."""
    import platform

    info = _cpuinfo() or ""
    name = next(
        (line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
        platform.processor() or platform.machine(),
    )
    flags = _cpu_flags(info)
    units = [label for flag, label in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16")) if flag in flags]
    return f"{name} ({', '.join(units) or 'no bf16 units'}), {os.cpu_count()} logical cores"


def bf16_available() -> bool:
    """Whether bf16 autocast pays here: a CUDA device with bf16, or a CPU with native bf16 units (else a warning)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    if cpu_supports_bf16():
        return True
    logger.warning(
        "this CPU has no native bf16 matrix units (AVX512-BF16 or AMX): training in float32, about half the "
        "speed of bf16 autocast on a CPU that has them"
    )
    return False


def set_cpu_threads(threads: int | None = None) -> int:
    """Set torch's CPU threads to ``threads``, or by default to the cores other processes leave idle; return it.

    On a shared machine torch's default (one thread per core) oversubscribes busy cores, and a small model
    then decodes several times slower than on one thread (measured: 15 s vs 3 s for 24 SmolLM2 tokens).
    """
    import torch

    if threads is None:
        cores = os.cpu_count() or 1
        busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        threads = max(1, min(torch.get_num_threads(), cores - round(busy)))
    torch.set_num_threads(max(1, int(threads)))
    return torch.get_num_threads()
