"""``handoff``: one command line for running services and for operator tasks.

    handoff stack up                  the whole system locally (Kafka, registry, services, dev inbox, demo events)
    handoff run SERVICE               one worker (referral-intake, notifier, handle-with-care, quick-response,
                                      self-referral, cad-gateway) or the HTTP api
    handoff topics create             create every topic with its partition count
    handoff schemas register|check    register schemas with the registry / check BACKWARD compatibility
    handoff reference check|load      validate reference data / publish it to the reference topic
    handoff reference roster DIR      import a district's OneRoster files (which school each child attends)
    handoff hwc close|reopen          a run-time school closure (snow day)
    handoff dlq list|show|resubmit    what was dead-lettered and why; one in full; send one back, as it was or corrected
    handoff audit export --from --to  the audit trail (sign-ins, denials, disclosures) as CSV for an auditor
    handoff hwc due --school --at     when a Handle With Care notice is due (--explain says why)
    handoff agency-token AGENCY       a new API token for an agency and the hash for agencies.toml
    handoff connect watch DIR         ingest a CAD's file drop (--agency, --format eido|csv|xml, --layout)
    handoff connect eido-ws URL       subscribe to an agency's EIDO server (NENA-STA-024) --agency ID
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from services.platform.logs import configure_logging
from services.platform.settings import REPO_ROOT, Settings

cli = typer.Typer(help=__doc__.split("\n\n")[0], no_args_is_help=True, add_completion=False)
topics_cli = typer.Typer(help="Kafka topics.", no_args_is_help=True)
schemas_cli = typer.Typer(help="Avro schemas and the registry.", no_args_is_help=True)
reference_cli = typer.Typer(help="Reference data.", no_args_is_help=True)
dlq_cli = typer.Typer(help="The dead-letter topic.", no_args_is_help=True)
audit_cli = typer.Typer(help="The audit trail (CJIS 5.4.1.1).", no_args_is_help=True)
hwc_cli = typer.Typer(help="Handle With Care operator tasks.", no_args_is_help=True)
stack_cli = typer.Typer(help="The local, Docker-free stack.", no_args_is_help=True)
connect_cli = typer.Typer(help="Connectors to the systems agencies run (CAD file drops).", no_args_is_help=True)
keys_cli = typer.Typer(help="Key-encryption keys (envelope encryption of personal data).", no_args_is_help=True)
erasure_cli = typer.Typer(help="Erasure receipts, for counsel.", no_args_is_help=True)
for sub, name in ((topics_cli, "topics"), (schemas_cli, "schemas"), (reference_cli, "reference"), (dlq_cli, "dlq"),
                  (audit_cli, "audit"), (hwc_cli, "hwc"), (stack_cli, "stack"), (connect_cli, "connect"),
                  (keys_cli, "keys"), (erasure_cli, "erasure")):
    cli.add_typer(sub, name=name)

ConfigDir = Annotated[Path | None, typer.Option("--config", help="reference data directory (default: settings)")]


def settings(**overrides) -> Settings:
    s = Settings(**{k: v for k, v in overrides.items() if v is not None})
    configure_logging(s.log_level, s.log_format)
    return s


@cli.command()
def run(service: Annotated[str, typer.Argument(help="referral-intake | notifier | handle-with-care | quick-response | self-referral | cad-gateway | api | all (every one in this process: a small site)")]) -> None:
    """Run one service (or, with ``all``, every service and the API in this one process) until Ctrl-C / SIGTERM."""
    from services import runtime

    s = settings()
    configure_logging(s.log_level, s.log_format, service=service)
    if service == "all":
        asyncio.run(runtime.serve_all(s))
        return
    if service == "api":
        import uvicorn

        uvicorn.run(runtime.build_http_app(s), host=s.http_host, port=s.http_port, log_config=None, access_log=False)
        return
    if service not in runtime.WORKERS:
        raise typer.BadParameter(f"one of {', '.join(runtime.WORKERS)}, api", param_hint="SERVICE")
    ready_file = s.data_dir / "run" / f"{service}.ready"
    ready_file.parent.mkdir(parents=True, exist_ok=True)
    ready_file.unlink(missing_ok=True)
    try:
        asyncio.run(runtime.serve(service, s, ready=ready_file.touch))
    finally:
        ready_file.unlink(missing_ok=True)


@topics_cli.command("acls")
def topics_acls(show: Annotated[bool, typer.Option("--show", help="print the grants, change nothing")] = False) -> None:
    """Grant each service's principal (User:<service>) its ACLs: read what it subscribes to and follows, write
    what it writes, and its own group and internal topics. Run as the broker's administrator, after topics create."""
    from services.access import service_access
    from services.messaging.kafka import create_acls

    s = settings()
    grants = [grant for access in service_access().values() for grant in access.grants(s.topic_prefix)]
    if show:
        for g in grants:
            typer.echo(f"{g.principal}\tALLOW {g.operation.name}\t{g.resource.name} {g.pattern.name} {g.name}")
        return
    typer.echo(f"granted {asyncio.run(create_acls(s, grants))} ACL(s) to {len(service_access())} principals")


