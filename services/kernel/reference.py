"""Reference data: agencies, sites with their schedules, policies and pathways, case managers, volunteers,
schools, organisations and identity providers, as one validated model (``ReferenceData``).

Read from files (``reference_files``), and in a running system from the compacted reference topic that
``handoff reference load`` fills, so that every worker shares it and an update (a new school, a snow day)
needs no restart (``LiveReference``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from enum import Enum
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.kernel.events import Channel, ConsentRole, ReferralType


class ReferenceDataError(ValueError):
    pass


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


class CallTypeRule(_Model):
    """One of an agency's own CAD incident types (and, where it decides, a disposition) and what Handoff
    makes of it: a referral on a pathway, an overdose response, a child encountered, or nothing."""

    incident_type: str = Field(min_length=1, description="the CAD's own incident type code")
    disposition: str | None = Field(None, description="only when the call carries this disposition code")
    maps_to: Literal["referral", "overdose", "child_encountered", "ignore"]
    site_id: str | None = Field(None, description="the site a referral or an overdose goes to")
    referral_type: ReferralType | None = None
    person_roles: tuple[str, ...] = Field((), description="the persons' incident roles it applies to (empty: the "
                                                          "default roles of what it maps to)")
    fatal: bool = Field(False, description="overdose: this disposition means the person died")
    naloxone_given: bool = Field(False, description="overdose: this disposition means naloxone was given")
    children_get_handle_with_care: bool = Field(
        False, description="a child present at such a call (in a child's role: child, juvenile, witness, victim) also "
                           "gets a Handle With Care notice, whatever the call maps to")

    @model_validator(mode="after")
    def _complete(self) -> CallTypeRule:
        if self.maps_to in ("referral", "overdose") and not self.site_id:
            raise ValueError(f"site_id: required when maps_to is {self.maps_to}")
        if (self.maps_to == "referral") != (self.referral_type is not None):
            raise ValueError("referral_type: required for a referral, and only for one")
        if self.referral_type is ReferralType.officer_intervention:
            raise ValueError("referral_type: officer intervention needs the charges' deadline, which CAD does not send")
        return self


class FeedExpectation(_Model):
    """"This CAD sends at least one event every N hours between these hours": a silent feed is a broken
    integration, not a quiet night."""

    every_hours: float = Field(gt=0, le=24 * 7)
    from_hour: int = Field(0, ge=0, le=23, description="site-local hour the expectation starts")
    until_hour: int = Field(24, ge=1, le=24, description="site-local hour it ends")
    timezone: str = "UTC"
    tell: tuple[str, ...] = Field((), description="staff told (empty: the program managers of the agency's sites)")

    _tz = field_validator("timezone")(_zone)


class Agency(_Model):
    agency_id: str
    name: str
    sites: frozenset[str]
    hwc_district_id: str | None = Field(None, description="district whose coordinator triages this agency's unknown schools")
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    # NENA EIDO and file drops: the agency's incident types -> what Handoff makes of them.
    call_types: tuple[CallTypeRule, ...] = ()
    dispatch_phone: str | None = Field(None, pattern=r"^\+?[0-9 ()\-.]{3,32}$",
                                       description="who a case manager calls back when the CAD names no officer's phone")
    feed: FeedExpectation | None = None
    clients: tuple[str, ...] = Field((), description="OAuth clients that act as this agency (client credentials): "
                                                     "'<provider id>:<client id>'")

    def rule_for(self, incident_type: str | None, dispositions: tuple[str, ...]) -> CallTypeRule | None:
        """The rule for a call: one naming its disposition first, then one for the incident type alone."""
        rules = [r for r in self.call_types if incident_type is not None
                 and r.incident_type.casefold() == incident_type.casefold()]
        wanted = {d.casefold() for d in dispositions}
        return next((r for r in rules if r.disposition and r.disposition.casefold() in wanted),
                    next((r for r in rules if r.disposition is None), None))

    def token_matches(self, token: str) -> bool:
        return hmac.compare_digest(hash_token(token), self.token_sha256)


StaffRole = Literal["case_manager", "outreach", "program_manager", "administrator"]
# Who may open the console: staff in their role, a district's coordinator, a school's contact.
ConsoleRole = Literal["case_manager", "outreach", "program_manager", "administrator", "coordinator", "school_contact"]


class CaseManager(_Model):
    """Program staff: case managers, outreach coordinators and program managers (who are paged or warned,
    and who may use the staff API for their sites)."""

    case_manager_id: str
    display_name: str
    role: StaffRole = "case_manager"
    sites: frozenset[str] = frozenset()
    token_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="staff API token hash")
    phone: str | None = None
    email: str | None = None
    webhook_url: str | None = None
    channels: tuple[Channel, ...] = (Channel.sms,)
    max_caseload: int = Field(25, ge=1, le=25)  # domain brief: never over 25
    accounts: tuple[str, ...] = Field((), description="sign-in accounts: '<provider id>:sub:<subject>' or "
                                                     "'<provider id>:email:<verified email>'")
    quiet_hours: QuietHours | None = Field(None, description="low-urgency messages wait until these end; pages don't")

    def token_matches(self, token: str) -> bool:
        return self.token_sha256 is not None and hmac.compare_digest(hash_token(token), self.token_sha256)

    def sees_site(self, site_id: str) -> bool:
        """Administrators see every site (figures only); everyone else their own."""
        return self.role == "administrator" or site_id in self.sites

    def address_for(self, channel: Channel) -> str | None:
        """Where this person is reached on ``channel`` (phone, email address or webhook URL); for push, each device
        where they allowed it in the console (``kernel.push.PushDevices``), so none here."""
        return {Channel.sms: self.phone, Channel.voice: self.phone, Channel.email: self.email,
                Channel.webhook: self.webhook_url}.get(channel)

    @model_validator(mode="after")
    def _channels_have_addresses(self) -> CaseManager:
        missing = [c.value for c in self.channels if c is not Channel.push and not self.address_for(c)]
        if missing:
            raise ValueError(f"channels {missing} have no address")
        return self


class Availability(_Model):
    """A weekly window: on ``days`` (0=Monday) from ``start`` to ``end``, local time (an ``end`` before ``start``
    runs past midnight into the next day). When a volunteer can be paged; a person's quiet hours."""

    days: frozenset[int] = Field(frozenset(range(7)), description="weekdays, 0=Monday")
    start: time
    end: time

    def covers(self, local: datetime) -> bool:
        t, day = local.time(), local.weekday()
        if self.start <= self.end:
            return day in self.days and self.start <= t < self.end
        return (day in self.days and t >= self.start) or ((day - 1) % 7 in self.days and t < self.end)

    def ends_after(self, local: datetime) -> datetime:
        """The end of this window, which covers ``local``: today's ``end``, or tomorrow's for a window past
        midnight entered before it (wall time in ``local``'s zone)."""
        end = datetime.combine(local.date(), self.end, tzinfo=local.tzinfo)
        return end if end > local else datetime.combine(local.date() + timedelta(days=1), self.end,
                                                        tzinfo=local.tzinfo)


