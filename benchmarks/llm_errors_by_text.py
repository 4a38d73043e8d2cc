"""Where an LLM tutor is wrong on Snake: its answers grouped by the state text it was shown.

Snake's ``plain`` text has at most 72 values, so an LLM's advice is a fixed map from text to
action; this lists, per text, the LLM's answer, the expert's and the rule's, the worst first.
It explains what a student imitating that map learns (docs/results.md, "The LLM tutor study").

    python benchmarks/llm_errors_by_text.py --states 3000 --seed 5
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter, defaultdict
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

from tutorl.envs import get_game
from tutorl.envs.snake import describe_plain, features
from tutorl.llm.spec import LLMSpec, LLMTutorSpec
from tutorl.tutor.quality import sample_states
from tutorl.tutor.tutors import make_tutor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--states", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--calibrate", default="content-free")
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results/llm_errors_by_text.json")
    )
    args = parser.parse_args()

    game = get_game("snake")
    views = [view for _, view in sample_states(game, args.states, seed=args.seed)]
    spec = LLMTutorSpec(llm=LLMSpec(model=args.model), describer="plain", calibrate=args.calibrate)
    llm = make_tutor("llm", game, llm=spec)
    answers = [advice.action for advice in llm.advise(views)]
    experts = [int(game.expert(view)) for view in views]
    rules = [int(game.rule(view)) for view in views]
    names = game.action_names
    by_text: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for view, answer, expert, rule in zip(views, answers, experts, rules, strict=True):
        by_text[describe_plain(view)].append((answer, expert, rule))

    def shares(values) -> dict[str, int]:
        return {names[k]: v for k, v in Counter(values).most_common()}

    rows = []
    for text, xs in by_text.items():
        rows.append(
            {
                "text": text,
                "states": len(xs),
                "llm_wrong": sum(a != e for a, e, _ in xs),
                "llm": shares(a for a, _, _ in xs),
                "expert": shares(e for _, e, _ in xs),
                "rule": shares(r for _, _, r in xs),
            }
        )
    rows.sort(key=lambda r: -r["llm_wrong"])
    n = len(views)
    result = {
        "command": "python benchmarks/llm_errors_by_text.py "
        f"--states {args.states} --seed {args.seed}",
        "model": args.model,
        "calibrate": args.calibrate,
        "states": n,
        "texts": len(by_text),
        "llm_agreement": sum(a == e for a, e in zip(answers, experts, strict=True)) / n,
        "rule_agreement": sum(r == e for r, e in zip(rules, experts, strict=True)) / n,
        # Share of states where the advised move is one the text calls deadly.
        "llm_deadly": sum(bool(features(v)[a]) for v, a in zip(views, answers, strict=True)) / n,
        "expert_deadly": sum(bool(features(v)[a]) for v, a in zip(views, experts, strict=True)) / n,
        "by_text": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"{n} states, {len(by_text)} texts; agreement LLM {result['llm_agreement']:.3f}, "
        f"rule {result['rule_agreement']:.3f}; advice its text calls deadly: LLM "
        f"{result['llm_deadly']:.3f}, expert {result['expert_deadly']:.3f}; worst texts:"
    )
    for row in rows[:10]:
        print(
            f"  {row['llm_wrong']:4d}/{row['states']:4d} wrong  llm {row['llm']}  "
            f"expert {row['expert']}\n      {row['text']}"
        )


if __name__ == "__main__":
    main()
