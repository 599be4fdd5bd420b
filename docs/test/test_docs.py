"""Runs the shell blocks of docs/*.md, so the docs cannot rot.

Conventions (stated in each doc):
- a ```sh block is run from the repository root by bash (set -euo pipefail),
  with $B the built `isthmus` binary; it must exit 0;
- a block right after a `<!-- output -->` line is what the ```sh block before
  it prints, compared exactly;
- a block for a real cluster is fenced ```bash and starts with the comment
  `# In a real cluster`; any other shell fence is an error, so nothing
  runnable-looking goes unchecked.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```$", re.S | re.M)


def blocks(path: Path) -> list[tuple[str, str, bool]]:
    """(info string, body, preceded by the output marker) of every fenced block."""
    text = path.read_text()
    found = []
    for match in FENCE.finditer(text):
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        found.append((match.group(1).strip(), match.group(2), before.strip() == "<!-- output -->"))
    return found


def runnable(path: Path) -> list[tuple[str, str | None]]:
    """Each ```sh block with the output documented for it, if any."""
    found, all_blocks = [], blocks(path)
    for index, (info, body, _) in enumerate(all_blocks):
        if info == "sh":
            following = all_blocks[index + 1] if index + 1 < len(all_blocks) else None
            found.append((body, following[1] if following and following[2] else None))
    return found


def binary() -> str:
    built = os.environ.get("ISTHMUS_BIN") or str(ROOT / ".build" / "debug" / "isthmus")
    assert Path(built).exists(), f"{built} is missing: run swift build first (./scripts/test does)"
    return built


CASES = [pytest.param(doc, i, body, output, id=f"{doc.name}#{i}")
         for doc in DOCS for i, (body, output) in enumerate(runnable(doc))]


def test_shell_fences_are_runnable_or_marked_for_a_real_cluster():
    assert {d.name for d in DOCS} >= {"operations.md", "policies.md", "security.md"}
    for doc in DOCS:
        for info, body, _ in blocks(doc):
            if info in {"bash", "shell", "console", "zsh"}:
                assert body.startswith("# In a real cluster"), \
                    f"{doc.name}: a ```{info} block must start with '# In a real cluster' (or be a runnable ```sh block):\n{body[:200]}"


@pytest.mark.parametrize("doc, index, body, output", CASES)
def test_block_runs_and_prints_what_the_doc_shows(doc, index, body, output):
    script = "set -euo pipefail\n" + body
    result = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "B": binary()})
    assert result.returncode == 0, f"{doc.name} block {index} failed ({result.returncode}):\n{body}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    if output is not None:
        assert result.stdout == output, f"{doc.name} block {index} printed something else than the doc shows"
