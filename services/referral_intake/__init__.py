"""Referral intake: CAD diversion referrals in, referrals opened and tracked.

- ``domain/model.py``      referral ids, site acceptance rules, the intake deadline (pure)
- ``domain/lifecycle.py``  FHIR Task statuses, LEAD milestones and the transitions between them (pure)
- ``service.py``           what happens to a CAD referral: dedup, open, publish
- ``entrypoints/worker.py``   Faust worker consuming the CAD referral topic
- ``entrypoints/http_api.py`` authenticated HTTP intake for CAD systems that can only POST JSON
"""
