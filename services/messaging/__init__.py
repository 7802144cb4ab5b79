"""Messaging: the Avro codec and registry, Kafka clients and topic creation, the Faust app factory with
record processing and dead letters (``streams.py``, the one module that touches Faust), the delivery
outbox (``outbox.py``), due-time tables and the reference feed."""
