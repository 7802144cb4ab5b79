"""Self-referral (the Angel / PAARI model): a person asks the police for help, a volunteer pool is paged.

- ``domain/``: who is paged (eligible, available, nearest first), who takes it, when the coordinators
  hear of it, the milestones to placement (``walk_in``); the month's figures and the expenses to
  reimburse (``figures``). No I/O.
- ``service.py``: the use cases, on their own partitions: a walk-in opens a case and pages the pool;
  the first to accept takes it and the others are told; nobody accepting tells the coordinators.
- ``entrypoints/``: the worker, the HTTP intake and API (``http_api``), the volunteer's phone-first
  link and the coordinators' console view (``console``).
"""
