"""The scoring engine: micro-batches of input records to outputs, through the state table and
the model's step. Nothing here touches Kafka."""
