"""Tutored reinforcement learning on Stable-Baselines3: the advice hooks, training, evaluation."""
