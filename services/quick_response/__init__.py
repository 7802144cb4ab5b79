"""Quick Response Teams (naloxone plus): every overdose response gets a follow-up within the site's window.

- ``domain/``: the follow-up's clock and what closes it (``follow_up``), the de-identified report
  (``deidentify``), the weekly funnel (``figures``). No I/O.
- ``service.py``: the use cases, on their own partitions: an overdose opens a follow-up and a
  public report; attempts are recorded; a window about to close tells the team lead.
- ``entrypoints/``: the worker, the HTTP intake and the team's API (daily list, attempts, funnel,
  the de-identified feed).
"""