class Urgency(str, Enum):
    """How soon a message must reach its person. A warm-handoff page is ``high`` and always goes through; a
    deadline warning, a re-engagement notice or report mail is ``low``, and waits out the person's quiet hours."""

    high = "high"
    low = "low"


class QuietHours(_Model):
    """When a person hears only what is urgent (the staff directory): low-urgency messages wait until it ends."""

    windows: tuple[Availability, ...] = Field(min_length=1)
    timezone: str

    _tz = field_validator("timezone")(_zone)

    def until(self, now: datetime) -> datetime | None:
        """When the quiet hours around ``now`` end (None: it is not quiet now). Windows that meet or overlap are one
        quiet stretch."""
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone)
        ends = None
        for _ in range(len(self.windows) * 8):  # each window can extend the stretch at most once a day of a week
            covering = [w for w in self.windows if w.covers(local)]
            if not covering:
                break
            ends = max(w.ends_after(local) for w in covering)
            local = ends  # in the zone's wall time: across a DST change a window keeps its clock hours
        return None if ends is None else ends.astimezone(now.tzinfo)


def held_until(urgency: Urgency, quiet: QuietHours | None, now: datetime) -> datetime | None:
    """When a message of ``urgency`` may go to a person with ``quiet`` hours: None for at once."""
    if urgency is Urgency.high or quiet is None:
        return None
    return quiet.until(now)


