"""Web Push facts two services share: the devices where a person allowed push (their events, written by the
console and read by the notifier), and the read model both sides fold from them."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from services.kernel.bus import Handlers, fold
from services.kernel.events import PERSONAL, Event, Instant

PUSH_ADDRESS = frozenset({"endpoint", "p256dh", "auth"})  # the personal leaves a sender opens: where, and the keys
MAX_DEVICES = 10  # a person's devices with push on: a phone, a tablet, a desk; more is a leak, not a need


def device_id(endpoint: str) -> str:
    """A device's subscription id: the same browser subscribing again (after clearing data) replaces itself."""
    return hashlib.sha256(endpoint.encode()).hexdigest()[:24]


def device_key(person_id: str, subscription_id: str) -> str:
    """The record key on the push-subscriptions topic (and the subject its keys are sealed under)."""
    return f"{person_id}/{subscription_id}"


class PushSubscribed(Event):
    """A person allowed push on a device: the console's service worker subscribed with Handoff's VAPID key and
    handed over its PushSubscription. Keyed by person_id/subscription_id."""

    avro_schema: ClassVar[str] = "push_subscribed"
    avro_namespace: ClassVar[str] = "org.handoff.paging"
    subscription_id: str = Field(min_length=1, max_length=64)
    """Handoff's id for the device's subscription (a hash of its endpoint)."""
    person_id: str = Field(min_length=1, max_length=64)
    """The staff member (a case manager id) whose device it is."""
    endpoint: Annotated[str, PERSONAL] = Field(max_length=2048)
    """The push service's URL for this device (https): it reaches one person's phone."""
    p256dh: Annotated[str, PERSONAL] = Field(max_length=128)
    """The device's public key (P-256, base64url): what a push is encrypted for (RFC 8291)."""
    auth: Annotated[str, PERSONAL] = Field(max_length=64)
    """The device's authentication secret (base64url, 16 bytes)."""
    device: str = Field("", max_length=100)
    """What the console lists it as ("Chrome on Android"), from the browser's user agent."""
    subscribed_at: Instant
    """When push was allowed."""

    def subscription_json(self) -> str:
        """The address a push delivery is sent to: the PushSubscription as a browser gives it."""
        return json.dumps({"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}})


class PushUnsubscribed(Event):
    """A device gets no more pushes: the person turned push off there, or its push service no longer knows it (404,
    410 on a send). Keyed by person_id/subscription_id."""

    avro_schema: ClassVar[str] = "push_unsubscribed"
    avro_namespace: ClassVar[str] = "org.handoff.paging"
    subscription_id: str
    """The device's subscription id."""
    person_id: str
    """Whose device it was."""
    reason: Literal["removed", "gone"]
    """Removed by the person in the console, or gone at its push service."""
    unsubscribed_at: Instant
    """When."""


class PushDevices:
    """Each person's devices with push on, newest first: what the notifier pushes to and the console lists. Folded
    from the push-subscriptions topic; applying an event twice changes nothing."""

    FOLDS: ClassVar[Handlers] = {PushSubscribed: "subscribed", PushUnsubscribed: "unsubscribed"}

    def __init__(self) -> None:
        self._by_person: dict[str, dict[str, PushSubscribed]] = {}

    def apply(self, event) -> None:
        fold(self, self.FOLDS, event)

    def subscribed(self, event: PushSubscribed) -> None:
        self._by_person.setdefault(event.person_id, {})[event.subscription_id] = event

    def unsubscribed(self, event: PushUnsubscribed) -> None:
        self._by_person.get(event.person_id, {}).pop(event.subscription_id, None)

    def of(self, person_id: str) -> list[PushSubscribed]:
        return sorted(self._by_person.get(person_id, {}).values(), key=lambda d: d.subscribed_at, reverse=True)
