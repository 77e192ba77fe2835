"""Device choice shared by every command: CUDA when present, else the CPU."""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

import torch

from fer_yolo.errors import ConfigError


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
def cpu_has_fast_bf16() -> bool:
    """True where the CPU computes bf16 natively (AVX512-BF16 or AMX).

    Elsewhere (e.g. AVX2-only CPUs) bf16 autocast is emulated and about 20x slower than fp32.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


def machine_name() -> str:
    """The CPU model and core count (and GPU, if any), for benchmark and training records."""
    try:
        names = [
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ]
    except OSError:
        names = []
    cpu = f"{names[0] if names else platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    return f"{cpu}, {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else cpu
