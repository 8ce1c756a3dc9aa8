"""The documentation stays true to the code: the scenario key reference is the generated
one, it names every key of the schema, and no document points outside the repository."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from pydantic import BaseModel

from v2xsim.config import Scenario, key_reference

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "scenario-reference.md"
REGENERATE = ("python -c \"from v2xsim.config import key_reference; print(key_reference(), end='')\" "
              "> docs/scenario-reference.md")


def _model_of(annotation) -> type[BaseModel] | None:
    """The section model of a field: ``Model`` or ``list[Model]``, else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        if isinstance(item, type) and issubclass(item, BaseModel):
            return item
    return None


def schema_keys(model: type[BaseModel] = Scenario, prefix: str = "") -> set[str]:
    """Dotted paths of every key of ``model`` and its nested sections."""
    keys = set()
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        keys.add(path)
        child = _model_of(field.annotation)
        if child is not None:
            keys |= schema_keys(child, f"{path}.")
    return keys


def documented_keys(text: str) -> dict[str, str]:
    """Dotted path -> meaning of every table row of the reference; section headings
    (``## `[road]` ``, ``## `[[road.lanes]]` ``) count as keys too."""
    keys: dict[str, str] = {}
    section = None
    for line in text.splitlines():
        heading = re.fullmatch(r"## (?:Top-level keys|`\[\[?([\w.]+)\]\]?`)", line)
        if heading:
            section = heading.group(1) or ""
            if section:
                keys.setdefault(section, "(section)")
            continue
        row = re.match(r"\| `(\w+)` \|", line)
        if row and section is not None:
            cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
            keys[f"{section}.{row.group(1)}" if section else row.group(1)] = cells[-1]
    return keys


def test_reference_is_generated():
    assert REFERENCE.exists(), f"docs/scenario-reference.md is missing; generate it with: {REGENERATE}"
    assert REFERENCE.read_text() == key_reference(), (
        f"docs/scenario-reference.md is out of date with v2xsim/config.py; regenerate it with: {REGENERATE}")


def test_reference_names_every_key():
    documented = documented_keys(key_reference())
    missing = sorted(schema_keys() - set(documented))
    assert not missing, f"scenario keys missing from the reference: {', '.join(missing)}"
    unexplained = sorted(key for key, meaning in documented.items() if not meaning)
    assert not unexplained, (f"keys without a meaning in key_reference() (add one to its meanings dict): "
                             f"{', '.join(unexplained)}")
    unknown = sorted(set(documented) - schema_keys())
    assert not unknown, f"the reference documents keys the schema does not have: {', '.join(unknown)}"


def test_reference_walker_sees_nested_sections():
    keys = schema_keys()
    for key in ("seed", "road.coverage_angle_deg", "road.lanes.speed_limit_kmh", "traffic.arrivals.time_s",
                "schemes.options", "timing.compute_ms", "output.event_log"):
        assert key in keys


def test_documents_stay_inside_the_repository():
    documents = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert len(documents) >= 3  # README, architecture, scenario reference
    for path in documents:
        text = path.read_text()
        assert "../shared" not in text, f"{path.relative_to(ROOT)} points outside the repository (../shared)"
        assert "DESIGN.md" not in text, f"{path.relative_to(ROOT)} refers to DESIGN.md, which is not in the repository"
