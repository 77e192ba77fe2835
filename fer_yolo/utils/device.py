"""Device choice shared by every command: CUDA when present, else the CPU."""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

import torch

from fer_yolo.errors import ConfigError

#: /proc/cpuinfo flag -> name, best first: the instructions x86 int8 inference runs on.
INT8_ISAS = (
    ("avx512_vnni", "AVX512-VNNI"),
    ("avx_vnni", "AVX-VNNI"),
    ("avx512f", "AVX512"),
    ("avx2", "AVX2"),
)
#: Of those, the ones without int8 dot products: they add pairs of uint8 x int8 products in int16.
SATURATING_ISAS = ("AVX512", "AVX2")


def set_threads(threads: int | None) -> None:
    """Set torch's and OpenCV's CPU thread counts (None: leave them). Before building a pipeline: its ONNX
    Runtime sessions take torch's count."""
    if threads is None:
        return
    import cv2

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


def select_device(spec: str | None = "auto") -> torch.device:
    """Resolve 'auto' | 'cpu' | 'cuda' | 'cuda:N' | 'N' to a torch.device.

    Raises:
        ConfigError: CUDA was asked for and is not available, or the spec is malformed.
    """
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.isdigit():
        spec = f"cuda:{spec}"
    try:
        device = torch.device(spec)
    except RuntimeError as e:
        raise ConfigError(f"unknown device {spec!r}", "use auto, cpu, cuda or cuda:N") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {spec!r} asked for but CUDA is not available", "use --device cpu")
    return device


@functools.cache
def _cpuinfo() -> tuple[str, ...]:
    """The lines of /proc/cpuinfo (none where it cannot be read)."""
    try:
        return tuple(Path("/proc/cpuinfo").read_text().splitlines())
    except OSError:
        return ()


def _cpu_field(name: str) -> str | None:
    """The first CPU's value of a /proc/cpuinfo field (e.g. "model name", "flags")."""
    return next((ln.split(":", 1)[1].strip() for ln in _cpuinfo() if ln.startswith(name)), None)


def _cpu_flags() -> set[str]:
    """The first CPU's feature flags (e.g. "avx2", "avx512_vnni")."""
    return set((_cpu_field("flags") or "").split())


def cpu_has_fast_bf16() -> bool:
    """True where the CPU computes bf16 natively (AVX512-BF16 or AMX).

    Elsewhere (e.g. AVX2-only CPUs) bf16 autocast is emulated and about 20x slower than fp32.
    """
    return bool({"avx512_bf16", "amx_bf16"} & _cpu_flags())


def int8_isa() -> str | None:
    """The best x86 instruction set for int8 inference this CPU has (a name of INT8_ISAS), None elsewhere."""
    flags = _cpu_flags()
    return next((name for flag, name in INT8_ISAS if flag in flags), None)


def machine_name() -> str:
    """The CPU model, core count and int8 instruction set (and GPU, if any), for benchmark records."""
    model = _cpu_field("model name") or platform.processor() or platform.machine()
    cpu = f"{model}, {os.cpu_count()} cores"
    # int8 speed and accuracy depend on it: VNNI has int8 dot products, AVX2 adds products in int16
    isa = int8_isa()
    cpu = f"{cpu}, {isa}" if isa else cpu
    return f"{cpu}, {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else cpu
