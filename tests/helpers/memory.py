"""Resident memory of this process, as Linux reports it: now, and the peak over a block of code."""

from __future__ import annotations

from pathlib import Path

import pytest

STATUS = Path("/proc/self/status")


def status_mb(field: str) -> float:
    """A /proc/self/status memory field (VmRSS: now, VmHWM: the peak since the last reset), MB."""
    if not STATUS.is_file():
        pytest.skip("no /proc/self/status: resident memory cannot be read here")
    for line in STATUS.read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    pytest.skip(f"no {field} in /proc/self/status")


class PeakRss:
    """How far the process's resident memory rose above its level at entry, at its highest (`mb`).

    Entering resets the kernel's high-water mark (`echo 5 > /proc/self/clear_refs`, Linux 4.0+), so the
    peak is that of the block, every thread of the process included.
    """

    def __enter__(self) -> PeakRss:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError as e:
            pytest.skip(f"the peak resident memory cannot be reset here ({e})")
        self.start_mb, self.mb = status_mb("VmRSS"), 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.mb = status_mb("VmHWM") - self.start_mb
