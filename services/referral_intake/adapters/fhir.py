"""LEAD referrals as FHIR resources, the HL7 SDOH Clinical Care referral pattern (Gravity): a ``Task``
(TaskForReferralManagement) whose ``focus`` is the ``ServiceRequest``; ``Task.status`` is the
referral's status, ``Task.businessStatus`` its latest LEAD milestone. Built and validated with
fhir.resources' R4B models (FHIR 4.3: R4 with technical corrections; every element used here is the
same in R4 4.0.1, which the CapabilityStatement names for the guide's clients).

Notifications of a changed Task are the notifier's (``services/notifier/domain/fhir_notification.py``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.parameters import Parameters
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.subscription import Subscription
from fhir.resources.R4B.task import Task
from pydantic import ValidationError

from services.kernel.events import Milestone, ReferredPerson
from services.kernel.fhir import (
    BACKPORT_HEARTBEAT_PERIOD,
    BACKPORT_PAYLOAD_CONTENT,
    BACKPORT_SUBSCRIPTION,
    LEAD_TASK_TOPIC,
    FhirSubscriptionCreated,
    instant,
    status_parameters,
)
from services.kernel.reference import Organization, Site
from services.referral_intake.domain.views import ReferralView

SDOH_TASK_PROFILE = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-TaskForReferralManagement"
SDOH_SR_PROFILE = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-ServiceRequest"
MILESTONES = "http://handoff.example.org/fhir/CodeSystem/lead-milestone"
ROUTES = "http://handoff.example.org/fhir/CodeSystem/lead-referral-type"
ORDER = [m.value for m in Milestone]


def fhir_code(value: str) -> str:
    return value.replace("_", "-")


def event_code(value: str) -> str:
    return value.replace("-", "_")


def latest_milestone(view: ReferralView) -> str | None:
    if not view.milestones:
        return None
    return max(view.milestones, key=lambda m: (view.milestones[m], ORDER.index(m) if m in ORDER else 0))


def task_for(view: ReferralView, owner: Organization, person: ReferredPerson | None) -> Task:
    milestone = latest_milestone(view)
    data: dict = {
        "resourceType": "Task", "id": view.referral_id,
        "meta": {"profile": [SDOH_TASK_PROFILE], "lastUpdated": instant(view.updated_at or view.referred_at)},
        "status": fhir_code(view.status), "intent": "order", "priority": "routine",
        "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
        "focus": {"reference": f"ServiceRequest/{view.referral_id}"},
        "authoredOn": instant(view.referred_at), "lastModified": instant(view.updated_at or view.referred_at),
        "requester": {"display": f"LEAD site {view.site_id}"},
        "owner": {"reference": f"Organization/{owner.organization_id}", "display": owner.name},
        "restriction": {"period": {"end": instant(view.intake_due_at)}},
    }
    if milestone:
        data["businessStatus"] = {"coding": [{"system": MILESTONES, "code": fhir_code(milestone)}],
                                  "text": milestone.replace("_", " ")}
    if person is not None:
        data["for"] = {"display": f"{person.first_name} {person.last_name}"}
    return Task.model_validate(data)


def service_request_for(view: ReferralView, site: Site, person: ReferredPerson | None) -> ServiceRequest:
    data: dict = {
        "resourceType": "ServiceRequest", "id": view.referral_id, "meta": {"profile": [SDOH_SR_PROFILE]},
        "status": "active" if view.is_open else ("completed" if view.status == "completed" else "revoked"),
        "intent": "order",
        "category": [{"coding": [{"system": "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes",
                                  "code": "sdoh-category-unspecified"}], "text": "LEAD diversion"}],
        "code": {"coding": [{"system": ROUTES, "code": fhir_code(view.referral_type)}],
                 "text": f"LEAD referral: {view.referral_type.replace('_', ' ')}"},
        "subject": {"display": f"{person.first_name} {person.last_name}" if person else "not disclosed"},
        "authoredOn": instant(view.referred_at),
        "requester": {"display": site.name},
        "occurrencePeriod": {"start": instant(view.referred_at), "end": instant(view.intake_due_at)},
    }
    return ServiceRequest.model_validate(data)


def searchset(found: Sequence[Task | Subscription], self_url: str, base_url: str) -> Bundle:
    """A search's answer: each resource found under its full URL."""
    return Bundle.model_validate({
        "resourceType": "Bundle", "type": "searchset", "total": len(found),
        "link": [{"relation": "self", "url": self_url}],
        "entry": [{"fullUrl": f"{base_url}/{r.get_resource_type()}/{r.id}",
                   "resource": r.model_dump(mode="json", exclude_none=True), "search": {"mode": "match"}}
                  for r in found]})


