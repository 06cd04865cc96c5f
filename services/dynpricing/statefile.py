"""Durable JSON files for the learning state: atomic replace, never a torn file.

A reader sees either the previous complete document or the new complete one:
the new bytes go to a temporary file in the same directory, are fsynced, renamed
over the target, and the directory is fsynced so the rename itself survives a
crash.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from dynpricing.core.errors import SnapshotError

JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY  # compact on purpose: a million arms stay small


def write_json_atomic(path: str | os.PathLike[str], doc: Mapping[str, Any]) -> None:
    """Write ``doc`` as JSON to ``path`` atomically and durably."""
    target = Path(path)
    payload = orjson.dumps(doc, option=JSON_OPTIONS)
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The JSON object stored at ``path``; None when there is no file yet."""
    try:
        payload = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise SnapshotError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise SnapshotError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    return doc
