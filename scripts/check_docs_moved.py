"""Check that nothing of an old README was lost when its reference material moved under docs/.

From the old README it takes every line inside a fenced code block, every ``AIAAS_`` setting name and every
number written in its prose, and looks for each in the new README.md plus docs/*.md (whitespace runs count
as one space). The section that scripts/catalog_readme.py generates is left out: that script checks it
against the catalog specs wherever it lives.

    .venv/bin/python scripts/check_docs_moved.py --rev cd698ff    # the old README from git: what is missing
    .venv/bin/python scripts/check_docs_moved.py --old OLD.md     # the old README from a file
    .venv/bin/python scripts/check_docs_moved.py --rev cd698ff --snapshot tests/docs/readme_before_split.txt

``--snapshot`` writes the extracted items instead (one per line: kind, tab, item, tab, the line it came from);
tests/docs/test_docs.py checks the current README and docs against that file.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATED = "## Built-in catalog"  # the section scripts/catalog_readme.py writes (checked by that script)
SETTING = re.compile(r"AIAAS_[A-Z0-9_]*[A-Z0-9]")
# a number with at least two characters: 939, 0.90, 2.2x, 10,600, 8.6%, 2026-11-28 (a date counts as one)
NUMBER = re.compile(r"(?<![\w.-])~?\d[\d,.:-]*\d(?:x|%)?(?![\w])")


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _without_generated(lines: list[str]) -> list[str]:
    out, skipping = [], False
    for line in lines:
        if line.startswith("## "):
            skipping = line.rstrip() == GENERATED
        if not skipping:
            out.append(line)
    return out


def items(readme: str) -> list[tuple[str, str, str]]:
    """(kind, item, source line) for every code line, setting name and prose number of an old README."""
    found: list[tuple[str, str, str]] = []
    seen: set[tuple[str, str]] = set()

    def add(kind: str, item: str, line: str) -> None:
        if (kind, item) not in seen:
            seen.add((kind, item))
            found.append((kind, item, _squash(line)[:160]))

    in_code = False
    for line in _without_generated(readme.splitlines()):
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        for name in SETTING.findall(line):
            add("setting", name, line)
        if in_code:
            if line.strip():
                add("code", _squash(line), line)
            continue
        for number in NUMBER.findall(line.replace("`", " ")):
            add("number", number.rstrip(".,:-"), line)
    return found


def corpus(root: Path = ROOT) -> str:
    """The new README and every docs page, whitespace squashed, as one string to search."""
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    return "\n".join(_squash(p.read_text()) for p in pages if p.is_file())


def missing(found: list[tuple[str, str, str]], text: str) -> list[tuple[str, str, str]]:
    return [(kind, item, line) for kind, item, line in found if item not in text]


def read_snapshot(path: Path) -> list[tuple[str, str, str]]:
    rows = []
    for raw in path.read_text().splitlines():
        kind, item, line = raw.split("\t")
        rows.append((kind, item, line))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Is everything of the old README still in README.md + docs/*.md?")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--old", type=Path, help="the old README as a file")
    source.add_argument("--rev", help="a git revision whose README.md is the old one")
    parser.add_argument("--snapshot", type=Path, help="write the extracted items to this file instead of checking")
    args = parser.parse_args(argv)
    if args.old:
        old = args.old.read_text()
    else:
        old = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{args.rev}:README.md"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    found = items(old)
    if args.snapshot:
        args.snapshot.write_text("".join(f"{k}\t{i}\t{ln}\n" for k, i, ln in found))
        print(f"wrote {len(found)} items to {args.snapshot}")
        return 0
    lost = missing(found, corpus())
    for kind, item, line in lost:
        print(f"missing {kind}: {item!r}  (from: {line})")
    counts = {k: sum(1 for f in found if f[0] == k) for k in ("code", "setting", "number")}
    print(
        f"checked {counts['code']} code lines, {counts['setting']} settings, {counts['number']} numbers: "
        f"{len(lost)} missing"
    )
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
