"""Who may do what on Kafka, and the local broker's certificates and credentials."""
