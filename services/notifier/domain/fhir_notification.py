"""What a case-management system is told when a LEAD referral's Task changes: an R4 Subscriptions Backport
event notification with an id-only payload. A ``history`` Bundle whose first entry is the
SubscriptionStatus ``Parameters`` and whose next entry names the changed Task by its full URL only:
nothing about the person (the system reads the Task, within consent, and that read is audited).
Validated with fhir.resources' R4B models.

``event-number`` is the event's time in milliseconds: increasing per subscription, though not
consecutive (the notifications of one organisation come from every partition's owner).
"""

from __future__ import annotations

from datetime import datetime

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.parameters import Parameters

from services.kernel.fhir import BACKPORT_STATUS, LEAD_TASK_TOPIC


def notification(subscription_id: str, task_id: str, event_number: int, base_url: str, at: datetime) -> Bundle:
    """An id-only event notification: the Task that changed, by its full URL, and nothing else."""
    status = Parameters.model_validate({
        "resourceType": "Parameters", "meta": {"profile": [BACKPORT_STATUS]},
        "parameter": [
            {"name": "subscription", "valueReference": {"reference": f"{base_url}/Subscription/{subscription_id}"}},
            {"name": "topic", "valueCanonical": LEAD_TASK_TOPIC}, {"name": "status", "valueCode": "active"},
            {"name": "type", "valueCode": "event-notification"},
            {"name": "notification-event", "part": [
                {"name": "event-number", "valueString": str(event_number)},
                {"name": "timestamp", "valueInstant": _instant(at)},
                {"name": "focus", "valueReference": {"reference": f"{base_url}/Task/{task_id}"}}]}]})
    return Bundle.model_validate({
        "resourceType": "Bundle", "type": "history", "timestamp": _instant(at),
        "entry": [{"fullUrl": f"urn:uuid:{subscription_id}-{event_number}",
                   "resource": status.model_dump(mode="json", exclude_none=True),
                   "request": {"method": "GET", "url": f"Subscription/{subscription_id}/$status"},
                   "response": {"status": "200"}},
                  {"fullUrl": f"{base_url}/Task/{task_id}", "request": {"method": "PUT", "url": f"Task/{task_id}"},
                   "response": {"status": "200"}}]})


def _instant(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")