def capability_statement(base_url: str, now: datetime) -> CapabilityStatement:
    return CapabilityStatement.model_validate({
        "resourceType": "CapabilityStatement", "status": "active", "date": instant(now), "kind": "instance",
        "fhirVersion": "4.0.1", "format": ["application/fhir+json"],
        "software": {"name": "Handoff"}, "implementation": {"description": "Handoff LEAD referrals", "url": base_url},
        "instantiates": ["http://hl7.org/fhir/us/sdoh-clinicalcare/CapabilityStatement/SDOHCC-ReferralRecipient"],
        "rest": [{"mode": "server", "security": {
                      "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                               "code": "SMART-on-FHIR"}]}],
                      "description": "SMART Backend Services (see .well-known/smart-configuration) or a bearer token "
                                     "per organisation; 42 CFR Part 2 consent scope decides which Tasks it may read"},
                  "resource": [
                      {"type": "Task", "profile": SDOH_TASK_PROFILE,
                       "interaction": [{"code": "read"}, {"code": "search-type"}, {"code": "update"}],
                       "searchParam": [{"name": "owner", "type": "reference"}, {"name": "status", "type": "token"},
                                       {"name": "_lastUpdated", "type": "date"}, {"name": "_id", "type": "token"}]},
                      {"type": "ServiceRequest", "profile": SDOH_SR_PROFILE, "interaction": [{"code": "read"}]},
                      {"type": "Subscription", "supportedProfile": [BACKPORT_SUBSCRIPTION],
                       "interaction": [{"code": "read"}, {"code": "create"}, {"code": "delete"},
                                       {"code": "search-type"}],
                       "operation": [{"name": "$status",
                                      "definition": "http://hl7.org/fhir/uv/subscriptions-backport/"
                                                    "OperationDefinition/backport-subscription-status"}]}]}]})


def outcome(code: str, diagnostics: str, severity: str = "error", expression: str | None = None) -> dict:
    issue = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression]  # the element at fault (FHIRPath)
    return OperationOutcome.model_validate({"resourceType": "OperationOutcome", "issue": [issue]}).model_dump(
        mode="json", exclude_none=True)


def subscription_resource(subscription_id: str, endpoint: str | None, reason: str, heartbeat_seconds: int | None = None,
                          end: datetime | None = None, status: str = "active") -> Subscription:
    """A Subscription as the R4 Subscriptions Backport shapes it: Handoff's Task topic, a rest-hook endpoint, id-only
    payloads (nothing about the person ever travels in a notification)."""
    channel: dict = {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json",
                     "_payload": {"extension": [{"url": BACKPORT_PAYLOAD_CONTENT, "valueCode": "id-only"}]}}
    if heartbeat_seconds:
        channel["extension"] = [{"url": BACKPORT_HEARTBEAT_PERIOD, "valueUnsignedInt": heartbeat_seconds}]
    return Subscription.model_validate({
        "resourceType": "Subscription", "id": subscription_id, "meta": {"profile": [BACKPORT_SUBSCRIPTION]},
        "status": status, "reason": reason, "criteria": LEAD_TASK_TOPIC, "channel": channel,
        **({"end": instant(end)} if end else {})})


def subscription_for(org: Organization) -> Subscription:
    """The organisation's subscription configured in the reference data. Its id is the organisation's, as each
    notification names it."""
    return subscription_resource(org.organization_id, org.subscription_url,
                                 f"LEAD referral Tasks at the sites {org.name} serves, within consent")


def client_subscription(created: FhirSubscriptionCreated, org: Organization) -> Subscription:
    """A Subscription the organisation's client created (``POST /fhir/Subscription``)."""
    return subscription_resource(created.subscription_id, created.endpoint,
                                 f"LEAD referral Tasks at the sites {org.name} serves, within consent",
                                 created.heartbeat_seconds, created.end)


@dataclass(frozen=True)
class RequestedSubscription:
    """What a client asked for: where to post, how often to beat while quiet, until when."""

    endpoint: str
    heartbeat_seconds: int | None
    end: datetime | None


