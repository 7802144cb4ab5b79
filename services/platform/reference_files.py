"""Reference data from its files: a directory of TOML files (``config/local`` is the embedded default),
or the same entries as the compacted reference topic holds them (``RawReference``), validated into
``ReferenceData``; every id one file names must be defined in the file that holds it.

- ``agencies.toml``: each agency's sites and the SHA-256 of its API token (never the token).
- ``sites.toml``: each LEAD site's accepted referral routes, intake deadline, on-call rotation,
  overrides and escalation policy, and the other pathways it runs.
- ``case_managers.toml``: who can be paged and on which channels.
- ``organizations.toml``: case-management organisations reading referrals as FHIR Tasks.
- ``volunteers.toml``: self-referral volunteers, when they can go and how far they are from each station.
- ``districts.toml``: Handle With Care coordinators and the local authority for home-educated children.
- ``schools.toml`` plus ``calendars/*.ics``: schools and day cares, their start times, contacts and calendars.
- ``identity_providers.toml``: where people sign in.

Validation errors name the file and the field. Personal contact details live here, so these
files belong outside the repo in production (``HANDOFF_REFERENCE_DIR``).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from pydantic import ValidationError

from services.kernel.errors import describe_validation_error
from services.kernel.reference import (
    Agency,
    CaseManager,
    District,
    IdentityProvider,
    Organization,
    ReferenceData,
    ReferenceDataError,
    School,
    Site,
    Volunteer,
)

SECTIONS = {"agencies": (Agency, "agency_id"), "sites": (Site, "site_id"),
            "case_managers": (CaseManager, "case_manager_id"), "schools": (School, "school_id"),
            "districts": (District, "district_id"), "volunteers": (Volunteer, "volunteer_id"),
            "organizations": (Organization, "organization_id"),
            "identity_providers": (IdentityProvider, "provider_id")}


@dataclass
class RawReference:
    """Reference data before validation: what a directory holds, or what the reference topic holds."""

    sections: dict[str, dict[str, dict]] = field(default_factory=lambda: {s: {} for s in SECTIONS})
    calendars: dict[str, str] = field(default_factory=dict)
    closures: dict[str, dict] = field(default_factory=dict)  # "<school>/<date>" -> {school_id, date, reason}
    rosters: dict[str, str] = field(default_factory=dict)  # "<district>/<roster key>" -> school id

    def records(self) -> Iterator[tuple[str, str, str]]:
        """(section, key, body) for every entry: how it is published to the reference topic."""
        for section, entries in self.sections.items():
            for key, body in entries.items():
                yield section, key, json.dumps(body, default=str, sort_keys=True)
        for name, text in self.calendars.items():
            yield "calendars", name, text
        for key, body in self.closures.items():
            yield "closures", key, json.dumps(body, default=str, sort_keys=True)
        for key, school_id in self.rosters.items():
            yield "rosters", key, school_id

    def put(self, section: str, key: str, body: str | None) -> None:
        """Apply one record; ``None`` deletes the entry."""
        target = self.calendars if section == "calendars" else self.closures if section == "closures" \
            else self.rosters if section == "rosters" else self.sections.setdefault(section, {})
        if body is None:
            target.pop(key, None)
        else:
            target[key] = body if section in ("calendars", "rosters") else json.loads(body)


def read_reference_directory(directory: Path) -> RawReference:
    directory = Path(directory)
    if not directory.is_dir():
        raise ReferenceDataError(f"reference data directory {directory} does not exist")
    raw = RawReference()
    for section in SECTIONS:
        path = directory / f"{section}.toml"
        if path.exists():
            raw.sections[section] = dict(_toml(path).get(section, {}))
    for path in sorted((directory / "calendars").glob("*.ics")):
        raw.calendars[path.name] = path.read_text()
    for path in sorted((directory / "rosters").glob("*.json")):
        try:
            entries = json.loads(path.read_text())
        except ValueError:
            raise ReferenceDataError(f"rosters/{path.name}: not JSON") from None
        raw.rosters.update({f"{path.stem}/{key}": str(school) for key, school in entries.items()})
    closures_file = directory / "closures.toml"
    if closures_file.exists():
        for entry in _toml(closures_file).get("closures", []):
            raw.closures[f"{entry['school_id']}/{entry['date']}"] = dict(entry)
    return raw


def _toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ReferenceDataError(f"{path.name}: {exc}") from None


def build_reference_data(raw: RawReference, directory: Path | None = None) -> ReferenceData:
    """Validate raw reference data; errors name the file (or section), the entry and the field."""
    sections: dict[str, dict] = {}
    for section, (model, id_field) in SECTIONS.items():
        entries = {}
        for key, body in raw.sections.get(section, {}).items():
            try:
                entries[key] = model.model_validate({**body, id_field: key})
            except ValidationError as exc:
                raise ReferenceDataError(f"{section}.toml [{section}.{key}]: {describe_validation_error(exc)}") from None
        sections[section] = entries
    closures: dict[str, dict[date, str]] = {}
    for key, body in raw.closures.items():
        try:
            day = date.fromisoformat(str(body["date"]))
            closures.setdefault(str(body["school_id"]), {})[day] = str(body.get("reason") or "closed")
        except (KeyError, ValueError):
            raise ReferenceDataError(f"closures [{key}]: needs school_id and an ISO date") from None
    rosters: dict[str, dict[str, str]] = {}
    for key, school_id in raw.rosters.items():
        district_id, _, roster_key = key.partition("/")
        rosters.setdefault(district_id, {})[roster_key] = school_id
    data = ReferenceData(**sections, calendars=dict(raw.calendars), closures=closures, rosters=rosters,
                         directory=directory)
    _check_references(data)
    return data


def load_reference_data(directory: Path) -> ReferenceData:
    """Read and validate every reference file in ``directory``; missing files mean empty sections."""
    return build_reference_data(read_reference_directory(directory), Path(directory))


def _check_references(data: ReferenceData) -> None:
    """Every id one file names is defined in the file that holds it: the first that is not is the error."""
    for check in (_check_accounts, _check_agencies, _check_sites, _check_staff_and_partners, _check_schools):
        check(data)


def _refuse_unknown(where: str, what: str, named, known) -> None:
    unknown = sorted(set(named) - set(known))
    if unknown:
        raise ReferenceDataError(f"{where}: unknown {what} {unknown}")


def _check_accounts(data: ReferenceData) -> None:
    """People's sign-in accounts and machine clients name a provider in identity_providers.toml."""
    people = [(f"case_managers.toml [case_managers.{p.case_manager_id}]", p.accounts) for p in data.case_managers.values()]
    people += [(f"districts.toml [districts.{d.district_id}.coordinator]", d.coordinator.accounts)
               for d in data.districts.values()]
    people += [(f"schools.toml [schools.{s.school_id}]", c.accounts) for s in data.schools.values()
               for c in (s.primary_contact, s.backup_contact) if c is not None]
    for where, accounts in people:
        for account in accounts:
            provider, _, rest = account.partition(":")
            kind, _, value = rest.partition(":")
            if provider not in data.identity_providers or kind not in ("sub", "email") or not value:
                raise ReferenceDataError(f"{where}: account {account!r} is not '<provider id>:sub:<subject>' or "
                                         "'<provider id>:email:<address>' of a provider in identity_providers.toml")
    clients = [(f"agencies.toml [agencies.{a.agency_id}]", a.clients) for a in data.agencies.values()]
    clients += [(f"organizations.toml [organizations.{o.organization_id}]", o.clients)
                for o in data.organizations.values()]
    for where, named in clients:
        for client in named:
            provider, _, client_id = client.partition(":")
            if provider not in data.identity_providers or not client_id:
                raise ReferenceDataError(f"{where}: client {client!r} is not '<provider id>:<client id>' of a provider "
                                         "in identity_providers.toml")


