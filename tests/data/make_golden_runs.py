"""Make ``golden_runs.json``: short runs of the paper's plain mechanism, made by the code before
advice modes and imitation existed, that today's ``replace`` mode with ``imitation_coef=0`` must
reproduce bit for bit (tests/test_imitation.py).

    git worktree add /tmp/tutorl-base 1d3986e
    PYTHONPATH=/tmp/tutorl-base/src OMP_NUM_THREADS=1 python tests/data/make_golden_runs.py

Uses only what that commit had (RunConfig, train), so it runs against either version.
"""

from __future__ import annotations

import hashlib
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


def parameters_digest(model) -> str:
    """sha256 of every tensor of the trained policy, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.policy.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def run(name: str, folder: Path) -> dict[str, str]:
    from tutorl.rl.train import RunConfig, train

    _, model = train(RunConfig(**CONFIGS[name]), folder)
    return {"curve": (folder / "curve.csv").read_text(), "params": parameters_digest(model)}


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("golden_runs.json")
    with tempfile.TemporaryDirectory() as tmp:
        records = {name: run(name, Path(tmp) / name) for name in CONFIGS}
    out.write_text(json.dumps(records, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
