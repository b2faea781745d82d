"""PII masking: find personal data and secrets in text and mask, hash or remove them.

`PIIConfig` says what to look for and what to do with it; `PIIMasker` checks the
config once and then runs on every captured preview before it is stored or sent. The
built-in detectors live in :mod:`pyflare.tracing.detectors`, where a cheap pre-check
keeps text with nothing to find close to free. Custom patterns have no such pre-check
and cost one full regex scan each.

Overlapping findings merge into one finding that spans all of them, named after the
longest (then the earliest, then the most specific: secret, credit_card, ssn, email,
ip_address, phone, custom patterns last), so that no part of an overlapping match is
left unmasked.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType

from pyflare.errors import ConfigError
from pyflare.tracing.detectors import (
    NUMBER_DETECTORS,
    Finder,
    Finding,
    find_emails,
    find_ipv6,
    find_numbers,
    find_secrets,
)

__all__ = ["DETECTORS", "Action", "Finding", "PIIConfig", "PIIMasker"]


class Action(StrEnum):
    """What to do with a piece of PII once found."""

    ALLOW = "allow"
    """Leave it as it is."""
    MASK = "mask"
    """Replace it with its detector's name: ``[EMAIL]``."""
    HASH = "hash"
    """Replace it with a salted hash that still joins equal values: ``[EMAIL:1a2b3c4d5e6f]``."""
    REDACT = "redact"
    """Remove it."""


DETECTORS: tuple[str, ...] = ("email", "phone", "credit_card", "ssn", "ip_address", "secret")
"""The built-in detectors, all on by default."""
# Which detector names a merged finding when its parts are equally long: the most
# specific first ("078-05-1120" is both an SSN and a phone number's shape).
_PRIORITY = ("secret", "credit_card", "ssn", "email", "ip_address", "phone")


def _frozen(value: object) -> object:
    # Anything but a mapping is left for PIIMasker to reject with a clear message.
    return MappingProxyType(dict(value)) if isinstance(value, Mapping) else value


