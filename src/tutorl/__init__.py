"""tutorl: pre-trained LLMs as tutors for reinforcement-learning agents, measured honestly."""

__version__ = "0.1.0"