@topics_cli.command("create")
def topics_create() -> None:
    """Create every topic Handoff uses (the kernel's and each service's) that does not exist yet."""
    from services import runtime
    from services.messaging.kafka import ensure_topics

    created = asyncio.run(ensure_topics(settings(), runtime.TOPICS))
    typer.echo(f"created {len(created)} topic(s)" + (": " + ", ".join(created) if created else ""))


@schemas_cli.command("register")
def schemas_register() -> None:
    """Register every schema under its record name and set the registry to BACKWARD compatibility."""
    from services.messaging.avro import AvroCodec, HttpSchemaRegistry, registry_from_url
    from services.runtime import EVENTS

    async def go() -> dict:
        registry = registry_from_url(settings().schema_registry_url)
        try:
            if isinstance(registry, HttpSchemaRegistry):
                await registry.set_compatibility("BACKWARD")
            return await AvroCodec(registry, EVENTS).register_all()
        finally:
            await registry.close()

    for name, schema_id in asyncio.run(go()).items():
        typer.echo(f"{schema_id:>5}  {name}")


@schemas_cli.command("check")
def schemas_check(against: Annotated[Path, typer.Argument(help="directory of the previous .avsc files")]) -> None:
    """Check every event's schema (generated from its model) against its previous version in AGAINST (BACKWARD)."""
    from services.messaging.contract import avro_schema_of, backward_incompatibilities
    from services.runtime import EVENTS

    failed = 0
    for cls in EVENTS:
        old = against / f"{cls.avro_schema}.avsc"
        if old.exists():
            problems = backward_incompatibilities(avro_schema_of(cls), json.loads(old.read_text()))
            for problem in problems:
                typer.echo(f"{old.name}: {problem}", err=True)
            failed += bool(problems)
    raise typer.Exit(1 if failed else 0)


@schemas_cli.command("write")
def schemas_write() -> None:
    """Write schemas/*.avsc from the event models (the files are generated: edit the events modules)."""
    from services.messaging.contract import main as write
    from services.runtime import EVENTS

    raise typer.Exit(write([], EVENTS))


@reference_cli.command("check")
def reference_check(config: ConfigDir = None) -> None:
    """Validate the reference data directory and summarise it."""
    from services.kernel.reference import (
        ReferenceDataError,
    )
    from services.platform.reference_files import load_reference_data

    try:
        data = load_reference_data(config or settings().reference_dir)
    except ReferenceDataError as exc:
        typer.echo(f"invalid: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{len(data.agencies)} agencies, {len(data.sites)} sites, {len(data.case_managers)} case managers, "
               f"{len(data.districts)} districts, {len(data.schools)} schools: valid")


