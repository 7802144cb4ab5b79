"""Handle With Care: a child encountered by police -> a minimal notice to the school before the next school day.

- ``domain/calendar.py``  school days and ``next_school_day_start`` (time zones, DST, holidays, closures)
- ``domain/notice.py``    the notice: merge key, notice id, and what each channel may say (nothing of the incident)
- ``domain/escalation.py`` primary -> backup -> district coordinator -> overdue, by lead time before the deadline
- ``service.py``          encounter -> notice -> delivery -> acknowledgement/escalation; idempotent by attempt id
- ``adapters/calendars.py`` RFC 5545 (.ics) closures, recurrence expanded by recurring-ical-events
- ``entrypoints/worker.py`` Faust worker; ``entrypoints/http_api.py`` acknowledgement links and triage
"""
