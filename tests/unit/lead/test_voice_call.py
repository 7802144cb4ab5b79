"""A page's phone call: the voice provider fetches what to say (TwiML from Twilio's builder: the page as its SMS
says it, without the link or the code, and one key gathered), then posts the key. 1 takes the referral, 2 declines
and the escalation goes on; every callback is checked with Twilio's own validator. And a policy of push and SMS,
then a call after five minutes, then the backup, on a fake clock: pressing 1 at the call stops it."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr

from services import runtime
from services.delivery.channels import twilio_signature
from services.delivery.links import AckLinks
from services.kernel.clock import FakeClock
from services.kernel.events import AcknowledgedVia, Channel
from services.kernel.lead import PageAcknowledged, PageEscalated, PageRequested
from services.kernel.reference import EscalationPolicyConfig, EscalationStepConfig
from services.notifier.service import VOICE_PURPOSE
from tests.unit.lead.test_notifier_service import Harness
from tests.unit.lead.test_staff_api import REF, SMS_TOKEN, T0, model, publisher, referral  # noqa: F401 (fixtures)


@pytest.fixture
async def client(memory_settings, model, publisher, referral):  # noqa: F811
    """The HTTP app with the page in its read models, as its followers would have it."""
    settings = memory_settings.model_copy(update={
        "link_signing_key": SecretStr("k"), "sms_auth_token": SecretStr(SMS_TOKEN), "public_base_url": "http://t"})
    app = runtime.build_http_app(settings, REF, publisher, FakeClock(T0 + timedelta(minutes=5)), model,
                                 follow_topics=False)
    app.state.handoff_details.apply(PageRequested(
        page_id="pg", dedup_key=referral.referral_id, referral_id=referral.referral_id, site_id="abq",
        referral_type=referral.referral_type, officer_name="o", officer_callback_phone="+1505",
        location_description="x", requested_at=T0))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


def call_path(referral_id: str, person: str = "cm-ana") -> str:
    return f"/v1/voice/call/{AckLinks('k', 'http://t', 60, FakeClock(T0)).token(VOICE_PURPOSE, referral_id, person)}"


async def provider_posts(client, path: str, form: dict[str, str], signed: bool = True):
    signature = twilio_signature(SMS_TOKEN, f"http://t{path}", form) if signed else "forged"
    return await client.post(path, data=form, headers={"X-Twilio-Signature": signature})


async def test_the_call_reads_the_page_as_its_sms_says_it_and_gathers_one_key(client, referral) -> None:  # noqa: F811
    path = call_path(referral.referral_id)
    said = await provider_posts(client, path, {"CallSid": "CA1", "CallStatus": "in-progress"})
    assert said.status_code == 200 and said.headers["content-type"].startswith("application/xml")
    assert f'<Gather action="{path}/gather" method="POST" numDigits="1"' in said.text
    assert "Press 1 to take this referral" in said.text and "+1505" in said.text
    assert "/ack/" not in said.text and "ACK" not in said.text  # no link, no reply code: a key answers
    assert (await provider_posts(client, path, {"CallSid": "CA1"}, signed=False)).status_code == 403
    assert (await provider_posts(client, "/v1/voice/call/not-a-token", {"CallSid": "CA1"})).status_code == 404


async def test_pressing_1_takes_the_referral_and_2_declines_it(client, referral, publisher) -> None:  # noqa: F811
    gather = f"{call_path(referral.referral_id)}/gather"
    declined = await provider_posts(client, gather, {"CallSid": "CA1", "Digits": "2"})
    assert declined.status_code == 200 and "Declined" in declined.text and publisher.events(PageAcknowledged) == []
    wrong = await provider_posts(client, gather, {"CallSid": "CA1", "Digits": "7"})
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "Digits"
    forged = await provider_posts(client, gather, {"CallSid": "CA1", "Digits": "1"}, signed=False)
    assert forged.status_code == 403 and publisher.events(PageAcknowledged) == []
    taken = await provider_posts(client, gather, {"CallSid": "CA1", "Digits": "1"})
    assert taken.status_code == 200 and "The referral is yours" in taken.text
    [ack] = publisher.events(PageAcknowledged)
    assert (ack.referral_id, ack.acknowledged_by, ack.via) == (referral.referral_id, "cm-ana", AcknowledgedVia.voice)


async def test_a_key_pressed_after_the_page_was_taken_is_refused(client, referral, model) -> None:  # noqa: F811
    model.apply(PageAcknowledged(page_id="pg", referral_id=referral.referral_id, acknowledged_by="cm-ben",
                                 via=AcknowledgedVia.link, acknowledged_at=referral.created_at))
    late = await provider_posts(client, f"{call_path(referral.referral_id)}/gather", {"CallSid": "CA2", "Digits": "1"})
    assert late.status_code == 409 and late.json()["errors"][0]["field"] == "Digits"
    words = await provider_posts(client, call_path(referral.referral_id), {"CallSid": "CA2"})
    assert "no longer waiting" in words.text and "<Gather" not in words.text


async def test_a_call_that_ends_unanswered_acknowledges_nothing(client, referral, publisher) -> None:  # noqa: F811
    ended = await provider_posts(client, f"{call_path(referral.referral_id)}/status",
                                 {"CallSid": "CA3", "CallStatus": "no-answer"})
    assert ended.status_code == 204 and publisher.events(PageAcknowledged) == []


def push_then_call_then_backup():
    site = REF.sites["abq"]
    policy = EscalationPolicyConfig(loops=1, steps=(
        EscalationStepConfig(targets=("on_call",), escalate_after_minutes=5, channels=(Channel.push, Channel.sms)),
        EscalationStepConfig(targets=("on_call",), escalate_after_minutes=5, channels=(Channel.voice,)),
        EscalationStepConfig(targets=("cm-cruz",), escalate_after_minutes=10)))
    return REF.model_copy(update={"sites": {**REF.sites, "abq": site.model_copy(update={"escalation": policy})}})


async def test_push_and_sms_then_a_call_after_five_minutes_and_pressing_1_stops_the_backup() -> None:
    h = Harness(reference=push_then_call_then_backup())
    await h.notifier.on_referral_event(h.referral)
    assert len(h.channels["sms"].sent) == 1 and h.channels["voice"].sent == []  # push: no device on, SMS beside it
    h.clock.advance(minutes=5)
    assert await h.notifier.publish_due_escalations() == 1
    await h.feed_published()
    [call] = h.channels["voice"].sent
    on_call = call.attempt_id.split("/")[3]
    assert call.address == REF.case_managers[on_call].phone and "/v1/voice/call/" in call.payload["call_url"]
    await h.notifier.on_page_event(PageAcknowledged(  # what pressing 1 publishes (the test above)
        page_id=call.attempt_id.split("/")[0], referral_id=h.referral.referral_id, acknowledged_by=on_call,
        via=AcknowledgedVia.voice, acknowledged_at=h.clock.now()))
    h.clock.advance(minutes=30)
    assert await h.notifier.publish_due_escalations() == 0
    assert len(h.publisher.events(PageEscalated)) == 1
    assert all(m.address != REF.case_managers["cm-cruz"].phone for m in h.channels["sms"].sent)  # the backup: never
