"""The architecture page and the README layout name every part of harness/."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PARTS = sorted(p.name.removesuffix(".py") for p in (ROOT / "harness").iterdir()
               if (p.is_dir() and (p / "__init__.py").exists())
               or (p.suffix == ".py" and not p.name.startswith("__")))


def test_the_architecture_page_names_every_part() -> None:
    text = (ROOT / "harness" / "ARCHITECTURE.md").read_text()
    missing = [part for part in PARTS if not re.search(rf"`{part}(/|\.py)?`", text)]
    assert not missing, f"harness/ARCHITECTURE.md says nothing of {missing}"


def test_the_readme_layout_names_every_part() -> None:
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("### Layout"):]
    layout = layout[:layout.index("```", layout.index("```") + 3)]
    missing = [part for part in PARTS if not re.search(rf"\b{part}(/|\.py)", layout)]
    assert not missing, f"the README layout says nothing of {missing}"


def test_no_code_cites_a_file_outside_the_repository() -> None:
    offenders = [str(p.relative_to(ROOT)) for folder in ("harness", "tests", "benchmarks")
                 for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".md", ".toml")
                 and p.name != Path(__file__).name and "DESIGN" in p.read_text()]
    assert not offenders
