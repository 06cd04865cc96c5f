"""``dynpricing permissions``: print the permission table, or write the chart's copy of it."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from dynpricing.broker import configured_names
from dynpricing.security.local import principal_name
from dynpricing.security.permissions import chart_yaml, roles

CHART_FILE = Path("charts/dynamic-pricing/files/kafka-acls.yaml")


def table_text() -> str:
    """Each role's principal and grants, with the names the services' settings give."""
    lines = []
    for role in roles(configured_names()):
        lines.append(f"{role.name} (User:{principal_name(role.name)})")
        lines += [f"  {g.resource:<6} {g.name:<34} {', '.join(g.operations)}" for g in role.grants]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dynpricing permissions", description=__doc__)
    parser.add_argument(
        "--format",
        choices=["table", "chart"],
        default="table",
        help="table: what each role may do, with configured names; "
        f"chart: the data file the Helm chart renders KafkaUsers from ({CHART_FILE})",
    )
    parser.add_argument("--output", type=Path, default=None, help="write here instead of stdout")
    args = parser.parse_args(argv)
    text = chart_yaml() if args.format == "chart" else table_text()
    if args.output is None:
        print(text, end="")
    else:
        args.output.write_text(text)
    return 0
