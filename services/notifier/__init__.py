"""Notifier: pages the on-call case manager for a warm handoff and escalates until acknowledged.

- ``domain/schedule.py``    who is on call at an instant (rotations in site-local time, overrides)
- ``domain/escalation.py``  escalation policies and a page's state machine (pure, fake-clock tested)
- ``domain/messages.py``    what a page says, on each channel (only what a warm handoff needs)
- ``service.py``            open, deliver, escalate and acknowledge pages; idempotent by attempt id
  (channels, signed links and idempotent delivery are shared: ``services/delivery``)
- ``entrypoints/worker.py`` Faust worker: referral and page events in, escalation timer
- ``entrypoints/http_api.py`` acknowledgement link and inbound-SMS webhook
"""
