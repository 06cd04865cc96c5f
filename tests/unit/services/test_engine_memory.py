"""The restored engine gives the memory of parsing its snapshot back to the OS."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RESTORE_AND_TRIM = """
import gc, re, sys
from pathlib import Path
from dynpricing.bench.state import populated
from dynpricing.engine.app import restore
from dynpricing.engine.memory import release_freed_memory
from dynpricing.settings import EngineSettings
from dynpricing.statefile import write_json_atomic

def rss_mb():
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmRSS:\\s+(\\d+)", status).group(1)) / 1024

settings = EngineSettings(state_path=Path(sys.argv[1]))
bandit, books = populated(settings, 50_000)
write_json_atomic(settings.state_path, bandit.to_document(extra=books.to_document(0.0)))
del bandit, books
gc.collect()
release_freed_memory()
restored = restore(settings)
gc.collect()
before = rss_mb()
trimmed = release_freed_memory()
print(trimmed, before, rss_mb())
"""


def test_memory_freed_after_restoring_a_large_snapshot_goes_back_to_the_os(
    tmp_path: Path,
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", RESTORE_AND_TRIM, str(tmp_path / "bandit_stats.json")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split()
    trimmed, before, after = out[0] == "True", float(out[1]), float(out[2])
    assert trimmed
    assert before - after > 5, f"RSS {before:.0f} MB -> {after:.0f} MB"
