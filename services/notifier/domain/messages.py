"""What a page says. Only what a warm handoff needs: route, officer and callback, where the person
is, how to recognise them, and how to acknowledge; and, on every LEAD disclosure, the 42 CFR
Part 2 no-redisclosure notice (short in an SMS, in full in email and webhooks). Never the person's name or date of birth:
the case manager sees those in the console after acknowledging (42 CFR Part 2 minimum necessary).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from services.kernel.clock import spoken_time
from services.kernel.lead import PageRequested

ROUTE_LABEL = {"arrest_diversion": "Arrest diversion", "social_contact": "Social contact", "community": "Community",
               "officer_intervention": "Officer intervention", "officer_prevention": "Officer prevention"}
NO_REDISCLOSURE = ("42 CFR Part 2: this information is protected by federal confidentiality rules; "
                   "further disclosure is prohibited without the person's written consent.")
NO_REDISCLOSURE_SHORT = "42 CFR Part 2: no redisclosure without consent."  # fits an SMS


@dataclass(frozen=True)
class PageMessage:
    subject: str
    text: str  # short form: SMS
    body: str  # long form: email and webhook


def when_met(met_at: datetime | None, zone: tzinfo, now: datetime) -> str:
    """When the officer met the person, as a page says it: 'Fri 04 Dec 10:05 MST, 12 min ago'."""
    if met_at is None:
        return ""
    minutes = max(0, int((now - met_at).total_seconds() // 60))
    ago = f"{minutes} min ago" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min ago"
    return f"{spoken_time(met_at, zone, now)}, {ago}"


def render_page(page: PageRequested, ack_url: str, reply_code: str, escalated: bool = False, met: str = "") -> PageMessage:
    """``met``: ``when_met`` of the page, said first, so that nobody takes an old event for one happening now."""
    route = ROUTE_LABEL[page.referral_type.value]
    prefix = "ESCALATED " if escalated else ""
    subject = f"{prefix}LEAD warm handoff: {route} referral"
    look_for = f" Look for: {page.person_description}." if page.person_description else ""
    met_text = f"met the person {met} at" if met else "is with the person at"
    text = (f"{prefix}LEAD {route}: {page.officer_name} ({page.officer_callback_phone}) {met_text} "
            f"{page.location_description}.{look_for} Ack: {ack_url} or reply ACK {reply_code}. {NO_REDISCLOSURE_SHORT}")
    body = "\n".join([
        subject, "",
        *([f"Officer met the person: {met}"] if met else []),
        f"Officer: {page.officer_name}, call back {page.officer_callback_phone}",
        f"Where: {page.location_description}",
        *([f"Look for: {page.person_description}"] if page.person_description else []),
        "", f"Acknowledge: {ack_url}", f"Or reply to the SMS: ACK {reply_code}", "", NO_REDISCLOSURE,
    ])
    return PageMessage(subject, text, body)


def render_call(page: PageRequested, met: str = "") -> str:
    """What a page's call says: what its SMS says, without the link and the reply code (a key press answers)."""
    route = ROUTE_LABEL[page.referral_type.value]
    look_for = f" Look for: {page.person_description}." if page.person_description else ""
    met_text = f"met the person {met} at" if met else "is with the person at"
    return (f"Handoff LEAD {route} page. {page.officer_name}, call back {page.officer_callback_phone}, {met_text} "
            f"{page.location_description}.{look_for} {NO_REDISCLOSURE_SHORT}")


def render_officer_late(met: str, window_minutes: int) -> str:
    """To the officer whose referral reached Handoff past the warm-handoff window: nobody was paged, and why."""
    return (f"Handoff: your LEAD referral for the person you met {met} reached Handoff after the "
            f"{window_minutes}-minute warm-handoff window, so no case manager was paged to come. It is on the "
            f"outreach team's worklist as a late referral for follow-up. {NO_REDISCLOSURE_SHORT}")


def render_officer_confirmation(case_manager_name: str, met: str = "") -> str:
    """``met``: when the officer met the person (``spoken_time``), so that an officer with two referrals open knows
    which one this is."""
    which = f" for the person you met {met}" if met else ""
    return (f"Handoff: case manager {case_manager_name} acknowledged your LEAD referral{which} and is on the way or "
            f"will call you. {NO_REDISCLOSURE_SHORT}")


