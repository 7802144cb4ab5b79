"""LEAD in the web console.

- Case managers (phone-first): "my referrals" with status and deadlines, each referral with the
  warm-handoff details and one-tap buttons for contact attempts and milestones.
- Outreach worklist: open referrals with no recent contact or an intake deadline at risk.
- Program managers (their sites) and administrators (every site): the live dashboard, the funnel
  against the 60% and 75% targets, time to acknowledge and to contact, Handle With Care rates, and
  the monthly report as a printable page and as CSV. Figures only: no personal data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from markupsafe import Markup

from services.kernel.clock import Clock
from services.kernel.events import (
    OPEN_STATUSES,
    DisclosureChannel,
    Milestone,
    ReferralStatus,
    ReferredPerson,
    StatusReason,
)
from services.kernel.lead import NOTE_MAX_LENGTH
from services.kernel.pathways import Pathway, PathwayFigures
from services.kernel.reference import ReferenceData, Site
from services.kernel.topics import REFERRALS
from services.referral_intake.adapters.read_model import HandoffDetails, LeadReadModel
from services.referral_intake.domain.lifecycle import IllegalTransition, closing_status
from services.referral_intake.domain.pathways import ENGAGEMENT_TARGET, ENROLLMENT_TARGET, lead_pathways
from services.referral_intake.domain.reports import (
    month_of,
    monthly_report,
    pathways_csv,
    report_csv,
    route_figures,
    summarize,
    time_to_acknowledge,
    time_to_contact,
)
from services.referral_intake.domain.views import HANDOFF_MISSED, ReferralView
from services.referral_intake.entrypoints.http_api import ReadModel
from services.referral_intake.entrypoints.staff_api import Details
from services.referral_intake.service import (
    ChangeStatus,
    RecordEngagement,
    UndoLastStep,
    disclose_identity,
    handle_staff_command,
    write_note,
)
from services.web.console import (
    ConsoleSessions,
    Sessions,
    Viewer,
    bar_chart,
    handoff_html,
    histogram,
    local_time,
    page,
)
from services.web.deps import AppClock, CaughtUp, Events, Reference, app_state
from services.web.render import fragment, percent, personal
from services.web.web import ApiError, sentence

ONE_TAP = (Milestone.contact_attempted, Milestone.contacted, Milestone.intake_scheduled, Milestone.enrolled,
           Milestone.engaged)
LABELS = {Milestone.contact_attempted: "Tried to reach", Milestone.contacted: "Contacted",
          Milestone.intake_scheduled: "Intake scheduled", Milestone.enrolled: "Enrolled", Milestone.engaged: "Engaged"}
# A referral's history in words: the one-tap steps as their buttons say them, and what else people do.
STEP_WORDS = {**{m.value: label for m, label in LABELS.items()}, "took_the_page": "Took the page",
              **{s.value: f"Closed ({s.value.replace('_', ' ')})" for s in ReferralStatus if s not in OPEN_STATUSES}}
# Why a referral ends, as the closing form offers it (StatusReason).
REASON_LABELS = {StatusReason.declined_by_client.value: "The person declined",
                 StatusReason.could_not_contact.value: "Could not reach the person",
                 StatusReason.ineligible.value: "Not eligible for the program",
                 StatusReason.no_capacity.value: "No capacity to take them",
                 StatusReason.declined_by_provider.value: "The program declined",
                 StatusReason.other.value: "Another reason"}
DASHBOARD_REFRESH_SECONDS = 5
FIELD_ROLES = ("case_manager", "outreach")
FIGURE_ROLES = ("program_manager", "administrator")


@dataclass(frozen=True)
class BesideLead:
    """What the LEAD dashboard and report show of other services: the HWC rates of the site's districts, the
    figures of the pathways others run (Quick Response, self-referral) beside LEAD's routes, and what every
    pathway the site runs promises. The composition root joins them; no service imports another."""

    hwc_rates: Callable[[set[str]], Markup | str] = lambda _districts: ""
    other_pathways: Callable[[Site, str], list[PathwayFigures]] = lambda _site, _month: []
    catalogue: Callable[[Site], list[Pathway]] = lead_pathways
TEMPLATES = "services.referral_intake.entrypoints"  # its templates/ folder


router = APIRouter(include_in_schema=False)
Beside = Annotated[BesideLead, Depends(app_state("beside_lead"))]


def referral_for(model: LeadReadModel, viewer: Viewer, referral_id: str) -> ReferralView:
    view = model.views.get(referral_id)
    if view is None:
        raise ApiError(404, "referral_id", "no such referral")
    if view.site_id not in viewer.staff.sites:
        raise ApiError(403, "referral_id", "not a referral of your sites")
    return view


def acting_on(request: Request, sessions: Sessions, model: LeadReadModel, referral_id: str,
              csrf_token: str) -> tuple[Viewer, ReferralView]:
    """Who posts a form about a referral, and the referral: field staff of its site, with the form's CSRF token."""
    viewer = sessions.require(request, *FIELD_ROLES)
    sessions.check_csrf(viewer, csrf_token)
    return viewer, referral_for(model, viewer, referral_id)


