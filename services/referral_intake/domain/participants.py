"""Inactive participants by who they are: so that when police meet one again, their case manager hears
where and when ("identify who may not be engaged, to go find them on the streets").

Folded from the referral topic's events (a read model every intake worker keeps in full, since a new
CAD event can name a participant of any partition). Holds one-way person keys, never names. A
participant is inactive from an ``inactive`` milestone until a later contact or milestone, and drops
out when their referral closes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from services.kernel.bus import Handlers, fold
from services.kernel.events import (
    OPEN_STATUSES,
    Milestone,
)
from services.kernel.identity import person_key
from services.kernel.lead import EngagementRecorded, EngagementWithdrawn, ReferralCreated, ReferralStatusChanged


@dataclass
class _Participant:
    site_id: str
    key: str | None
    inactive: bool = False
    open: bool = True


class InactiveParticipants:
    #: The only personal values it reads: what a one-way person key is made of (the officer, the place and the
    #: description stay sealed in its copy).
    OPENS: ClassVar[frozenset[str]] = frozenset({"person.first_name", "person.last_name", "person.date_of_birth"})

    def __init__(self) -> None:
        self._by_referral: dict[str, _Participant] = {}
        self._inactive: dict[tuple[str, str], str] = {}  # (site id, person key) -> referral id

    FOLDS: ClassVar[Handlers] = {ReferralCreated: "opened", EngagementRecorded: "engaged",
                                 EngagementWithdrawn: "engagement_undone", ReferralStatusChanged: "moved"}

    def apply(self, event) -> None:
        fold(self, self.FOLDS, event)

    def opened(self, event: ReferralCreated) -> None:
        p = event.person
        self._by_referral.setdefault(event.referral_id, _Participant(
            event.site_id, person_key(p.first_name, p.last_name, p.date_of_birth)))
        self._index(event.referral_id)

    def engaged(self, event: EngagementRecorded) -> None:
        if event.referral_id in self._by_referral:
            self._by_referral[event.referral_id].inactive = event.milestone is Milestone.inactive
            self._index(event.referral_id)

    def engagement_undone(self, event: EngagementWithdrawn) -> None:
        """"Inactive" tapped by mistake: active again."""
        if event.milestone is Milestone.inactive and event.referral_id in self._by_referral:
            self._by_referral[event.referral_id].inactive = False
            self._index(event.referral_id)

    def moved(self, event: ReferralStatusChanged) -> None:
        if event.referral_id in self._by_referral:
            self._by_referral[event.referral_id].open = event.status in OPEN_STATUSES
            self._index(event.referral_id)

    def _index(self, referral_id: str) -> None:
        participant = self._by_referral[referral_id]
        if participant.key is None:
            return
        slot = (participant.site_id, participant.key)
        if participant.inactive and participant.open:
            self._inactive[slot] = referral_id
        elif self._inactive.get(slot) == referral_id:
            del self._inactive[slot]

    def forget(self, referral_id: str) -> None:
        """The referral's person was erased (their data keys destroyed): their one-way key goes too."""
        participant = self._by_referral.pop(referral_id, None)
        if participant is not None and participant.key is not None:
            slot = (participant.site_id, participant.key)
            if self._inactive.get(slot) == referral_id:
                del self._inactive[slot]

    def match(self, site_id: str, key: str | None) -> str | None:
        """The referral of the site's inactive participant with this person key, if any."""
        return self._inactive.get((site_id, key)) if key else None
