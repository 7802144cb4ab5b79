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
from datetime import datetime

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from services.kernel.clock import Clock
from services.kernel.events import DisclosureChannel, Milestone
from services.kernel.reference import ReferenceData, Site
from services.messaging.kafka import Publisher
from services.referral_intake.adapters.read_model import HandoffDetails, LeadReadModel
from services.referral_intake.domain.lifecycle import IllegalTransition
from services.referral_intake.domain.reports import (
    month_of,
    monthly_report,
    report_csv,
    summarize,
    time_to_acknowledge,
    time_to_contact,
)
from services.referral_intake.domain.views import ENGAGEMENT_TARGET, ENROLLMENT_TARGET, ReferralView
from services.referral_intake.service import RecordEngagement, disclose_identity, handle_staff_command
from services.web.console import (
    Sessions,
    Viewer,
    bar_chart,
    esc,
    handoff_html,
    histogram,
    local_time,
    page,
    percent,
    post_button,
)
from services.web.web import ApiError

ONE_TAP = (Milestone.contact_attempted, Milestone.contacted, Milestone.intake_scheduled, Milestone.enrolled,
           Milestone.engaged)
LABELS = {Milestone.contact_attempted: "Tried to reach", Milestone.contacted: "Contacted",
          Milestone.intake_scheduled: "Intake scheduled", Milestone.enrolled: "Enrolled", Milestone.engaged: "Engaged"}
DASHBOARD_REFRESH_SECONDS = 5


