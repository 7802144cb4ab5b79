"""FHIR canonical URLs two services share: the subscription topic of Handoff's Task notifications and the R4
Subscriptions Backport profiles. The notifier sends the notifications; intake's FHIR API serves the Subscription
they name and its ``$status``."""

from __future__ import annotations

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
BACKPORT_SUBSCRIPTION = f"{BACKPORT}/backport-subscription"
BACKPORT_STATUS = f"{BACKPORT}/backport-subscription-status-r4"
BACKPORT_PAYLOAD_CONTENT = f"{BACKPORT}/backport-payload-content"
LEAD_TASK_TOPIC = "http://handoff.example.org/fhir/SubscriptionTopic/lead-referral-task"  # a LEAD referral's Task changed
