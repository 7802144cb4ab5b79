"""HTML fragments of Handle With Care that both the console and the acknowledgement link show."""

from __future__ import annotations

from services.handle_with_care.domain.notice import CONFIDENTIALITY, WORDS, is_late
from services.kernel.events import HwcNoticeRequested
from services.kernel.reference import School
from services.web.console import esc


def notice_html(request: HwcNoticeRequested, school: School) -> str:
    """The notice as the school sees it: the words, the child, the school. Never the incident."""
    child = request.child
    late = ('<p class="badge due">Late: the school day it was for has already begun</p>'
            if is_late(request) else "")
    return (f'<p class="badge">{esc(WORDS)}</p>{late}<dl><dt>Student</dt><dd>{esc(child.first_name)} {esc(child.last_name)}</dd>'
            f"<dt>Date of birth</dt><dd>{esc(child.date_of_birth.isoformat())}</dd>"
            f"<dt>Grade</dt><dd>{esc(child.grade or 'not known')}</dd><dt>School</dt><dd>{esc(school.name)}</dd>"
            + (f"<dt>Sent by</dt><dd>{esc(request.sending_agency)}</dd>" if request.sending_agency else "")
            + f'</dl><p class="muted">{esc(CONFIDENTIALITY)}</p>')
