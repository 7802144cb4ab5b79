"""Delivery: the channels (SMS, email, webhook) and signed links. The outbox that sends through them,
idempotently and off the stream, is messaging's (``services/messaging/outbox.py``)."""