@reference_cli.command("load")
def reference_load(config: ConfigDir = None) -> None:
    """Validate a reference directory and publish what changed to the reference topic (workers pick it up live).

    Entries the directory no longer has are removed; run-time closures are kept unless the
    directory has a closures.toml.
    """
    from services.kernel.reference import (
        ReferenceDataError,
    )
    from services.messaging.kafka import ensure_topics
    from services.messaging.reference_feed import publish_reference, read_reference
    from services.platform.reference_files import build_reference_data, read_reference_directory

    s = settings()
    directory = config or s.reference_dir
    try:
        wanted = read_reference_directory(directory)
        build_reference_data(wanted)
    except ReferenceDataError as exc:
        typer.echo(f"not loaded: {exc}", err=True)
        raise typer.Exit(1) from None

    async def go() -> int:
        from services import runtime

        await ensure_topics(s, runtime.TOPICS)
        current = await read_reference(s)
        keep_closures = not (directory / "closures.toml").exists()
        keep_rosters = not (directory / "rosters").exists()  # imported by `reference roster`, not kept in files
        have = {(sec, key): body for sec, key, body in current.records()}
        want = {(sec, key): body for sec, key, body in wanted.records()}
        if keep_closures:
            want.update({k: v for k, v in have.items() if k[0] == "closures"})
        if keep_rosters:
            want.update({k: v for k, v in have.items() if k[0] == "rosters"})
        changes = [(sec, key, body) for (sec, key), body in want.items() if have.get((sec, key)) != body]
        changes += [(sec, key, None) for (sec, key) in have if (sec, key) not in want]
        return await publish_reference(s, changes)

    typer.echo(f"published {asyncio.run(go())} change(s) to the reference topic")


@reference_cli.command("roster")
def reference_roster(folder: Annotated[Path, typer.Argument(help="the district's OneRoster 1.1/1.2 CSV bulk files")],
                     district: Annotated[str, typer.Option("--district", help="the district they come from")],
                     config: ConfigDir = None,
                     on: Annotated[datetime | None, typer.Option(
                         "--on", formats=["%Y-%m-%d"],
                         help="the day the roster is for (default today): a student counts when an enrollment "
                              "covers it, so a roster exported before the school year starts is imported for its "
                              "first day")] = None) -> None:
    """Import a district's roster (which school each student attends) for Handle With Care, replacing the last.

    Only a keyed hash of each student's name and date of birth and the school are kept (HANDOFF_ROSTER_KEY,
    else the link-signing key): no names, no dates. Published to the reference topic, or written to
    the reference directory's rosters/ when the workers read files.
    """
    import json
    import os
    from datetime import date
    from functools import partial

    from services.handle_with_care.domain.roster import read_roster
    from services.handle_with_care.entrypoints.worker import roster_secret
    from services.kernel.errors import Rejected
    from services.kernel.identity import roster_key
    from services.kernel.reference import (
        ReferenceDataError,
    )
    from services.messaging.reference_feed import publish_reference, read_reference
    from services.platform.reference_files import build_reference_data, load_reference_data

    s = settings()
    secret = roster_secret(s)
    if not secret:
        raise typer.BadParameter("set HANDOFF_ROSTER_KEY (or HANDOFF_LINK_SIGNING_KEY) first", param_hint="--district")
    directory = config or s.reference_dir
    from_topic = s.reference_source == "kafka" and config is None
    try:
        reference = build_reference_data(asyncio.run(read_reference(s))) if from_topic \
            else load_reference_data(directory)
    except ReferenceDataError as exc:
        typer.echo(f"reference data invalid: {exc}", err=True)
        raise typer.Exit(1) from None
    if district not in reference.districts:
        raise typer.BadParameter(f"unknown district {district!r}", param_hint="--district")
    files = {p.name: p.read_text(encoding="utf-8-sig") for p in Path(folder).glob("*.csv")}
    schools = [school for school in reference.schools.values() if school.district_id == district]
    try:
        roster = read_roster(files, schools, on.date() if on else date.today(), partial(roster_key, secret))
    except Rejected as exc:
        typer.echo(f"not imported: {exc.field}: {exc.detail}", err=True)
        raise typer.Exit(1) from None
    if from_topic:
        current = asyncio.run(read_reference(s)).rosters
        mine = {k: v for k, v in current.items() if k.startswith(f"{district}/")}
        want = {f"{district}/{key}": school_id for key, school_id in roster.entries.items()}
        changes = [("rosters", k, v) for k, v in want.items() if mine.get(k) != v]
        changes += [("rosters", k, None) for k in mine if k not in want]  # replaced, not accumulated
        asyncio.run(publish_reference(s, changes))
    else:
        target = Path(directory) / "rosters" / f"{district}.json"
        target.parent.mkdir(exist_ok=True)
        temporary = target.with_suffix(".tmp")
        temporary.write_text(json.dumps(roster.entries, sort_keys=True))
        os.chmod(temporary, 0o600)
        os.replace(temporary, target)  # replaced whole, never merged
    typer.echo(f"{district}: {len(roster.entries)} students placed at {len(set(roster.entries.values()))} schools; "
               f"left out: {roster.without_birth_date} without a date of birth, {roster.at_unknown_schools} at schools "
               f"not in the directory, {roster.ambiguous} enrolled at several schools with no primary one")


