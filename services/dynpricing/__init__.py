"""Real-time dynamic pricing over Apache Kafka."""
