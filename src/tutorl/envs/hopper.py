"""Hopper: Gymnasium's MuJoCo ``Hopper-v5``, a one-legged robot that must hop forward.

A 2-D robot of four parts (torso, thigh, leg, foot) joined by three hinges. Each step applies
three torques in ``[-1, 1]`` (hip = ``thigh``, knee = ``leg``, ankle = ``foot``) for 4 physics
steps of 2 ms (``dt`` = 0.008 s). The reward is ``1`` for every step the robot is *healthy*,
plus its forward velocity (m/s), minus ``0.001 × Σ torque²``. It stops being healthy, and the
episode ends, when the torso drops to 0.7 m or below, tilts 0.2 rad or more either way, or any
other coordinate (joint angle or velocity, unclipped) reaches ±100; otherwise episodes are
truncated after 1,000 steps.

The observation (11 floats) is the torso's height and angle, the three joint angles, then the
torso's forward and vertical velocities, its angular velocity and the three joints' angular
velocities (velocities clipped to ±10 in the observation). Signs, checked on the model: a
positive torso angle leans the torso forward (towards +x, the direction of travel); a positive
thigh or leg angle swings that part forward; a positive foot angle lifts the toes. A positive
torque pushes its joint's angle up.

Continuous actions: no legal-action list, no expert, no action values (there is no exact or
search policy to compare with), so Hopper trains untutored and ULTRA identifies its critical
steps with an LLM only. ULTRA's table matches states within :data:`TABLE_RADIUS` in the units
of :data:`TABLE_SCALE` (see :class:`tutorl.ultra.table.CriticalTable`).

Success threshold: an episode return of **1,000**. The healthy bonus alone pays 1 per step, so a
robot that falls within a few dozen steps (a random policy: a return of about 25 over 28 steps)
is far below it, and 1,000 needs either balancing through the whole 1,000-step episode or
hopping forward for several hundred steps: the point at which an agent has learned to stay up
and move, which PPO reaches in a few hundred thousand steps with tuned settings. It is far
below Gymnasium's "solved" mark of 3,800, which takes millions of steps.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from tutorl.envs.base import Game, require

ENV_ID = "Hopper-v5"
ACTION_NAMES = ("thigh", "leg", "foot")
# Hopper-v5's defaults (healthy_z_range, healthy_angle_range, healthy_state_range).
HEALTHY_Z = 0.7
HEALTHY_ANGLE = 0.2
HEALTHY_STATE = 100.0
DT = 0.008  # seconds per step: frame_skip 4 × timestep 0.002
# "About to fall": within this margin of a limit, or crossing it within LOOKAHEAD seconds at the
# current velocity.
Z_MARGIN = 0.1
ANGLE_MARGIN = 0.05
LOOKAHEAD = 0.1
#: The unit of each observation component in ULTRA's table distances: 0.1 m for the height,
#: 0.1 rad for the four angles, 1 m/s and 1 rad/s for the six velocities. Fixed rather than
#: measured: a weak agent's greedy episodes are nearly identical (the start states differ by
#: at most 0.005), so standard deviations over them are degenerate (0.001 rad for two joint
#: angles after 5,000 PPO steps), and any sampled state would lie hundreds of units away.
TABLE_SCALE = (0.1, 0.1, 0.1, 0.1, 0.1, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
#: Radius of ULTRA's critical-state table in TABLE_SCALE units. Measured on PPO agents of 5,000
#: and 20,000 steps: consecutive observations of a greedy episode lie 0.17-0.28 apart (median),
#: so a critical state covers about three to five steps either side of it; ten critical states
#: matched 0.3-4% of the states of sampled (training-time) episodes, which diverge quickly from
#: the greedy ones (radius 2: 6-15%).
TABLE_RADIUS = 1.0
KEY_DECIMALS = 2


def make(**options: Any) -> gym.Env:
    """``gym.make("Hopper-v5", **options)`` (``max_episode_steps`` shortens episodes)."""
    require("mujoco", "extra-games", "the hopper game")
    return gym.make(ENV_ID, **options)


def _signed(value: float, digits: int = 2) -> str:
    return f"{round(float(value), digits) + 0.0:+.{digits}f}"  # + 0.0: no "-0.00"


def falling_reasons(obs: np.ndarray) -> list[str]:
    """Why the robot is about to fall (empty when it is not).

    About to fall: the torso within 0.1 m of the 0.7 m height limit or within 0.05 rad of the
    ±0.2 rad tilt limit, or on course to cross either within 0.1 s at its current velocity, or
    already past one (the step that ends the episode).

    :param obs: a Hopper observation (11 floats).
    :return: short phrases naming the limit, e.g. ``["torso low (0.74 m, falls at 0.7)"]``.
    """
    z, angle = float(obs[0]), float(obs[1])
    vz, omega = float(obs[6]), float(obs[7])
    reasons = []
    if z <= HEALTHY_Z + Z_MARGIN:
        reasons.append(f"torso low ({z:.2f} m, falls at {HEALTHY_Z})")
    elif z + LOOKAHEAD * vz <= HEALTHY_Z:
        reasons.append(f"torso dropping fast ({_signed(vz)} m/s, falls at {HEALTHY_Z} m)")
    if abs(angle) >= HEALTHY_ANGLE - ANGLE_MARGIN:
        side = "forward" if angle > 0 else "back"
        reasons.append(f"torso tilted {side} ({_signed(angle)} rad, falls at ±{HEALTHY_ANGLE})")
    elif abs(angle + LOOKAHEAD * omega) >= HEALTHY_ANGLE:
        side = "forward" if omega > 0 else "back"
        reasons.append(
            f"torso tipping {side} ({_signed(omega)} rad/s, falls at ±{HEALTHY_ANGLE} rad)"
        )
    if np.any(np.abs(obs[2:5]) >= HEALTHY_STATE):
        reasons.append(f"a joint angle at ±{HEALTHY_STATE:g} rad")
    return reasons


def describe(obs: np.ndarray) -> str:
    """The state in words, with units, and whether the robot is about to fall.

    Compact, because ULTRA sends every step of long episodes to a model (about 130 SmolLM2
    tokens a step): the limits (0.7 m, ±0.2 rad) are in the rules and repeated only when the
    robot is about to fall.

    :param obs: a Hopper observation (11 floats).
    :return: three short lines.
    """
    obs = np.asarray(obs, dtype=float).reshape(-1)
    z, angle, thigh, leg, foot, vx, vz, omega, w_thigh, w_leg, w_foot = obs[:11]
    lean = "upright" if abs(angle) < 0.01 else "leaning forward" if angle > 0 else "leaning back"
    reasons = falling_reasons(obs)
    status = "About to fall: " + ", ".join(reasons) if reasons else "Stable"
    return "\n".join(
        [
            f"Torso height {z:.2f} m, angle {_signed(angle)} rad ({lean}); joint angles: thigh "
            f"{_signed(thigh)}, leg {_signed(leg)}, foot {_signed(foot)} rad.",
            f"Velocity: forward {_signed(vx)} m/s, up {_signed(vz)} m/s, torso spin "
            f"{_signed(omega)} rad/s; joints: thigh {_signed(w_thigh)}, leg {_signed(w_leg)}, "
            f"foot {_signed(w_foot)} rad/s.",
            f"{status}.",
        ]
    )


def legal_actions(view: Any) -> list[int]:
    """Continuous actions: no discrete choice, ``[]``."""
    return []


def state_key(obs: np.ndarray) -> tuple[float, ...]:
    """The observation rounded to 2 decimals (ULTRA's tables use distances, not this key)."""
    return tuple(np.round(np.asarray(obs, dtype=float).reshape(-1), KEY_DECIMALS).tolist())


RULES = (
    "A one-legged robot in 2-D (torso, thigh, leg, foot) must hop forward without falling. "
    "Each step applies three torques, each from -1 to 1: thigh (hip), leg (knee) and foot "
    "(ankle); a positive torque turns its joint forward (thigh, leg) or lifts the toes (foot). "
    "Each step lasts 0.008 s. Reward per step: +1 while upright, plus the forward velocity in "
    "m/s, minus 0.001 times the sum of squared torques. The episode ends when the torso drops "
    "to 0.7 m or tilts 0.2 rad either way (a fall), or after 1000 steps."
)

GAME = Game(
    name="hopper",
    requires=(("mujoco", "extra-games"),),
    make=make,
    action_names=ACTION_NAMES,
    describe=describe,
    legal_actions=legal_actions,
    expert=None,
    state_key=state_key,
    success_threshold=1000.0,
    default_steps=1_000_000,
    rules=RULES,
    action_values=None,
    continuous=True,
    action_bounds=(-1.0, 1.0),
    table_radius=TABLE_RADIUS,
    table_scale=TABLE_SCALE,
)
