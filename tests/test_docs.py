"""The README stays a front door (<= 15 KB), every relative link of the README and the doc pages
resolves in the repository (file and heading), and the documentation site builds with
warnings as errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def github_anchor(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"(?ms)^```.*?^```", "", path.read_text())
    return {github_anchor(h) for h in re.findall(r"(?m)^#{1,6} (.*)$", text)}


CONFIGURATION = ROOT / "docs" / "configuration.md"


def configuration_page() -> str:
    """docs/configuration.md, generated from the specs (``python tests/test_docs.py`` writes
    it)."""
    from tutorl.cli import commands_of_fields
    from tutorl.specs import RunConfig, reference
    from tutorl.ultra.pipeline import UltraConfig

    head = (
        "# Configuration reference\n\n"
        "Every field of a run and of an ULTRA experiment, generated from their declarations "
        "in `src/tutorl/specs.py` and `src/tutorl/ultra/pipeline.py`. A field's *key* is its "
        "name in a run's `config.json`, in a sweep file's `defaults`, `tutors` and `overrides` "
        "and in an ULTRA folder's `config.json`; its *option* is the command-line flag that "
        "sets it, with the commands that have it (—: sweep files and the library only). The "
        "meaning is also the option's `--help`.\n\n"
        "A run resolves its game-dependent defaults (`None` below) when it is validated and "
        "stores them resolved in `config.json`.\n\n"
    )
    return head + reference([RunConfig, UltraConfig], commands_of_fields())


def test_the_configuration_reference_is_current():
    assert CONFIGURATION.read_text() == configuration_page(), (
        "docs/configuration.md is stale: python tests/test_docs.py rewrites it"
    )


def test_the_readme_is_at_most_15_kb():
    assert len((ROOT / "README.md").read_bytes()) <= 15_000


def test_every_relative_link_resolves():
    broken = []
    for page in PAGES:
        text = re.sub(r"(?ms)^```.*?^```", "", page.read_text())
        for target in LINK.findall(text):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_the_documentation_site_builds_strictly(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "fast-runs" / "index.html").exists()


if __name__ == "__main__":
    CONFIGURATION.write_text(configuration_page())
    print(f"wrote {CONFIGURATION}")