def card(reference: ReferenceData, details: HandoffDetails, view: ReferralView,
         person: ReferredPerson | None = None) -> dict:
    """A referral in a list: who (for the case manager who took it) or how to recognise them and where
    they were seen (for outreach), so that three cards never read the same."""
    site = reference.site(view.site_id)
    kind = f'{view.referral_type.replace("_", " ").capitalize()} · {site.name}'
    seen = details.pages.get(view.referral_id) if not person else None
    reported = (seen.person_description, seen.location_description) if seen else (
        details.reported(view.referral_id) if view.late and not person else None)  # never paged: what CAD said
    taken = view.acknowledged_by is not None  # a missed handoff or a late referral someone took is no longer one
    taker = reference.case_managers.get(view.acknowledged_by) if taken else None
    flags = [f for f in view.flags if not (taken and f == HANDOFF_MISSED)]
    return {"referral_id": view.referral_id, "status": view.status,
            "flags": [*flags, *(["late_referral"] if view.late and not taken else [])],
            "taken_by": (taker.display_name if taker else view.acknowledged_by) if taken else None,
            "title": f"{personal(person.first_name)} {personal(person.last_name)} · {kind}" if person else kind,
            "look_for": (reported[0] or "see officer") if reported else None,
            "seen_at": personal(reported[1]) if reported else None,
            "referred": _local(view.referred_at, site), "due": _local(view.intake_due_at, site)}


@router.get("/console/my-referrals", response_class=HTMLResponse)
async def my_referrals(request: Request, clock: AppClock, details: Details, model: ReadModel, publisher: Events,
                       reference: Reference, sessions: ConsoleSessions) -> HTMLResponse:
    viewer = sessions.require(request, "case_manager")
    mine = [v for v in model.views.values() if v.acknowledged_by == viewer.id]
    mine.sort(key=lambda v: (not v.is_open, v.intake_due_at))
    cards = [card(reference, details, v, await disclose_identity(v, viewer.id, details.people, publisher, clock,
                                             DisclosureChannel.console)) for v in mine]
    return page("lead/referrals.html", "My referrals", viewer, package=TEMPLATES, cards=cards,
                empty="No referrals yet. Pages you acknowledge appear here.")


@router.get("/console/worklist", response_class=HTMLResponse)
async def worklist(request: Request, details: Details, model: ReadModel, reference: Reference,
                   sessions: ConsoleSessions) -> HTMLResponse:
    viewer = sessions.require(request, *FIELD_ROLES, "program_manager")
    flagged = [v for site_id in sorted(viewer.staff.sites) for v in model.outreach_worklist(site_id)]
    return page("lead/referrals.html", "Outreach worklist", viewer, package=TEMPLATES,
                cards=[card(reference, details, v) for v in flagged], empty="Nobody needs finding right now.")