def _check_agencies(data: ReferenceData) -> None:
    for agency in data.agencies.values():
        where = f"agencies.toml [agencies.{agency.agency_id}]"
        for site_id in agency.sites:
            if site_id not in data.sites:
                raise ReferenceDataError(f"{where}: unknown site {site_id!r}")
        for rule in agency.call_types:
            if rule.site_id and rule.site_id not in agency.sites:
                raise ReferenceDataError(f"{where} call type {rule.incident_type!r}: site {rule.site_id!r} is not one "
                                         "the agency serves")
            if rule.maps_to == "referral" and not agency.dispatch_phone:
                raise ReferenceDataError(f"{where}: dispatch_phone is required when call types map to referrals (a "
                                         "case manager must be able to call back)")
        _refuse_unknown(f"{where[:-1]}.feed]", "staff", agency.feed.tell if agency.feed else (), data.case_managers)
        if agency.hwc_district_id and agency.hwc_district_id not in data.districts:
            raise ReferenceDataError(f"{where}: unknown district {agency.hwc_district_id!r}")


def _check_sites(data: ReferenceData) -> None:
    for site in data.sites.values():
        where = f"sites.toml [sites.{site.site_id}"
        named = set(site.on_call.members) | {o.case_manager_id for o in site.on_call.overrides}
        named |= {t for step in site.escalation.steps for t in step.targets if t != "on_call"}
        _refuse_unknown(f"{where}]", "case managers", named, data.case_managers)
        _refuse_unknown(f"{where}]", "program managers", (*site.program_manager_ids, *site.fallback_ids),
                        data.case_managers)
        if site.quick_response is not None:
            _refuse_unknown(f"{where}.quick_response]", "team leads", site.quick_response.team_lead_ids,
                            data.case_managers)
        if site.self_referral is not None:
            _refuse_unknown(f"{where}.self_referral]", "coordinators", site.self_referral.coordinator_ids,
                            data.case_managers)


def _check_staff_and_partners(data: ReferenceData) -> None:
    for org in data.organizations.values():
        _refuse_unknown(f"organizations.toml [organizations.{org.organization_id}]", "sites", org.sites, data.sites)
    for volunteer in data.volunteers.values():
        where = f"volunteers.toml [volunteers.{volunteer.volunteer_id}]"
        _refuse_unknown(where, "sites", volunteer.sites, data.sites)
        stations = {s for site_id in volunteer.sites if (p := data.sites[site_id].self_referral) for s in p.stations}
        unknown_stations = sorted(set(volunteer.travel_minutes) - stations)
        if unknown_stations:
            raise ReferenceDataError(f"{where}: travel_minutes names unknown stations {unknown_stations}")
    for person in data.case_managers.values():
        _refuse_unknown(f"case_managers.toml [case_managers.{person.case_manager_id}]", "sites", person.sites,
                        data.sites)


def _check_schools(data: ReferenceData) -> None:
    for district in data.districts.values():
        la = district.local_authority_school_id
        if la and la not in data.schools:
            raise ReferenceDataError(f"districts.toml [districts.{district.district_id}]: unknown school {la!r}")
    for school in data.schools.values():
        if school.district_id not in data.districts:
            raise ReferenceDataError(f"schools.toml [schools.{school.school_id}]: unknown district {school.district_id!r}")
        if school.calendar and school.calendar not in data.calendars:
            raise ReferenceDataError(f"schools.toml [schools.{school.school_id}]: calendar {school.calendar} not found")
    for school_id in data.closures:
        if school_id not in data.schools:
            raise ReferenceDataError(f"closures: unknown school {school_id!r}")
