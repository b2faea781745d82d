"""JWT bearer tokens from the user's identity provider, checked with its public key.

The signature (RS256/384/512 only: never ``none`` or HMAC), ``exp``, ``iss`` and
``aud`` are checked by PyJWT; ``sub`` is the user id; the role comes from
``jwt.role_claim`` (a string, or a list of role names whose permissions add up).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from pyflare.errors import ConfigError
from pyflare_server.auth.principal import AuthError, Principal, principal_for_roles
from pyflare_server.settings import JwtSettings

__all__ = ["TokenVerifier"]


def _public_key(path: str) -> RSAPublicKey:
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"server.auth.jwt.public_key_path: cannot read {path}: {exc.strerror or exc}"
        ) from None
    try:
        key = load_pem_public_key(data)
    except ValueError as exc:
        raise ConfigError(
            f"server.auth.jwt.public_key_path: {path} is not a PEM public key ({exc})"
        ) from None
    if not isinstance(key, RSAPublicKey):
        raise ConfigError(
            f"server.auth.jwt.public_key_path: {path} holds a {type(key).__name__}; "
            "RS256 needs an RSA public key"
        )
    return key


class TokenVerifier:
    """Turns a bearer token into a :class:`Principal`, or raises :class:`AuthError` (401)."""

    def __init__(self, settings: JwtSettings) -> None:
        if settings.public_key_path is None:
            raise ConfigError(
                "server.auth.jwt.enabled needs server.auth.jwt.public_key_path "
                "(the identity provider's RSA public key, PEM)"
            )
        self._settings = settings
        self._key = _public_key(settings.public_key_path)

    def verify(self, token: str) -> Principal:
        settings = self._settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=list(settings.algorithms),
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=settings.leeway_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError(401, "invalid_token", "the bearer token has expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError(
                401, "invalid_token", f"the bearer token is not for audience {settings.audience!r}"
            ) from None
        except jwt.InvalidIssuerError:
            raise AuthError(
                401, "invalid_token", f"the bearer token was not issued by {settings.issuer!r}"
            ) from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(
                401, "invalid_token", f"the bearer token lacks the {exc.claim!r} claim"
            ) from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(401, "invalid_token", f"the bearer token is not valid: {exc}") from None
        subject = claims.get("sub")
        user_id = subject if isinstance(subject, str) and subject else None
        roles = claims.get(settings.role_claim)
        if isinstance(roles, str):
            roles = [roles]
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            roles = []
        return principal_for_roles(
            tuple(roles),
            via="jwt",
            subject=f"jwt:{user_id or '?'}",
            user_id=user_id,
            missing=f"the token's {settings.role_claim!r} claim",
        )
