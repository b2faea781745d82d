"""Who and what a call's cost belongs to: user, session, feature, team, environment.

Each dimension is read from the first of its keys a span carries, looking in the
span's attributes, then its resource. The defaults cover PyFlare's context
(:func:`pyflare.context`, whose values travel as OTel baggage and are copied onto
spans under the same keys), OpenInference (``user.id``, ``session.id``), the GenAI
conventions (``gen_ai.conversation.id`` as the session) and the resource's
``deployment.environment(.name)``. Any other attribute keys can be named, per
dimension, or copied as they are into the cost row's ``dimensions`` map.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyflare import semconv as sc
from pyflare.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["DIMENSIONS", "Attribution"]

#: The cost row's attribution columns.
DIMENSIONS = ("user_id", "session_id", "feature_id", "team", "environment")

_DEFAULT_KEYS: dict[str, tuple[str, ...]] = {
    "user_id": (sc.USER_ID, "enduser.id"),
    "session_id": (sc.SESSION_ID, sc.GEN_AI_CONVERSATION_ID),
    "feature_id": (sc.FEATURE_ID, "feature.id"),
    "team": (sc.TEAM, "team"),
    "environment": (sc.ENVIRONMENT, "deployment.environment"),
}


def _keys(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigError(f"attribution {name} must be a list of attribute keys, got {value!r}")
    for key in value:
        if not isinstance(key, str) or not key:
            raise ConfigError(
                f"attribution {name}: every key must be a non-empty string, got {key!r}"
            )
    return tuple(value)


@dataclass(frozen=True)
class Attribution:
    """Which attribute keys fill each attribution column (first present wins).

    ``dimension_keys`` are copied, when present, into the row's ``dimensions`` map
    under their own names. Keys are looked up in the span's attributes, then its
    resource.
    """

    user_keys: Sequence[str] = _DEFAULT_KEYS["user_id"]
    session_keys: Sequence[str] = _DEFAULT_KEYS["session_id"]
    feature_keys: Sequence[str] = _DEFAULT_KEYS["feature_id"]
    team_keys: Sequence[str] = _DEFAULT_KEYS["team"]
    environment_keys: Sequence[str] = _DEFAULT_KEYS["environment"]
    dimension_keys: Sequence[str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for name in (
            "user_keys",
            "session_keys",
            "feature_keys",
            "team_keys",
            "environment_keys",
            "dimension_keys",
        ):
            object.__setattr__(self, name, _keys(name, getattr(self, name)))

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> Attribution:
        """From a settings mapping: ``{"user_keys": [...], "dimension_keys": [...], ...}``.

        Raises:
            ConfigError: an unknown field or a value that is not a list of keys.
        """
        if not isinstance(config, Mapping):
            raise ConfigError(f"attribution settings must be a mapping, got {config!r}")
        known = {
            "user_keys",
            "session_keys",
            "feature_keys",
            "team_keys",
            "environment_keys",
            "dimension_keys",
        }
        unknown = sorted(set(config) - known)
        if unknown:
            raise ConfigError(f"attribution: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**{name: _keys(name, value) for name, value in config.items()})

    def columns_keys(self) -> dict[str, tuple[str, ...]]:
        """Attribution column -> the keys that fill it, in order."""
        return {
            "user_id": tuple(self.user_keys),
            "session_id": tuple(self.session_keys),
            "feature_id": tuple(self.feature_keys),
            "team": tuple(self.team_keys),
            "environment": tuple(self.environment_keys),
        }

    def all_keys(self) -> list[str]:
        """Every key this attribution reads."""
        keys = [key for group in self.columns_keys().values() for key in group]
        return list(dict.fromkeys([*keys, *self.dimension_keys]))

    def from_mappings(
        self, attributes: Mapping[str, Any], resource: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The attribution of one span given as mappings (the scalar path: budgets, tests)."""
        resource = resource or {}

        def first(keys: Sequence[str]) -> str | None:
            for source in (attributes, resource):
                for key in keys:
                    value = source.get(key)
                    if value is not None and value != "":
                        return str(value)
            return None

        row: dict[str, Any] = {name: first(keys) for name, keys in self.columns_keys().items()}
        dimensions = {}
        for key in self.dimension_keys:
            value = first((key,))
            if value is not None:
                dimensions[key] = value
        row["dimensions"] = dimensions
        return row

    def arrow_columns(
        self,
        attribute: Callable[[str], pa.Array | None],
        resource: Callable[[str], pa.Array | None],
        length: int,
    ) -> dict[str, pa.Array]:
        """The attribution columns of a batch, from per-key string arrays (the vectorised path).

        ``attribute(key)`` / ``resource(key)`` give the batch's values at a key (null
        where absent), or None when no row has it.
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        from pyflare.cost._arrow_maps import build_maps

        def first(keys: Sequence[str]) -> pa.Array:
            found = [
                array
                for getter in (attribute, resource)
                for key in keys
                if (array := getter(key)) is not None
            ]
            found = [pc.if_else(pc.equal(a, ""), None, a) for a in found]
            if not found:
                return pa.nulls(length, pa.string())
            return found[0] if len(found) == 1 else pc.coalesce(*found)

        out = {name: first(keys) for name, keys in self.columns_keys().items()}
        out["dimensions"] = build_maps({key: first((key,)) for key in self.dimension_keys}, length)
        return out