@router.get("/console/referrals/{referral_id}", response_class=HTMLResponse)
async def referral(request: Request, referral_id: str, clock: AppClock, details: Details, model: ReadModel,
                   publisher: Events, reference: Reference, sessions: ConsoleSessions, done: str = "") -> HTMLResponse:
    viewer = sessions.require(request, *FIELD_ROLES)
    return await referral_page(viewer, referral_for(model, viewer, referral_id), clock, details, model, publisher,
                               reference, done)


async def referral_page(viewer: Viewer, view: ReferralView, clock: Clock, details: HandoffDetails,
                        model: LeadReadModel, publisher, reference: ReferenceData, done: str = "",
                        refused: dict[str, str] | None = None, status: int = 200,
                        typed: dict[str, str] | None = None) -> HTMLResponse:
    """A referral for the people who work it: who (to the case manager who took it), the warm handoff, one-tap
    steps, closing it with a reason, and every step so far with when and by whom. After a refused form, again
    with the reason beside its field (``refused``: field -> sentence)."""
    referral_id, site = view.referral_id, reference.site(view.site_id)
    person = await disclose_identity(view, viewer.id, details.people, publisher, clock, DisclosureChannel.console)
    staff = reference.case_managers

    def who(staff_id: str | None) -> str | None:
        return staff[staff_id].display_name if staff_id in staff else staff_id

    undoable = view.last_step.engagement_id if view.last_step and view.can_undo(view.last_step.engagement_id) else None
    steps = [{"at": _local(step.at, site), "what": STEP_WORDS.get(step.what, step.what),
              "why": REASON_LABELS.get(step.reason or "", ""), "by": who(step.by),
              "undone": f"undone by {who(step.undone[1])}, {_local(step.undone[0], site)}" if step.undone else "",
              "undo": step.key if step.key == undoable else None} for step in model.steps_of(referral_id)]
    notes, notes_not_shown = details.notes_for(referral_id, viewer.id, view.acknowledged_by)
    notes_shown = [{"at": _local(note.written_at, site), "by": who(note.written_by), "text": note.text}
                   for note in notes]
    return page("lead/referral.html", "Referral", viewer, package=TEMPLATES, referral_id=referral_id, done=done,
                notes=notes_shown, notes_not_shown=notes_not_shown, note_max=NOTE_MAX_LENGTH, typed=typed or {},
                referral_status=view.status, due=_local(view.intake_due_at, site), person=person,
                handoff=handoff_html(details.pages.get(referral_id), site.zone if site else None),
                buttons=[(m, LABELS[m]) for m in ONE_TAP] if view.is_open else [], closable=view.is_open,
                reasons=list(REASON_LABELS.items()), refused=refused or {}, status=status, steps=steps)


@router.post("/console/referrals/{referral_id}/milestones")
async def record(request: Request, referral_id: str, clock: AppClock, details: Details, model: ReadModel,
                 publisher: Events, reference: Reference, sessions: ConsoleSessions, shown: CaughtUp,
                 milestone: str = Form(""), csrf_token: str = Form("")) -> Response:
    viewer, view = acting_on(request, sessions, model, referral_id, csrf_token)
    try:
        chosen = Milestone(milestone)
    except ValueError:
        raise ApiError(422, "milestone", "not a milestone") from None
    try:
        await handle_staff_command(RecordEngagement.one_tap(referral_id, chosen, viewer.id, clock.now()), view,
                                   publisher, clock)
    except IllegalTransition as exc:  # the referral moved meanwhile: the page as it stands, saying why
        return await referral_page(viewer, view, clock, details, model, publisher, reference, status=409,
                                   refused={"milestone": f"Not recorded: {exc.detail}."})
    await shown(REFERRALS)  # the page it leads to shows the step (and the status it implies), not the state before it
    return RedirectResponse(f"/console/referrals/{referral_id}?done={chosen.value}", status_code=303)


