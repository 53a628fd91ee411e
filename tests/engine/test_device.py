"""Device and precision choice: on this CPU-only machine, and on a GPU where one is present."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.device import (
    DeviceInfo,
    autocast_dtype,
    cpu_runs_bf16_natively,
    describe_device,
    is_out_of_memory,
    resolve_device,
)
from engine.errors import DeviceError

needs_no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without a GPU")
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("choice", ["cpu", " CPU "])
def test_cpu_is_always_available(choice: str) -> None:
    assert resolve_device(choice) == torch.device("cpu")


@needs_no_gpu
def test_auto_falls_back_to_the_cpu_and_says_why() -> None:
    device = resolve_device("auto")
    info = describe_device(device)
    assert device == torch.device("cpu")
    assert info.kind == "cpu"
    assert info.name
    assert info.memory_bytes is not None and info.memory_bytes > 2**20
    expected = "CPU-only" if torch.version.cuda is None else "no usable NVIDIA GPU"
    assert info.reason.startswith("CPU, because") and expected in info.reason


@needs_no_gpu
@pytest.mark.parametrize("choice", ["cuda", "cuda:0", "CUDA:1"])
def test_asking_for_a_gpu_without_one_says_why_and_what_to_do(choice: str) -> None:
    expected = "torch.version.cuda is None" if torch.version.cuda is None else "no usable NVIDIA GPU"
    with pytest.raises(DeviceError, match=rf"{expected}.*Use --device cpu"):
        resolve_device(choice)


@pytest.mark.parametrize("choice", ["gpu", "cuda:", "cuda:x", "mps", ""])
def test_unknown_device_lists_the_choices(choice: str) -> None:
    with pytest.raises(DeviceError, match="use auto, cpu, cuda or cuda:N"):
        resolve_device(choice)


@pytest.mark.parametrize(
    ("precision", "expected"),
    [("fp32", None), ("bf16", torch.bfloat16), (" BF16", torch.bfloat16)],
)
def test_cpu_precision(precision: str, expected: torch.dtype | None) -> None:
    assert autocast_dtype("cpu", precision) is expected


def test_auto_precision_on_the_cpu_is_bf16_only_where_native() -> None:
    expected = torch.bfloat16 if cpu_runs_bf16_natively() else None
    assert autocast_dtype("cpu", "auto") is expected


@pytest.mark.parametrize(
    ("flags", "native"),
    [("fpu avx2 avx512f avx512bw", False), ("fpu avx2 avx512f avx512_bf16", True), ("avx2 amx_bf16", True)],
)
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path: Path, flags: str, native: bool) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert cpu_runs_bf16_natively(cpuinfo) is native
    assert cpu_runs_bf16_natively(tmp_path / "missing") is False


@pytest.mark.parametrize(("limit", "native"), [("AVX2", False), ("SSE41", False), ("AVX512_CORE_AMX", True)])
def test_a_onednn_isa_limit_below_bf16_means_no_native_bf16(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: str, native: bool
) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: avx2 avx512f avx512_bf16 amx_bf16\n")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", limit)
    assert cpu_runs_bf16_natively(cpuinfo) is native


def test_fp16_on_the_cpu_is_refused_with_alternatives() -> None:
    with pytest.raises(DeviceError, match="fp16 precision needs a GPU; on the CPU use fp32"):
        autocast_dtype(torch.device("cpu"), "fp16")


def test_unknown_precision_lists_the_choices() -> None:
    with pytest.raises(DeviceError, match="use one of auto, fp32, bf16, fp16"):
        autocast_dtype("cpu", "fp64")


def test_bf16_autocast_on_the_cpu_runs_a_model() -> None:
    model = torch.nn.Conv2d(2, 3, 3, padding=1)
    with torch.autocast("cpu", dtype=autocast_dtype("cpu", "bf16")):
        output = model(torch.randn(1, 2, 8, 8))
    assert output.dtype == torch.bfloat16


def test_real_cpu_allocation_failure_is_out_of_memory() -> None:
    with pytest.raises(RuntimeError) as error:
        torch.empty(2**62, dtype=torch.uint8)
    assert is_out_of_memory(error.value)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
        (RuntimeError("CUDA error: out of memory"), True),
        (
            RuntimeError("Given groups=1, weight of size [8, 3, 3, 3], expected input to have 3 channels"),
            False,
        ),
        (ValueError("out of memory"), False),
        (MemoryError(), False),
    ],
)
def test_out_of_memory_is_told_apart_from_other_errors(exc: BaseException, expected: bool) -> None:
    assert is_out_of_memory(exc) is expected


@needs_gpu
def test_gpu_is_chosen_described_and_given_mixed_precision() -> None:
    device = resolve_device("auto")
    info = describe_device(device)
    assert device == torch.device("cuda", 0) == resolve_device("cuda")
    assert info == DeviceInfo("cuda", torch.cuda.get_device_name(0), info.memory_bytes, f"GPU 0: {info.name}")
    assert info.memory_bytes is not None and info.memory_bytes > 2**30
    native_bf16 = torch.cuda.get_device_capability(0) >= (8, 0)
    assert autocast_dtype(device, "auto") is (torch.bfloat16 if native_bf16 else torch.float16)
    assert autocast_dtype(device, "fp16") is torch.float16
    with pytest.raises(DeviceError, match="numbered 0 to"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
