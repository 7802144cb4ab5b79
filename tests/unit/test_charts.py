"""The console's charts: a target is a mark on its own bar, never across another bar's value, and each target's
caption is a line of its own."""

from __future__ import annotations

import re

from services.web.console import bar_chart

BARS = ["referred", "contacted", "enrolled", "engaged"]


def test_a_target_marks_its_own_bar_and_no_caption_or_value_is_crossed() -> None:
    svg = str(bar_chart("Funnel, all referrals to date", [
        ("referred", 10, "10"), ("contacted", 8, "8 (80%)"), ("enrolled", 5, "5 (50%)"), ("engaged", 3, "3 (60%)")],
        targets=[("60% enrol", 6, "enrolled"), ("75% engage", 3.75, "engaged")]))
    lines = [tuple(float(v) for v in m)
             for m in re.findall(r'<line x1="([\d.]+)" y1="([-\d.]+)" x2="[\d.]+" y2="([\d.]+)"', svg)]
    assert len(lines) == 2
    for (x, y1, y2), bar, value in zip(lines, ("enrolled", "engaged"), ("5 (50%)", "3 (60%)"), strict=True):
        row = 10 + 30 * BARS.index(bar)
        assert (y1, y2) == (row - 4, row + 24)  # across its own bar only
        value_x = float(re.search(rf'<text x="([\d.]+)" y="[\d.]+">{re.escape(value)}</text>', svg).group(1))
        assert value_x > x  # its value starts past the mark: the line crosses no label
    captions = re.findall(r'<text x="0" y="([\d.]+)" fill="#8a3b00">([^<]+)</text>', svg)
    assert [c for _, c in captions] == ["┆ 60% enrol (target, on enrolled)", "┆ 75% engage (target, on engaged)"]
    assert abs(float(captions[0][0]) - float(captions[1][0])) >= 16  # a line each, not over each other
