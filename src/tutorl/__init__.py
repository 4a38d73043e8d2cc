"""tutorl: pre-trained LLMs as tutors for reinforcement-learning agents, measured honestly.

The SB3-style classes are imported on first use, so that ``import tutorl`` (and the CLI's
input checks) stay fast without loading PyTorch::

    from tutorl import TutoredPPO, ImitationGuard
    model = TutoredPPO("MlpPolicy", env, game="snake", tutor="rule", imitation=1.0)
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_LAZY = {
    "TutoredDQN": "tutorl.rl.hooks",
    "TutoredPPO": "tutorl.rl.hooks",
    "TutoredA2C": "tutorl.rl.hooks",
    "TutoredMaskablePPO": "tutorl.rl.hooks",
    "ImitationGuard": "tutorl.rl.imitation",
    "ImitationSettings": "tutorl.specs",
    "AdviceSchedule": "tutorl.tutor.schedule",
    "RunConfig": "tutorl.specs",
    "train": "tutorl.rl.train",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tutorl' has no attribute {name!r}")
