"""The pricing core stays importable and usable where Kafka is not."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
for name in ("confluent_kafka", "prometheus_client", "structlog", "pydantic_settings"):
    sys.modules[name] = None  # any import of these now raises ImportError
import numpy as np
import dynpricing.core.bandit, dynpricing.core.market, dynpricing.core.contexts
from dynpricing.core.bandit import Bandit, BanditConfig
bandit = Bandit(BanditConfig())
row = bandit.context_index("Airport", "high")
batch = bandit.decide(np.array([row]), np.random.default_rng(0), now=0.0)
bandit.update([row], batch.arms, [True], now=0.0)
print("ok")
"""


def test_core_imports_and_decides_with_kafka_and_service_libraries_unavailable() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
