"""The spec's roles and permission matching."""

from __future__ import annotations

import pytest

from pyflare_server.auth.permissions import PUBLIC, ROLES, allows, permission_of, requires


@pytest.mark.parametrize(
    ("role", "needed", "expected"),
    [
        ("admin", "query:execute", True),
        ("admin", "costs:read", True),
        ("developer", "query:execute", True),
        ("developer", "costs:read:own", True),
        ("developer", "drift:configure", False),
        ("developer", "alerts:acknowledge", False),
        ("viewer", "costs:read:own", True),
        ("viewer", "costs:read", False),
        ("viewer", "query:execute", False),
        ("viewer", "traces:read", True),
        ("operator", "alerts:acknowledge", True),
        ("operator", "alerts:read", True),
        ("operator", "drift:configure", True),
        ("operator", "costs:read", False),
        ("operator", "query:execute", False),
    ],
)
def test_roles(role: str, needed: str, expected: bool) -> None:
    assert allows(ROLES[role], needed) is expected


def test_public_needs_nothing() -> None:
    assert allows((), PUBLIC)
    assert not allows((), "traces:read")


def test_requires_marks_the_endpoint() -> None:
    @requires("traces:read")
    def endpoint() -> None: ...

    assert permission_of(endpoint) == "traces:read"
    assert permission_of(lambda: None) is None
    with pytest.raises(ValueError, match="non-empty"):
        requires("")
