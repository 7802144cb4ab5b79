"""FHIR facts two services share: the subscription topic of Handoff's Task notifications, the R4 Subscriptions
Backport profiles, and the subscriptions case-management systems create themselves (their events, and the
read model both sides fold from them). The notifier sends the notifications; intake's FHIR API serves the
Subscriptions they name, their ``$status``, and takes new ones."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar
from uuid import NAMESPACE_URL, uuid5

from pydantic import Field

from services.kernel.bus import Handlers, fold
from services.kernel.events import Event, Instant

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
BACKPORT_SUBSCRIPTION = f"{BACKPORT}/backport-subscription"
BACKPORT_STATUS = f"{BACKPORT}/backport-subscription-status-r4"
BACKPORT_PAYLOAD_CONTENT = f"{BACKPORT}/backport-payload-content"
BACKPORT_HEARTBEAT_PERIOD = f"{BACKPORT}/backport-heartbeat-period"
BACKPORT_MAX_COUNT = f"{BACKPORT}/backport-max-count"
LEAD_TASK_TOPIC = "http://handoff.example.org/fhir/SubscriptionTopic/lead-referral-task"  # a LEAD referral's Task changed


class FhirSubscriptionCreated(Event):
    """A case-management system created a Subscription to LEAD referral Tasks (R4 Subscriptions Backport, rest-hook,
    id-only), and its endpoint answered the handshake. Keyed by subscription_id. No personal data: an organisation,
    an endpoint and times."""

    avro_schema: ClassVar[str] = "fhir_subscription_created"
    avro_namespace: ClassVar[str] = "org.handoff.lead"
    subscription_id: str = Field(min_length=1, max_length=64)
    """Handoff's id for it (``Subscription/{id}``)."""
    organization_id: str
    """The organisation whose client created it: it is notified of Tasks at its sites, within consent."""
    endpoint: str = Field(max_length=2048)
    """The rest-hook endpoint (https) its notifications are posted to."""
    heartbeat_seconds: int | None = Field(None, ge=60, le=86_400)
    """How often a heartbeat is sent while nothing else is (backport-heartbeat-period); none: no heartbeats."""
    end: Instant | None = None
    """When it stops (Subscription.end); none: until deleted."""
    created_by: str
    """The client that created it (its OAuth client id, or the organisation's API token)."""
    created_at: Instant
    """When its endpoint answered the handshake."""


class FhirSubscriptionDeleted(Event):
    """The client deleted its Subscription: nothing more is sent to its endpoint. Keyed by subscription_id."""

    avro_schema: ClassVar[str] = "fhir_subscription_deleted"
    avro_namespace: ClassVar[str] = "org.handoff.lead"
    subscription_id: str
    """The Subscription deleted."""
    organization_id: str
    """Whose it was."""
    deleted_by: str
    """The client that deleted it."""
    deleted_at: Instant
    """When."""


class ClientSubscriptions:
    """The Subscriptions clients created and have not deleted, by id and by organisation: what the API serves and
    the notifier notifies. Folded from the subscriptions topic; applying an event twice changes nothing."""

    FOLDS: ClassVar[Handlers] = {FhirSubscriptionCreated: "created", FhirSubscriptionDeleted: "deleted"}

    def __init__(self) -> None:
        self._by_id: dict[str, FhirSubscriptionCreated] = {}

    def apply(self, event) -> None:
        fold(self, self.FOLDS, event)

    def created(self, event: FhirSubscriptionCreated) -> None:
        self._by_id[event.subscription_id] = event

    def deleted(self, event: FhirSubscriptionDeleted) -> None:
        self._by_id.pop(event.subscription_id, None)

    def get(self, subscription_id: str) -> FhirSubscriptionCreated | None:
        return self._by_id.get(subscription_id)

    def of(self, organization_id: str, now: datetime) -> list[FhirSubscriptionCreated]:
        """The organisation's subscriptions that have not ended, oldest first."""
        return sorted((s for s in self._by_id.values() if s.organization_id == organization_id and live(s, now)),
                      key=lambda s: s.created_at)

    def all(self, now: datetime) -> list[FhirSubscriptionCreated]:
        return sorted((s for s in self._by_id.values() if live(s, now)), key=lambda s: s.created_at)


def live(subscription: FhirSubscriptionCreated, now: datetime) -> bool:
    return subscription.end is None or now < subscription.end


def status_parameters(subscription_url: str, kind: str, status: str = "active",
                      event: tuple[int, datetime, str] | None = None) -> dict:
    """A SubscriptionStatus (R4 Backport ``Parameters``) of ``kind`` (handshake, heartbeat, event-notification,
    query-status), with the one event of an event notification: (its number, when, the full URL of the Task)."""
    parameter: list[dict] = [
        {"name": "subscription", "valueReference": {"reference": subscription_url}},
        {"name": "topic", "valueCanonical": LEAD_TASK_TOPIC}, {"name": "status", "valueCode": status},
        {"name": "type", "valueCode": kind}]
    if event is not None:
        number, at, focus = event
        parameter.append({"name": "notification-event", "part": [
            {"name": "event-number", "valueString": str(number)}, {"name": "timestamp", "valueInstant": instant(at)},
            {"name": "focus", "valueReference": {"reference": focus}}]})
    return {"resourceType": "Parameters", "meta": {"profile": [BACKPORT_STATUS]}, "parameter": parameter}


def notification_bundle(subscription_id: str, base_url: str, kind: str, at: datetime, status: str = "active",
                        event: tuple[int, str] | None = None) -> dict:
    """What a subscriber's endpoint is posted: a ``history`` Bundle whose first entry is the SubscriptionStatus and,
    for an event, whose next entry names the changed Task by its full URL only (id-only: nothing about the
    person). ``event``: (its number, the Task's id)."""
    subscription_url = f"{base_url}/Subscription/{subscription_id}"
    focus = f"{base_url}/Task/{event[1]}" if event else None
    status_entry = {"fullUrl": f"urn:uuid:{uuid5(NAMESPACE_URL, f'{subscription_url}#{kind}@{instant(at)}')}",
                    "resource": status_parameters(subscription_url, kind, status,
                                                  (event[0], at, focus) if event and focus else None),
                    "request": {"method": "GET", "url": f"Subscription/{subscription_id}/$status"},
                    "response": {"status": "200"}}
    entries = [status_entry]
    if event is not None:
        entries.append({"fullUrl": focus, "request": {"method": "PUT", "url": f"Task/{event[1]}"},
                        "response": {"status": "200"}})
    return {"resourceType": "Bundle", "type": "history", "timestamp": instant(at), "entry": entries}


def instant(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")
