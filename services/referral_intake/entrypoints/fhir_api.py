"""FHIR R4 referral API for case-management systems (HL7 SDOH Clinical Care: TaskForReferralManagement
with a ServiceRequest focus), for the organisations in ``organizations.toml``: a static bearer token each, or
an access token from SMART Backend Services (``/fhir/.well-known/smart-configuration`` says where), whose
system scopes narrow what it may do (``system/Task.rs`` to search and read Tasks, ``system/Task.u`` to update
them, ``system/ServiceRequest.rs`` to read ServiceRequests).

- ``GET /fhir/metadata``: the CapabilityStatement.
- ``GET /fhir/Task?owner=Organization/ID&status=requested&_lastUpdated=gt2026-11-20T00:00:00Z``: a
  searchset Bundle (recipients poll at least daily, at most every 15 minutes, per the guide).
- ``GET /fhir/Task/{id}``, ``GET /fhir/ServiceRequest/{id}``: one referral.
- ``POST /fhir/Subscription`` (R4 Subscriptions Backport: Handoff's Task topic, rest-hook over https, id-only):
  the endpoint is sent a handshake, and the Subscription is created once it answers 2xx; ``GET`` (search and
  read), ``DELETE`` and ``.../$status`` of the organisation's own subscriptions: the one configured in the
  reference data (its id is the organisation's) and those its clients created. Notifications, and heartbeats
  where asked, come from the notifier.
- ``PUT /fhir/Task/{id}``: a new ``status`` and/or ``businessStatus`` (a LEAD milestone), under the same
  lifecycle rules as the staff API: an illegal move is 409 with an OperationOutcome naming both.

An organisation sees a referral only at its sites and only when the person's 42 CFR Part 2 consent
names its role (otherwise: 404, as if it did not exist); every read that names the person is audited.
Errors are OperationOutcomes.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from fhir.resources.R4B.subscription import Subscription
from fhir.resources.R4B.task import Task
from pydantic import ValidationError

from services.delivery.channels import DeliveryFailed, Outgoing, WebhookChannel, private_address_of
from services.kernel.clock import Clock
from services.kernel.events import (
    Consent,
    DisclosureChannel,
    Milestone,
    ReferralStatus,
    ReferredPerson,
    StatusReason,
)
from services.kernel.fhir import (
    ClientSubscriptions,
    FhirSubscriptionCreated,
    FhirSubscriptionDeleted,
    live,
    notification_bundle,
)
from services.kernel.reference import Organization, ReferenceData
from services.kernel.topics import FHIR_SUBSCRIPTIONS
from services.messaging.events import DisclosedRecord
from services.messaging.kafka import Publisher
from services.messaging.outbox import audit_shown
from services.platform.settings import Settings
from services.referral_intake.adapters.fhir import (
    FHIR_JSON,
    SubscriptionRefused,
    capability_statement,
    client_subscription,
    event_code,
    latest_milestone,
    outcome,
    requested_subscription,
    searchset,
    service_request_for,
    subscription_for,
    subscription_status,
    task_for,
)
from services.referral_intake.adapters.read_model import HandoffDetails
from services.referral_intake.domain.lifecycle import MILESTONE_STATUS, IllegalTransition
from services.referral_intake.domain.views import ReferralView
from services.referral_intake.entrypoints.http_api import ReadModel
from services.referral_intake.entrypoints.staff_api import Details
from services.referral_intake.service import ChangeStatus, RecordEngagement, handle_staff_command
from services.web import smart
from services.web.deps import AppClock, CaughtUp, Events, Reference, app_state
from services.web.oidc import ProviderUnavailable
from services.web.web import bearer_principal, denied, published_or_503

# What a SMART Backend Services client may ask for here (and what each route needs: ``allowed``).
SYSTEM_SCOPES = ("system/Task.rs", "system/Task.u", "system/ServiceRequest.rs", "system/Subscription.crds")
MAX_RESULTS = 500


def fhir(body: dict, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON)


router = APIRouter(prefix="/fhir", tags=["FHIR R4 (SDOH Clinical Care referrals)"])
organization = bearer_principal(lambda reference: reference.organizations.values(), "a case-management organisation")
FhirBase = Annotated[str, Depends(app_state("fhir_base"))]  # the API's public base URL, ".../fhir"


def allowed(resource: str, interaction: str):
    """The organisation, when its credential allows ``interaction`` on ``resource``: a SMART client's token
    must carry a system scope that grants it (``smart.permits``); a static token may do all this API does."""
    async def org_allowed(request: Request, org: Organization = Depends(organization)) -> Organization:
        scopes = getattr(request.state, "granted_scopes", None)
        if scopes is not None and not smart.permits(scopes, resource, interaction):
            needed = f"system/{resource}.{interaction}"
            await denied(request, 403, f"the token's scopes do not include {needed}",
                         f'Bearer error="insufficient_scope", scope="{needed}"', user_id=f"org:{org.organization_id}")
        return org
    return org_allowed


may_search_tasks, may_read_tasks, may_update_tasks = (allowed("Task", i) for i in "sru")


may_read_service_requests = allowed("ServiceRequest", "r")
may_read_subscriptions, may_create_subscriptions, may_delete_subscriptions, may_search_subscriptions = (
    allowed("Subscription", i) for i in "rcds")
Subscriptions = Annotated[ClientSubscriptions, Depends(app_state("fhir_subscriptions"))]
Webhooks = Annotated[WebhookChannel, Depends(app_state("webhooks"))]  # signs a handshake as it signs notifications
AppSettings = Annotated[Settings, Depends(app_state("settings"))]


def visible(reference: ReferenceData, details: HandoffDetails, clock: Clock, org: Organization,
            view: ReferralView | None) -> bool:
    """At the organisation's sites, and within the person's consent (the site's standard scope if none)."""
    if view is None or view.site_id not in org.sites:
        return False
    consent: Consent | None = details.people.get(view.referral_id, (None, None))[1]
    if consent is None:
        site = reference.site(view.site_id)
        return site is not None and org.consent_role in site.default_consent_roles
    return consent.permits(org.consent_role.value, clock.now())


async def shown(publisher: Publisher, clock: Clock, org: Organization, view: ReferralView) -> None:
    await audit_shown(publisher, clock, DisclosedRecord.lead_fhir_task, view.referral_id, org.organization_id,
                      org.consent_role.value, DisclosureChannel.api)


def person_of(details: HandoffDetails, view: ReferralView) -> ReferredPerson | None:
    return details.people.get(view.referral_id, (None, None))[0]


def not_found(what: str) -> JSONResponse:
    return fhir(outcome("not-found", f"{what}: no such resource, or not one you may read"), 404)


@router.get("/.well-known/smart-configuration", include_in_schema=False)  # a well-known document, not an operation
async def smart_configuration(request: Request) -> JSONResponse:
    tokens = getattr(request.app.state, "access_tokens", None)
    try:
        endpoint = await tokens.token_endpoint_for_organizations() if tokens else None
    except ProviderUnavailable:
        return JSONResponse({"errors": [{"field": "token_endpoint", "reason": "the identity provider cannot be "
                                         "reached just now"}]}, status_code=503, headers={"Retry-After": "30"})
    if endpoint is None:
        return JSONResponse({"errors": [{"field": "token_endpoint", "reason": "no organisation here signs in "
                                         "with SMART Backend Services"}]}, status_code=404)
    return JSONResponse(smart.smart_configuration(endpoint, SYSTEM_SCOPES))


@router.get("/metadata", summary="CapabilityStatement")
async def metadata(base: FhirBase, clock: AppClock) -> JSONResponse:
    return fhir(capability_statement(base, clock.now()).model_dump(mode="json", exclude_none=True))


@router.get("/Task", summary="Search Tasks (owner, status, _lastUpdated, _id)")
async def search_tasks(request: Request, base: FhirBase, clock: AppClock, details: Details, model: ReadModel,
                       publisher: Events, reference: Reference, org: Organization = Depends(may_search_tasks)) -> JSONResponse:
    params = request.query_params
    owner = params.get("owner")
    if owner and owner.removeprefix("Organization/") != org.organization_id:
        return fhir(searchset([], str(request.url), base).model_dump(mode="json", exclude_none=True))
    statuses = {event_code(s) for s in params.get("status", "").split(",") if s}
    try:
        since = [_date_filter(v) for v in params.getlist("_lastUpdated")]
    except ValueError as exc:
        return fhir(outcome("invalid", f"_lastUpdated: {exc}"), 400)
    ids = set(params.get("_id", "").split(",")) - {""}
    found = []
    for view in sorted(model.views.values(), key=lambda v: v.updated_at or v.referred_at):
        updated = view.updated_at or view.referred_at
        if (not visible(reference, details, clock, org, view) or (statuses and view.status not in statuses) or (ids and view.referral_id not in ids)
                or not all(check(updated) for check in since)):
            continue
        found.append(view)
        if len(found) >= MAX_RESULTS:
            break
    for view in found:
        await shown(publisher, clock, org, view)
    tasks = [task_for(v, org, person_of(details, v)) for v in found]
    return fhir(searchset(tasks, str(request.url), base).model_dump(mode="json", exclude_none=True))


@router.get("/Task/{task_id}", summary="Read a Task")
async def read_task(task_id: str, clock: AppClock, details: Details, model: ReadModel, publisher: Events,
                    reference: Reference, org: Organization = Depends(may_read_tasks)) -> JSONResponse:
    view = model.views.get(task_id)
    if not visible(reference, details, clock, org, view):
        return not_found(f"Task/{task_id}")
    await shown(publisher, clock, org, view)
    return fhir(task_for(view, org, person_of(details, view)).model_dump(mode="json", exclude_none=True))


@router.get("/ServiceRequest/{request_id}", summary="Read a ServiceRequest")
async def read_service_request(request_id: str, clock: AppClock, details: Details, model: ReadModel,
                               publisher: Events, reference: Reference,
                               org: Organization = Depends(may_read_service_requests)) -> JSONResponse:
    view = model.views.get(request_id)
    if not visible(reference, details, clock, org, view):
        return not_found(f"ServiceRequest/{request_id}")
    await shown(publisher, clock, org, view)
    return fhir(service_request_for(view, reference.sites[view.site_id], person_of(details, view)).model_dump(
        mode="json", exclude_none=True))


def subscription_of(org: Organization, subscriptions: ClientSubscriptions, subscription_id: str,
                    now: datetime) -> Subscription | None:
    """The organisation's own subscription ``subscription_id``: the one in the reference data (its id is the
    organisation's) or one its client created; None for anyone else's."""
    if subscription_id == org.organization_id and org.subscription_url:
        return subscription_for(org)
    created = subscriptions.get(subscription_id)
    if created is None or created.organization_id != org.organization_id or not live(created, now):
        return None
    return client_subscription(created, org)


def refused(expression: str, reason: str, status: int = 422, code: str = "invalid") -> JSONResponse:
    return fhir(outcome(code, f"{expression}: {reason}", expression=expression), status)


@router.get("/Subscription", summary="Search the organisation's Subscriptions (R4 Backport)")
async def search_subscriptions(request: Request, base: FhirBase, clock: AppClock, subscriptions: Subscriptions,
                               org: Organization = Depends(may_search_subscriptions)) -> JSONResponse:
    own = [subscription_for(org)] if org.subscription_url else []
    own += [client_subscription(s, org) for s in subscriptions.of(org.organization_id, clock.now())]
    return fhir(searchset(own, str(request.url), base).model_dump(mode="json", exclude_none=True))


@router.post("/Subscription", status_code=201, summary="Create a Subscription (R4 Backport: rest-hook, id-only)")
async def create_subscription(request: Request, base: FhirBase, clock: AppClock, publisher: Events, shown: CaughtUp,
                              webhooks: Webhooks, settings: AppSettings,
                              org: Organization = Depends(may_create_subscriptions)) -> JSONResponse:
    """The endpoint is sent a handshake first (signed like every notification); the Subscription is created, and
    answered ``active``, only once the endpoint answers it with a 2xx."""
    try:
        asked = requested_subscription(await request.body(), settings.fhir_subscription_loopback_endpoints)
    except SubscriptionRefused as exc:
        return refused(exc.expression, exc.reason)
    inside = await private_address_of(asked.endpoint, settings.fhir_subscription_loopback_endpoints)
    if inside is not None:
        return refused("Subscription.channel.endpoint", "its host resolves to an address that is not public: "
                       "notifications go to endpoints on the internet")
    subscription_id = f"sub-{secrets.token_hex(8)}"
    now = clock.now()
    handshake = notification_bundle(subscription_id, base, "handshake", now, status="requested")
    try:
        await webhooks.send(Outgoing(f"fhir-subscription/{subscription_id}/handshake", asked.endpoint, "", "", "",
                                     handshake))
    except DeliveryFailed as exc:
        return refused("Subscription.channel.endpoint", f"the handshake was not accepted ({exc}): nothing created")
    created = FhirSubscriptionCreated(
        subscription_id=subscription_id, organization_id=org.organization_id, endpoint=asked.endpoint,
        heartbeat_seconds=asked.heartbeat_seconds, end=asked.end, created_by=client_of(request, org), created_at=now)
    await published_or_503(publisher.publish(FHIR_SUBSCRIPTIONS, subscription_id, created),
                           settings.intake_publish_timeout_seconds, "fhir_subscription")
    await shown(FHIR_SUBSCRIPTIONS)
    resource = client_subscription(created, org).model_dump(mode="json", exclude_none=True)
    return JSONResponse(resource, status_code=201, media_type=FHIR_JSON,
                        headers={"Location": f"{base}/Subscription/{subscription_id}"})


@router.get("/Subscription/{subscription_id}", summary="Read one of the organisation's Subscriptions (R4 Backport)")
async def read_subscription(subscription_id: str, clock: AppClock, subscriptions: Subscriptions,
                            org: Organization = Depends(may_read_subscriptions)) -> JSONResponse:
    """The subscription each notification names (another organisation's: 404)."""
    found = subscription_of(org, subscriptions, subscription_id, clock.now())
    if found is None:
        return not_found(f"Subscription/{subscription_id}")
    return fhir(found.model_dump(mode="json", exclude_none=True))


@router.delete("/Subscription/{subscription_id}", summary="Delete a Subscription the organisation's client created")
async def delete_subscription(subscription_id: str, request: Request, clock: AppClock, publisher: Events,
                              shown: CaughtUp, subscriptions: Subscriptions, settings: AppSettings,
                              org: Organization = Depends(may_delete_subscriptions)) -> Response:
    now = clock.now()
    found = subscription_of(org, subscriptions, subscription_id, now)
    if found is None:
        return not_found(f"Subscription/{subscription_id}")
    if subscription_id == org.organization_id:
        return refused("Subscription.id", "configured in the reference data by the program: ask them to remove it",
                       405, "not-supported")
    await published_or_503(publisher.publish(FHIR_SUBSCRIPTIONS, subscription_id, FhirSubscriptionDeleted(
        subscription_id=subscription_id, organization_id=org.organization_id, deleted_by=client_of(request, org),
        deleted_at=now)), settings.intake_publish_timeout_seconds, "fhir_subscription")
    await shown(FHIR_SUBSCRIPTIONS)
    return Response(status_code=204)


@router.get("/Subscription/{subscription_id}/$status", summary="The Subscription's status (R4 Backport $status)")
async def subscription_status_of(subscription_id: str, base: FhirBase, clock: AppClock, subscriptions: Subscriptions,
                                 org: Organization = Depends(may_read_subscriptions)) -> JSONResponse:
    if subscription_of(org, subscriptions, subscription_id, clock.now()) is None:
        return not_found(f"Subscription/{subscription_id}")
    return fhir(subscription_status(subscription_id, base, clock.now()).model_dump(mode="json", exclude_none=True))


def client_of(request: Request, org: Organization) -> str:
    """Who acted for the organisation: its SMART client, or its API token."""
    client = getattr(request.state, "client_account", None)
    return f"client:{client}" if client else f"org:{org.organization_id}"


@router.put("/Task/{task_id}", summary="Update a Task's status or businessStatus (a LEAD milestone)")
async def update_task(task_id: str, request: Request, clock: AppClock, details: Details, model: ReadModel,
                      publisher: Events, reference: Reference, org: Organization = Depends(may_update_tasks)) -> JSONResponse:
    view = model.views.get(task_id)
    if not visible(reference, details, clock, org, view):
        return not_found(f"Task/{task_id}")
    try:
        task = Task.model_validate_json(await request.body())
    except (ValidationError, ValueError) as exc:
        return fhir(outcome("structure", f"not a valid FHIR Task: {str(exc).splitlines()[0]}"), 400)
    if task.id not in (None, task_id):
        return fhir(outcome("invalid", "Task.id: does not match the URL"), 400)
    by = f"org:{org.organization_id}"
    try:
        reason = _reason(task)
        milestone = _milestone(task)
        if milestone is not None and milestone.value != latest_milestone(view):
            await handle_staff_command(RecordEngagement(task_id, milestone, by, reason,
                                                        idempotency_key=f"fhir/{milestone.value}"), view,
                                       publisher, clock)
        wanted = ReferralStatus(event_code(task.status))
        if wanted.value != view.status and not (milestone is not None and _implies(milestone, wanted)):
            await handle_staff_command(ChangeStatus(task_id, wanted, by, reason), view, publisher, clock)
    except IllegalTransition as exc:
        return fhir(outcome("business-rule", f"{exc.field}: {exc.detail}"), 409)
    except ValueError as exc:
        return fhir(outcome("code-invalid", str(exc)), 422)
    await shown(publisher, clock, org, view)
    current = task_for(view, org, person_of(details, view)).model_dump(mode="json", exclude_none=True)
    current["status"] = task.status  # as requested: applied by the lifecycle's owner in a moment
    if task.businessStatus is not None:
        current["businessStatus"] = task.businessStatus.model_dump(mode="json", exclude_none=True)
    return fhir(current)


def _date_filter(value: str):
    prefixes = {"gt": lambda a, b: a > b, "ge": lambda a, b: a >= b, "lt": lambda a, b: a < b,
                "le": lambda a, b: a <= b, "eq": lambda a, b: a == b}
    prefix, text = (value[:2], value[2:]) if value[:2] in prefixes else ("eq", value)
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if at.tzinfo is None:
        raise ValueError("needs a time zone (e.g. 2026-11-20T00:00:00Z)")
    return lambda updated: prefixes[prefix](updated, at)


def _milestone(task: Task) -> Milestone | None:
    coding = task.businessStatus.coding if task.businessStatus and task.businessStatus.coding else []
    if not coding:
        return None
    try:
        return Milestone(event_code(coding[0].code or ""))
    except ValueError:
        raise ValueError(f"Task.businessStatus: {coding[0].code!r} is not a LEAD milestone") from None


def _reason(task: Task) -> StatusReason | None:
    coding = task.statusReason.coding if task.statusReason and task.statusReason.coding else []
    if not coding:
        return None
    try:
        return StatusReason(event_code(coding[0].code or ""))
    except ValueError:
        raise ValueError(f"Task.statusReason: {coding[0].code!r} is not a known reason") from None


def _implies(milestone: Milestone, status: ReferralStatus) -> bool:
    return MILESTONE_STATUS.get(milestone) is status
