"""A page that confirms an action waits only for the read models that follow what it wrote."""

from __future__ import annotations

import pytest

from services.handle_with_care.topics import HWC_NOTICES
from services.kernel.topics import REFERRALS
from services.quick_response.topics import QRT_FOLLOW_UPS
from services.runtime import caught_up


class Follower:
    def __init__(self, *names: str, running: bool = True, in_time: bool = True) -> None:
        self.names, self.running, self.in_time = list(names), running, in_time
        self.synced = 0
        self.asked_for: set[str] | None = None

    async def sync(self, timeout: float, topics: set[str] | None = None) -> bool:
        self.synced += 1
        self.asked_for = topics
        return self.in_time


@pytest.mark.asyncio
async def test_only_the_followers_of_the_topic_written_are_synced() -> None:
    lead = Follower(REFERRALS.qualified("t."))
    hwc = Follower(HWC_NOTICES.qualified("t."), "t.other")
    qrt = Follower(QRT_FOLLOW_UPS.qualified("t."))

    assert await caught_up([lead, hwc, qrt], (HWC_NOTICES,), "t.") is True

    assert (lead.synced, hwc.synced, qrt.synced) == (0, 1, 0)
    assert hwc.asked_for == {HWC_NOTICES.qualified("t.")}  # a follower of several topics waits for this one only


@pytest.mark.asyncio
async def test_a_follower_that_did_not_catch_up_in_time_is_reported() -> None:
    late = Follower(REFERRALS.qualified(""), in_time=False)
    stopped = Follower(REFERRALS.qualified(""), running=False)

    assert await caught_up([late, stopped], (REFERRALS,)) is False
    assert stopped.synced == 0
