"""The published JSON Schema files, loaded as validators for the tests."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

import dynpricing

SCHEMA_DIR = Path(dynpricing.__file__).resolve().parent / "schemas"
SCHEMA_FILES = {
    "demand": "demand_event.schema.json",
    "decision": "pricing_decision.schema.json",
    "outcome": "pricing_outcome.schema.json",
    "dead_letter": "dead_letter.schema.json",
}


@cache
def schema(kind: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMA_DIR / SCHEMA_FILES[kind]).read_text())
    return loaded


@cache
def validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(schema(kind))


def schema_errors(kind: str, document: Any) -> list[str]:
    """Every reason the schema refuses ``document`` (empty when it is valid)."""
    return [error.message for error in validator(kind).iter_errors(document)]