class Volunteer(_Model):
    """A self-referral volunteer ("angel"): paged from a pool, not on call. Eligible while their
    background check is current; paged only within their availability and travel time."""

    volunteer_id: str
    display_name: str
    sites: frozenset[str] = Field(min_length=1)
    phone: str | None = None
    email: str | None = None
    channels: tuple[Channel, ...] = (Channel.sms,)
    cleared_until: date = Field(description="background check valid until (the program's eligibility)")
    availability: tuple[Availability, ...] = Field((), description="empty: any time")
    travel_minutes: dict[str, int] = Field({}, description="station id -> minutes from the volunteer")
    role: Literal["volunteer"] = "volunteer"
    quiet_hours: QuietHours | None = Field(None, description="low-urgency messages wait until these end; pages don't")

    def address_for(self, channel: Channel) -> str | None:
        return {Channel.sms: self.phone, Channel.email: self.email}.get(channel)

    def can_go(self, site_id: str, station_id: str, local: datetime, max_travel_minutes: int) -> bool:
        """Eligible, available at ``local`` (site time) and near enough to the station."""
        travel = self.travel_minutes.get(station_id)
        return (site_id in self.sites and local.date() <= self.cleared_until and travel is not None
                and travel <= max_travel_minutes
                and (not self.availability or any(a.covers(local) for a in self.availability)))

    @model_validator(mode="after")
    def _channels_have_addresses(self) -> Volunteer:
        missing = [c.value for c in self.channels if not self.address_for(c)]
        if missing:
            raise ValueError(f"channels {missing} have no address (volunteers are reached by SMS or email)")
        return self


class Override(_Model):
    """A case manager covers the rotation between ``start`` and ``end`` (site-local wall time)."""

    start: datetime
    end: datetime
    case_manager_id: str


class OnCallRotation(_Model):
    members: tuple[str, ...] = Field(min_length=1)
    starts_on: datetime  # site-local wall time of the first handoff; its time of day is the daily handoff time
    shift_hours: int = Field(24, ge=1)
    overrides: tuple[Override, ...] = ()


class EscalationStepConfig(_Model):
    targets: tuple[str, ...] = Field(min_length=1, description="'on_call' or case manager ids")
    escalate_after_minutes: float = Field(gt=0, description="time to acknowledge before the next step")
    channels: tuple[Channel, ...] = Field((), description="how this step reaches its targets (e.g. push and sms, "
                                                          "then voice); empty: each person's own channels")


class EscalationPolicyConfig(_Model):
    steps: tuple[EscalationStepConfig, ...] = Field(min_length=1)
    loops: int = Field(1, ge=1, le=10, description="how many times the whole policy runs")


class QuickResponsePathway(_Model):
    """Naloxone plus: the site's Quick Response Team follows up every overdose within its window
    (about 72 hours in most programs, 48 in Huntington WV, several days elsewhere)."""

    follow_up_hours: int = Field(72, ge=1, le=14 * 24, description="window from the overdose to the follow-up")
    warn_before_hours: float = Field(12, gt=0, description="the team lead is told this long before the window closes")
    team_lead_ids: tuple[str, ...] = Field(min_length=1, description="staff told when a window is closing")
    family_support: bool = Field(False, description="a fatal overdose opens a family-support follow-up")
    contact_target: float = Field(0.5, gt=0, le=1, description="share of follow-ups the team should reach (the funnel's "
                                                               "target; Huntington reached 35 of 71)")
    state_report: bool = Field(False, description="the state's 24-hour overdose report fields (West Virginia's law) are "
                                                  "offered to the program's staff")


class Station(_Model):
    """Where a person can ask for help in person: a police station or post."""

    name: str
    address: str = Field(description="where the volunteer goes (a public building's address)")


class SelfReferralPathway(_Model):
    """Self-referral (the Angel / PAARI model): a person asks the police for help; a pool of volunteers
    is paged, the first to accept goes, and the coordinators hear of a walk-in nobody takes."""

    stations: dict[str, Station] = Field(min_length=1, description="station id -> where people can walk in")
    page_at_once: int = Field(3, ge=1, le=20, description="how many volunteers are paged, nearest first")
    accept_within_minutes: float = Field(10, gt=0, description="nobody accepting by then: the coordinators are told")
    coordinator_ids: tuple[str, ...] = Field(min_length=1, description="staff told of an unanswered walk-in")
    placement_target_hours: float = Field(24, gt=0, description="from the walk-in to placement in treatment")
    max_travel_minutes: int = Field(60, ge=1, description="volunteers further than this from the station are not paged")
    mileage_cents_per_mile: int = Field(70, ge=0, le=1000, description="mileage reimbursement rate")
    placement_target: float = Field(0.5, gt=0, le=1, description="share of walk-ins placed within the target hours")


