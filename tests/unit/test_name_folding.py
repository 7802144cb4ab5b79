"""Names are compared with spaces, hyphens, apostrophes, case and accents folded: an officer's "two schools",
a CAD's "Two-Schools" and a roster's "Twoschools" are one name; different letters stay different names."""

from __future__ import annotations

import unicodedata
from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from services.kernel.identity import normalize_name, person_key, roster_key

LETTERS = st.characters(categories=("Lu", "Ll"), max_codepoint=0x24F)  # Latin, with the accented letters
NAMES = st.text(LETTERS, min_size=1, max_size=20)
SEPARATORS = st.text(st.sampled_from(" \t-'’.\u00a0"), max_size=3)
ACCENTS = st.sampled_from(["\u0301", "\u0300", "\u0308", "\u0303", "\u0327", "\u030c"])


@given(NAMES, st.lists(st.tuples(st.integers(0, 20), SEPARATORS), max_size=4))
def test_spaces_hyphens_and_apostrophes_anywhere_are_one_name(name: str, cuts: list[tuple[int, str]]) -> None:
    spelled = name
    for at, separator in sorted(cuts, reverse=True):
        spelled = spelled[:at] + separator + spelled[at:]
    assert normalize_name(spelled) == normalize_name(name)


@given(NAMES)
def test_case_is_one_name(name: str) -> None:
    assert normalize_name(name.upper()) == normalize_name(name.lower()) == normalize_name(name)


@given(st.text(st.sampled_from("abcdeinosuyzABCDENOSUZ"), min_size=1, max_size=12), st.lists(ACCENTS, max_size=3))
def test_accents_are_one_name_and_either_unicode_form_too(name: str, accents: list[str]) -> None:
    accented = name[:1] + "".join(accents) + name[1:]
    for form in ("NFC", "NFD"):
        assert normalize_name(unicodedata.normalize(form, accented)) == normalize_name(name)


@given(NAMES)
def test_folding_twice_changes_nothing(name: str) -> None:
    assert normalize_name(normalize_name(name)) == normalize_name(name)


@given(st.text(st.sampled_from("abcdefghij"), min_size=1, max_size=10), st.sampled_from("klmnop"))
def test_a_different_letter_is_a_different_name(name: str, extra: str) -> None:
    assert normalize_name(name + extra) != normalize_name(name)


def test_the_roster_matches_the_officers_spelling() -> None:
    born = date(2016, 9, 2)
    assert normalize_name("two schools") == normalize_name("Twoschools") == normalize_name("Two-Schools")
    assert roster_key(b"k", "Mary Jo", "two schools", born) == roster_key(b"k", "MARY-JO", "Twoschools", born)
    assert person_key("José", "O'Neil Smith", born) == person_key("jose", "ONEILSMITH", born)
    assert roster_key(b"k", "Mary", "Twoschools", born) != roster_key(b"k", "Mary", "Twoschool", born)
