"""Experiments on top of single runs: comparisons of arms over seeds (and, later, sweeps)."""