class Site(_Model):
    site_id: str
    name: str
    timezone: str
    accepted_referral_types: frozenset[ReferralType]
    intake_deadline_days: int = Field(ge=1, le=90)
    no_contact_flag_days: int = Field(7, ge=1, le=90)
    # A referral that reaches Handoff longer than this after the officer met the person is not a warm handoff:
    # nobody is paged for it; it goes to the outreach worklist as a late referral.
    warm_handoff_window_minutes: int = Field(120, ge=15, le=24 * 60)
    on_call: OnCallRotation
    escalation: EscalationPolicyConfig
    program_manager_ids: tuple[str, ...] = ()
    # Who is told when a page goes unacknowledged through every step (a missed warm handoff);
    # empty: the site's program managers and outreach coordinators (ReferenceData.handoff_fallback).
    fallback_ids: tuple[str, ...] = ()
    # The program's standard consent form, when CAD sends none (42 CFR Part 2 scope by recipient role).
    # A prosecutor is never in it by default: that disclosure needs the person's own consent.
    default_consent_roles: frozenset[ConsentRole] = frozenset(ConsentRole) - {ConsentRole.prosecutor}
    # Officer intervention: who at the prosecutor's office hears of completion or of the deadline
    # passing, and how long before the deadline the case manager and program managers are warned.
    prosecutor: Contact | None = None
    legal_warning_days: int = Field(14, ge=1, le=90)
    # The deflection pathways the site runs besides LEAD's referral routes (None: not run).
    quick_response: QuickResponsePathway | None = None
    self_referral: SelfReferralPathway | None = None

    _tz = field_validator("timezone")(_zone)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Contact(_Model):
    """A Handle With Care point of contact (principal, counselor, coordinator); email and/or webhook."""

    contact_id: str
    display_name: str
    email: str | None = None
    webhook_url: str | None = None
    token_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="console/API token hash")
    accounts: tuple[str, ...] = Field((), description="sign-in accounts: '<provider id>:sub:<subject>' or "
                                                     "'<provider id>:email:<verified email>'")

    def token_matches(self, token: str) -> bool:
        return self.token_sha256 is not None and hmac.compare_digest(hash_token(token), self.token_sha256)

    def address_for(self, channel: Channel) -> str | None:
        """Where this person is reached on ``channel`` (phone, email address or webhook URL)."""
        return {Channel.email: self.email, Channel.webhook: self.webhook_url}.get(channel)

    @model_validator(mode="after")
    def _reachable(self) -> Contact:
        if not (self.email or self.webhook_url):
            raise ValueError("a contact needs an email or a webhook_url")
        return self

    @property
    def channels(self) -> tuple[Channel, ...]:
        return tuple(c for c in (Channel.email, Channel.webhook) if self.address_for(c))


class District(_Model):
    district_id: str
    name: str
    coordinator: Contact
    local_authority_school_id: str | None = Field(
        None, description="directory entry (kind local_authority) for home-educated children")
    # Handle With Care lead times for this district's schools; unset: the settings' (hwc_*_minutes).
    hwc_backup_lead_minutes: float | None = Field(None, ge=0)
    hwc_coordinator_lead_minutes: float | None = Field(None, ge=0)
    hwc_late_step_minutes: float | None = Field(None, gt=0)


class School(_Model):
    school_id: str
    name: str
    district_id: str
    kind: Literal["school", "day_care", "local_authority"] = "school"
    timezone: str
    day_starts_at: time
    calendar: str | None = Field(None, description="file in calendars/ (RFC 5545)")
    school_days: tuple[int, ...] = Field((0, 1, 2, 3, 4), description="weekdays open, 0=Monday; day cares may open more")
    primary_contact: Contact
    backup_contact: Contact | None = None
    roster_ids: tuple[str, ...] = Field((), description="the school's org sourcedId or identifier in the district's "
                                                       "OneRoster files, when it is not the school_id")

    _tz = field_validator("timezone")(_zone)


