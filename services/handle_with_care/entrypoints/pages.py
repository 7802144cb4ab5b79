"""Handle With Care's page parts that both the console and the acknowledgement link show."""

from __future__ import annotations

from markupsafe import Markup

from services.handle_with_care.domain.notice import CONFIDENTIALITY, WORDS, is_late
from services.handle_with_care.events import HwcNoticeRequested
from services.kernel.reference import School
from services.web.render import fragment

TEMPLATES = "services.handle_with_care.entrypoints"  # its templates/ folder


def notice_html(request: HwcNoticeRequested, school: School) -> Markup:
    """The notice as the school sees it: the words, the child, the school. Never the incident."""
    return fragment("hwc/notice_details.html", TEMPLATES, words=WORDS, late=is_late(request), child=request.child,
                    school=school, sending_agency=request.sending_agency, confidentiality=CONFIDENTIALITY)
