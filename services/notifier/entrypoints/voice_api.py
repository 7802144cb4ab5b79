"""A page's phone call, as the voice provider (Twilio-shaped) asks for it: what to say (TwiML: the page read out,
one key gathered), the key pressed (1 takes the referral, 2 declines it and the escalation goes on), and how the
call ended. Every callback must carry the provider's signature (Twilio's own validator) and the call's signed link
(a page and the person called); the TwiML is built by Twilio's own library.

No answer, a busy line or a voicemail presses nothing: the page stays unacknowledged and its next step comes on
time."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from services.delivery.channels import twilio_signed
from services.delivery.links import InvalidLink
from services.kernel.events import AcknowledgedVia
from services.kernel.lead import PageAcknowledged
from services.kernel.topics import PAGES
from services.notifier.domain.messages import render_call, when_met
from services.notifier.entrypoints.http_api import PageLinks, Pages, Sms
from services.notifier.service import VOICE_PURPOSE, page_id_for
from services.platform.logs import correlation_scope, get_logger
from services.web.deps import AppClock, Events, Reference
from services.web.web import ApiError

log = get_logger(__name__)
router = APIRouter(tags=["voice"])
ENDED_UNANSWERED = {"no-answer", "busy", "failed", "canceled"}


def _twiml(response) -> Response:
    return Response(str(response), media_type="application/xml")


async def _called(request: Request, token: str, links: PageLinks, sms: Sms) -> tuple[str, str, dict[str, str]]:
    """(referral id, case manager id, the provider's form) of a signed callback; else ``ApiError`` naming why."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    if not twilio_signed(sms.auth_token, f"{sms.public_base_url}{request.url.path}", form,
                         request.headers.get("X-Twilio-Signature", "")):
        raise ApiError(403, "X-Twilio-Signature", "not signed by the voice provider")
    try:
        referral_id, case_manager_id = links.verify(VOICE_PURPOSE, token)
    except InvalidLink as exc:
        raise ApiError(404, "token", str(exc)) from None
    return referral_id, case_manager_id, form


@router.post("/v1/voice/call/{token}", summary="Voice provider: what a page's call says (TwiML)")
async def call_words(token: str, request: Request, links: PageLinks, sms: Sms, pages: Pages, reference: Reference,
                     clock: AppClock) -> Response:
    from twilio.twiml.voice_response import Gather, VoiceResponse

    referral_id, _case_manager_id, _form = await _called(request, token, links, sms)
    said = VoiceResponse()
    page = pages.request_of(referral_id)
    taken = pages.acknowledgement_of(referral_id)
    if page is None or taken is not None:
        said.say("Handoff. This page is no longer waiting for anyone. Goodbye.")
        said.hangup()
        return _twiml(said)
    site = reference.site(page.site_id)
    gather = Gather(num_digits=1, action=f"{request.url.path}/gather", method="POST", timeout=10)
    gather.say(render_call(page, when_met(page.met_at, site.zone, clock.now()) if site else ""))
    gather.say("Press 1 to take this referral. Press 2 to decline.")
    said.append(gather)
    said.say("No key was pressed. Handoff goes on to the next person. Goodbye.")
    return _twiml(said)


@router.post("/v1/voice/call/{token}/gather", summary="Voice provider: the key pressed on a page's call")
async def key_pressed(token: str, request: Request, links: PageLinks, sms: Sms, pages: Pages, publisher: Events,
                      clock: AppClock) -> Response:
    from twilio.twiml.voice_response import VoiceResponse

    referral_id, case_manager_id, form = await _called(request, token, links, sms)
    digit = form.get("Digits", "")
    if digit not in ("1", "2"):
        raise ApiError(422, "Digits", "1 takes the referral, 2 declines it")
    if pages.request_of(referral_id) is None:
        raise ApiError(404, "token", "no page is waiting for this call")
    if pages.acknowledgement_of(referral_id) is not None:
        raise ApiError(409, "Digits", "this page was taken already")
    said = VoiceResponse()
    if digit == "2":
        log.info("page_call_declined", referral_id=referral_id, by=case_manager_id)
        said.say("Declined. Handoff goes on to the next person. Goodbye.")
        return _twiml(said)
    with correlation_scope():
        await publisher.publish(PAGES, referral_id, PageAcknowledged(
            page_id=page_id_for(referral_id), referral_id=referral_id, acknowledged_by=case_manager_id,
            via=AcknowledgedVia.voice, acknowledged_at=clock.now()))
        log.info("page_ack_received", referral_id=referral_id, by=case_manager_id, via="voice")
    said.say("Thank you. The referral is yours, and the officer is being told you are on the way. Goodbye.")
    return _twiml(said)


@router.post("/v1/voice/call/{token}/status", status_code=204, summary="Voice provider: how a page's call ended")
async def call_ended(token: str, request: Request, links: PageLinks, sms: Sms) -> Response:
    referral_id, case_manager_id, form = await _called(request, token, links, sms)
    status = form.get("CallStatus", "")
    # Unanswered, busy, failed or a voicemail: nothing was pressed, so nothing is acknowledged; the next step comes
    log.info("page_call_ended", referral_id=referral_id, to=case_manager_id, status=status,
             answered=status not in ENDED_UNANSWERED)
    return Response(status_code=204)