@router.post("/console/referrals/{referral_id}/notes")
async def note(request: Request, referral_id: str, clock: AppClock, details: Details, model: ReadModel,
               publisher: Events, reference: Reference, sessions: ConsoleSessions, shown: CaughtUp,
               text: str = Form(""), csrf_token: str = Form("")) -> Response:
    """A note on the referral (personal: sealed, erased with the referral, read by its author and the case manager
    who took it). A refused note comes back in the box with the reason beside it."""
    viewer, view = acting_on(request, sessions, model, referral_id, csrf_token)
    written = text.strip()
    refusal = ("Write the note first." if not written else
               f"A note is at most {NOTE_MAX_LENGTH:,} characters; this one is {len(written):,}." if len(written) > NOTE_MAX_LENGTH
               else None)
    if refusal is not None:
        return await referral_page(viewer, view, clock, details, model, publisher, reference, status=422,
                                   refused={"text": refusal}, typed={"text": text})
    await write_note(view, written, viewer.id, publisher, clock)
    await shown(REFERRALS)
    return RedirectResponse(f"/console/referrals/{referral_id}?done=noted", status_code=303)


@router.post("/console/referrals/{referral_id}/undo")
async def undo(request: Request, referral_id: str, clock: AppClock, details: Details, model: ReadModel,
               publisher: Events, reference: Reference, sessions: ConsoleSessions, shown: CaughtUp,
               engagement_id: str = Form(""), csrf_token: str = Form("")) -> Response:
    """Undo the last step recorded (a wrong tap): the referral is back where the step found it, and the step stays
    on its history, struck through, with who undid it and when."""
    viewer, view = acting_on(request, sessions, model, referral_id, csrf_token)
    try:
        await handle_staff_command(UndoLastStep(referral_id, engagement_id, viewer.id), view, publisher, clock)
    except IllegalTransition as exc:  # a step recorded meanwhile, or the form sent twice
        return await referral_page(viewer, view, clock, details, model, publisher, reference, status=409,
                                   refused={"undo": f"Nothing was undone: {exc.detail}."})
    await shown(REFERRALS)
    return RedirectResponse(f"/console/referrals/{referral_id}?done=undone", status_code=303)


@router.post("/console/referrals/{referral_id}/close")
async def close(request: Request, referral_id: str, clock: AppClock, details: Details, model: ReadModel,
                publisher: Events, reference: Reference, sessions: ConsoleSessions, shown: CaughtUp,
                reason: str = Form(""), csrf_token: str = Form("")) -> Response:
    """The case manager ends the referral, saying why (the person declined, could not be reached...): the status
    its stage gives (``closing_status``), with the reason, and who closed it, on the referral's history."""
    viewer, view = acting_on(request, sessions, model, referral_id, csrf_token)
    if not view.is_open:  # closed meanwhile (by someone else, or a form sent twice)
        return await referral_page(viewer, view, clock, details, model, publisher, reference, status=409,
                                   refused={"reason": "This referral is already closed: nothing was changed."})
    try:
        why = StatusReason(reason)
    except ValueError:
        return await referral_page(viewer, view, clock, details, model, publisher, reference, status=422,
                                   refused={"reason": "Choose why the referral ends."})
    try:
        await handle_staff_command(ChangeStatus(referral_id, closing_status(ReferralStatus(view.status)), viewer.id,
                                                why), view, publisher, clock)
    except IllegalTransition as exc:
        return await referral_page(viewer, view, clock, details, model, publisher, reference, status=409,
                                   refused={"reason": sentence(exc.detail)})
    await shown(REFERRALS)
    return RedirectResponse(f"/console/referrals/{referral_id}?done=closed", status_code=303)


def sites_of(reference: ReferenceData, viewer: Viewer) -> list[Site]:
    return [s for s in reference.sites.values() if viewer.staff.sees_site(s.site_id)]


