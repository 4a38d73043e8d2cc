"""ULTRA (arXiv 2505.20671): LLM-identified critical states refine a sub-optimal agent.

The pipeline, one module per part:

* :mod:`tutorl.ultra.trajectories` — roll out a (deliberately sub-optimal) trained agent, or
  any policy, into :class:`~tutorl.ultra.trajectories.Episode` records; save and load them.
* :mod:`tutorl.ultra.text` — state interpretation: episodes as numbered lines of text, cut into
  chunks that fit an LLM's context.
* :mod:`tutorl.ultra.identify` — an LLM names the critical steps of each chunk, with a suggested
  action and an implicit reward.
* :mod:`tutorl.ultra.expert` — the same identification by the game's expert (a known-quality
  reference for the LLM).
* :mod:`tutorl.ultra.table` — the lookup table from critical states to (action, reward), and
  its random ablation.
* :mod:`tutorl.ultra.refine` — continue training with the table applied (action and reward
  refinement).
"""
