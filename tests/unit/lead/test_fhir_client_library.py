"""The FHIR API as a case-management vendor's code meets it: through fhirpy, a FHIR client library Handoff did not
write, over real HTTP (the app served on 127.0.0.1). Search, read, update, the subscription a notification names,
and refusals that the library reads as OperationOutcomes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import uvicorn
from fhirpy import AsyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome, ResourceNotFound
from pydantic import SecretStr

from deploy.dev_inbox import DevInbox
from deploy.local_stack import free_port
from services import runtime
from services.kernel.clock import FakeClock
from services.kernel.fhir import FhirSubscriptionCreated, FhirSubscriptionDeleted
from services.kernel.lead import EngagementRecorded
from services.messaging.kafka import InMemoryPublisher
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT
from services.referral_intake.adapters.read_model import LeadReadModel
from services.referral_intake.domain.model import open_referral
from tests.conftest import eventually
from tests.factories import NOW, cad_referral
from tests.unit.lead.test_fhir_api import subscription_body

REF = load_reference_data(REPO_ROOT / "config" / "local")
TOKEN = "Bearer local-dev-token-org-abq-cm"


@pytest.fixture
def inbox():
    """A case-management system's rest-hook endpoint (the dev inbox), checking Handoff's signatures."""
    receiver = DevInbox(free_port(), free_port(), "hook-secret").start()
    yield receiver
    receiver.stop()


@pytest.fixture
async def served(memory_settings):
    """The API on a free loopback port, with two referrals of the organisation's site; fhirpy pointed at it."""
    model, publisher = LeadReadModel(), InMemoryPublisher()
    port = free_port()
    settings = memory_settings.model_copy(update={"link_signing_key": SecretStr("k"),
                                                  "public_base_url": f"http://127.0.0.1:{port}",
                                                  "webhook_signing_secret": SecretStr("hook-secret"),
                                                  "fhir_subscription_loopback_endpoints": True})
    app = runtime.build_http_app(settings, REF, publisher, FakeClock(NOW + timedelta(hours=1)), model,
                                 follow_topics=False)
    referrals = [open_referral(cad_referral(f"CAD-FP{i}", occurred_at=NOW), REF.sites["abq"], REF.agencies["apd"], NOW)
                 for i in (1, 2)]
    for referral in referrals:
        model.apply(referral)
        app.state.handoff_details.apply(referral)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, timeout=20)
    try:
        fhir = AsyncFHIRClient(f"http://127.0.0.1:{port}/fhir", authorization=TOKEN)
        fhir.app = app
        yield fhir, referrals, publisher
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)


async def test_a_fhir_client_library_searches_reads_and_updates_tasks(served) -> None:
    fhir, referrals, publisher = served
    found = await fhir.resources("Task").search(owner="Organization/abq-cm", status="requested").fetch_all()
    assert sorted(task.id for task in found) == sorted(r.referral_id for r in referrals)

    task = await fhir.reference("Task", referrals[0].referral_id).to_resource()
    assert task["focus"]["reference"] == f"ServiceRequest/{referrals[0].referral_id}"
    request = await fhir.reference("ServiceRequest", referrals[0].referral_id).to_resource()
    assert request["status"] == "active"

    task["businessStatus"] = {"coding": [{"code": "contacted"}]}
    task["status"] = "in-progress"
    await task.save()  # PUT, as the library writes it
    [contacted] = publisher.events(EngagementRecorded)
    assert (contacted.referral_id, contacted.milestone.value) == (referrals[0].referral_id, "contacted")


async def test_a_fhir_client_library_follows_the_subscription_and_reads_refusals_as_outcomes(served) -> None:
    fhir, referrals, _publisher = served
    subscription = await fhir.reference("Subscription", "abq-cm").to_resource()
    assert subscription["channel"]["type"] == "rest-hook" and subscription["status"] == "active"

    with pytest.raises(ResourceNotFound):
        await fhir.reference("Task", "no-such-task").to_resource()
    second = await fhir.reference("Task", referrals[1].referral_id).to_resource()
    second["status"] = "completed"  # a requested referral cannot be completed
    with pytest.raises(OperationOutcome) as refused:
        await second.save()
    issue = refused.value.resource["issue"][0]
    assert issue["code"] == "business-rule" and "requested" in issue["diagnostics"]


async def test_a_fhir_client_library_creates_its_subscription_and_deletes_it(served, inbox) -> None:
    """The library's own create (POST) and delete of a Subscription: the endpoint gets the signed handshake first;
    what the library is refused comes back as an OperationOutcome naming the element."""
    fhir, _referrals, publisher = served
    subscription = fhir.resource("Subscription", **subscription_body(f"{inbox.base_url}/webhooks/cm-system"))
    await subscription.save()
    assert subscription["status"] == "active" and subscription.id.startswith("sub-")
    [handshake] = inbox.inbox.of("webhook")
    assert handshake.to == "cm-system" and '"handshake"' in handshake.body  # signature checked by the inbox
    for event in publisher.events(FhirSubscriptionCreated):
        fhir.app.state.fhir_subscriptions.apply(event)  # the API's follower's job, on a broker
    found = await fhir.resources("Subscription").fetch_all()
    assert {s.id for s in found} == {"abq-cm", subscription.id}

    await subscription.delete()
    [deleted] = publisher.events(FhirSubscriptionDeleted)
    assert deleted.subscription_id == subscription.id

    refused_one = fhir.resource("Subscription", **subscription_body("http://cm.example.org/hook"))
    with pytest.raises(OperationOutcome) as refused:
        await refused_one.save()
    issue = refused.value.resource["issue"][0]
    assert issue["expression"] == ["Subscription.channel.endpoint"] and "https" in issue["diagnostics"]
