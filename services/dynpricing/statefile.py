"""Durable JSON files for the learning state: atomic replace, never a torn file.

A reader sees either the previous complete document or the new complete one:
the new bytes go to a temporary file in the same directory, are fsynced, renamed
over the target, and the directory is fsynced so the rename itself survives a
crash.

The JSON is encoded in pieces (:func:`json_chunks`) because orjson holds the
GIL for a whole call: the engine writes its snapshot on a background thread, and
one call over a million pending decisions would stall its loop for as long.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from dynpricing.core.errors import SnapshotError

JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY  # compact on purpose: a million arms stay small
CHUNK_ITEMS = 8192  # list items (or table rows) encoded per orjson call: about a millisecond


def json_chunks(value: Any) -> Iterator[bytes]:
    """``orjson.dumps(value, option=JSON_OPTIONS)``, byte for byte, in pieces.

    Objects are walked key by key and lists (or numpy tables, by rows) longer
    than ``CHUNK_ITEMS`` are encoded a slice at a time, so no single call runs
    for long. Object keys must be strings, as orjson itself requires.
    """
    if isinstance(value, dict):
        yield b"{"
        for i, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be str, got {type(key).__name__}")
            yield (b",%b:" if i else b"%b:") % orjson.dumps(key)
            yield from json_chunks(item)
        yield b"}"
    elif isinstance(value, list | np.ndarray) and len(value) > CHUNK_ITEMS:
        yield b"["
        for start in range(0, len(value), CHUNK_ITEMS):
            part = orjson.dumps(value[start : start + CHUNK_ITEMS], option=JSON_OPTIONS)
            yield b"," + part[1:-1] if start else part[1:-1]
        yield b"]"
    else:
        yield orjson.dumps(value, option=JSON_OPTIONS)


def write_json_atomic(path: str | os.PathLike[str], doc: Mapping[str, Any]) -> None:
    """Write ``doc`` as JSON to ``path`` atomically and durably."""
    target = Path(path)
    chunks = json_chunks(dict(doc))
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
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