def site_for(reference: ReferenceData, viewer: Viewer, site_id: str) -> Site:
    site = reference.site(site_id)
    if site is None or not viewer.staff.sees_site(site_id):
        raise ApiError(403, "site_id", "not one of your sites")
    return site


def live_figures(reference: ReferenceData, model: LeadReadModel, clock: Clock, beside: BesideLead,
                 site: Site) -> Markup:
    views = model.for_site(site.site_id)
    s = summarize(views)
    # Every referral the site has had, from its first: the period said on every figure, beside the month's table.
    funnel = bar_chart(f"Funnel, {site.name}, all referrals to date", [
        ("referred", s.referrals, str(s.referrals)), ("contacted", s.contacted, f"{s.contacted} ({percent(s.contact_rate)})"),
        ("enrolled", s.enrolled, f"{s.enrolled} ({percent(s.enrollment_rate)})"),
        ("engaged", s.engaged, f"{s.engaged} ({percent(s.engagement_rate)} of enrolled)")],
        targets=[("60% enrol", ENROLLMENT_TARGET * s.referrals, "enrolled"),
                 ("75% engage", ENGAGEMENT_TARGET * s.enrolled, "engaged")])
    verdicts = []
    for name, rate, target in (("Enrollment", s.enrollment_rate, ENROLLMENT_TARGET),
                               ("Engagement", s.engagement_rate, ENGAGEMENT_TARGET)):
        state = "no data yet" if rate is None else (
            f"{percent(rate)}, {'meets' if rate >= target else 'below'}")
        verdicts.append(f"{name}, all referrals to date: {state} (target {target:.0%})")
    districts = {a.hwc_district_id for a in reference.agencies.values()
                 if site.site_id in a.sites and a.hwc_district_id}
    return fragment("lead/live_figures.html", TEMPLATES, funnel=funnel, verdicts=verdicts, contacted=s.contacted,
                    referrals=s.referrals, handoffs_missed=s.handoffs_missed,
                    time_to_acknowledge=histogram("Time from page to acknowledgement, all to date",
                                                  time_to_acknowledge(views)),
                    time_to_contact=histogram("Time from referral to first contact, all to date",
                                              time_to_contact(views)),
                    hwc=beside.hwc_rates(districts), updated=_local(clock.now(), site))


@router.get("/console/dashboard", response_class=HTMLResponse)
async def dashboard(request: Request, beside: Beside, clock: AppClock, model: ReadModel, reference: Reference,
                    sessions: ConsoleSessions, site: str = "") -> HTMLResponse:
    viewer = sessions.require(request, *FIGURE_ROLES)
    mine = sites_of(reference, viewer)
    if not mine:
        return page("message.html", "Dashboard", viewer, paragraphs=["No sites."], alert=False, back=None)
    chosen = site_for(reference, viewer, site or mine[0].site_id)
    month = month_of(clock.now(), chosen.zone)
    return page("lead/dashboard.html", "Dashboard", viewer, package=TEMPLATES, sites=mine, chosen=chosen,
                live=live_figures(reference, model, clock, beside, chosen), month=month,
                refresh_ms=DASHBOARD_REFRESH_SECONDS * 1000,
                pathways=fragment("lead/pathways.html", TEMPLATES, catalogue=beside.catalogue(chosen),
                                  figures=every_pathway(model, beside, chosen, month), month=month))


def every_pathway(model: LeadReadModel, beside: BesideLead, site: Site, month: str) -> list[PathwayFigures]:
    return route_figures(model.views.values(), site, month) + beside.other_pathways(site, month)


