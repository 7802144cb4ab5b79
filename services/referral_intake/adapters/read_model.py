"""The LEAD read model: every referral's view, kept current from the referral and page topics.

The API uses it to refuse illegal transitions at once (409), to answer funnel and worklist
questions, to resolve SMS reply codes, and for Prometheus. It holds no personal data: views
carry ids, statuses and times only.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from services.kernel.bus import Handlers, fold
from services.kernel.caseloads import Caseloads
from services.kernel.events import (
    Consent,
    Location,
    ReferredPerson,
)
from services.kernel.lead import EngagementWithdrawn, PageRequested, ReferralCreated, ReferralNoteWritten
from services.messaging.sealing import erased_copy
from services.referral_intake.domain.views import RecordedStep, ReferralView, recorded_step


class LeadReadModel:
    def __init__(self) -> None:
        self.views: dict[str, ReferralView] = {}
        self.caseloads = Caseloads()
        self.history: dict[str, dict[str, RecordedStep]] = {}  # referral -> its people's steps, by key

    def apply(self, event) -> None:
        self.caseloads.apply(event)
        if type(event) is ReferralCreated:  # a view opens; every other event of the referral folds into it
            self.views.setdefault(event.referral_id, ReferralView.opened(event))
        elif (view := self.views.get(event.referral_id)) is not None:
            undone = type(event) is EngagementWithdrawn and view.can_undo(event.engagement_id)
            view.apply(event)
            steps = self.history.setdefault(event.referral_id, {})
            if (step := recorded_step(event)) is not None:
                steps.setdefault(step.key, step)
            if undone and (step := steps.get(event.engagement_id)) is not None:
                steps[step.key] = replace(step, undone=(event.withdrawn_at, event.withdrawn_by))

    def steps_of(self, referral_id: str) -> list[RecordedStep]:
        """What people did about a referral, oldest first: every attempt and milestone, who took the page, a
        closing and its reason; each with when and by whom."""
        return sorted(self.history.get(referral_id, {}).values(), key=lambda step: step.at)

    def for_site(self, site_id: str) -> list[ReferralView]:
        return [v for v in self.views.values() if v.site_id == site_id]

    def for_incident(self, agency_id: str, incident_id: str) -> list[ReferralView]:
        """The referrals CAD made at one incident (one per person referred)."""
        return sorted((v for v in self.views.values() if v.incident == (agency_id, incident_id)),
                      key=lambda v: v.referred_at)

    def outreach_worklist(self, site_id: str) -> list[ReferralView]:
        """Open referrals someone must go and find: no contact for too long, or intake at risk."""
        flagged = [v for v in self.for_site(site_id) if v.is_open and (v.flags or v.awaiting_a_case_manager)]
        # A missed warm handoff or a late referral comes first: nobody has the person yet.
        return sorted(flagged, key=lambda v: (not v.awaiting_a_case_manager, v.last_contact_at or v.referred_at))

    def pages_waiting_for(self, case_manager_id: str) -> list[ReferralView]:
        """The open referrals paged to this case manager that nobody has acknowledged yet, oldest first."""
        return sorted((v for v in self.views.values() if v.acknowledged_at is None and v.is_open
                       and case_manager_id in v.paged_case_managers), key=lambda v: v.paged_at or v.referred_at)

    def page_for_reply(self, case_manager_id: str, code: str, reply_code) -> ReferralView | None:
        """The unacknowledged page this case manager's reply code answers."""
        return next((v for v in self.pages_waiting_for(case_manager_id)
                     if reply_code(v.referral_id, case_manager_id) == code), None)

    def caseload(self, case_manager_id: str) -> int:
        """Open referrals this case manager took (acknowledged)."""
        return self.caseloads.caseload(case_manager_id)


class HandoffDetails:
    """What a paged case manager needs for the warm handoff (officer, callback number, where, who to
    look for), by referral id, from ``PageRequested``; and who the person is (name, date of birth)
    with their consent, from ``ReferralCreated``. Personal data, kept apart from the figures: the
    handoff shown only to the holder of the page's signed link and to the site's case managers, the
    identity only to the case manager who took the referral (``service.disclose_identity``)."""

    def __init__(self) -> None:
        self.pages: dict[str, PageRequested] = {}
        self.people: dict[str, tuple[ReferredPerson, Consent | None]] = {}
        self.locations: dict[str, Location] = {}  # where the officer met the person: outreach's, when nobody was paged
        self.notes: dict[str, dict[str, ReferralNoteWritten]] = {}  # referral -> its notes, by note id

    FOLDS: ClassVar[Handlers] = {PageRequested: "paged", ReferralCreated: "opened", ReferralNoteWritten: "noted"}

    def apply(self, event) -> None:
        fold(self, self.FOLDS, event)

    def paged(self, event: PageRequested) -> None:
        self.pages.setdefault(event.referral_id, event)

    def opened(self, event: ReferralCreated) -> None:
        self.people.setdefault(event.referral_id, (event.person, event.consent))
        self.locations.setdefault(event.referral_id, event.location)

    def noted(self, event: ReferralNoteWritten) -> None:
        self.notes.setdefault(event.referral_id, {}).setdefault(event.note_id, event)

    def notes_for(self, referral_id: str, viewer_id: str, taken_by: str | None) -> tuple[list[ReferralNoteWritten], int]:
        """The notes ``viewer_id`` may read, oldest first (the case manager who took the referral reads them all,
        anyone else their own), and how many others there are."""
        notes = sorted(self.notes.get(referral_id, {}).values(), key=lambda note: note.written_at)
        shown = [note for note in notes if viewer_id in (taken_by, note.written_by)]
        return shown, len(notes) - len(shown)

    def reported(self, referral_id: str) -> tuple[str | None, str | None] | None:
        """How to recognise the person and where the officer met them, as CAD reported it (for a referral nobody
        was paged for); None when the referral is unknown."""
        if referral_id not in self.people:
            return None
        where = self.locations.get(referral_id)
        return self.people[referral_id][0].description, where.description if where else None

    def erase(self, referral_id: str) -> None:
        """The referral's subject was erased: what is held of it reads "erased" from now on (as after a restart)."""
        if referral_id in self.pages:
            self.pages[referral_id] = erased_copy(self.pages[referral_id])
        if referral_id in self.locations:
            self.locations[referral_id] = erased_copy(self.locations[referral_id])
        for note_id, note in self.notes.get(referral_id, {}).items():
            self.notes[referral_id][note_id] = erased_copy(note)
        if referral_id in self.people:
            person, consent = self.people[referral_id]
            self.people[referral_id] = (erased_copy(person), consent)
