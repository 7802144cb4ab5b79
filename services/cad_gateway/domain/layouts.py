"""An agency's CAD file layout, described by a small mapping file rather than code: which column (CSV) or
element path (XML) holds the call's id, time, incident type, dispositions, place and officer, and each
person's name, date of birth, sex and role. One file per call; in a CSV each row is one person of the
call (the call's fields are read from the first row). Pure: bytes in, a ``CallRecord`` out.

    format = "csv"                        # or "xml"
    timezone = "America/Denver"           # for times written without an offset
    time_format = "%m/%d/%Y %H:%M:%S"     # strptime; ISO 8601 when unset
    date_format = "%m/%d/%Y"              # dates of birth; ISO when unset
    [call]                                # column names, or (XML) ElementTree paths from the root
    call_id = "IncidentNumber"
    occurred_at = "ReceivedTime"
    incident_type = "CallType"
    dispositions = ["Disposition"]
    location_text = "Address"
    latitude = "Lat"
    longitude = "Lon"
    officer = "PrimaryUnit"
    [person]                              # XML: ``each`` is the path of one person's element
    each = "Persons/Person"
    component_id = "Seq"
    first_name = "FirstName"
    last_name = "LastName"
    date_of_birth = "DOB"
    sex = "Sex"
    roles = ["Role"]
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException
from pydantic import BaseModel, ConfigDict, Field

from services.cad_gateway.domain.calls import CallPerson, CallRecord
from services.kernel.errors import Rejected

MAX_FILE_BYTES = 1_000_000
MAX_PERSONS = 50


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CallFields(_Strict):
    call_id: str
    occurred_at: str
    incident_type: str
    dispositions: tuple[str, ...] = ()
    location_text: str | None = None
    latitude: str | None = None
    longitude: str | None = None
    officer: str | None = None


class PersonFields(_Strict):
    each: str | None = Field(None, description="XML: the path of each person's element")
    component_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    date_of_birth: str | None = None
    sex: str | None = None
    roles: tuple[str, ...] = ()


class Layout(_Strict):
    format: Literal["csv", "xml"]
    timezone: str = "UTC"
    time_format: str | None = None
    date_format: str | None = None
    call: CallFields
    person: PersonFields = Field(default_factory=lambda: PersonFields.model_validate({}))

    def read(self, data: bytes) -> CallRecord:
        if len(data) > MAX_FILE_BYTES:
            raise Rejected("file", f"larger than {MAX_FILE_BYTES} bytes: not one call")
        rows = self._csv(data) if self.format == "csv" else self._xml(data)
        call, persons = rows
        call_id = call.get("call_id")
        if not call_id:
            raise Rejected(self.call.call_id, "no call id")
        return CallRecord(
            call_id=call_id, occurred_at=self._time(call.get("occurred_at")), incident_type=call.get("incident_type"),
            dispositions=tuple(d for d in call.get("dispositions", "").split("\x1f") if d),
            persons=tuple(self._person(p, i) for i, p in enumerate(persons[:MAX_PERSONS])),
            location_text=call.get("location_text"), latitude=_number(call.get("latitude"), "latitude"),
            longitude=_number(call.get("longitude"), "longitude"), officer=call.get("officer"))

    # --- reading -----------------------------------------------------------------------------------------
    def _csv(self, data: bytes) -> tuple[dict[str, str], list[dict[str, str]]]:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise Rejected("file", "not UTF-8 text") from None
        rows = list(csv.DictReader(io.StringIO(text)))
        if not rows:
            raise Rejected("file", "no rows")
        missing = [c for c in (self.call.call_id, self.call.occurred_at, self.call.incident_type) if c not in rows[0]]
        if missing:
            raise Rejected("file", f"missing columns {missing}")
        return self._fields(self.call, rows[0].get), [self._fields(self.person, row.get) for row in rows]

    def _xml(self, data: bytes) -> tuple[dict[str, str], list[dict[str, str]]]:
        try:
            root = ElementTree.fromstring(data, forbid_dtd=True)
        except (ElementTree.ParseError, DefusedXmlException, ValueError):
            raise Rejected("file", "not well-formed XML (or it declares a DTD)") from None

        def finder(element):
            def find(path: str) -> str | None:
                found = element.find(path) if path not in ("", ".") else element
                return found.text if found is not None and found.text is not None else None
            return find

        people = root.findall(self.person.each) if self.person.each else []
        return self._fields(self.call, finder(root)), [self._fields(self.person, finder(p)) for p in people]

    @staticmethod
    def _fields(fields: BaseModel, find) -> dict[str, str]:
        values: dict[str, str] = {}
        for name, where in fields.model_dump(exclude={"each"}).items():
            if isinstance(where, (list, tuple)):
                found = [v.strip() for w in where if (v := find(w)) and v.strip()]
                if found:
                    values[name] = "\x1f".join(found)
            elif where and (v := find(where)) and v.strip():
                values[name] = v.strip()
        return values

    def _time(self, text: str | None) -> datetime:
        if not text:
            raise Rejected(self.call.occurred_at, "no time")
        try:
            at = datetime.strptime(text, self.time_format) if self.time_format else datetime.fromisoformat(text)
        except ValueError:
            raise Rejected(self.call.occurred_at, "not a time in the layout's format") from None
        return at if at.tzinfo else at.replace(tzinfo=ZoneInfo(self.timezone)).astimezone(UTC)

    def _person(self, values: dict[str, str], index: int) -> CallPerson:
        born = values.get("date_of_birth")
        try:
            birth = (datetime.strptime(born, self.date_format).date() if self.date_format else date.fromisoformat(born)) \
                if born else None
        except ValueError:
            birth = None  # an unreadable date of birth matches nobody and is not guessed
        return CallPerson(component_id=values.get("component_id") or f"row{index}",
                          roles=tuple(r for r in values.get("roles", "").split("\x1f") if r),
                          first_name=values.get("first_name"), last_name=values.get("last_name"),
                          date_of_birth=birth, sex=values.get("sex"))


def _number(text: str | None, field: str) -> float | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise Rejected(field, "not a number") from None
