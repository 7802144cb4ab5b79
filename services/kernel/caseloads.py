"""Caseloads: how many open referrals each case manager has taken.

Shared kernel, because two peers need it: the LEAD read model (the API's figures) and the
notifier (the paging step passes over a case manager at their limit; domain brief: 12 to 15, never
over 25). Folded from the referral and page topics' events; applying one twice changes nothing.
Kept as an index as events arrive: paging asks on every page, and a count over every referral
made that O(referrals).
"""

from __future__ import annotations

from typing import ClassVar

from services.kernel.bus import Handlers, fold
from services.kernel.events import OPEN_STATUSES
from services.kernel.lead import PageAcknowledged, ReferralCreated, ReferralStatusChanged


class Caseloads:
    def __init__(self) -> None:
        self._taken_by: dict[str, str] = {}  # referral id -> who took it (the first acknowledgement)
        self._open: dict[str, bool] = {}
        self._open_taken: dict[str, set[str]] = {}  # case manager id -> open referrals they took

    FOLDS: ClassVar[Handlers] = {ReferralCreated: "opened", PageAcknowledged: "taken", ReferralStatusChanged: "moved"}

    def apply(self, event) -> None:
        fold(self, self.FOLDS, event)

    def opened(self, event: ReferralCreated) -> None:
        self._open.setdefault(event.referral_id, True)
        self._index(event.referral_id)

    def taken(self, event: PageAcknowledged) -> None:
        self._taken_by.setdefault(event.referral_id, event.acknowledged_by)
        self._index(event.referral_id)

    def moved(self, event: ReferralStatusChanged) -> None:
        self._open[event.referral_id] = event.status in OPEN_STATUSES
        self._index(event.referral_id)

    def _index(self, referral_id: str) -> None:
        who = self._taken_by.get(referral_id)
        if who is None:
            return
        taken = self._open_taken.setdefault(who, set())
        if self._open.get(referral_id, True):
            taken.add(referral_id)
        else:
            taken.discard(referral_id)

    def caseload(self, case_manager_id: str) -> int:
        """Open referrals this case manager took (acknowledged)."""
        return len(self._open_taken.get(case_manager_id, ()))