class SubscriptionRefused(ValueError):
    def __init__(self, expression: str, reason: str) -> None:
        super().__init__(f"{expression}: {reason}")
        self.expression = expression
        self.reason = reason


def requested_subscription(body: bytes, loopback_ok: bool = False) -> RequestedSubscription:
    """A client's Subscription (R4 Backport), read with fhir.resources; ``SubscriptionRefused`` naming the element
    for what Handoff does not serve: another topic, a channel other than rest-hook over https (loopback http only
    where settings allow it, in development), payloads other than id-only, channel headers (a secret Handoff would
    keep in plain text on a topic: the endpoint authenticates Handoff by its signature instead)."""
    try:
        asked = Subscription.model_validate_json(body)
    except (ValidationError, ValueError) as exc:
        raise SubscriptionRefused("Subscription", f"not a valid FHIR R4 Subscription: {str(exc).splitlines()[0]}") \
            from None
    if asked.criteria != LEAD_TASK_TOPIC:
        raise SubscriptionRefused("Subscription.criteria", f"the only topic served here is {LEAD_TASK_TOPIC}")
    channel = asked.channel
    if channel.type != "rest-hook":
        raise SubscriptionRefused("Subscription.channel.type", "only rest-hook is served")
    endpoint = channel.endpoint or ""
    if not (endpoint.startswith("https://") or (loopback_ok and re.match(r"^http://127\.0\.0\.1[:/]", endpoint))):
        raise SubscriptionRefused("Subscription.channel.endpoint", "must be an https:// URL")
    if channel.payload not in (None, "application/fhir+json"):
        raise SubscriptionRefused("Subscription.channel.payload", "only application/fhir+json is sent")
    content = _extension(channel.payload__ext.extension if channel.payload__ext else None, BACKPORT_PAYLOAD_CONTENT,
                         "valueCode")
    if content not in (None, "id-only", "empty"):
        raise SubscriptionRefused("Subscription.channel.payload", "only id-only notifications are sent: a Task is "
                                  "read through the API, within the person's consent, and that read is audited")
    if channel.header:
        raise SubscriptionRefused("Subscription.channel.header", "not kept: each notification is signed "
                                  "(X-Handoff-Signature), which the endpoint checks instead")
    heartbeat = _extension(channel.extension, BACKPORT_HEARTBEAT_PERIOD, "valueUnsignedInt")
    if heartbeat is not None and not 60 <= heartbeat <= 86_400:
        raise SubscriptionRefused("Subscription.channel.extension", "a heartbeat period from 60 to 86400 seconds")
    return RequestedSubscription(endpoint, heartbeat, asked.end)


def _extension(extensions, url: str, value: str):
    return next((getattr(e, value) for e in extensions or () if e.url == url), None)


def subscription_status(subscription_id: str, base_url: str, now: datetime, status: str = "active") -> Bundle:
    """``$status``: a searchset Bundle of the subscription's SubscriptionStatus (R4 Backport ``Parameters``)."""
    parameters = Parameters.model_validate(status_parameters(f"{base_url}/Subscription/{subscription_id}",
                                                             "query-status", status))
    return Bundle.model_validate({
        "resourceType": "Bundle", "type": "searchset", "timestamp": instant(now), "total": 1,
        "entry": [{"fullUrl": f"{base_url}/Subscription/{subscription_id}/$status",
                   "resource": parameters.model_dump(mode="json", exclude_none=True), "search": {"mode": "match"}}]})



# The OperationOutcome issue type (http://hl7.org/fhir/issue-type) of a refusal, by its HTTP status.
ISSUE_TYPES = {400: "structure", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
               409: "conflict", 413: "too-long", 415: "not-supported", 422: "invalid", 429: "throttled",
               503: "transient"}
FHIR_JSON = "application/fhir+json"


def refusal_outcome(status: int, errors: list[dict[str, str]]) -> tuple[dict, str]:
    """Any refusal of the FHIR API (a route's, routing's own 404 and 405, authentication's, a body too large) as
    FHIR words it: an OperationOutcome, one issue per error, the field as the issue's expression."""
    code = ISSUE_TYPES.get(status, "processing" if status < 500 else "exception")
    issues = [{"severity": "error", "code": code, "diagnostics": e["reason"], "expression": [e["field"]]}
              for e in errors] or [{"severity": "error", "code": code}]
    return OperationOutcome.model_validate({"resourceType": "OperationOutcome", "issue": issues}).model_dump(
        mode="json", exclude_none=True), FHIR_JSON
