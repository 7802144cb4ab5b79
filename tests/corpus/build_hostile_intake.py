"""Writes ``hostile_intake.jsonl``: malformed and hostile bodies for both HTTP intakes, each with the
status the intake must answer. Run it again after changing a case: ``python -m tests.corpus.build_hostile_intake``.

A line: {"name", "intake": "referrals" | "child-encounters", "content_type", "body" (text) or
"body_hex" (bytes that are not UTF-8), "expect": HTTP status}. The bodies are built here, not typed
by hand, so that each says what it tries in its name."""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).with_name("hostile_intake.jsonl")
JSON = "application/json"
PAD = "@@PAD@@"  # the reader puts "pad" characters here (a file of megabytes helps nobody)
PAD_SIZES = {"body over 64 KiB of spaces": (" ", 70_000), "a million-character field": ("n", 1_000_000)}

REFERRAL = {
    "cad_event_id": "CORPUS-R", "agency_id": "apd", "site_id": "abq", "referral_type": "social_contact",
    "occurred_at": "2026-11-20T15:42:00-07:00",
    "officer": {"name": "Ofc. D. Sample", "badge_number": "4471", "callback_phone": "+15055550143"},
    "person": {"first_name": "Sam", "last_name": "Example", "date_of_birth": "1987-03-14",
               "description": "red parka"},
    "location": {"description": "bus shelter, 4th St and Gold Ave SW", "latitude": 35.08, "longitude": -106.65},
}
ENCOUNTER = {
    "cad_event_id": "CORPUS-C", "agency_id": "apd", "incident_id": "INC-1",
    "encountered_at": "2026-11-20T22:30:00-07:00",
    "child": {"first_name": "Alex", "last_name": "Example", "date_of_birth": "2016-09-02", "grade": "4"},
    "school_id": "lincoln-es",
    "incident": {"incident_type": "disturbance", "address": "100 Sample St", "narrative": "n", "other_people": []},
}


def changed(base: dict, path: str, value, delete: bool = False) -> dict:
    body = json.loads(json.dumps(base))
    *parents, last = path.split(".")
    node = body
    for part in parents:
        node = node[part]
    if delete:
        node.pop(last, None)
    else:
        node[last] = value
    return body


