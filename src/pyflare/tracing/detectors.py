"""The built-in PII detectors: where emails, numbers, addresses and secrets are in a text.

:class:`~pyflare.tracing.masking.PIIMasker` runs these on every captured preview
before it is stored or sent, so text with nothing to find must cost next to nothing.
Python's regex engine scans at about 5 ns a character per pattern, which is too slow
to run a dozen patterns over every preview; instead each detector first looks for
what it cannot do without, using C-speed byte searches on an ASCII copy of the text
(one byte per character): an ``@`` for emails, a run of seven or more digits and
separators for phone, card, SSN and IPv4 numbers, a run of hex digits and colons for
IPv6, and literal prefixes or keywords (``sk-``, ``AKIA``, ``eyJ``, ``password`` …)
for secrets. Only the windows around those are handed to the regexes.

Every finder has the same shape (:data:`Finder`): it takes the text and its ASCII
copy and appends a :class:`Finding` for each match to a shared list. Findings may
overlap; the masker merges them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import operator
import re
from collections.abc import Callable, Iterable
from typing import TypeAlias

__all__ = [
    "NUMBER_DETECTORS",
    "Finder",
    "Finding",
    "find_emails",
    "find_ipv6",
    "find_numbers",
    "find_secrets",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Finding:
    """One piece of PII: the detector (or custom pattern) name and its span in the text."""

    detector: str
    start: int
    end: int


Finder: TypeAlias = Callable[[str, bytes, list[Finding]], None]
"""``(text, text encoded as ASCII with "?" for the rest, findings to append to)``."""


# --- Pre-checks -------------------------------------------------------------------
# A run table maps the characters a detector's match can consist of to b"0" and all
# else to b"x"; a long enough run of b"0"s is where a match may be. bytes.translate
# and the one-byte finds are C loops, about 0.5 ns a character.


def _run_table(members: bytes) -> bytes:
    return bytes(0x30 if byte in members else 0x78 for byte in range(256))


_LETTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_NUMBER_RUN = _run_table(b"0123456789 -.()+")
_HEX_RUN = _run_table(b"0123456789abcdefABCDEF:.")
_TOKEN_RUN = _run_table(_LETTERS + b"0123456789_.+/=~-")
_MIN_NUMBER_RUN = b"0" * 7  # "8.8.8.8"
_MIN_TOKEN_RUN = b"0" * 14  # "xoxb-" and ten characters, less the last
_DIGIT_SHAPE = bytes.maketrans(b"0123456789", b"0000000000")
_NOT_DIGITS = bytes(byte for byte in range(256) if not 0x30 <= byte <= 0x39)


def _runs(data: bytes, table: bytes, minimum: bytes) -> Iterable[tuple[int, int]]:
    """(start, end) of each maximal run of table members at least ``minimum`` long."""
    shape = data.translate(table)
    position = shape.find(minimum)
    while position >= 0:
        start = shape.rfind(b"x", 0, position) + 1
        end = shape.find(b"x", position)
        if end < 0:
            end = len(shape)
        yield start, end
        position = shape.find(minimum, end)


# --- Email -------------------------------------------------------------------------

_EMAIL_LOCAL_REVERSED = re.compile(r"[\w.%+-]+")
_EMAIL_DOMAIN = re.compile(r"@((?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63})(?![\w-])")


def find_emails(text: str, data: bytes, out: list[Finding]) -> None:
    at = data.find(b"@")
    while at >= 0:
        domain = _EMAIL_DOMAIN.match(text, at)
        if domain is not None:
            # Matching the local part backwards from the "@" costs one regex step per
            # character, where a forward search would retry at each start.
            local = _EMAIL_LOCAL_REVERSED.match(text[max(0, at - 64) : at][::-1])
            if local is not None:
                size = len(local.group().rstrip("."))
                if size and text[at - 1] != ".":
                    out.append(Finding("email", at - size, domain.end()))
        at = data.find(b"@", at + 1)


# --- Numbers: phone, credit card, SSN, IPv4 ----------------------------------------

_A = re.ASCII
_PHONE_INTERNATIONAL = re.compile(
    r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,6}(?![\w-]|\.\d)", _A
)
_PHONE_US = re.compile(
    r"(?<![\w+.-])(?:1[ .-])?(?:\(\d{3}\) ?|\d{3}([ .-]))\d{3}([ .-])\d{4}(?![\w-]|\.\d)", _A
)
_PHONE_EU = re.compile(r"(?<![\w+.-])0[1-9]\d{0,3}(?:([ -])\d{2,8}){1,4}(?![\w-]|\.\d)", _A)
# Issuers' numbers start with 2-6; this keeps out millisecond timestamps and most ids,
# one in ten of which would pass Luhn by chance.
_CARD = re.compile(r"(?<![\w.-])[2-6](?:[ -]?\d){12,18}(?![\w-]|\.\d)", _A)
_SSN = re.compile(r"(?<![\w.-])(?!000|666|9)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-]|\.\d)", _A)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\w|\.\d)", _A)
NUMBER_DETECTORS = frozenset({"phone", "credit_card", "ssn", "ip_address"})


def _digits(text: str) -> str:
    return "".join(char for char in text if "0" <= char <= "9")


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The longest prefix of the candidate, cut at a separator, that passes Luhn."""
    candidate = text[start:end]
    cuts = [len(candidate)] + [i for i in range(len(candidate) - 1, 0, -1) if candidate[i] in " -"]
    for cut in cuts:
        digits = _digits(candidate[:cut])
        if 13 <= len(digits) <= 19 and _luhn(digits):
            return start, start + cut
    return None


