"""docs/events.md shows messages the schemas and the parsers accept, and names every reason."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from dynpricing.events import REASONS, parse_decision, parse_demand, parse_outcome
from tests.unit.services.schema_support import SCHEMA_FILES, schema_errors

DOCS = Path(__file__).resolve().parents[3] / "docs"
EVENTS_DOC = DOCS / "events.md"
EXAMPLE = re.compile(r"<!-- example: (\w+) -->\n```json\n(.*?)\n```", re.DOTALL)


def _examples() -> list[tuple[str, dict[str, Any]]]:
    return [(kind, orjson.loads(body)) for kind, body in EXAMPLE.findall(EVENTS_DOC.read_text())]


def _check_dead_letter(raw: bytes) -> None:
    letter = orjson.loads(raw)
    assert letter["reason"] in REASONS
    original = base64.b64decode(letter["original_base64"])
    assert original.decode() == letter["original_text"]


PARSERS: dict[str, Callable[[bytes], object]] = {
    "demand": lambda raw: parse_demand(raw, fallback_id="0-0"),
    "decision": parse_decision,
    "outcome": parse_outcome,
    "dead_letter": _check_dead_letter,
}


def test_the_page_has_an_example_of_every_message() -> None:
    assert {kind for kind, _ in _examples()} == set(SCHEMA_FILES)


@pytest.mark.parametrize(("kind", "document"), _examples(), ids=[kind for kind, _ in _examples()])
def test_every_example_validates_against_its_schema_and_parses(
    kind: str, document: dict[str, Any]
) -> None:
    assert schema_errors(kind, document) == []
    PARSERS[kind](orjson.dumps(document))


def test_the_reasons_table_lists_exactly_the_reasons_used() -> None:
    section = EVENTS_DOC.read_text().split("The reasons are a fixed set", 1)[1]
    table = section.split("\n\n", 2)[1]
    assert re.findall(r"^\| `(\w+)` \|", table, flags=re.MULTILINE) == list(REASONS)


def test_every_linked_file_exists() -> None:
    links = re.findall(r"\]\(([^)#]+)\)", EVENTS_DOC.read_text())
    assert links
    for link in links:
        if not link.startswith("http"):
            assert (DOCS / link).resolve().exists(), link