def create_router(sessions: Sessions, reference: ReferenceData, model: LeadReadModel, details: HandoffDetails,
                  publisher: Publisher, clock: Clock, hwc_rates: Callable[[set[str]], str] | None = None) -> APIRouter:
    api = APIRouter(include_in_schema=False)
    field_roles = ("case_manager", "outreach")
    figure_roles = ("program_manager", "administrator")

    def referral_for(viewer: Viewer, referral_id: str) -> ReferralView:
        view = model.views.get(referral_id)
        if view is None:
            raise ApiError(404, "referral_id", "no such referral")
        if view.site_id not in viewer.staff.sites:
            raise ApiError(403, "referral_id", "not a referral of your sites")
        return view

    def card(view: ReferralView, person=None) -> str:
        """A referral in a list: who (for the case manager who took it) or how to recognise them and where
        they were seen (for outreach), so that three cards never read the same."""
        site = reference.site(view.site_id)
        due = _local(view.intake_due_at, site)
        flags = "".join(f'<span class="badge due">{esc(f.replace("_", " "))}</span> ' for f in view.flags)
        kind = f'{view.referral_type.replace("_", " ").capitalize()} · {site.name}'
        title = f"{person.first_name} {person.last_name} · {kind}" if person else kind
        seen = details.pages.get(view.referral_id)
        hint = (f"<p>Look for: {esc(seen.person_description or 'see officer')} · seen at "
                f"{esc(seen.location_description)}</p>") if seen and not person else ""
        return (f'<li class=card><h2><a href="/console/referrals/{esc(view.referral_id)}">{esc(title)}</a></h2>'
                f'<p><span class=badge>{esc(view.status.replace("_", " "))}</span> {flags}</p>{hint}'
                f"<p>Referred {esc(_local(view.referred_at, site))} · intake due <strong>{esc(due)}</strong></p></li>")

    @api.get("/console/my-referrals", response_class=HTMLResponse)
    async def my_referrals(request: Request) -> HTMLResponse:
        viewer = sessions.require(request, "case_manager")
        mine = [v for v in model.views.values() if v.acknowledged_by == viewer.id]
        mine.sort(key=lambda v: (not v.is_open, v.intake_due_at))
        cards = [card(v, await disclose_identity(v, viewer.id, details.people, publisher, clock,
                                                 DisclosureChannel.console)) for v in mine]
        body = f"<ul class=cards>{''.join(cards)}</ul>" if mine else \
            "<p>No referrals yet. Pages you acknowledge appear here.</p>"
        return page("My referrals", body, viewer)

    @api.get("/console/worklist", response_class=HTMLResponse)
    async def worklist(request: Request) -> HTMLResponse:
        viewer = sessions.require(request, *field_roles, "program_manager")
        flagged = [v for site_id in sorted(viewer.staff.sites) for v in model.outreach_worklist(site_id)]
        body = f"<ul class=cards>{''.join(card(v) for v in flagged)}</ul>" if flagged else \
            "<p>Nobody needs finding right now.</p>"
        return page("Outreach worklist", body, viewer)

    @api.get("/console/referrals/{referral_id}", response_class=HTMLResponse)
    async def referral(request: Request, referral_id: str, done: str = "") -> HTMLResponse:
        viewer = sessions.require(request, *field_roles)
        view = referral_for(viewer, referral_id)
        site = reference.site(view.site_id)
        flash = f'<p class=ok role=status>Recorded: {esc(done.replace("_", " "))}.</p>' if done else ""
        milestones = "".join(f"<li>{esc(name.replace('_', ' '))}: {esc(_local(at, site))}</li>"
                             for name, at in sorted(view.milestones.items(), key=lambda kv: kv[1]))
        buttons = "".join(post_button(f"/console/referrals/{referral_id}/milestones", LABELS[m], viewer,
                                      {"milestone": m.value}, secondary=m is Milestone.contact_attempted)
                          for m in ONE_TAP)
        person = await disclose_identity(view, viewer.id, details.people, publisher, clock, DisclosureChannel.console)
        who = (f'<h2>Who</h2><dl data-testid="identity"><dt>Name</dt><dd>{esc(person.first_name)} {esc(person.last_name)}'
               f"</dd><dt>Date of birth</dt><dd>{esc(person.date_of_birth.isoformat() if person.date_of_birth else 'not given')}"
               "</dd></dl>") if person else ""
        body = (f"{flash}<p><span class=badge>{esc(view.status.replace('_', ' '))}</span> intake due "
                f"<strong>{esc(_local(view.intake_due_at, site))}</strong></p>{who}"
                f"<h2>Warm handoff</h2>{handoff_html(details.pages.get(referral_id), site.zone if site else None)}"
                f'<h2>Record</h2><div class=actions>{buttons}</div>'
                f"<h2>So far</h2><ul>{milestones or '<li>nothing recorded</li>'}</ul>")
        return page("Referral", body, viewer)

    @api.post("/console/referrals/{referral_id}/milestones")
    async def record(request: Request, referral_id: str, milestone: str = Form(""),
                     csrf_token: str = Form("")) -> Response:
        viewer = sessions.require(request, *field_roles)
        sessions.check_csrf(viewer, csrf_token)
        view = referral_for(viewer, referral_id)
        try:
            chosen = Milestone(milestone)
        except ValueError:
            raise ApiError(422, "milestone", "not a milestone") from None
        try:
            await handle_staff_command(RecordEngagement.one_tap(referral_id, chosen, viewer.id, clock.now()), view,
                                       publisher, clock)
        except IllegalTransition as exc:
            raise ApiError(409, exc.field, exc.detail) from None
        return RedirectResponse(f"/console/referrals/{referral_id}?done={chosen.value}", status_code=303)

    # --- figures ------------------------------------------------------------------------------------
    def sites_of(viewer: Viewer) -> list[Site]:
        return [s for s in reference.sites.values() if viewer.staff.sees_site(s.site_id)]

    def site_for(viewer: Viewer, site_id: str) -> Site:
        site = reference.site(site_id)
        if site is None or not viewer.staff.sees_site(site_id):
            raise ApiError(403, "site_id", "not one of your sites")
        return site

    def live_figures(site: Site) -> str:
        views = model.for_site(site.site_id)
        s = summarize(views)
        funnel = bar_chart(f"Funnel, {site.name}", [
            ("referred", s.referrals, str(s.referrals)), ("contacted", s.contacted, f"{s.contacted} ({percent(s.contact_rate)})"),
            ("enrolled", s.enrolled, f"{s.enrolled} ({percent(s.enrollment_rate)})"),
            ("engaged", s.engaged, f"{s.engaged} ({percent(s.engagement_rate)} of enrolled)")],
            targets=[("60% enrol", ENROLLMENT_TARGET * s.referrals), ("75% engage", ENGAGEMENT_TARGET * s.enrolled)])
        verdict = []
        for name, rate, target in (("Enrollment", s.enrollment_rate, ENROLLMENT_TARGET),
                                   ("Engagement", s.engagement_rate, ENGAGEMENT_TARGET)):
            state = "no data yet" if rate is None else (
                f"{percent(rate)}, {'meets' if rate >= target else 'below'}")
            verdict.append(f"<li>{name}: {state} (target {target:.0%})</li>")
        districts = {a.hwc_district_id for a in reference.agencies.values()
                     if site.site_id in a.sites and a.hwc_district_id}
        hwc = hwc_rates(districts) if hwc_rates else ""
        return (f'<div class=grid2><div>{funnel}<ul data-testid="targets">{"".join(verdict)}</ul>'
                f'<p data-testid="contacted">Contacted: {s.contacted} of {s.referrals}</p>'
                f'<p data-testid="handoffs-missed">Warm handoffs missed (nobody acknowledged): {s.handoffs_missed}</p></div>'
                f'<div>{histogram("Time to acknowledge a page", time_to_acknowledge(views))}'
                f'{histogram("Time from referral to first contact", time_to_contact(views))}</div>'
                f"<div>{hwc}</div></div>"
                f'<p class=muted>Updated {esc(_local(clock.now(), site))}</p>')

    @api.get("/console/dashboard", response_class=HTMLResponse)
    async def dashboard(request: Request, site: str = "") -> HTMLResponse:
        viewer = sessions.require(request, *figure_roles)
        mine = sites_of(viewer)
        if not mine:
            return page("Dashboard", "<p>No sites.</p>", viewer)
        chosen = site_for(viewer, site or mine[0].site_id)
        picker = "".join(f'<option value="{esc(s.site_id)}"{" selected" if s is chosen else ""}>{esc(s.name)}</option>'
                         for s in mine)
        month = month_of(clock.now(), chosen.zone)
        body = (f'<form method=get class="noprint actions"><label for=site>Site</label><select id=site name=site>{picker}'
                f"</select><button type=submit>Show</button></form>"
                f'<section id=live aria-label="Live figures" data-src="/console/dashboard/live?site={esc(chosen.site_id)}">'
                f"{live_figures(chosen)}</section>"
                f'<h2>Monthly report</h2><p class=actions><a class=button href="/console/reports/{esc(chosen.site_id)}/{month}">'
                f'Printable report, {month}</a> <a class=button href="/console/reports/{esc(chosen.site_id)}/{month}.csv">'
                "CSV</a></p>")
        # Polling keeps it dependency-free; every few seconds the figures are fetched again.
        script = (f"<script>setInterval(async()=>{{const s=document.getElementById('live');"
                  f"const r=await fetch(s.dataset.src,{{credentials:'same-origin'}});if(r.ok)s.innerHTML=await r.text();}},"
                  f"{DASHBOARD_REFRESH_SECONDS * 1000});</script>")
        return page("Dashboard", body + script, viewer)

    @api.get("/console/dashboard/live", response_class=HTMLResponse)
    async def dashboard_live(request: Request, site: str = "") -> HTMLResponse:
        viewer = sessions.require(request, *figure_roles)
        return HTMLResponse(live_figures(site_for(viewer, site)), headers={"Cache-Control": "no-store"})

    @api.get("/console/reports/{site_id}/{month}", response_class=HTMLResponse)
    async def report(request: Request, site_id: str, month: str) -> Response:
        viewer = sessions.require(request, *figure_roles)
        as_csv = month.endswith(".csv")
        month = month.removesuffix(".csv")
        if not _is_month(month):
            raise ApiError(422, "month", "expected YYYY-MM")
        site = site_for(viewer, site_id)
        rows = monthly_report(model.views.values(), site_id, month, site.zone)
        if as_csv:
            return PlainTextResponse(report_csv(rows), media_type="text/csv", headers={
                "Content-Disposition": f'attachment; filename="handoff-{site_id}-{month}.csv"'})
        head = "".join(f"<th scope=col>{esc(h.replace('_', ' '))}</th>" for h in rows[0].__dataclass_fields__)
        body_rows = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row.__dict__.values()) + "</tr>" for row in rows)
        return page(f"LEAD monthly report: {site.name}, {month}",
                    f"<p>Referrals made in {month}; targets: enrollment {ENROLLMENT_TARGET:.0%} of referrals, engagement "
                    f"{ENGAGEMENT_TARGET:.0%} of enrollees; warm handoff within 30 minutes.</p>"
                    f'<div style="overflow-x:auto"><table><thead><tr>{head}</tr></thead><tbody>{body_rows}</tbody></table></div>'
                    '<p class="actions noprint"><button type=button onclick="window.print()">Print</button></p>', viewer)

    return api


def _is_month(text: str) -> bool:
    try:
        datetime.strptime(text, "%Y-%m")
        return True
    except ValueError:
        return False


def _local(at: datetime, site: Site | None) -> str:
    return local_time(at, site.zone if site else None)
