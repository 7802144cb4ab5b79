"""The staff API over the read model: auth and site scope, 409 for illegal moves, figures, SMS replies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from services import runtime
from services.delivery.channels import twilio_signature
from services.delivery.links import AckLinks
from services.kernel.clock import FakeClock
from services.kernel.events import (
    Milestone,
    ReferralFlag,
    ReferralStatus,
)
from services.kernel.lead import (
    ConsentRevoked,
    EngagementRecorded,
    PageAcknowledged,
    PageRequested,
    PageSent,
    ReferralFlagged,
    ReferralStatusChanged,
)
from services.messaging.kafka import InMemoryPublisher
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT
from services.referral_intake.adapters.read_model import LeadReadModel
from services.referral_intake.domain.model import open_referral
from tests.factories import cad_referral

REF = load_reference_data(REPO_ROOT / "config" / "local")
T0 = datetime(2026, 11, 16, 17, 0, tzinfo=UTC)
ANA = {"Authorization": "Bearer local-dev-token-cm-ana"}
PM = {"Authorization": "Bearer local-dev-token-pm-abq"}
SMS_TOKEN = "sms-auth-token"


@pytest.fixture
def referral():
    return open_referral(cad_referral(occurred_at=T0), REF.sites["abq"], REF.agencies["apd"], T0)


@pytest.fixture
def model(referral) -> LeadReadModel:
    model = LeadReadModel()
    model.apply(referral)
    model.apply(PageRequested(page_id="pg", dedup_key=referral.referral_id, referral_id=referral.referral_id,
                              site_id="abq", referral_type=referral.referral_type, officer_name="o",
                              officer_callback_phone="+1505", location_description="x", requested_at=T0))
    model.apply(PageSent(page_id="pg", referral_id=referral.referral_id, attempt_id="a", step_index=0, loop=0,
                         target_id="cm-ana", channel="sms", outcome="delivered", attempt=1, sent_at=T0))
    return model


@pytest.fixture
def publisher() -> InMemoryPublisher:
    return InMemoryPublisher()


@pytest.fixture
async def client(memory_settings, model, publisher):
    settings = memory_settings.model_copy(update={
        "link_signing_key": SecretStr("k"), "sms_auth_token": SecretStr(SMS_TOKEN), "public_base_url": "http://t"})
    app = runtime.build_http_app(settings, REF, publisher, FakeClock(T0 + timedelta(hours=1)), model, follow_topics=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


async def test_staff_routes_need_a_staff_token(client, referral) -> None:
    for headers in ({}, {"Authorization": "Bearer local-dev-token-apd"}):  # an agency token is not a staff token
        resp = await client.get(f"/v1/referrals/{referral.referral_id}", headers=headers)
        assert resp.status_code == 401


async def test_staff_see_only_their_sites(client, referral) -> None:
    assert (await client.get(f"/v1/referrals/{referral.referral_id}", headers=ANA)).status_code == 200
    assert (await client.get("/v1/sites/santa-fe/funnel", headers=ANA)).status_code == 403
    assert (await client.get("/v1/referrals/unknown", headers=ANA)).status_code == 404


async def test_recording_a_contact_publishes_engagement(client, referral, publisher) -> None:
    resp = await client.post(f"/v1/referrals/{referral.referral_id}/engagement", json={"milestone": "contacted"},
                             headers=ANA)
    assert resp.status_code == 202
    [event] = publisher.events(EngagementRecorded)
    assert (event.milestone, event.recorded_by, event.site_id) == (Milestone.contacted, "cm-ana", "abq")
    again = await client.post(f"/v1/referrals/{referral.referral_id}/engagement", json={"milestone": "contacted"},
                              headers={**ANA, "Idempotency-Key": "tap-1"})
    same = await client.post(f"/v1/referrals/{referral.referral_id}/engagement", json={"milestone": "contacted"},
                             headers={**ANA, "Idempotency-Key": "tap-1"})
    assert again.json()["engagement_id"] == same.json()["engagement_id"]


async def test_a_consent_revocation_is_recorded_for_the_tracker_to_erase_what_it_covered(client, referral,
                                                                                         publisher) -> None:
    url = f"/v1/referrals/{referral.referral_id}/consent/revoke"
    agency = {"Authorization": "Bearer local-dev-token-apd"}  # an agency token is not a staff token
    assert (await client.post(url, json={}, headers=agency)).status_code == 401
    assert (await client.post("/v1/referrals/unknown/consent/revoke", json={}, headers=ANA)).status_code == 404
    resp = await client.post(url, json={}, headers=ANA)
    assert resp.status_code == 202, resp.text
    [event] = publisher.events(ConsentRevoked)
    assert (event.referral_id, event.site_id, event.recorded_by) == (referral.referral_id, "abq", "cm-ana")


async def test_illegal_moves_are_409_naming_both_statuses(client, referral, model) -> None:
    resp = await client.post(f"/v1/referrals/{referral.referral_id}/status", json={"status": "completed"}, headers=ANA)
    assert resp.status_code == 409
    assert resp.json()["errors"] == [{"field": "status", "reason": "a referral that is requested cannot become completed"}]
    model.apply(ReferralStatusChanged(referral_id=referral.referral_id, site_id="abq", status=ReferralStatus.cancelled,
                                      previous_status=ReferralStatus.requested, changed_at=T0, reason="other"))
    resp = await client.post(f"/v1/referrals/{referral.referral_id}/engagement", json={"milestone": "engaged"},
                             headers=ANA)
    assert resp.status_code == 409 and resp.json()["errors"][0]["field"] == "milestone"


async def test_reason_required_to_reject(client, referral, publisher) -> None:
    bad = await client.post(f"/v1/referrals/{referral.referral_id}/status", json={"status": "rejected"}, headers=ANA)
    assert bad.status_code == 409 and bad.json()["errors"][0]["field"] == "reason"
    ok = await client.post(f"/v1/referrals/{referral.referral_id}/status",
                           json={"status": "rejected", "reason": "ineligible"}, headers=ANA)
    assert ok.status_code == 202
    assert publisher.events(ReferralStatusChanged)[0].status == ReferralStatus.rejected


async def test_funnel_and_worklist_and_metrics(client, referral, model) -> None:
    funnel = (await client.get("/v1/sites/abq/funnel", headers=PM)).json()
    assert funnel["rows"][0]["referrals"] == 1 and funnel["enrollment_target"] == 0.6
    assert (await client.get("/v1/sites/abq/outreach-worklist", headers=ANA)).json() == []
    model.apply(ReferralFlagged(referral_id=referral.referral_id, site_id="abq", flag=ReferralFlag.no_contact,
                                flagged_at=T0 + timedelta(days=7)))
    [item] = (await client.get("/v1/sites/abq/outreach-worklist", headers=ANA)).json()
    assert item["referral_id"] == referral.referral_id and item["flags"] == ["no_contact"]
    assert (await client.get("/metrics", headers=ANA)).status_code == 401  # case managers don't scrape
    text = (await client.get("/metrics", headers=PM)).text
    assert 'handoff_lead_referrals{referral_type="arrest_diversion",site="abq"} 1.0' in text
    assert "handoff_lead_seconds_to_acknowledge" in text
    assert "Zebulon" not in text


async def test_sms_reply_code_acknowledges_the_page(client, referral, publisher) -> None:
    code = AckLinks("k", "http://t", 60).reply_code(referral.referral_id, "cm-ana")
    form = {"From": REF.case_managers["cm-ana"].phone, "Body": f"ack {code}", "MessageSid": "SM1"}
    unsigned = await client.post("/v1/sms/inbound", data=form)
    assert unsigned.status_code == 403
    signed = await client.post("/v1/sms/inbound", data=form,
                               headers={"X-Twilio-Signature": twilio_signature(SMS_TOKEN, "http://t/v1/sms/inbound", form)})
    assert signed.status_code == 200 and "acknowledged" in signed.text
    [ack] = publisher.events(PageAcknowledged)
    assert (ack.referral_id, ack.acknowledged_by, ack.via.value) == (referral.referral_id, "cm-ana", "sms_reply")
    wrong = {**form, "Body": "ACK 000000" if code != "000000" else "ACK 111111"}
    resp = await client.post("/v1/sms/inbound", data=wrong,
                             headers={"X-Twilio-Signature": twilio_signature(SMS_TOKEN, "http://t/v1/sms/inbound", wrong)})
    assert "That code does not match. To take the page, reply ACK " + code in resp.text  # what to send instead
    assert len(publisher.events(PageAcknowledged)) == 1


async def test_a_reply_without_the_code_is_told_what_to_send(client, referral, publisher) -> None:
    code = AckLinks("k", "http://t", 60).reply_code(referral.referral_id, "cm-ana")

    async def reply(sender: str, body: str) -> str:
        form = {"From": sender, "Body": body, "MessageSid": "SM2"}
        signature = twilio_signature(SMS_TOKEN, "http://t/v1/sms/inbound", form)
        return (await client.post("/v1/sms/inbound", data=form, headers={"X-Twilio-Signature": signature})).text

    said = await reply(REF.case_managers["cm-ana"].phone, "ok on my way")
    assert f"To take the page, reply ACK {code}." in said and "does not match" not in said
    assert "no page is waiting" in await reply("+15055550000", "ok")  # a number that is nobody's
    assert publisher.events(PageAcknowledged) == []


async def test_the_person_is_shown_only_to_the_case_manager_who_took_the_referral_and_audited(
        memory_settings, model, referral, publisher) -> None:
    from services.kernel.events import (
        AcknowledgedVia,
        DisclosureChannel,
    )
    from services.kernel.lead import PageAcknowledged
    from services.messaging.events import DisclosedRecord, DisclosureAudited

    settings = memory_settings.model_copy(update={"link_signing_key": SecretStr("k"), "public_base_url": "http://t"})
    app = runtime.build_http_app(settings, REF, publisher, FakeClock(T0 + timedelta(hours=1)), model, follow_topics=False)
    app.state.handoff_details.apply(referral)
    ben = {"Authorization": "Bearer local-dev-token-cm-ben"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        url = f"/v1/referrals/{referral.referral_id}"
        assert (await c.get(url, headers=ANA)).json()["person"] is None  # nobody has taken it yet
        model.apply(PageAcknowledged(page_id="pg", referral_id=referral.referral_id, acknowledged_by="cm-ana",
                                     via=AcknowledgedVia.link, acknowledged_at=T0))
        shown = (await c.get(url, headers=ANA)).json()["person"]
        assert shown == {"first_name": "Zebulon", "last_name": "Featherstonehaugh", "date_of_birth": "1987-03-14"}
        assert (await c.get(url, headers=ben)).json()["person"] is None  # same site, not theirs
        assert (await c.get(url, headers=PM)).json()["person"] is None
    [audit] = publisher.events(DisclosureAudited)
    assert (audit.record_kind, audit.recipient_id, audit.channel) == (
        DisclosedRecord.lead_identity, "cm-ana", DisclosureChannel.api)
    assert "Zebulon" not in audit.model_dump_json() and audit.correlation_id


async def test_the_person_is_not_shown_outside_their_consent(memory_settings, model, publisher) -> None:
    from services.kernel.events import (
        AcknowledgedVia,
        Consent,
        ConsentRole,
        DeliveryOutcome,
    )
    from services.kernel.lead import PageAcknowledged
    from services.messaging.events import DisclosureAudited

    narrow = open_referral(cad_referral("CAD-CONSENT", occurred_at=T0,
                                        consent=Consent(recipient_roles=[ConsentRole.outreach])),
                           REF.sites["abq"], REF.agencies["apd"], T0)
    model.apply(narrow)
    model.apply(PageAcknowledged(page_id="pg2", referral_id=narrow.referral_id, acknowledged_by="cm-ana",
                                 via=AcknowledgedVia.link, acknowledged_at=T0))
    settings = memory_settings.model_copy(update={"link_signing_key": SecretStr("k")})
    app = runtime.build_http_app(settings, REF, publisher, FakeClock(T0 + timedelta(hours=1)), model, follow_topics=False)
    app.state.handoff_details.apply(narrow)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get(f"/v1/referrals/{narrow.referral_id}", headers=ANA)).json()["person"] is None
    [audit] = publisher.events(DisclosureAudited)
    assert audit.outcome is DeliveryOutcome.skipped


async def test_fhir_spellings_are_accepted_as_well(client, referral, model) -> None:
    from services.kernel.events import (
        AcknowledgedVia,
    )
    from services.kernel.lead import PageAcknowledged, ReferralStatusChanged

    model.apply(PageAcknowledged(page_id="pg", referral_id=referral.referral_id, acknowledged_by="cm-ana",
                                 via=AcknowledgedVia.link, acknowledged_at=T0))
    model.apply(ReferralStatusChanged(referral_id=referral.referral_id, site_id="abq", status="accepted",
                                      previous_status="requested", changed_at=T0))
    resp = await client.post(f"/v1/referrals/{referral.referral_id}/status", json={"status": "in-progress"}, headers=ANA)
    assert resp.status_code == 202, resp.text
    resp = await client.post(f"/v1/referrals/{referral.referral_id}/engagement",
                             json={"milestone": "contact-attempted"}, headers=ANA)
    assert resp.status_code == 202, resp.text


async def test_a_step_cannot_come_before_the_first_time_of_a_step_it_follows(client, referral, model, publisher) -> None:
    url = f"/v1/referrals/{referral.referral_id}/engagement"
    contacted = {"milestone": "contacted", "occurred_at": (T0 + timedelta(minutes=50)).isoformat()}
    assert (await client.post(url, json=contacted, headers=ANA)).status_code == 202
    model.apply(publisher.events(EngagementRecorded)[-1])
    early = {"milestone": "enrolled", "occurred_at": (T0 + timedelta(minutes=20)).isoformat()}
    resp = await client.post(url, json=early, headers=ANA)
    assert resp.status_code == 409
    assert resp.json()["errors"] == [{"field": "occurred_at",
                                      "reason": "enrolled cannot come before contacted (first recorded for a later time)"}]
    later = {"milestone": "enrolled", "occurred_at": (T0 + timedelta(minutes=55)).isoformat()}
    assert (await client.post(url, json=later, headers=ANA)).status_code == 202
    model.apply(publisher.events(EngagementRecorded)[-1])
    again = {"milestone": "contacted", "occurred_at": (T0 + timedelta(minutes=58)).isoformat()}  # contacts go on
    assert (await client.post(url, json=again, headers=ANA)).status_code == 202


def test_with_several_pages_waiting_a_reply_lists_their_codes_oldest_first() -> None:
    from services.notifier.entrypoints.http_api import what_to_reply

    said = what_to_reply(["111111", "222222"], "")
    assert said == ("Handoff: 2 pages are waiting for you. Reply ACK and the code of the one you take: "
                    "111111, 222222 (oldest first).")
    assert "That code matches none of them." in what_to_reply(["111111", "222222"], "333333")
