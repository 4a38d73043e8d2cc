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


def quiet_thread_errors() -> None:
    """Report an error in a background thread (TensorBoard's event writer on a full disk) as
    one ``warning:`` line instead of a traceback; the run itself fails with its own error.
    ``TUTORL_DEBUG=1`` keeps Python's traceback."""
    import os
    import threading

    if os.environ.get("TUTORL_DEBUG"):
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "a thread"
        message = f"{args.exc_type.__name__}: {args.exc_value}".splitlines()[0][:300]
        print(f"warning: background thread {name} stopped: {message}", file=sys.stderr)

    threading.excepthook = hook
