"""Feed heartbeats on the real broker: an agency's CAD silent for longer than its expectation in its active
hours -> the program manager is told once (nothing about anyone) -> a CAD event arrives -> told it is back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import eventually
from tests.integration.test_lead_flow import TOKEN, referral_body

pytestmark = pytest.mark.integration
MORNING = datetime(2026, 11, 20, 13, 0, tzinfo=UTC)  # 06:00 in Albuquerque; apd: an event every 6 hours, 06-22


async def test_a_silent_cad_feed_is_an_alert_not_a_quiet_night(system_factory) -> None:
    system = await system_factory("cad-gateway", now=MORNING)
    pm = "pm@lead.example.org"
    system.clock.set(MORNING + timedelta(hours=5, minutes=59))
    await eventually(lambda: True, interval=0.5)
    assert [m for m in system.messages("email") if m.to == pm] == []
    system.clock.set(MORNING + timedelta(hours=6, minutes=1))
    [silent] = await eventually(lambda: [m for m in system.messages("email") if m.to == pm] or None)
    assert "no CAD events from Albuquerque Police Department" in silent.body

    body = {**referral_body("CAD-HEARTBEAT-1"), "occurred_at": (MORNING + timedelta(hours=6, minutes=2)).isoformat()}
    system.clock.set(MORNING + timedelta(hours=6, minutes=3))
    assert (await system.http.post("/v1/referrals", json=body, headers=TOKEN)).status_code == 202
    back = await eventually(lambda: [m for m in system.messages("email") if m.to == pm and "arriving again" in m.body]
                            or None)
    assert len(back) == 1
    await eventually(lambda: True, interval=1.0)
    assert len([m for m in system.messages("email") if m.to == pm]) == 2  # once each
