"""Signed acknowledgement links and webhook signatures."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from itsdangerous import URLSafeTimedSerializer

from services.delivery.channels import sign_webhook, twilio_signature, verify_webhook
from services.delivery.links import AckLinks, InvalidLink
from services.kernel.clock import FakeClock


def test_link_round_trips_and_is_single_purpose() -> None:
    links = AckLinks("secret", "https://h.test", ttl_seconds=60)
    token = links.token("page", "r-1", "cm-ana")
    assert links.verify("page", token) == ("r-1", "cm-ana")
    with pytest.raises(InvalidLink, match="not valid"):
        links.verify("notice", token)  # a page link cannot acknowledge a notice


def test_tampered_or_foreign_links_are_refused() -> None:
    links = AckLinks("secret", "https://h.test", ttl_seconds=60)
    token = links.token("page", "r-1", "cm-ana")
    with pytest.raises(InvalidLink):
        # A signature character replaced by a different one (the old version could "replace" a
        # character with itself one time in 64, and then the link was rightly valid).
        links.verify("page", token[:-5] + ("A" if token[-5] != "A" else "B") + token[-4:])
    with pytest.raises(InvalidLink):
        AckLinks("other-secret", "https://h.test", 60).verify("page", token)


def test_a_link_is_stamped_and_aged_by_the_services_clock() -> None:
    clock = FakeClock(datetime(2026, 11, 20, 17, 0, tzinfo=UTC))
    links = AckLinks("secret", "https://h.test", ttl_seconds=60, clock=clock)
    first = links.url("officer", "r-1", "officer", "status")
    assert links.url("officer", "r-1", "officer", "status") == first  # a message rendered again carries it unchanged
    clock.advance(seconds=60)
    assert links.verify("page", links.token("page", "r-1", "cm-ana")) == ("r-1", "cm-ana")
    token = links.token("page", "r-1", "cm-ana")
    clock.advance(seconds=60)
    assert links.verify("page", token) == ("r-1", "cm-ana")  # at its time to live, still good
    clock.advance(seconds=1)
    with pytest.raises(InvalidLink, match="expired"):
        links.verify("page", token)


def test_a_link_signed_before_links_followed_the_clock_still_opens() -> None:
    """Links already in people's messages were stamped by the wall clock with itsdangerous' own signer."""
    sent_earlier = URLSafeTimedSerializer("secret", salt="handoff-ack-page").dumps(["r-1", "cm-ana"])
    assert AckLinks("secret", "https://h.test", ttl_seconds=60).verify("page", sent_earlier) == ("r-1", "cm-ana")


def test_links_need_a_key() -> None:
    with pytest.raises(ValueError, match="HANDOFF_LINK_SIGNING_KEY"):
        AckLinks("", "https://h.test", 60)


def test_reply_codes_are_six_digits_and_stable() -> None:
    links = AckLinks("secret", "https://h.test", 60)
    code = links.reply_code("r-1", "cm-ana")
    assert len(code) == 6 and code.isdigit() and code == links.reply_code("r-1", "cm-ana")
    assert code != links.reply_code("r-1", "cm-ben") or code != links.reply_code("r-2", "cm-ana")


def test_webhook_signature_verifies_and_rejects_replay_and_tampering() -> None:
    body = b'{"notice_id":"n-1"}'
    now = 1_800_000_000
    header = sign_webhook("s3cret", now, body)
    assert verify_webhook("s3cret", header, body, now=now + 10)
    assert not verify_webhook("s3cret", header, body + b" ", now=now)          # tampered body
    assert not verify_webhook("wrong", header, body, now=now)                  # wrong secret
    assert not verify_webhook("s3cret", header, body, now=now + 301)           # replayed too late
    assert not verify_webhook("s3cret", "garbage", body, now=now)


def test_twilio_signature_matches_twilios_documented_algorithm() -> None:
    # The vector Twilio's own Python helper library tests its request validator with.
    params = {"CallSid": "CA1234567890ABCDE", "Digits": "1234", "From": "+14158675309", "To": "+18005551212",
              "Caller": "+14158675309"}
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