def find_numbers(text: str, data: bytes, out: list[Finding], detectors: frozenset[str]) -> None:
    end_of_text = len(text)
    for start, end in _runs(data, _NUMBER_RUN, _MIN_NUMBER_RUN):
        if end - start < 10 and data.count(b".", start, end) < 3:
            continue  # too short for anything but an IPv4 address
        window = data[start:end]
        digits = len(window.translate(None, _NOT_DIGITS))
        dots = window.count(b".")
        # Every detector here needs 9 digits, a "+" or (IPv4) 3 dots; dates, versions
        # and prices mostly have none of them, and stop here.
        if digits < 9 and (dots < 3 or digits < 4) and b"+" not in window:
            continue
        # One character past the run lets the patterns' look-aheads see what follows.
        stop = min(end + 1, end_of_text)
        shape = window.translate(_DIGIT_SHAPE)
        if digits >= 13 and "credit_card" in detectors:
            for match in _CARD.finditer(text, start, stop):
                span = _card_span(text, match.start(), match.end())
                if span is not None:
                    out.append(Finding("credit_card", *span))
        if b"000-00-0000" in shape and "ssn" in detectors:
            for match in _SSN.finditer(text, start, stop):
                out.append(Finding("ssn", match.start(), match.end()))
        if dots >= 3 and "ip_address" in detectors:
            for match in _IPV4.finditer(text, start, stop):
                out.append(Finding("ip_address", match.start(), match.end()))
        if digits >= 8 and "phone" in detectors:
            _find_phones(text, start, stop, window, shape, out)


def _find_phones(
    text: str, start: int, stop: int, window: bytes, shape: bytes, out: list[Finding]
) -> None:
    if b"+" in window:
        for match in _PHONE_INTERNATIONAL.finditer(text, start, stop):
            if 8 <= len(_digits(match.group())) <= 15:
                out.append(Finding("phone", match.start(), match.end()))
    if b"000-0000" in shape or b"000 0000" in shape or b"000.0000" in shape:
        for match in _PHONE_US.finditer(text, start, stop):
            # Mixed separators ("555-123.4567") are more likely a version or a date.
            if match.group(1) is None or match.group(1) == match.group(2):
                out.append(Finding("phone", match.start(), match.end()))
    if shape.startswith(b"0") or b" 0" in window or b"(0" in window:
        for match in _PHONE_EU.finditer(text, start, stop):
            separators = {char for char in match.group() if char in " -"}
            if len(separators) == 1 and 9 <= len(_digits(match.group())) <= 13:
                out.append(Finding("phone", match.start(), match.end()))


# --- IPv6 --------------------------------------------------------------------------

_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|\d{1,3}(?:\.\d{1,3}){3})?(?![\w:]|\.\w)",
    _A,
)


def find_ipv6(text: str, data: bytes, out: list[Finding]) -> None:
    first = data.find(b":")
    if first < 0 or data.find(b":", first + 1) < 0:
        return
    end_of_text = len(text)
    for start, end in _runs(data, _HEX_RUN, _MIN_NUMBER_RUN):
        colons = data.count(b":", start, end)
        # Without "::" an address has all eight groups; clock times have two colons.
        if colons < 2 or (colons < 7 and data.find(b"::", start, end) < 0):
            continue
        for match in _IPV6.finditer(text, start, min(end + 1, end_of_text)):
            candidate = match.group()
            # "::1" and the like are valid but say nothing about anyone.
            if sum(1 for group in candidate.split(":") if group) < 2:
                continue
            try:
                ipaddress.IPv6Address(candidate)
            except ValueError:
                continue  # MAC addresses, "a:b:c"
            out.append(Finding("ip_address", match.start(), match.end()))


# --- Secrets -----------------------------------------------------------------------

