"""Who advises the student (tutors), when it asks (schedule) and what it remembers (reuse)."""

from tutorl.tutor.advisor import AdviceStats, Advisor
from tutorl.tutor.base import Advice, Tutor
from tutorl.tutor.memory import AdviceMemory
from tutorl.tutor.schedule import AdviceSchedule
from tutorl.tutor.tutors import (
    ConstantTutor,
    ExpertTutor,
    FunctionTutor,
    NoisyExpertTutor,
    RandomTutor,
    RuleTutor,
    make_tutor,
)

__all__ = [
    "Advice",
    "AdviceMemory",
    "AdviceSchedule",
    "AdviceStats",
    "Advisor",
    "ConstantTutor",
    "ExpertTutor",
    "FunctionTutor",
    "NoisyExpertTutor",
    "RandomTutor",
    "RuleTutor",
    "Tutor",
    "make_tutor",
]
