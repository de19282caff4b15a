"""Bytes on the wire and back: input records, output records, changelog state records. No Kafka
and no model."""
