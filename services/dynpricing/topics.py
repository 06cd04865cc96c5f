"""``dynpricing topics``: create every topic (idempotent); the model topic is compacted."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from dynpricing.kafka_io import ensure_topics
from dynpricing.settings import KafkaSettings, TopicSettings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dynpricing topics", description=__doc__)
    parser.add_argument("--bootstrap-servers", default=None)
    parser.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args(argv)
    kafka = KafkaSettings(topic_partitions=args.partitions)
    if args.bootstrap_servers:
        kafka = kafka.model_copy(update={"bootstrap_servers": args.bootstrap_servers})
    topics = TopicSettings()
    ensure_topics(kafka, topics.with_model(), compacted=[topics.model])
    return 0
