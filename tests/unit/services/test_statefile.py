from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynpricing import statefile
from dynpricing.core.bandit import Bandit, BanditConfig
from dynpricing.statefile import JSON_OPTIONS, json_chunks, read_json, write_json_atomic

scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text()
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=7) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=40,
)


@given(json_values)
def test_chunked_encoding_is_byte_identical_to_one_call(value: Any) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(statefile, "CHUNK_ITEMS", 2)  # split every list longer than two items
        chunked = b"".join(json_chunks(value))
    assert chunked == orjson.dumps(value, option=JSON_OPTIONS)


def test_a_large_snapshot_is_encoded_in_pieces_with_the_same_bytes() -> None:
    bandit = Bandit(BanditConfig())
    rows = [bandit.context_index(f"loc-{i}", "low") for i in range(3 * statefile.CHUNK_ITEMS)]
    bandit.update(np.asarray(rows), np.asarray(rows) % 4, np.asarray(rows) % 3 == 0, 0.0)
    doc = bandit.to_document(extra={"ids": [f"id-{i}" for i in range(20_000)]}, arrays=True)
    chunks = list(json_chunks(doc))
    assert b"".join(chunks) == orjson.dumps(doc, option=JSON_OPTIONS)
    assert max(map(len, chunks)) < len(b"".join(chunks)) / 4


def test_object_keys_other_than_strings_are_refused_like_orjson_does() -> None:
    with pytest.raises(TypeError):
        b"".join(json_chunks({"engine": {1: "x"}}))


def test_written_document_reads_back_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "bandit_stats.json"
    doc = {"table": np.arange(20_000, dtype=np.int32).reshape(-1, 4), "name": "ok"}
    write_json_atomic(path, doc)
    assert read_json(path) == {"table": doc["table"].tolist(), "name": "ok"}
    with pytest.raises(TypeError):
        write_json_atomic(path, {"bad": {2: 1}})
    assert [p.name for p in tmp_path.iterdir()] == ["bandit_stats.json"]
    assert read_json(path) == {"table": doc["table"].tolist(), "name": "ok"}
