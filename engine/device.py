"""Choosing where the network runs (CPU or a CUDA GPU) and in which precision.

Users pick ``auto``, ``cpu``, ``cuda`` or ``cuda:N``. When a GPU is asked for but cannot be used, the
error says why, since the fix differs: a CPU-only PyTorch build needs another install, a missing
driver or GPU needs the machine fixed, and either way ``--device cpu`` still works.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from engine.errors import DeviceError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_CUDA_CHOICE = re.compile(r"cuda(?::(\d+))?")
# NVIDIA GPUs run bfloat16 natively from compute capability 8.0 (Ampere); older ones only emulate it.
_BF16_MIN_CAPABILITY = (8, 0)
_NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


@dataclass(frozen=True)
class DeviceInfo:
    """What the user is told about the device a job runs on."""

    kind: Literal["cpu", "cuda"]
    name: str
    memory_bytes: int | None
    reason: str


def resolve_device(choice: str) -> torch.device:
    """Turn a user's device choice into a usable ``torch.device``.

    ``auto`` takes the first GPU when one works, else the CPU, so the same command runs everywhere.

    Raises:
        DeviceError: the choice is not understood, or names a GPU that is not available.
    """
    normalized = choice.strip().lower()
    if normalized == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if normalized == "cpu":
        return torch.device("cpu")
    match = _CUDA_CHOICE.fullmatch(normalized)
    if match is None:
        raise DeviceError(f"Unknown device {choice!r}; use auto, cpu, cuda or cuda:N (N = GPU number).")
    if not torch.cuda.is_available():
        raise DeviceError(f"Cannot use device {choice!r}: {cuda_unavailable_reason()}. Use --device cpu.")
    index = int(match.group(1) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(
            f"Cannot use device {choice!r}: this machine has {count} GPU(s), numbered 0 to {count - 1}. "
            "Use one of those, or --device cpu."
        )
    return torch.device("cuda", index)


def cuda_unavailable_reason() -> str:
    """Say why PyTorch cannot use a GPU here, in terms that point at the fix."""
    if torch.version.cuda is None:
        return (
            f"this PyTorch build ({torch.__version__}) is CPU-only (torch.version.cuda is None); "
            "install the CUDA build of the same PyTorch release to use a GPU"
        )
    return (
        f"no usable NVIDIA GPU or driver was found (PyTorch is built for CUDA {torch.version.cuda}); "
        "check that the GPU is installed and its driver is up to date (nvidia-smi)"
    )


def describe_device(device: torch.device | str) -> DeviceInfo:
    """Describe a resolved device for the log, the job record and the status bar."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        properties = torch.cuda.get_device_properties(index)
        return DeviceInfo("cuda", properties.name, properties.total_memory, f"GPU {index}: {properties.name}")
    if torch.cuda.is_available():
        reason = f"CPU chosen, although a GPU is available ({torch.cuda.get_device_name(0)})"
    else:
        reason = f"CPU, because {cuda_unavailable_reason()}"
    return DeviceInfo("cpu", platform.processor() or platform.machine() or "CPU", _physical_memory(), reason)


def _physical_memory() -> int | None:
    """Total RAM in bytes where the OS tells it through ``sysconf`` (Linux, macOS); else None."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def autocast_dtype(device: torch.device | str, precision: str) -> torch.dtype | None:
    """The dtype for ``torch.autocast`` on ``device``, or None to run in full float32.

    ``auto`` picks mixed precision on a GPU: bfloat16 where the GPU runs it natively (it needs no
    loss scaling), else float16. On a CPU ``auto`` picks bfloat16 only where it is native
    (AVX512-BF16 or AMX, see `cpu_runs_bf16_natively`); elsewhere bf16 is emulated and slower than float32.

    Raises:
        DeviceError: the precision is unknown or the device cannot run it.
    """
    device = torch.device(device)
    normalized = precision.strip().lower()
    if normalized not in PRECISIONS:
        raise DeviceError(f"Unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}.")
    if normalized == "fp32":
        return None
    if device.type != "cuda":
        if normalized == "fp16":
            raise DeviceError("fp16 precision needs a GPU; on the CPU use fp32 (or bf16).")
        if normalized == "auto":
            return torch.bfloat16 if cpu_runs_bf16_natively() else None
        return torch.bfloat16 if normalized == "bf16" else None
    native_bf16 = torch.cuda.get_device_capability(device) >= _BF16_MIN_CAPABILITY
    if normalized == "bf16" and not native_bf16:
        raise DeviceError(
            f"The GPU {torch.cuda.get_device_name(device)} has no native bf16; use fp16, fp32 or auto."
        )
    if normalized == "fp16" or not native_bf16:
        return torch.float16
    return torch.bfloat16


# oneDNN's ISA limits (ONEDNN_MAX_CPU_ISA) under which it still has native bf16 kernels.
_ONEDNN_BF16_ISAS = frozenset(
    {"ALL", "DEFAULT", "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10_1_512", "AVX512_CORE_AMX",
     "AVX10_1_512_AMX", "AVX512_CORE_AMX_FP16", "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2"}
)  # fmt: skip


def cpu_runs_bf16_natively(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU flags (Linux ``/proc/cpuinfo``) include AVX512-BF16 or AMX-BF16; False elsewhere.

    Also False where ``ONEDNN_MAX_CPU_ISA`` keeps oneDNN below its bf16 kernels (as CI does to try
    other kernel sets): bf16 would then be emulated, and slower than float32.
    """
    isa_limit = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").strip().upper()
    if isa_limit not in _ONEDNN_BF16_ISAS:
        return False
    return bool(_NATIVE_BF16_FLAGS & cpu_flags(cpuinfo))


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The first CPU's feature flags from Linux ``/proc/cpuinfo``; empty where it cannot be read."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return set()
    return set(
        next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    )


def describe_cpu_vectors() -> str:
    """The CPU's vector extensions that decide oneDNN's kernels (AVX2, AVX-512, AMX), for figures."""
    vectors = sorted(flag for flag in cpu_flags() if flag.startswith(("avx2", "avx512", "amx")))
    return " ".join(vectors) or "no AVX2"


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` means the device ran out of memory, so a smaller batch may succeed.

    CUDA raises ``torch.cuda.OutOfMemoryError``; older code paths and other backends raise a plain
    RuntimeError saying "out of memory", and the CPU allocator says "can't allocate memory".
    """
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    message = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        words in message for words in ("out of memory", "can't allocate memory")
    )