@router.get("/console/reports/{site_id}/{month}/pathways.csv", response_class=PlainTextResponse)
async def pathways_report(request: Request, site_id: str, month: str, beside: Beside, model: ReadModel,
                          reference: Reference, sessions: ConsoleSessions) -> Response:
    viewer = sessions.require(request, *FIGURE_ROLES)
    if not _is_month(month):
        raise ApiError(422, "month", "a month is written as year and month, for example 2026-11")
    site = site_for(reference, viewer, site_id)
    return PlainTextResponse(pathways_csv(every_pathway(model, beside, site, month), site_id), media_type="text/csv",
                             headers={"Content-Disposition":
                                      f'attachment; filename="handoff-{site_id}-{month}-pathways.csv"'})


@router.get("/console/dashboard/live", response_class=HTMLResponse)
async def dashboard_live(request: Request, beside: Beside, clock: AppClock, model: ReadModel, reference: Reference,
                         sessions: ConsoleSessions, site: str = "") -> HTMLResponse:
    viewer = sessions.require(request, *FIGURE_ROLES)
    return HTMLResponse(live_figures(reference, model, clock, beside, site_for(reference, viewer, site)),
                        headers={"Cache-Control": "no-store"})


@router.get("/console/reports/{site_id}/{month}", response_class=HTMLResponse)
async def report(request: Request, site_id: str, month: str, beside: Beside, model: ReadModel, reference: Reference,
                 sessions: ConsoleSessions) -> Response:
    viewer = sessions.require(request, *FIGURE_ROLES)
    as_csv = month.endswith(".csv")
    month = month.removesuffix(".csv")
    if not _is_month(month):
        raise ApiError(422, "month", "a month is written as year and month, for example 2026-11")
    site = site_for(reference, viewer, site_id)
    rows = monthly_report(model.views.values(), site_id, month, site.zone)
    if as_csv:
        return PlainTextResponse(report_csv(rows), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="handoff-{site_id}-{month}.csv"'})
    return page("lead/report.html", f"Monthly report: {site.name}, {month}", viewer, package=TEMPLATES,
                month=month, enrollment_target=ENROLLMENT_TARGET, engagement_target=ENGAGEMENT_TARGET,
                pathways=fragment("lead/pathways.html", TEMPLATES, catalogue=[],
                                  figures=every_pathway(model, beside, site, month), month=month),
                pathways_csv=f"/console/reports/{site_id}/{month}/pathways.csv",
                kinds=["All referrals" if r.referral_type == "all" else r.referral_type.replace("_", " ").capitalize()
                       for r in rows],
                measures=[(label, [said(getattr(r, name)) for r in rows]) for name, label in REPORT_LABELS.items()])


# The monthly report as people read it (and print it): a measure per line, a referral route per column, in
# words; the CSV keeps the column names.
REPORT_LABELS = {
    "referrals": "Referrals", "contacted": "Contacted", "enrolled": "Enrolled", "engaged": "Engaged",
    "enrollment_rate": "Enrollment rate (enrolled of referred)", "meets_enrollment_target": "Enrollment target (60%)",
    "engagement_rate": "Engagement rate (engaged of enrolled)", "meets_engagement_target": "Engagement target (75%)",
    "acknowledged_within_30_min": "Warm handoffs acknowledged within 30 minutes of the page",
    "median_minutes_to_acknowledge": "Median minutes from page to acknowledgement",
    "handoffs_missed": "Warm handoffs missed (nobody acknowledged)",
    "median_hours_to_contact": "Median hours from referral to first contact",
    "median_minutes_event_to_page": "Median minutes from the CAD event to the page"}


def said(value: object) -> str:
    """A report cell in words: a rate as a percentage, a target as met or below, nothing as a dash."""
    if value in ("", None):
        return "—"
    if value in ("yes", "no"):
        return "met" if value == "yes" else "below"
    if isinstance(value, str) and value.startswith(("0.", "1.")) and value.count(".") == 1 and len(value) == 5:
        return f"{float(value):.0%}"
    return str(value)


def _is_month(text: str) -> bool:
    try:
        datetime.strptime(text, "%Y-%m")
        return True
    except ValueError:
        return False


def _local(at: datetime, site: Site | None) -> str:
    return local_time(at, site.zone if site else None)
