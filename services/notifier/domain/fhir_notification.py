"""What a case-management system is told when a LEAD referral's Task changes: an R4 Subscriptions Backport
event notification with an id-only payload (``kernel.fhir.notification_bundle``): a ``history`` Bundle whose
first entry is the SubscriptionStatus ``Parameters`` and whose next entry names the changed Task by its full
URL only, nothing about the person (the system reads the Task, within consent, and that read is audited).
Validated with fhir.resources' R4B models.

``event-number`` is the event's time in milliseconds: increasing per subscription, though not
consecutive (the notifications of one organisation come from every partition's owner).
"""

from __future__ import annotations

from datetime import datetime

from fhir.resources.R4B.bundle import Bundle

from services.kernel.fhir import notification_bundle


def notification(subscription_id: str, task_id: str, event_number: int, base_url: str, at: datetime) -> Bundle:
    """An id-only event notification: the Task that changed, by its full URL, and nothing else."""
    return Bundle.model_validate(notification_bundle(subscription_id, base_url, "event-notification", at,
                                                     event=(event_number, task_id)))
