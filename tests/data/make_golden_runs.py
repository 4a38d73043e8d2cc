"""Make ``golden_runs.json``: short runs of the paper's plain mechanism, made by the code before
advice modes and imitation existed, that today's ``replace`` mode with ``imitation_coef=0`` must
reproduce: the same curves bit for bit, and the same trained weights up to the last bits that
depend on the CPU's kernels (tests/test_imitation.py).

    git worktree add /tmp/tutorl-base 1d3986e
    PYTHONPATH=/tmp/tutorl-base/src OMP_NUM_THREADS=1 python tests/data/make_golden_runs.py

Uses only what that commit had (RunConfig, train), so it runs against either version.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

COMMON = {"steps": 2000, "eval_freq": 500, "eval_episodes": 5, "tutor": "expert"}
CONFIGS: dict[str, dict] = {
    "blackjack-dqn-expert+reuse": {"env": "blackjack", "algo": "dqn", "reuse": True, **COMMON},
    "blackjack-ppo-expert": {"env": "blackjack", "algo": "ppo", **COMMON},
    "snake-a2c-expert": {"env": "snake", "algo": "a2c", **COMMON},
    "connect_four-ppo-expert": {"env": "connect_four", "algo": "ppo", **COMMON},
}


def parameters_fingerprint(model) -> dict[str, list[float]]:
    """Per tensor of the trained policy: its sum and sum of squares (float64).

    Not a digest of the bytes: the last bits of trained weights depend on the CPU's kernels
    (the same code and seed gave other bytes on another machine, with identical curves), while
    any change of the training itself moves these sums far beyond the test's tolerance."""
    out = {}
    for name, tensor in sorted(model.policy.state_dict().items()):
        values = tensor.detach().cpu().double().numpy()
        out[name] = [float(values.sum()), float((values**2).sum())]
    return out


def run(name: str, folder: Path) -> dict[str, str]:
    from tutorl.rl.train import RunConfig, train

    _, model = train(RunConfig(**CONFIGS[name]), folder)
    return {"curve": (folder / "curve.csv").read_text(), "params": parameters_fingerprint(model)}


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("golden_runs.json")
    with tempfile.TemporaryDirectory() as tmp:
        records = {name: run(name, Path(tmp) / name) for name in CONFIGS}
    out.write_text(json.dumps(records, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
