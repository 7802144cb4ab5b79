"""The CAD gateway: Handoff in the CAD's own terms. Real CAD products rarely send webhooks; they send
NENA EIDO, or write a file per call to a share or an SFTP folder. The gateway reads either into a
call, maps it through the agency's call-type table (``agencies.toml``) into the intakes' CAD events,
and publishes them to the same topics the HTTP intakes use; and it notices a feed gone silent.

- ``domain/``: a call as Handoff reads it and what it becomes (``calls``), NENA EIDO (``eido``),
  an agency's CSV and XML layouts (``layouts``). No I/O.
- ``service.py``: publish what a call became.
- ``entrypoints/``: ``POST /v1/eido`` (``http_api``), ``handoff connect watch`` (``file_drop``).
"""
