"""The JSON-lines dump of a logged evaluation window: write it once, evaluate it any time.

Line 1 is a header (format, version, where the records came from), then one
line per message (kind, partition, offset, broker timestamp, key, value as
text, or base64 when it is not UTF-8), then an end line with the counts. A dump
without its end line, or whose counts disagree, was cut short and is refused:
evaluating part of a log as if it were all of it would give a wrong number
without saying so. The file is written to a temporary name and renamed, so an
interrupted ``--dump`` leaves no dump at all.
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from dynpricing.evaluate.records import DECISION, KINDS, RawRecord

DUMP_FORMAT = "dynpricing.evaluate.dump"
DUMP_VERSION = 1


class DumpError(ValueError):
    """A dump that cannot be read as a whole; the message names the line and the problem."""


def record_line(record: RawRecord) -> dict[str, Any]:
    """One record as its dump object (value as text when it is UTF-8)."""
    line: dict[str, Any] = {
        "kind": record.kind,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp_ms": record.timestamp_ms,
        "key": _text(record.key),
    }
    if record.value is None:
        line["value"] = None
    else:
        try:
            line["value"] = record.value.decode("utf-8")
        except UnicodeDecodeError:
            line["value_base64"] = base64.b64encode(record.value).decode("ascii")
    return line


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", errors="backslashreplace")


def write_dump(path: Path, records: Iterable[RawRecord], source: Mapping[str, object]) -> int:
    """Write every record atomically; returns how many were written."""
    counts = dict.fromkeys(KINDS, 0)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            header = {"format": DUMP_FORMAT, "version": DUMP_VERSION, "source": dict(source)}
            handle.write(orjson.dumps(header) + b"\n")
            for record in records:
                counts[record.kind] += 1
                handle.write(orjson.dumps(record_line(record)) + b"\n")
            total = sum(counts.values())
            handle.write(orjson.dumps({"end": True, "records": total, **counts}) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return total


def read_dump(path: Path) -> tuple[list[RawRecord], dict[str, object]]:
    """The records of a complete dump and its header's source; :class:`DumpError` otherwise."""
    try:
        lines = path.read_bytes().split(b"\n")
    except FileNotFoundError:
        raise DumpError(f"{path}: no such dump file") from None
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        raise DumpError(f"{path}: empty file, not an evaluation dump")
    header = _object(path, 1, lines[0])
    if header.get("format") != DUMP_FORMAT or header.get("version") != DUMP_VERSION:
        raise DumpError(
            f"{path}: not an evaluation dump (expected format {DUMP_FORMAT!r} "
            f"version {DUMP_VERSION}, got {header.get('format')!r} {header.get('version')!r})"
        )
    records = []
    end: dict[str, Any] | None = None
    for number, raw in enumerate(lines[1:], start=2):
        obj = _object(path, number, raw)
        if obj.get("end") is True:
            end = obj
            if number != len(lines):
                raise DumpError(f"{path}:{number}: end line before the last line")
            break
        records.append(_record(path, number, obj))
    if end is None:
        raise DumpError(
            f"{path}: truncated dump: {len(records)} records and no end line "
            "(the dump was cut short; write it again with --dump)"
        )
    _check_counts(path, records, end)
    source = header.get("source")
    return records, dict(source) if isinstance(source, dict) else {}


def _object(path: Path, number: int, raw: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise DumpError(
            f"{path}:{number}: not a JSON line (a truncated or corrupted dump)"
        ) from None
    if not isinstance(obj, dict):
        raise DumpError(f"{path}:{number}: expected a JSON object")
    return obj


def _record(path: Path, number: int, obj: dict[str, Any]) -> RawRecord:
    kind, partition, offset = obj.get("kind"), obj.get("partition"), obj.get("offset")
    if kind not in KINDS or not isinstance(partition, int) or not isinstance(offset, int):
        raise DumpError(f"{path}:{number}: a record needs kind, partition and offset")
    if "value_base64" in obj:
        value: bytes | None = base64.b64decode(obj["value_base64"])
    elif isinstance(obj.get("value"), str):
        value = obj["value"].encode("utf-8")
    elif obj.get("value") is None:
        value = None
    else:
        raise DumpError(f"{path}:{number}: 'value' must be the message text")
    key = obj.get("key")
    stamp = obj.get("timestamp_ms")
    return RawRecord(
        kind=kind,
        partition=partition,
        offset=offset,
        value=value,
        key=key.encode("utf-8") if isinstance(key, str) else None,
        timestamp_ms=stamp if isinstance(stamp, int) else None,
    )


def _check_counts(path: Path, records: list[RawRecord], end: Mapping[str, Any]) -> None:
    decisions = sum(1 for r in records if r.kind == DECISION)
    found = {"records": len(records), DECISION: decisions, "outcome": len(records) - decisions}
    expected = {name: end.get(name) for name in found}
    if found != expected:
        raise DumpError(f"{path}: the end line promises {expected} but the dump holds {found}")
