"""Child processes that end with their parent."""

from __future__ import annotations

import contextlib
import signal
import sys


def die_with_parent() -> None:
    """Linux: kill this process when the process that started it dies, so a killed sweep leaves
    no orphan training (or model service) behind writing into a folder a resumed sweep redoes.
    Elsewhere a no-op (the per-run lock still keeps two processes out of one run folder)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