class IdentityProvider(_Model):
    """An OpenID Connect provider whose people sign in to the console (an agency's or the program's Entra
    ID, Okta, Google or Keycloak): its issuer, Handoff's client there, and what counts as MFA. Who may sign
    in and as whom is the directory's (``accounts``), never a claim taken as it is. The client secret is
    not here: ``HANDOFF_OIDC_SECRET_<PROVIDER_ID>`` names it, or ``..._FILE`` a file holding it."""

    provider_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str = Field(description="on the sign-in button, e.g. 'Albuquerque Police (Entra ID)'")
    issuer: str = Field(pattern=r"^(https://|http://127\.0\.0\.1[:/])", description="exactly as discovery states it")
    client_id: str
    organization: str = Field(description="whose people sign in there (an agency, the district, the program)")
    scopes: tuple[str, ...] = ("openid", "email")
    require_mfa: bool = Field(True, description="refuse a sign-in whose token shows no second factor")
    mfa_methods: tuple[str, ...] = Field(("mfa", "otp", "hwk", "swk", "sc", "fpt", "face"),
                                         description="amr values (RFC 8176) that are a second factor here")
    mfa_acr_values: tuple[str, ...] = Field((), description="acr values that mean MFA here, where it says so in acr")
    groups_claim: str = Field("groups", description="the ID token claim that lists the person's groups there")
    group_roles: dict[str, ConsoleRole] = Field(
        {}, description="when set, a group there -> the Handoff role it grants: the directory's role must be one "
                        "the person's groups grant (a group not listed grants nothing)")
    api_audience: str = Field("handoff-api", description="the aud an access token from here must name for Handoff's "
                                                         "APIs (machine clients: CAD, SMART Backend Services)")

    @property
    def secret_variable(self) -> str:
        return "HANDOFF_OIDC_SECRET_" + self.provider_id.upper().replace("-", "_")

    def roles_granted(self, claims: dict) -> frozenset[str] | None:
        """The roles the token's groups grant through ``group_roles``; None where roles are the directory's alone."""
        if not self.group_roles:
            return None
        groups = claims.get(self.groups_claim) or []
        groups = [groups] if isinstance(groups, str) else groups
        # Exact names only (a Keycloak full path is a different name): a near match grants nothing.
        return frozenset(self.group_roles[g] for g in groups if isinstance(g, str) and g in self.group_roles)


class Organization(_Model):
    """A case-management organisation that reads and updates LEAD referrals as FHIR Tasks (the SDOH
    Clinical Care referral pattern). It sees a referral only when the person's 42 CFR Part 2 consent
    names its ``consent_role``."""

    organization_id: str
    name: str
    sites: frozenset[str] = Field(min_length=1)
    token_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="FHIR API token hash")
    consent_role: ConsentRole = ConsentRole.case_manager
    subscription_url: str | None = Field(None, description="rest-hook endpoint for id-only Task notifications")
    clients: tuple[str, ...] = Field((), description="SMART Backend Services clients that act as this organisation: "
                                                     "'<provider id>:<client id>'")

    def token_matches(self, token: str) -> bool:
        return self.token_sha256 is not None and hmac.compare_digest(hash_token(token), self.token_sha256)


class ReferenceData(_Model):
    agencies: dict[str, Agency] = {}
    sites: dict[str, Site] = {}
    case_managers: dict[str, CaseManager] = {}
    schools: dict[str, School] = {}
    districts: dict[str, District] = {}
    volunteers: dict[str, Volunteer] = {}
    organizations: dict[str, Organization] = {}
    identity_providers: dict[str, IdentityProvider] = {}
    calendars: dict[str, str] = {}                   # file name -> RFC 5545 text
    closures: dict[str, dict[date, str]] = {}        # school id -> day -> reason (snow days, added at run time)
    # district id -> roster key (keyed hash of a student's name and date of birth) -> school id: from the
    # district's OneRoster files (handoff reference roster), replaced whole on each import.
    rosters: dict[str, dict[str, str]] = {}
    directory: Path | None = None

    def site(self, site_id: str) -> Site | None:
        return self.sites.get(site_id)

    def handoff_fallback(self, site_id: str) -> list[CaseManager]:
        """Who hears of a missed warm handoff at a site: its ``fallback_ids``, or else its program
        managers and the outreach coordinators who work the site."""
        site = self.sites.get(site_id)
        if site is None:
            return []
        ids = site.fallback_ids or (*site.program_manager_ids, *sorted(
            cm.case_manager_id for cm in self.case_managers.values() if cm.role == "outreach" and site_id in cm.sites))
        return [self.case_managers[i] for i in dict.fromkeys(ids) if i in self.case_managers]


class LiveReference:
    """The current ``ReferenceData``, replaced whole when the reference topic changes: services read
    ``reference.sites`` etc. through it and see updates without a restart."""

    def __init__(self, data: ReferenceData) -> None:
        self.current = data
        self._on_replace: list[Callable[[], None]] = []

    def replace(self, data: ReferenceData) -> None:
        self.current = data
        for changed in self._on_replace:
            changed()

    def on_replace(self, changed: Callable[[], None]) -> None:
        """Call ``changed`` after each replacement (timers whose due times read the reference data re-index)."""
        self._on_replace.append(changed)

    def __getattr__(self, name: str):
        return getattr(self.current, name)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()

