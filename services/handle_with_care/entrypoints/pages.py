"""Handle With Care's page parts that both the console and the acknowledgement link show."""

from __future__ import annotations

from markupsafe import Markup

from services.handle_with_care.domain.notice import CONFIDENTIALITY, WORDS, is_late
from services.handle_with_care.events import HwcNoticeRequested
from services.kernel.reference import School
from services.web.render import fragment

TEMPLATES = "services.handle_with_care.entrypoints"  # its templates/ folder


def notice_html(request: HwcNoticeRequested, school: School, sign_in_to_see: str | None = None) -> Markup:
    """The notice as the school sees it: the words, the child, the school. Never the incident. With
    ``sign_in_to_see`` (a console page), no child: the sign-in that shows them to the school's contacts."""
    return fragment("hwc/notice_details.html", TEMPLATES, words=WORDS, late=is_late(request),
                    child=None if sign_in_to_see else request.child, sign_in_to_see=sign_in_to_see,
                    school=school, sending_agency=request.sending_agency, confidentiality=CONFIDENTIALITY)
