"""CAD updates an open referral's call (the person moved): the case manager who took it hears where, once
per update, within consent; a closed referral's person is nobody's to follow, so nothing is sent."""

from __future__ import annotations

from services.kernel.events import (
    ReferralStatus,
)
from services.kernel.lead import ReferralLocationUpdated, ReferralStatusChanged
from tests.unit.lead.test_notifier_service import Harness, with_consent
from tests.unit.lead.test_reengagement import acknowledged


def moved(h: Harness, where: str = "bus shelter, 5th and Copper") -> ReferralLocationUpdated:
    return ReferralLocationUpdated(referral_id=h.referral.referral_id, site_id="abq", cad_event_id="CAD-1",
                                   updated_at=h.clock.now(), location_description=where)


def sent(h: Harness) -> list:
    return [m for ch in h.channels.values() for m in ch.sent]


async def test_the_case_manager_who_took_it_hears_where_the_person_is_now_once_per_update() -> None:
    h = Harness()
    await acknowledged(h)
    for _ in range(2):
        await h.notifier.on_referral_event(moved(h))
    assert sorted(m.address for m in sent(h)) == ["+15055550102", "ben@lead.example.org"]  # cm-ben only
    assert all("5th and Copper" in m.text + m.body for m in sent(h))
    await h.notifier.on_referral_event(moved(h, "the river path by Tingley"))  # moved again: told again
    assert len(sent(h)) == 4


async def test_a_closed_referral_or_no_consent_tells_nobody() -> None:
    h = Harness()
    await acknowledged(h)
    await h.notifier.on_referral_event(ReferralStatusChanged(
        referral_id=h.referral.referral_id, site_id="abq", status=ReferralStatus.completed,
        previous_status=ReferralStatus.in_progress, changed_at=h.clock.now(), changed_by="cm-ben"))
    for channel in h.channels.values():
        channel.sent.clear()
    await h.notifier.on_referral_event(moved(h))
    assert sent(h) == []
    outside = Harness()
    with_consent(outside, "outreach")
    await acknowledged(outside)
    await outside.notifier.on_referral_event(moved(outside))
    assert sent(outside) == []