@audit_cli.command("export")
def audit_export(since: Annotated[datetime, typer.Option("--from", help="from this time, UTC: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS")],
                 until: Annotated[datetime, typer.Option("--to", help="to this time, not included")],
                 out: Annotated[Path | None, typer.Option(help="write the CSV here (default: standard output)")] = None,
                 ) -> None:
    """The audit trail between two times as CSV for an agency's auditor: every sign-in and its failures,
    sign-out, expired session, denied access and disclosure, with when, component, event, user, outcome,
    reason and where from. Ids only: no participant's or child's data is in the trail to export."""
    import csv
    from datetime import UTC

    from services.ops import AUDIT_COLUMNS, read_audit

    since, until = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (since, until))
    if until <= since:
        raise typer.BadParameter("--to must be after --from")
    rows = asyncio.run(read_audit(settings(), since, until))
    target = out.open("w", newline="") if out else sys.stdout
    try:
        writer = csv.DictWriter(target, fieldnames=AUDIT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    finally:
        if out:
            target.close()
    typer.echo(f"{len(rows)} audit record(s) from {since.isoformat()} to {until.isoformat()}", err=True)


async def _with_subject_keys(s: Settings, use):
    from services.messaging.subject_keys import SubjectKeys
    from services.platform.crypto import key_provider

    keys = SubjectKeys(s, key_provider(s))
    await keys.start()
    try:
        return await use(keys)
    finally:
        await keys.stop()


@cli.command("erase")
def erase(subject: Annotated[str, typer.Argument(help="the subject's id: a referral, child notice or walk-in id")],
          reason: Annotated[str, typer.Option("--reason", help="the grounds (a ticket or order number): no names")],
          by: Annotated[str, typer.Option("--by", help="your staff id, for the receipt")]) -> None:
    """Destroy SUBJECT's data keys: every value sealed under them, wherever a copy of it is, reads as erased from
    now on. Writes an erasure receipt per key to the audit topic and prints its id."""
    from services.messaging.events import ErasureReason

    receipts = asyncio.run(_with_subject_keys(settings(), lambda keys: keys.destroy(
        subject, ErasureReason.erasure_requested, requested_by=by, note=reason)))
    if not receipts:
        typer.echo(f"{subject}: no live data key (never issued, or erased before)", err=True)
        raise typer.Exit(1)
    for receipt in receipts:
        typer.echo(f"erased: key {receipt.key_id} ({receipt.covers}); receipt {receipt.receipt_id}")


@erasure_cli.command("show")
def erasure_show(receipt_id: Annotated[str, typer.Argument(help="the receipt's id (handoff erase prints it)")]) -> None:
    """Print an erasure receipt: who asked, when, why, which key and what it covered."""
    from services.ops import erasure_receipt

    receipt = asyncio.run(erasure_receipt(settings(), receipt_id))
    if receipt is None:
        typer.echo(f"no erasure receipt {receipt_id}", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(receipt.model_dump(mode="json"), indent=2))


@keys_cli.command("rotate")
def keys_rotate() -> None:
    """Make a new key-encryption key and re-wrap every live data key under it: no data record is touched. The
    previous key still opens what a worker has not re-read yet; retire it after (handoff keys retire)."""
    async def rotate(keys) -> tuple[str, str, int]:
        old = keys.provider.current
        new = keys.provider.rotate()
        return old, new, await keys.rewrap()

    old, new, count = asyncio.run(_with_subject_keys(settings(), rotate))
    typer.echo(f"key-encryption key {new} is current; {count} data key(s) re-wrapped. Retire the previous one "
               f"once every worker has read them: handoff keys retire {old}")


@keys_cli.command("retire")
def keys_retire(kek_id: Annotated[str, typer.Argument(help="a previous key-encryption key's id")]) -> None:
    """Destroy a previous key-encryption key; refused while a live data key is still wrapped under it."""
    async def retire(keys) -> int:
        still = keys.wrapped_under(kek_id)
        if not still:
            keys.provider.retire(kek_id)
        return still

    still = asyncio.run(_with_subject_keys(settings(), retire))
    if still:
        typer.echo(f"{still} live data key(s) are still wrapped under {kek_id}: run handoff keys rotate first", err=True)
        raise typer.Exit(1)
    typer.echo(f"key-encryption key {kek_id} retired")


@dlq_cli.command("list")
def dlq_list(limit: int = 100, show_bytes: Annotated[bool, typer.Option(help="print the original bytes (hex)")] = False) -> None:
    """List dead-lettered records: where they came from, and why they failed."""
    from services.ops import read_dead_letters_with_offsets

    records = asyncio.run(read_dead_letters_with_offsets(settings(), limit))
    for dlq_offset, letter in records:
        typer.echo(_letter_line(dlq_offset, letter))
        if show_bytes and letter.original_value is not None:
            typer.echo(f"    {letter.original_value.hex()}")
    typer.echo(f"{len(records)} dead-lettered record(s)")


def _letter_line(dlq_offset: int, letter) -> str:
    reduced = f"  reduced: {letter.original_size} bytes, sha256 {letter.original_sha256}" if letter.original_truncated else ""
    if letter.sealed_under and letter.original_value is None:
        reduced += "  original erased: its key is gone"
    return (f"#{dlq_offset}  {letter.failed_at.isoformat()}  {letter.original_topic}[{letter.partition}]@{letter.offset}"
            f"  {letter.service}  {letter.error_type}: {letter.error}  correlation={letter.correlation_id}{reduced}")


@dlq_cli.command("show")
def dlq_show(offset: Annotated[int, typer.Argument(help="the #number dlq list shows")],
             out: Annotated[Path | None, typer.Option("--out", help="write the original bytes to this file")] = None) -> None:
    """One dead letter in full. A reduced letter (its record was too large to copy) is completed
    from the record's own topic by partition and offset, checked against its SHA-256."""
    from services.ops import OriginalUnavailable, ResubmitError, dead_letter_at, original_value

    s = settings()
    try:
        letter = asyncio.run(dead_letter_at(s, offset))
    except ResubmitError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(_letter_line(offset, letter))
    try:
        value = asyncio.run(original_value(s, letter))
    except OriginalUnavailable as exc:
        typer.echo(f"original not available: {exc}", err=True)
        raise typer.Exit(1) from None
    size = len(value) if value is not None else 0
    source = "fetched from its topic" if letter.original_truncated else "carried in the letter"
    if out is not None:
        out.write_bytes(value or b"")
        typer.echo(f"original: {size} bytes ({source}) written to {out}")
    else:
        typer.echo(f"original: {size} bytes ({source}); --out FILE writes them")


@dlq_cli.command("resubmit")
def dlq_resubmit(offset: Annotated[int, typer.Argument(help="the #number dlq list shows")],
                 file: Annotated[Path | None, typer.Option("--file", help="corrected record as JSON")] = None) -> None:
    """Send a dead-lettered record back to its topic: as it was, or corrected from a JSON file."""
    from services.ops import ResubmitError, resubmit_dead_letter

    try:
        topic = asyncio.run(resubmit_dead_letter(settings(), offset, file.read_text() if file else None))
    except ResubmitError as exc:
        typer.echo(f"not re-submitted: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"re-submitted #{offset} to {topic}")


@hwc_cli.command("due")
def hwc_due(school: Annotated[str, typer.Option("--school", help="school or day care id")],
            at: Annotated[str, typer.Option("--at", help="encounter time, ISO 8601 with offset")],
            config: ConfigDir = None,
            explain: Annotated[bool, typer.Option("--explain", help="list the days skipped and why")] = False) -> None:
    """Print when a Handle With Care notice for an encounter at AT is due at SCHOOL.

    It reads the reference data where the workers do: the reference topic (with the closures added
    at run time by ``handoff hwc close``) when HANDOFF_REFERENCE_SOURCE=kafka, else the directory."""
    from services.handle_with_care.domain.calendar import next_school_day_start
    from services.handle_with_care.service import CalendarDirectory
    from services.kernel.reference import (
        ReferenceDataError,
    )
    from services.platform.reference_files import build_reference_data, load_reference_data

    s = settings()
    try:
        if config is None and s.reference_source == "kafka":
            from services.messaging.reference_feed import read_reference

            data = build_reference_data(asyncio.run(read_reference(s)))
        else:
            data = load_reference_data(config or s.reference_dir)
    except ReferenceDataError as exc:
        raise typer.BadParameter(str(exc), param_hint="--config") from None
    if school not in data.schools:
        raise typer.BadParameter(f"unknown school {school!r}", param_hint="--school")
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        raise typer.BadParameter("not an ISO 8601 date-time", param_hint="--at") from None
    if when.tzinfo is None:
        raise typer.BadParameter("needs an offset, e.g. 2027-01-15T22:30:00-07:00", param_hint="--at")
    calendar = CalendarDirectory(data).calendar(data.schools[school])
    deadline = next_school_day_start(calendar, when)
    typer.echo(deadline.explain() if explain else deadline.due_at.isoformat())


@hwc_cli.command("close")
def hwc_close(school: Annotated[str, typer.Option("--school")], day: Annotated[str, typer.Option("--date", help="YYYY-MM-DD")],
              reason: Annotated[str, typer.Option("--reason")] = "closed") -> None:
    """Close a school for a day at run time (a snow day): deadlines move at once, on every worker."""
    _publish_closure(school, day, reason)
    typer.echo(f"{school} closed on {day}: {reason}")


@hwc_cli.command("reopen")
def hwc_reopen(school: Annotated[str, typer.Option("--school")], day: Annotated[str, typer.Option("--date")]) -> None:
    """Remove a run-time closure."""
    _publish_closure(school, day, None)
    typer.echo(f"{school} open again on {day}")


def _publish_closure(school: str, day: str, reason: str | None) -> None:
    from datetime import date

    from services.messaging.reference_feed import publish_reference, read_reference

    s = settings()
    try:
        date.fromisoformat(day)
    except ValueError:
        raise typer.BadParameter("not a YYYY-MM-DD date", param_hint="--date") from None
    if school not in asyncio.run(read_reference(s)).sections.get("schools", {}):
        raise typer.BadParameter(f"unknown school {school!r} in the reference topic", param_hint="--school")
    body = None if reason is None else json.dumps({"date": day, "reason": reason, "school_id": school}, sort_keys=True)
    asyncio.run(publish_reference(s, [("closures", f"{school}/{day}", body)]))


@connect_cli.command("watch")
def connect_watch(folder: Annotated[Path, typer.Argument(help="the CAD's landing folder (SFTP drop or share)")],
                  agency: Annotated[str, typer.Option("--agency", help="the agency whose CAD writes there")],
                  fmt: Annotated[str, typer.Option("--format", help="eido | csv | xml")] = "eido",
                  layout: Annotated[Path | None, typer.Option(help="the agency's CSV or XML layout (TOML)")] = None,
                  interval: Annotated[float, typer.Option(help="seconds between looks at the folder")] = 2.0,
                  metrics_port: Annotated[int | None, typer.Option(help="serve Prometheus metrics on 127.0.0.1")] = None,
                  once: Annotated[bool, typer.Option(help="handle what is there, then stop")] = False) -> None:
    """Ingest one file per call, exactly once: done/ when published, rejected/ with a reason file."""
    from services import runtime
    from services.cad_gateway.entrypoints.file_drop import FileDrop, reader_for
    from services.kernel.clock import SystemClock
    from services.messaging.kafka import KafkaPublisher
    from services.messaging.subject_keys import sealing_codec

    if fmt not in ("eido", "csv", "xml"):
        raise typer.BadParameter("eido, csv or xml", param_hint="--format")
    s = settings()
    configure_logging(s.log_level, s.log_format, service="file-drop")
    reference = runtime.reference_data(s)
    if agency not in reference.agencies:
        raise typer.BadParameter(f"unknown agency {agency!r}", param_hint="--agency")
    try:
        reader = reader_for(fmt, layout)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--layout") from None

    async def main() -> None:
        async with sealing_codec(s) as codec:
            await drop_files(KafkaPublisher(s, codec))

    async def drop_files(publisher: KafkaPublisher) -> None:
        await publisher.start()
        drop = FileDrop(folder, agency, reader, reference, publisher, SystemClock(), s.event_time_window)
        if metrics_port:
            from prometheus_client import start_http_server

            start_http_server(metrics_port, addr="127.0.0.1", registry=drop.registry)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        try:
            if once:
                for outcome in await drop.run_once():
                    typer.echo(f"{outcome.file}: {outcome.result}" + (f" ({outcome.reason})" if outcome.reason else ""))
            else:
                await drop.watch(interval, stop)
        finally:
            await publisher.stop()

    asyncio.run(main())


@connect_cli.command("eido-ws")
def connect_eido_ws(url: Annotated[str, typer.Argument(help="the agency's EIDO server (wss://.../IncidentData/ent)")],
                    agency: Annotated[str, typer.Option("--agency", help="the agency that runs it")],
                    expires: Annotated[int, typer.Option(help="subscription lifetime in seconds (renewed before)")] = 3600,
                    ca_file: Annotated[str | None, typer.Option(help="CA bundle the server's certificate chains to")] = None,
                    client_cert: Annotated[str | None, typer.Option(help="Handoff's certificate (mutual TLS)")] = None,
                    client_key: Annotated[str | None, typer.Option(help="its private key")] = None) -> None:
    """Subscribe to an agency's EIDO server (NENA-STA-024) and map each EIDO it sends, until Ctrl-C."""
    from services import runtime
    from services.cad_gateway.entrypoints.eido_subscriber import EidoSubscriber, tls_context
    from services.kernel.clock import SystemClock
    from services.messaging.kafka import KafkaPublisher
    from services.messaging.subject_keys import sealing_codec

    s = settings()
    configure_logging(s.log_level, s.log_format, service="eido-subscriber")
    reference = runtime.reference_data(s)
    if agency not in reference.agencies:
        raise typer.BadParameter(f"unknown agency {agency!r}", param_hint="--agency")

    async def main() -> None:
        async with sealing_codec(s) as codec:
            await subscribe(KafkaPublisher(s, codec))

    async def subscribe(publisher: KafkaPublisher) -> None:
        await publisher.start()
        subscriber = EidoSubscriber(url, agency, reference, publisher, SystemClock(), s.event_time_window, expires,
                                    tls_context(ca_file, client_cert, client_key))
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        try:
            await subscriber.run(stop)
        finally:
            await publisher.stop()

    asyncio.run(main())


@cli.command("agency-token")
def agency_token(agency: str) -> None:
    """Make a new API token for AGENCY; give the token to the agency, put the hash in agencies.toml."""
    from services.kernel.reference import hash_token

    token = secrets.token_urlsafe(32)
    typer.echo(f"token (give to {agency}, shown once): {token}")
    typer.echo(f'agencies.toml: [agencies.{agency}] token_sha256 = "{hash_token(token)}"')


@stack_cli.command("up")
def stack_up(kafka_port: int = 9092, registry_port: int = 8081, http_port: int = 8080, inbox_port: int = 8025,
             smtp_port: int = 8026, demo: Annotated[bool, typer.Option(help="send sample CAD events")] = True,
             work_dir: Annotated[Path, typer.Option(help="state kept between runs")] = Path("var/local-stack"),
             reference_dir: Annotated[Path, typer.Option(
                 envvar="HANDOFF_REFERENCE_DIR", exists=True, file_okay=False,
                 help="the reference data to run with (a copy, its receiver URLs pointed at the dev inbox)")]
             = REPO_ROOT / "config" / "local",
             one_process: Annotated[bool, typer.Option(
                 "--one-process/--process-per-service",
                 help="every service and the API in one process (a small site), or one process each (to scale)")]
             = True) -> None:
    """Run everything locally until Ctrl-C: Kafka, registry, the services, a dev inbox and sample events."""
    if not (REPO_ROOT / "deploy").is_dir():
        raise typer.BadParameter("runs from a checkout of Handoff (make run): deploy/ is not installed")
    sys.path.insert(0, str(REPO_ROOT))  # deploy/ sits beside services/ in the checkout, outside the package
    from deploy.local_system import run_local_system

    configure_logging("INFO", "console")
    raise typer.Exit(run_local_system(kafka_port=kafka_port, registry_port=registry_port, http_port=http_port,
                                      inbox_port=inbox_port, smtp_port=smtp_port, demo=demo, work_dir=work_dir,
                                      reference_dir=reference_dir, one_process=one_process))


def main() -> None:
    import services.runtime  # noqa: F401  the composition root: every service's events known to every command
    cli()


if __name__ == "__main__":
    main()