def render_officer_still_trying(met: str, trying: list[str]) -> str:
    """To the officer at the first escalation: the on-call has not answered yet, and who is tried now."""
    which = f" for the person you met {met}" if met else ""
    who = ", ".join(trying) if trying else "the backup"
    return (f"Handoff: the on-call case manager has not answered your LEAD referral{which} yet. Now paging: {who}. "
            f"You will hear when someone takes it. {NO_REDISCLOSURE_SHORT}")


def render_deadline_warning(referral_id: str, flag: str, due_local) -> str:
    when = due_local.strftime("%a %d %b %Y")
    if flag.startswith("legal_deadline"):
        state = "has passed" if flag == "legal_deadline_passed" else "is near"
        return (f"Handoff: the legal deadline ({when}) of officer intervention referral {referral_id[:8]} {state} "
                f"and the treatment plan is not complete. Open the referral in the console. {NO_REDISCLOSURE_SHORT}")
    state = "has passed" if flag == "intake_deadline_missed" else "is near"
    return (f"Handoff: the intake deadline ({when}) for LEAD referral {referral_id[:8]} {state} "
            f"and no intake is recorded. Open the referral in the console. {NO_REDISCLOSURE_SHORT}")


def render_reengagement(referral_id: str, when: str, where: str) -> str:
    """To the case manager of an inactive participant police met again: where and when (``spoken_time``), to
    go and find them."""
    return (f"Handoff: police met your inactive LEAD participant (referral {referral_id[:8]}) {when} at {where}. "
            f"A chance to re-engage; open the referral in the console. {NO_REDISCLOSURE_SHORT}")


def render_moved(referral_id: str, when: str, where: str) -> str:
    """To the case manager of an open referral whose call CAD updated: where the person is now (``when``:
    ``spoken_time``)."""
    return (f"Handoff: CAD updated LEAD referral {referral_id[:8]} {when}: the person is now at {where}. "
            f"{NO_REDISCLOSURE_SHORT}")


def render_handoff_missed(page: PageRequested, ack_url: str, steps: int, loops: int) -> PageMessage:
    """To the site's fallback (program managers, outreach): the page went unanswered; take it or find the person."""
    route = ROUTE_LABEL[page.referral_type.value]
    subject = f"MISSED LEAD warm handoff: {route} referral, no case manager acknowledged"
    look_for = f" Look for: {page.person_description}." if page.person_description else ""
    text = (f"MISSED LEAD handoff ({route}): no case manager answered the page, through {_escalation(steps, loops)}. "
            f"{page.officer_name} ({page.officer_callback_phone}) was with the person at {page.location_description}."
            f"{look_for} Top of the outreach worklist. Take it: {ack_url} {NO_REDISCLOSURE_SHORT}")
    body = "\n".join([
        subject, "",
        f"Nobody acknowledged the page, through {_escalation(steps, loops)}.",
        "The referral is open, marked as a missed handoff, at the top of the site's outreach worklist.", "",
        f"Officer: {page.officer_name}, call back {page.officer_callback_phone}",
        f"Where: {page.location_description}",
        *([f"Look for: {page.person_description}"] if page.person_description else []),
        "", f"Take the referral: {ack_url}", "", NO_REDISCLOSURE,
    ])
    return PageMessage(subject, text, body)


def _escalation(steps: int, loops: int) -> str:
    """'every step of the escalation (2 steps), twice over', as a person would say it."""
    step_words = "1 step" if steps == 1 else f"{steps} steps"
    rounds = {1: "once", 2: "twice over"}.get(loops, f"{loops} times over")
    return f"every step of the escalation ({step_words}), {rounds}"


def render_officer_no_case_manager() -> str:
    """To the officer's callback: nobody is coming yet, and what happens next (nothing about the person)."""
    return ("Handoff: no LEAD case manager has acknowledged your referral yet. The program manager and outreach "
            "team have been told and the referral stays open: outreach will look for the person where you "
            f"reported. You may leave when you need to. {NO_REDISCLOSURE_SHORT}")