_TOKEN_PATTERNS: tuple[tuple[bytes, re.Pattern[str]], ...] = (
    (b"sk-", re.compile(r"(?<![\w-])sk-(?:[a-z]+-)*[A-Za-z0-9_-]{20,}")),
    (b"sk_", re.compile(r"(?<![\w-])[sr]k_(?:live|test)_[A-Za-z0-9]{16,}")),
    (b"AKIA", re.compile(r"(?<![A-Za-z0-9])AKIA[0-9A-Z]{16}(?![A-Za-z0-9])")),
    (b"ASIA", re.compile(r"(?<![A-Za-z0-9])ASIA[0-9A-Z]{16}(?![A-Za-z0-9])")),
    (b"gh", re.compile(r"(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{30,}")),
    (b"github_pat_", re.compile(r"(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{22,}")),
    (b"xox", re.compile(r"(?<![A-Za-z0-9])xox[abposr]-[A-Za-z0-9-]{10,}")),
    (
        b"eyJ",
        re.compile(r"(?<![\w-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ),
)
_BEARER_VALUE = re.compile(r"[A-Za-z0-9._~+/-]{16,}=*")
_ASSIGNMENT = re.compile(
    r"(?:key|secret|passw(?:or)?d|pwd|token)[\"']?\s*[:=]\s*[\"']?(?P<value>[^\s\"'`,;&<>()\[\]{}]+)",
    re.IGNORECASE,
)
_ASSIGNMENT_KEYWORDS = (b"key", b"secret", b"password", b"passwd", b"pwd", b"token")
# Prefixes that may run straight into the keyword: apikey, accesstoken, secretkey.
_GLUED_PREFIXES = ("api", "access", "auth", "secret", "private", "client", "session", "refresh")
_KEYWORD_ENDINGS = frozenset(keyword[-3:] for keyword in _ASSIGNMENT_KEYWORDS)
_LAST_THREE = operator.itemgetter(slice(-3, None))
_ASSIGNMENT_SHAPE = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ=", b"abcdefghijklmnopqrstuvwxyz:")


def find_secrets(text: str, data: bytes, out: list[Finding]) -> None:
    for start, end in _runs(data, _TOKEN_RUN, _MIN_TOKEN_RUN):
        window = data[start:end]
        for trigger, pattern in _TOKEN_PATTERNS:
            at = window.find(trigger)
            while at >= 0:
                # Every match begins with its trigger, so one anchored match per
                # occurrence finds them all.
                match = pattern.match(text, start + at)
                if match is not None:
                    out.append(Finding("secret", match.start(), match.end()))
                at = window.find(trigger, at + 1)
        if data[max(0, start - 8) : start].rstrip().lower().endswith(b"bearer"):
            match = _BEARER_VALUE.match(text, start)
            if match is not None:
                out.append(Finding("secret", match.start(), match.end()))
    _find_assignments(text, data, out)


def _find_assignments(text: str, data: bytes, out: list[Finding]) -> None:
    if b":" not in data and b"=" not in data:
        return
    # A cheap yes/no first: lower-cased, "=" as ":", quotes and blanks gone, does any
    # keyword come right before a ":"? JSON previews have many ":", few secrets.
    pieces = data.translate(_ASSIGNMENT_SHAPE, b"\"' \t\r\n").split(b":")
    pieces.pop()
    if _KEYWORD_ENDINGS.isdisjoint(map(_LAST_THREE, pieces)):
        return
    lowered = data.lower()
    for separator in (b":", b"="):
        anchor = data.find(separator)
        while anchor >= 0:
            head = max(0, anchor - 12)
            name = lowered[head:anchor].rstrip(b"\"' \t\r\n")
            if name.endswith(_ASSIGNMENT_KEYWORDS):
                keyword = next(k for k in _ASSIGNMENT_KEYWORDS if name.endswith(k))
                _assignment_at(text, head + len(name) - len(keyword), out)
            anchor = data.find(separator, anchor + 1)


def _assignment_at(text: str, position: int, out: list[Finding]) -> None:
    match = _ASSIGNMENT.match(text, position)
    if match is None:
        return
    before = text[max(0, position - 8) : position].lower()
    if before and before[-1].isalnum() and not before.endswith(_GLUED_PREFIXES):
        return  # the keyword ends another word: "monkey: banana42"
    value = match.group("value")
    if match.group().lower().startswith(("passw", "pwd", "secret")):
        if len(value) < 3:
            return
    elif not (
        len(value) >= 8
        and (len(value) >= 24 or (_has(value, str.isdigit) and _has(value, str.isalpha)))
    ):
        return  # "key: understanding", "token: 512": prose and counts, not secrets
    out.append(Finding("secret", match.start("value"), match.end("value")))


def _has(value: str, test: Callable[[str], bool]) -> bool:
    return any(test(char) for char in value)