@dataclasses.dataclass(frozen=True)
class PIIConfig:
    """What to look for and what to do with it. `PIIMasker` validates it."""

    default_action: Action | str = Action.MASK
    """Action for findings that no pattern or field action covers."""
    detectors: tuple[str, ...] = DETECTORS
    """Built-in detectors to run; a subset of `DETECTORS`."""
    patterns: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Extra named regexes, such as ``{"employee_id": r"EMP-\\d{6}"}``."""
    pattern_actions: Mapping[str, Action | str] = dataclasses.field(default_factory=dict)
    """Action per detector or pattern name, such as ``{"email": "hash"}``."""
    field_actions: Mapping[str, Action | str] = dataclasses.field(default_factory=dict)
    """Action per field (``"input"``, ``"output"`` or an attribute key). It overrides the
    pattern actions within that field; ``allow`` leaves the field untouched."""
    hash_salt: str = ""
    """Key for HASH, so that hashes can't be reversed by hashing guesses elsewhere."""

    def __post_init__(self) -> None:
        # Frozen means frozen: copies the caller can't mutate behind the masker's back.
        for name in ("patterns", "pattern_actions", "field_actions"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        if isinstance(self.detectors, list):
            object.__setattr__(self, "detectors", tuple(self.detectors))


class PIIMasker:
    """Finds PII in text and applies the configured actions; see `PIIConfig`."""

    def __init__(self, config: PIIConfig | None = None) -> None:
        """Validate ``config`` and compile its patterns.

        Raises:
            ConfigError: an unknown detector or action, a bad pattern name or regex.
        """
        config = config if config is not None else PIIConfig()
        self._config = config
        self._default = _action(config.default_action, "default_action")
        self._detectors = _detector_names(config.detectors)
        for name in ("patterns", "pattern_actions", "field_actions"):
            if not isinstance(getattr(config, name), Mapping):
                raise ConfigError(
                    f"{name} must be a mapping of names to "
                    f"{'regexes' if name == 'patterns' else 'actions'}, "
                    f"got {getattr(config, name)!r}"
                )
        self._patterns = _compile_patterns(config.patterns)
        known = set(DETECTORS) | set(self._patterns)
        self._pattern_actions: dict[str, Action] = {}
        for name, action in config.pattern_actions.items():
            if name not in known:
                raise ConfigError(
                    f"pattern_actions names {name!r}, which is neither a detector nor a "
                    f"pattern; accepted: {', '.join(sorted(known))}"
                )
            self._pattern_actions[name] = _action(action, f"pattern_actions[{name!r}]")
        self._field_actions = {
            str(field): _action(action, f"field_actions[{field!r}]")
            for field, action in config.field_actions.items()
        }
        if not isinstance(config.hash_salt, str):
            raise ConfigError(f"hash_salt must be a str, got {type(config.hash_salt).__name__}")
        salt = config.hash_salt.encode()
        # blake2b keys are at most 64 bytes; a longer salt is condensed to one.
        self._hash_key = salt if len(salt) <= 64 else hashlib.blake2b(salt).digest()
        self._priority = {name: rank for rank, name in enumerate((*_PRIORITY, *self._patterns))}
        self._labels = {name: name.upper() for name in (*DETECTORS, *self._patterns)}
        self._finders: list[Finder] = []
        if "email" in self._detectors:
            self._finders.append(find_emails)
        numbers = self._detectors & NUMBER_DETECTORS
        if numbers:
            self._finders.append(functools.partial(find_numbers, detectors=numbers))
        if "ip_address" in self._detectors:
            self._finders.append(find_ipv6)
        if "secret" in self._detectors:
            self._finders.append(find_secrets)

    @property
    def config(self) -> PIIConfig:
        """The configuration this masker was built from."""
        return self._config

    def findings(self, text: str) -> list[Finding]:
        """The PII in ``text``, in order, overlaps merged (see the module docstring)."""
        if not text:
            return []
        found: list[Finding] = []
        data = text.encode("ascii", "replace")
        for finder in self._finders:
            finder(text, data, found)
        for name, pattern in self._patterns.items():
            for match in pattern.finditer(text):
                if match.end() > match.start():
                    found.append(Finding(name, match.start(), match.end()))
        if len(found) <= 1:
            return found
        return self._merge(found)

    def mask(self, text: str, *, field: str | None = None) -> str:
        """``text`` with each finding replaced according to its action.

        The action is the field's (when ``field`` has one), else the detector's, else
        the default.
        """
        field_action = self._field_actions.get(field) if field is not None else None
        if field_action is Action.ALLOW:
            return text
        found = self.findings(text)
        if not found:
            return text
        pieces: list[str] = []
        last = 0
        for finding in found:
            action = (
                field_action
                if field_action is not None
                else self._pattern_actions.get(finding.detector, self._default)
            )
            if action is Action.ALLOW:
                continue
            pieces.append(text[last : finding.start])
            if action is Action.MASK:
                pieces.append(f"[{self._labels[finding.detector]}]")
            elif action is Action.HASH:
                pieces.append(self._hashed(finding.detector, text[finding.start : finding.end]))
            last = finding.end
        pieces.append(text[last:])
        return "".join(pieces)

    def mask_mapping(
        self, values: Mapping[str, object], keys: Iterable[str] | None = None
    ) -> dict[str, object]:
        """A copy of ``values`` with the str values under ``keys`` (all, when None) masked.

        Each value is masked with its key as the field.
        """
        out = dict(values)
        if isinstance(keys, str):
            keys = (keys,)
        for key in list(out) if keys is None else keys:
            value = out.get(key)
            if isinstance(value, str):
                out[key] = self.mask(value, field=key)
        return out

    def _hashed(self, detector: str, matched: str) -> str:
        digest = hashlib.blake2b(matched.encode("utf-8", "surrogatepass"), key=self._hash_key)
        return f"[{self._labels[detector]}:{digest.hexdigest()[:12]}]"

    def _merge(self, found: list[Finding]) -> list[Finding]:
        found.sort(key=lambda finding: (finding.start, finding.end))
        merged: list[Finding] = []
        cluster = [found[0]]
        end = found[0].end
        for finding in found[1:]:
            if finding.start < end:
                cluster.append(finding)
                end = max(end, finding.end)
                continue
            merged.append(self._named(cluster, end))
            cluster = [finding]
            end = finding.end
        merged.append(self._named(cluster, end))
        return merged

    def _named(self, cluster: list[Finding], end: int) -> Finding:
        if len(cluster) == 1:
            return cluster[0]
        best = min(
            cluster,
            key=lambda f: (f.start - f.end, f.start, self._priority.get(f.detector, 1 << 30)),
        )
        return Finding(best.detector, cluster[0].start, end)


def _action(value: object, where: str) -> Action:
    if isinstance(value, Action):
        return value
    if isinstance(value, str):
        try:
            return Action(value.lower())
        except ValueError:
            pass
    raise ConfigError(
        f"{where} is {value!r}, which is not an action; accepted: "
        f"{', '.join(action.value for action in Action)}"
    )


def _detector_names(detectors: object) -> frozenset[str]:
    if isinstance(detectors, str) or not isinstance(detectors, Iterable):
        raise ConfigError(
            f"detectors must be a tuple of detector names, got {detectors!r}; "
            f"accepted names: {', '.join(DETECTORS)}"
        )
    names = tuple(detectors)
    for name in names:
        if name not in DETECTORS:
            raise ConfigError(f"unknown PII detector {name!r}; accepted: {', '.join(DETECTORS)}")
    return frozenset(names)


_PATTERN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _compile_patterns(patterns: Mapping[str, str]) -> dict[str, re.Pattern[str]]:
    compiled: dict[str, re.Pattern[str]] = {}
    for name, regex in patterns.items():
        if not isinstance(name, str) or not _PATTERN_NAME.fullmatch(name):
            raise ConfigError(
                f"pattern name {name!r} is not usable; accepted: a letter followed by "
                "letters, digits or underscores (it becomes the mask, like [EMPLOYEE_ID])"
            )
        if name in DETECTORS:
            raise ConfigError(
                f"pattern name {name!r} is taken by a built-in detector; choose another name "
                f"(built-in: {', '.join(DETECTORS)})"
            )
        if not isinstance(regex, str):
            raise ConfigError(f"pattern {name!r} must be a regex str, got {regex!r}")
        try:
            compiled[name] = re.compile(regex)
        except re.error as error:
            raise ConfigError(
                f"pattern {name!r} is not a valid regex ({error}): {regex!r}"
            ) from error
    return compiled
