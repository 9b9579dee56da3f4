"""The README and docs/ as a set: nothing of the README before the split (issue 14) was lost, every setting
has a row in docs/configuration.md, every page is indexed, every relative link and anchor resolves, and the
catalog request the README shows is the one the catalog spec generates."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

from aiaas.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SNAPSHOT = Path(__file__).with_name("readme_before_split.txt")
PAGES = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *sorted(DOCS.glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens (code keeps its text)."""
    out, in_code = set(), False
    for line in page.read_text().splitlines():
        in_code ^= line.startswith("```")
        if line.startswith("#") and not in_code:
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def test_nothing_of_the_readme_before_the_split_is_lost() -> None:
    check = load("check_docs_moved")
    items = check.read_snapshot(SNAPSHOT)
    assert {kind for kind, _, _ in items} == {"code", "setting", "number"} and len(items) > 200
    lost = check.missing(items, check.corpus(ROOT))
    assert lost == [], (
        "in the README before the split but now in neither README.md nor docs/*.md (put it back in one of "
        f"them; if it was changed on purpose, change it in {SNAPSHOT.relative_to(ROOT)} too): {lost}"
    )


def test_the_check_notices_a_lost_line(tmp_path: Path) -> None:
    check = load("check_docs_moved")
    old = "# x\n\nRuns at 0.87 of raw with `AIAAS_PORT`.\n\n```bash\nmake serve\naiaas run m\n```\n"
    found = check.items(old)
    kinds = [(k, i) for k, i, _ in found]
    assert kinds == [
        ("setting", "AIAAS_PORT"),
        ("number", "0.87"),
        ("code", "make serve"),
        ("code", "aiaas run m"),
    ]
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("`make serve`, then `AIAAS_PORT`")
    (tmp_path / "docs" / "a.md").write_text("0.87 of raw")
    assert [i for _, i, _ in check.missing(found, check.corpus(tmp_path))] == ["aiaas run m"]


def test_every_setting_has_a_row_in_configuration_md() -> None:
    text = (DOCS / "configuration.md").read_text()
    undocumented = [
        f"AIAAS_{name.upper()}" for name in Settings.model_fields if f"| `AIAAS_{name.upper()}` |" not in text
    ]
    assert undocumented == [], f"add a row for each to docs/configuration.md: {undocumented}"


def test_every_docs_page_is_indexed() -> None:
    index, readme = (DOCS / "README.md").read_text(), (ROOT / "README.md").read_text()
    pages = [p.name for p in DOCS.glob("*.md") if p.name != "README.md"]
    assert [p for p in pages if f"]({p})" not in index] == [], "list the page in docs/README.md"
    assert [p for p in pages if f"](docs/{p})" not in readme] == [], "list the page in README.md's Documentation"


def test_relative_links_and_anchors_resolve() -> None:
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto: not checked offline
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert broken == []


def test_the_readme_catalog_request_is_the_generated_one() -> None:
    script = load("catalog_readme")
    specs = script.all_specs()
    shown = 0
    for line in (ROOT / "README.md").read_text().splitlines():
        match = re.search(r"localhost:8000/v2/models/([\w.-]+)/infer -d ", line)
        if match and match.group(1) in specs:
            assert line == script.curl(specs[match.group(1)]), "copy the line from docs/catalog.md"
            shown += 1
    assert shown >= 1
