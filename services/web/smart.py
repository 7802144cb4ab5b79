"""SMART on FHIR for system clients (SMART App Launch 2.2, Backend Services): what a ``system/`` scope grants,
and the ``.well-known/smart-configuration`` that tells a client where to get a token and how.

Scopes grant interactions by letter (v2: ``c`` create, ``r`` read, ``u`` update, ``d`` delete, ``s`` search),
or by v1's ``read`` (r, s), ``write`` (c, u, d) and ``*``; ``system/*.rs`` grants them for every resource type.
A scope with a query (``system/Task.rs?status=requested``) narrows by a filter Handoff does not apply, so
it grants nothing rather than everything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_SCOPE = re.compile(r"^system/(?P<resource>\*|[A-Z][A-Za-z]+)\.(?P<permissions>read|write|\*|c?r?u?d?s?)$")
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
SIGNING_ALGORITHMS = ("RS384", "ES384")  # the two every SMART Backend Services server must accept


def granted(scopes: Iterable[str], resource: str) -> frozenset[str]:
    """The interaction letters that ``scopes`` grant on ``resource``."""
    letters: set[str] = set()
    for scope in scopes:
        match = _SCOPE.match(scope)
        if match and match["permissions"] and match["resource"] in (resource, "*"):
            letters.update(_V1.get(match["permissions"], match["permissions"]))
    return frozenset(letters)


def permits(scopes: Iterable[str], resource: str, interaction: str) -> bool:
    return interaction in granted(scopes, resource)


def smart_configuration(token_endpoint: str, scopes: Iterable[str]) -> dict:
    """The discovery document for Backend Services clients (SMART App Launch 2.2, section 'Conformance')."""
    return {
        "token_endpoint": token_endpoint,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(SIGNING_ALGORITHMS),
        "scopes_supported": sorted(scopes),
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
    }
