"""When two records name the same person: one normalization, shared by Handle With Care (one notice per
child, school and day) and LEAD (a participant police meet again)."""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from datetime import date


def normalize_name(name: str) -> str:
    """Case, accents, spaces, hyphens, apostrophes and other punctuation do not make a different person:
    "José O'Neil-Smith", "jose oneil smith" and "JoseOneilsmith" are one name ("joseoneilsmith"). A CAD,
    an officer and a district roster each write a compound name their own way ("Two Schools",
    "Twoschools"); only the letters and digits, in order, are compared."""
    # Dotless ı is a Turkish i: its capital is I, which every other alphabet folds to i.
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", name).casefold().replace("ı", "i"))
    return "".join(c for c in folded if c.isalnum() and not unicodedata.combining(c))


def person_key(first_name: str, last_name: str, date_of_birth: date | None) -> str | None:
    """A one-way key for matching a person across records, so an index holds no names. None without
    a date of birth: a name alone matches too many people to act on."""
    if date_of_birth is None:
        return None
    text = f"{normalize_name(first_name)}|{normalize_name(last_name)}|{date_of_birth.isoformat()}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def roster_key(secret: bytes, first_name: str, last_name: str, date_of_birth: date) -> str:
    """A keyed one-way key for a district roster entry: the roster at rest holds no names, and without the
    key nobody can test a name and date of birth against it."""
    text = f"{normalize_name(first_name)}|{normalize_name(last_name)}|{date_of_birth.isoformat()}"
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()[:32]
