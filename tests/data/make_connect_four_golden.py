"""Freeze the pure-Python Connect Four search's answers on seeded positions (a test oracle).

Run once, at commit f70bb99 (the last commit whose search was pure Python), from the
repository root:

    python tests/data/make_connect_four_golden.py

It plays seeded games whose moves mix the expert, the greedy tactics and uniform random
columns, so the positions range from openings to full-board endgames, and records for every
position (as bitboards of the player to move): the expert's move, the search opponents' tied
best columns at depths 1 to 3, and the expert-depth score of every column. The compiled search
must give exactly these answers (tests/test_connect_four_search.py).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from tutorl.envs import connect_four as cf

OUT = Path(__file__).with_name("connect_four_golden.json.gz")
N_GAMES = 400


def main() -> None:
    rng = np.random.default_rng(20261202)
    rows = []
    seen: set[tuple[int, int]] = set()
    for _ in range(N_GAMES):
        pos, mask = 0, 0  # pos = the player to move's pieces
        p_random = float(rng.choice([0.1, 0.3, 0.6, 1.0]))
        while cf._playable(mask):
            if (pos, mask) not in seen:
                seen.add((pos, mask))
                rows.append(
                    [
                        pos,
                        mask,
                        cf._expert_move(pos, mask),
                        *[list(cf._best_columns(pos, mask, d)) for d in (1, 2, 3)],
                        list(cf._column_scores(pos, mask)),
                    ]
                )
            legal = cf._legal_columns(mask)
            col = int(rng.choice(legal)) if rng.random() < p_random else cf._expert_move(pos, mask)
            won = cf._winning_cells(pos, mask) & cf._playable(mask) & cf._COL_MASK[col]
            pos, mask = cf._play(pos, mask, col)
            if won:
                break
    with gzip.open(OUT, "wt") as f:
        json.dump({"commit": "f70bb99", "positions": rows}, f)
    print(f"{len(rows)} positions -> {OUT}")


if __name__ == "__main__":
    main()