def syntax_cases(base: dict) -> list[tuple[str, str | bytes, str | None, int]]:
    text = json.dumps(base)
    return [
        ("empty body", "", JSON, 422),
        ("truncated JSON", text[: len(text) // 2], JSON, 400),
        ("trailing comma", text[:-1] + ",}", JSON, 400),
        ("single quotes", text.replace('"', "'"), JSON, 400),
        ("comment in JSON", "// hi\n" + text, JSON, 400),
        *([("NaN latitude", text.replace("35.08", "NaN"), JSON, 422)] if "35.08" in text else
          [("NaN in an unknown field (dropped)", text[:-1] + ', "x": NaN}', JSON, 202)]),
        ("lone brace", "{", JSON, 400),
        ("XML with a JSON content type", "<referral><id>1</id></referral>", JSON, 400),
        ("nested 5000 deep", "[" * 5000 + "]" * 5000, JSON, 400),
        ("not UTF-8", b'{"cad_event_id": "\xc3\x28"}', JSON, 400),
        ("UTF-8 byte order mark (read past)", "\ufeff" + text, JSON, 202),
        ("binary garbage", bytes(range(256)) * 4, JSON, 400),
        ("JSON null", "null", JSON, 422),
        ("JSON array", "[1, 2, 3]", JSON, 422),
        ("JSON string", '"referral"', JSON, 422),
        ("JSON number", "42", JSON, 422),
        ("JSON true", "true", JSON, 422),
        ("empty object", "{}", JSON, 422),
        ("text/plain", text, "text/plain", 415),
        ("form encoded", "cad_event_id=1&agency_id=apd", "application/x-www-form-urlencoded", 415),
        ("XML content type", text, "application/xml", 415),
        ("no content type", text, None, 415),
        ("multipart", text, "multipart/form-data; boundary=x", 415),
        ("body over 64 KiB of spaces", text[:-1] + PAD + "}", JSON, 413),
        ("a million-character field", text[:-1] + ', "pad": "' + PAD + '"}', JSON, 413),
        ("duplicate keys, second one bad", text[:-1] + ', "agency_id": 7}', JSON, 422),
    ]


def referral_cases() -> list[tuple[str, dict, int]]:
    r = REFERRAL
    cases = [
        ("cad_event_id a number", changed(r, "cad_event_id", 12345), 422),
        ("cad_event_id null", changed(r, "cad_event_id", None), 422),
        ("cad_event_id empty", changed(r, "cad_event_id", ""), 422),
        ("cad_event_id with spaces", changed(r, "cad_event_id", "CAD 1"), 422),
        ("cad_event_id path traversal", changed(r, "cad_event_id", "../../etc/passwd"), 422),
        ("cad_event_id SQL", changed(r, "cad_event_id", "1'; DROP TABLE referrals;--"), 422),
        ("cad_event_id 129 characters", changed(r, "cad_event_id", "C" * 129), 422),
        ("cad_event_id unicode", changed(r, "cad_event_id", "CAD-１２３"), 422),
        ("cad_event_id missing", changed(r, "cad_event_id", None, delete=True), 422),
        ("agency_id of another agency", changed(r, "agency_id", "sfpd"), 403),
        ("agency_id a list", changed(r, "agency_id", ["apd"]), 422),
        ("site_id unknown", changed(r, "site_id", "gotham"), 403),
        ("site_id the agency does not serve", changed(r, "site_id", "santa-fe"), 403),
        ("site_id an object", changed(r, "site_id", {"id": "abq"}), 422),
        ("referral_type unknown", changed(r, "referral_type", "jaywalking"), 422),
        ("referral_type upper case", changed(r, "referral_type", "SOCIAL_CONTACT"), 422),
        ("occurred_at a number", changed(r, "occurred_at", 1763680920), 422),
        ("occurred_at zero", changed(r, "occurred_at", 0), 422),
        ("occurred_at without offset", changed(r, "occurred_at", "2026-11-20T15:42:00"), 422),
        ("occurred_at words", changed(r, "occurred_at", "yesterday-ish"), 422),
        ("occurred_at in 2099", changed(r, "occurred_at", "2099-01-01T00:00:00Z"), 422),
        ("occurred_at a month ago", changed(r, "occurred_at", "2026-10-01T00:00:00Z"), 422),
        ("occurred_at an hour ahead", changed(r, "occurred_at", "2026-11-21T06:40:00Z"), 422),
        ("occurred_at year 0", changed(r, "occurred_at", "0000-01-01T00:00:00Z"), 422),
        ("occurred_at day 32", changed(r, "occurred_at", "2026-11-32T00:00:00Z"), 422),
        ("person missing", changed(r, "person", None, delete=True), 422),
        ("person a string", changed(r, "person", "Sam Example"), 422),
        ("first name empty", changed(r, "person.first_name", ""), 422),
        ("first name blanks", changed(r, "person.first_name", "   "), 422),
        ("first name 101 characters", changed(r, "person.first_name", "S" * 101), 422),
        ("last name a number", changed(r, "person.last_name", 7), 422),
        ("date of birth in the future", changed(r, "person.date_of_birth", "2030-01-01"), 422),
        ("date of birth after the referral", changed(r, "person.date_of_birth", "2026-11-21"), 422),
        ("date of birth 1800", changed(r, "person.date_of_birth", "1800-01-01"), 422),
        ("date of birth a number", changed(r, "person.date_of_birth", 19870314), 422),
        ("date of birth February 30", changed(r, "person.date_of_birth", "1987-02-30"), 422),
        ("description 1001 characters", changed(r, "person.description", "d" * 1001), 422),
        ("person extra field", changed(r, "person.ssn", "123-45-6789"), 422),
        ("location missing", changed(r, "location", None, delete=True), 422),
        ("location description empty", changed(r, "location.description", ""), 422),
        ("location description 501 characters", changed(r, "location.description", "l" * 501), 422),
        ("latitude 91", changed(r, "location.latitude", 91), 422),
        ("longitude -181", changed(r, "location.longitude", -181), 422),
        ("latitude words", changed(r, "location.latitude", "north"), 422),
        ("latitude infinity", changed(r, "location.latitude", 1e400), 422),
        ("officer missing", changed(r, "officer", None, delete=True), 422),
        ("officer phone letters", changed(r, "officer.callback_phone", "call me maybe"), 422),
        ("officer phone 40 digits", changed(r, "officer.callback_phone", "1" * 40), 422),
        ("officer phone with a newline", changed(r, "officer.callback_phone", "+1505\n5550143"), 422),
        ("officer name 201 characters", changed(r, "officer.name", "O" * 201), 422),
        ("badge 51 characters", changed(r, "officer.badge_number", "B" * 51), 422),
        ("consent role unknown", changed(r, "consent", {"recipient_roles": ["press"]}), 422),
        ("consent 100 roles", changed(r, "consent", {"recipient_roles": ["officer"] * 100}), 422),
        ("consent expiry a number", changed(r, "consent", {"recipient_roles": ["officer"], "expires_at": 5}), 422),
        ("unknown top-level field", changed(r, "narrative", "what happened"), 422),
        ("__proto__ pollution", changed(r, "__proto__", {"admin": True}), 422),
        ("submitted_by 129 characters", changed(r, "submitted_by", "s" * 129), 422),
        # Hostile, but a referral all the same: accepted with the unsafe characters removed.
        ("bidi override in a name", changed(r, "person.first_name", "Sam\u202emaxE"), 202),
        ("NUL and bell in a name", changed(r, "person.last_name", "Ex\x00am\x07ple"), 202),
        ("escape sequence in a description", changed(r, "person.description", "red\x1b[2Jparka"), 202),
        ("line separator in a location", changed(r, "location.description", "4th St\u2028Gold Ave"), 202),
        ("script tag in a description", changed(r, "person.description", "<script>alert(1)</script>"), 202),
        ("emoji and right-to-left names", changed(changed(r, "person.first_name", "سام"), "person.last_name", "🙂"), 202),
    ]
    return cases


def encounter_cases() -> list[tuple[str, dict, int]]:
    e = ENCOUNTER
    return [
        ("cad_event_id a number", changed(e, "cad_event_id", 1), 422),
        ("cad_event_id with a slash", changed(e, "cad_event_id", "a/b"), 422),
        ("cad_event_id 129 characters", changed(e, "cad_event_id", "C" * 129), 422),
        ("agency_id of another agency", changed(e, "agency_id", "sfpd"), 403),
        ("incident_id empty", changed(e, "incident_id", ""), 422),
        ("incident_id 129 characters", changed(e, "incident_id", "I" * 129), 422),
        ("encountered_at a number", changed(e, "encountered_at", 1763680920), 422),
        ("encountered_at without offset", changed(e, "encountered_at", "2026-11-20T22:30:00"), 422),
        ("encountered_at in 1900", changed(e, "encountered_at", "1900-01-01T00:00:00Z"), 422),
        ("encountered_at in 2999", changed(e, "encountered_at", "2999-01-01T00:00:00Z"), 422),
        ("encountered_at a month ago", changed(e, "encountered_at", "2026-10-20T22:30:00-07:00"), 422),
        ("encountered_at tomorrow", changed(e, "encountered_at", "2026-11-21T22:30:00-07:00"), 422),
        ("encountered_at words", changed(e, "encountered_at", "last night"), 422),
        ("child missing", changed(e, "child", None, delete=True), 422),
        ("child a list", changed(e, "child", ["Alex"]), 422),
        ("child first name empty", changed(e, "child.first_name", ""), 422),
        ("child last name blanks", changed(e, "child.last_name", "  "), 422),
        ("child name 101 characters", changed(e, "child.first_name", "A" * 101), 422),
        ("child date of birth missing", changed(e, "child.date_of_birth", None, delete=True), 422),
        ("child born after the encounter", changed(e, "child.date_of_birth", "2027-01-01"), 422),
        ("child born 1990", changed(e, "child.date_of_birth", "1990-01-01"), 422),
        ("child date of birth a number", changed(e, "child.date_of_birth", 20160902), 422),
        ("child date of birth words", changed(e, "child.date_of_birth", "spring 2016"), 422),
        ("grade 21 characters", changed(e, "child.grade", "g" * 21), 422),
        ("grade a number", changed(e, "child.grade", 4), 422),
        ("school_id 129 characters", changed(e, "school_id", "s" * 129), 422),
        ("school_id a number", changed(e, "school_id", 7), 422),
        ("school name hint 201 characters", changed(e, "school_name_hint", "h" * 201), 422),
        ("home_educated yes", changed(changed(e, "home_educated", "yes"), "school_id", None), 422),
        ("home_educated 1", changed(changed(e, "home_educated", 1), "school_id", None), 422),
        ("home_educated \"true\"", changed(changed(e, "home_educated", "true"), "school_id", None), 422),
        ("home_educated with a school", changed(e, "home_educated", True), 422),
        ("narrative 4001 characters", changed(e, "incident.narrative", "n" * 4001), 422),
        ("51 other people", changed(e, "incident.other_people", ["p"] * 51), 422),
        ("other person 201 characters", changed(e, "incident.other_people", ["p" * 201]), 422),
        ("incident a string", changed(e, "incident", "domestic"), 422),
        ("incident address 501 characters", changed(e, "incident.address", "a" * 501), 422),
        ("incident type 101 characters", changed(e, "incident.incident_type", "t" * 101), 422),
        # Accepted: unknown fields are incident data the notice never carries; unsafe characters removed.
        ("unknown top-level field", changed(e, "weapon", "knife"), 202),
        ("unknown child field", changed(e, "child.hair", "red"), 202),
        ("unknown incident field", changed(e, "incident.victim", "someone"), 202),
        ("bidi override in the child's name", changed(e, "child.first_name", "Al\u202eex"), 202),
        ("NUL in the grade", changed(e, "child.grade", "4\x00"), 202),
        ("script tag in the school hint", changed(e, "school_name_hint", "<img src=x onerror=alert(1)>"), 202),
        ("no school at all (triage)", changed(e, "school_id", None, delete=True), 202),
        ("a school nobody knows (triage)", changed(e, "school_id", "zzz-unknown"), 202),
    ]


def main() -> None:
    lines = []
    for intake, base, cases in (("referrals", REFERRAL, referral_cases()),
                                ("child-encounters", ENCOUNTER, encounter_cases())):
        for name, body, content_type, expect in syntax_cases(base):
            line = {"name": f"{intake}: {name}", "intake": intake, "content_type": content_type, "expect": expect}
            if isinstance(body, bytes):
                line["body_hex"] = body.hex()
            else:
                line["body"] = body
            if name in PAD_SIZES:
                line["pad"] = PAD_SIZES[name]
            lines.append(line)
        for n, (name, body, expect) in enumerate(cases):
            if body.get("cad_event_id") == base["cad_event_id"]:  # each its own event: no case is a retry of another
                body = {**body, "cad_event_id": f"{base['cad_event_id']}-{n}"}
            lines.append({"name": f"{intake}: {name}", "intake": intake, "content_type": JSON, "expect": expect,
                          "body": json.dumps(body, ensure_ascii=False)})
    OUT.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
    print(f"{len(lines)} cases written to {OUT}")


if __name__ == "__main__":
    main()
