from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyflare.errors import ConfigError
from pyflare.tracing.masking import DETECTORS, Action, Finding, PIIConfig, PIIMasker

MASKER = PIIMasker()


def _masked(text: str) -> str:
    return MASKER.mask(text)


# --- Detectors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail bob.smith+tag@example.co.uk now", "mail [EMAIL] now"),
        ('{"to":"ann@example.com"}', '{"to":"[EMAIL]"}'),
        ("'bob@x.io'.", "'[EMAIL]'."),
        ("née.dupont@exemple.fr", "[EMAIL]"),
        ("a@b.co and c@d.org", "[EMAIL] and [EMAIL]"),
    ],
)
def test_email_positives(text: str, expected: str) -> None:
    assert _masked(text) == expected


@pytest.mark.parametrize(
    "text",
    ["a@b", "user@localhost", "x@y.c", "@mention", "meet @ 5pm", "foo@.com", "email me@"],
)
def test_email_near_misses(text: str) -> None:
    assert _masked(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call +1 555 123 4567", "call [PHONE]"),
        ("call (555) 123-4567.", "call [PHONE]."),
        ("555-123-4567", "[PHONE]"),
        ("555.123.4567", "[PHONE]"),
        ("1-555-123-4567", "[PHONE]"),
        ("+44 20 7946 0958", "[PHONE]"),
        ("+33 6 12 34 56 78", "[PHONE]"),
        ("+4930123456", "[PHONE]"),
        ("06 12 34 56 78", "[PHONE]"),
        ("030 1234567", "[PHONE]"),
        ("020-7946-0958", "[PHONE]"),
        ('{"phone":"+1-555-123-4567"}', '{"phone":"[PHONE]"}'),
    ],
)
def test_phone_positives(text: str, expected: str) -> None:
    assert _masked(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "year 2023",
        "in 1999-2024",
        "2024-01-15 10:30:00",
        "2024-01-15T10:30:00.123Z",
        "05/12/2023",
        "05-12-2023 1430",
        "12.05.2023",
        "version 2.1.0",
        "v10.2.33",
        "epoch 1700000000",
        "3.14159",
        "12,400 employees",
        "+3 points",
        "+100.5",
        "555-1234",
        "555-123.4567",
        "order 123456",
        "0.5 0.25 0.125",
    ],
)
def test_phone_near_misses(text: str) -> None:
    assert _masked(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 4111 1111 1111 1111 exp", "card [CREDIT_CARD] exp"),
        ("4111-1111-1111-1111", "[CREDIT_CARD]"),
        ("4111111111111111", "[CREDIT_CARD]"),
        ("amex 3782 822463 10005", "amex [CREDIT_CARD]"),
        ("5555555555554444.", "[CREDIT_CARD]."),
        ("4111 1111 1111 1111 12/25", "[CREDIT_CARD] 12/25"),
    ],
)
def test_credit_card_positives(text: str, expected: str) -> None:
    assert _masked(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112",  # bad Luhn
        "4111111111111112",
        "ts 1700000000000",  # millisecond timestamp
        "411111111111",  # 12 digits
        "41111111111111111111",  # 20 digits
        "id 1234567890123456",  # passes no issuer prefix (starts with 1)
    ],
)
def test_credit_card_near_misses(text: str) -> None:
    assert "[CREDIT_CARD]" not in _masked(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("ssn 123-45-6789", "ssn [SSN]"), ("SSN: 078-05-1120.", "SSN: [SSN].")],
)
def test_ssn_positives(text: str, expected: str) -> None:
    assert _masked(text) == expected


@pytest.mark.parametrize(
    "text",
    ["000-12-3456", "666-12-3456", "900-12-3456", "999-12-3456", "123-00-6789", "123-45-0000"],
)
def test_ssn_with_invalid_parts_is_not_masked(text: str) -> None:
    assert _masked(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ip 192.168.1.1.", "ip [IP_ADDRESS]."),
        ('{"ip":"10.0.0.1"}', '{"ip":"[IP_ADDRESS]"}'),
        ("8.8.8.8", "[IP_ADDRESS]"),
        ("255.255.255.255", "[IP_ADDRESS]"),
        ("2001:db8::1", "[IP_ADDRESS]"),
        ("fe80::1ff:fe23:4567:890a", "[IP_ADDRESS]"),
        ("2001:0db8:85a3:0000:0000:8a2e:0370:7334", "[IP_ADDRESS]"),
        ("[::ffff:192.0.2.128]", "[[IP_ADDRESS]]"),
    ],
)
def test_ip_positives(text: str, expected: str) -> None:
    assert _masked(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "999.1.1.1",
        "10.0.0.256",
        "01.02.03.04",
        "1.2.3",
        "v1.2.3.4",
        "1.2.3.4.5",
        "::1",
        "12:30:45",
        "00:1a:2b:3c:4d:5e",
        "a[::2]",
        "std::vector",
    ],
)
def test_ip_near_misses(text: str) -> None:
    assert _masked(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("key sk-proj-abcdefghijklmnopqrstuvwxyz123456", "key [SECRET]"),
        ("sk-abcdefghijklmnopqrstuvwxyz0123456789ABCD", "[SECRET]"),
        ("AKIAIOSFODNN7EXAMPLE", "[SECRET]"),
        ("token ghp_" + "a1B2" * 9, "token [SECRET]"),
        ("gho_" + "x" * 36, "[SECRET]"),
        ("github_pat_" + "A1" * 20, "[SECRET]"),
        ("xoxb-1234567890-abcdefghij", "[SECRET]"),
        ("Authorization: Bearer abcdefghijklmnop1234", "Authorization: Bearer [SECRET]"),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0",
            "jwt [SECRET]",
        ),
        ("api_key=abc123def456ghi", "api_key=[SECRET]"),
        ("API_KEY = 'abc123def456ghi'", "API_KEY = '[SECRET]'"),
        ('{"password":"hunter2"}', '{"password":"[SECRET]"}'),
        ("password: hunter2", "password: [SECRET]"),
        ("db_passwd=s3cr3t!", "db_passwd=[SECRET]"),
        ("client_secret: abcdefghijk", "client_secret: [SECRET]"),
        ("?access_token=abc123def456&x=1", "?access_token=[SECRET]&x=1"),
        ("apikey: Zx9abcdefgh", "apikey: [SECRET]"),
    ],
)
def test_secret_positives(text: str, expected: str) -> None:
    assert _masked(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "desk-abcdefghijklmnopqrstuvwxyz",
        "task-abcdefghijklmnopqrstuvwxyz1234",
        "AKIA is short",
        "The key: understanding the problem",
        "monkey: banana1234",
        '"max_tokens":512',
        "token: 512",
        "tokens: abcdefgh12345",
        "keyword: something12",
        "Bearer of bad news",
        "eyJ alone",
    ],
)
def test_secret_near_misses(text: str) -> None:
    assert _masked(text) == text


def test_findings_report_spans_in_character_positions() -> None:
    text = "é€ mail bob@example.com, ip 10.0.0.1"

    assert MASKER.findings(text) == [
        Finding("email", 8, 23),
        Finding("ip_address", 28, 36),
    ]
    assert text[8:23] == "bob@example.com"


def test_findings_of_empty_text() -> None:
    assert MASKER.findings("") == []
    assert MASKER.mask("") == ""


def test_overlapping_findings_merge_into_the_longest() -> None:
    masker = PIIMasker(PIIConfig(patterns={"digits": r"\d{3}-\d{2}"}))

    assert masker.findings("ssn 123-45-6789") == [Finding("ssn", 4, 15)]
    assert masker.mask("ssn 123-45-6789") == "ssn [SSN]"


def test_overlap_that_extends_a_match_masks_both_parts() -> None:
    masker = PIIMasker(PIIConfig(patterns={"url": r"example\.com/\w+"}))

    assert masker.findings("bob@example.com/path ok") == [Finding("url", 0, 20)]
    assert masker.mask("bob@example.com/path ok") == "[URL] ok"


def test_equal_overlaps_go_to_the_more_specific_detector() -> None:
    # Also a valid French-style phone number; an SSN is the likelier reading.
    assert MASKER.findings("078-05-1120") == [Finding("ssn", 0, 11)]


def test_text_without_pii_is_returned_unchanged() -> None:
    text = "The quick brown fox jumps over the lazy dog in 2023, version 1.2.0."

    assert MASKER.mask(text) is text


# --- Actions --------------------------------------------------------------------------


def _hash12(value: str, salt: str = "") -> str:
    return hashlib.blake2b(value.encode(), key=salt.encode()).hexdigest()[:12]


def test_hash_action_is_salted_and_stable() -> None:
    masker = PIIMasker(PIIConfig(default_action=Action.HASH, hash_salt="pepper"))

    masked = masker.mask("from bob@example.com to bob@example.com")

    digest = _hash12("bob@example.com", "pepper")
    assert masked == f"from [EMAIL:{digest}] to [EMAIL:{digest}]"
    assert (
        PIIMasker(PIIConfig(default_action="hash", hash_salt="other")).mask("bob@example.com")
        != f"[EMAIL:{digest}]"
    )


def test_hash_without_salt() -> None:
    masker = PIIMasker(PIIConfig(default_action="hash"))

    assert masker.mask("ip 10.0.0.1") == f"ip [IP_ADDRESS:{_hash12('10.0.0.1')}]"


def test_long_salt_is_accepted() -> None:
    masker = PIIMasker(PIIConfig(default_action="hash", hash_salt="s" * 500))

    assert masker.mask("10.0.0.1").startswith("[IP_ADDRESS:")


def test_redact_removes_the_match() -> None:
    masker = PIIMasker(PIIConfig(default_action=Action.REDACT))

    assert masker.mask("mail bob@example.com now") == "mail  now"


def test_allow_leaves_the_match() -> None:
    masker = PIIMasker(PIIConfig(default_action=Action.ALLOW))

    assert masker.mask("mail bob@example.com now") == "mail bob@example.com now"


def test_pattern_actions_per_detector() -> None:
    masker = PIIMasker(
        PIIConfig(pattern_actions={"email": "hash", "ip_address": Action.ALLOW, "ssn": "REDACT"})
    )

    masked = masker.mask("bob@example.com 10.0.0.1 123-45-6789 555-123-4567")

    assert masked == f"[EMAIL:{_hash12('bob@example.com')}] 10.0.0.1  [PHONE]"


def test_field_action_overrides_pattern_actions() -> None:
    masker = PIIMasker(
        PIIConfig(
            pattern_actions={"email": "allow"},
            field_actions={"output": "redact", "input": "allow"},
        )
    )
    text = "bob@example.com 10.0.0.1"

    assert masker.mask(text, field="output") == " "
    assert masker.mask(text, field="input") is text
    assert masker.mask(text) == "bob@example.com [IP_ADDRESS]"
    assert masker.mask(text, field="unlisted") == "bob@example.com [IP_ADDRESS]"


def test_custom_patterns_and_their_actions() -> None:
    masker = PIIMasker(
        PIIConfig(
            patterns={"employee_id": r"EMP-\d{6}", "ticket": r"TCK\d+"},
            pattern_actions={"ticket": "hash"},
        )
    )

    assert (
        masker.mask("EMP-123456 filed TCK42") == f"[EMPLOYEE_ID] filed [TICKET:{_hash12('TCK42')}]"
    )
    assert masker.findings("EMP-123456") == [Finding("employee_id", 0, 10)]


def test_custom_pattern_matching_empty_strings_is_harmless() -> None:
    masker = PIIMasker(PIIConfig(patterns={"maybe": r"x*"}))

    assert masker.mask("abc x") == "abc [MAYBE]"


def test_detectors_can_be_switched_off() -> None:
    masker = PIIMasker(PIIConfig(detectors=("email",)))

    assert masker.mask("bob@example.com 555-123-4567 10.0.0.1") == ("[EMAIL] 555-123-4567 10.0.0.1")
    assert PIIMasker(PIIConfig(detectors=())).mask("bob@example.com") == "bob@example.com"


def test_detectors_given_as_a_list() -> None:
    masker = PIIMasker(PIIConfig(detectors=["ssn"]))  # type: ignore[arg-type]

    assert masker.mask("123-45-6789 bob@example.com") == "[SSN] bob@example.com"


def test_mask_mapping() -> None:
    masker = PIIMasker(PIIConfig(field_actions={"output": "redact"}))
    values: dict[str, object] = {
        "input": "mail bob@example.com",
        "output": "ip 10.0.0.1",
        "count": 3,
        "note": "call 555-123-4567",
    }

    assert masker.mask_mapping(values) == {
        "input": "mail [EMAIL]",
        "output": "ip ",
        "count": 3,
        "note": "call [PHONE]",
    }
    assert masker.mask_mapping(values, keys=["input", "count", "missing"]) == {
        **values,
        "input": "mail [EMAIL]",
    }
    assert masker.mask_mapping(values, keys="note")["note"] == "call [PHONE]"
    assert values["input"] == "mail bob@example.com"


def test_config_is_immutable_after_construction() -> None:
    patterns = {"employee_id": r"EMP-\d{6}"}
    config = PIIConfig(patterns=patterns)
    patterns["other"] = "x"

    assert dict(config.patterns) == {"employee_id": r"EMP-\d{6}"}
    with pytest.raises(TypeError):
        config.patterns["x"] = "y"  # type: ignore[index]


# --- Configuration errors -------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (PIIConfig(detectors=("email", "fax")), r"unknown PII detector 'fax'; accepted: email, "),
        (PIIConfig(detectors="email"), r"detectors must be a tuple of detector names"),  # type: ignore[arg-type]
        (
            PIIConfig(default_action="scramble"),
            r"default_action is 'scramble'.*accepted: allow, mask, hash, redact",
        ),
        (
            PIIConfig(pattern_actions={"email": "scramble"}),
            r"pattern_actions\['email'\] is 'scramble'.*accepted: allow",
        ),
        (PIIConfig(field_actions={"output": 3}), r"field_actions\['output'\] is 3.*accepted"),  # type: ignore[dict-item]
        (
            PIIConfig(pattern_actions={"fax": "mask"}),
            r"pattern_actions names 'fax'.*accepted: .*credit_card",
        ),
        (PIIConfig(patterns={"bad": "(unclosed"}), r"pattern 'bad' is not a valid regex"),
        (
            PIIConfig(patterns={"email": "x"}),
            r"pattern name 'email' is taken by a built-in detector",
        ),
        (PIIConfig(patterns={"has space": "x"}), r"pattern name 'has space' is not usable"),
        (PIIConfig(patterns={"n": 5}), r"pattern 'n' must be a regex str"),  # type: ignore[dict-item]
        (PIIConfig(patterns=["x"]), r"patterns must be a mapping"),  # type: ignore[arg-type]
        (PIIConfig(hash_salt=b"x"), r"hash_salt must be a str"),  # type: ignore[arg-type]
    ],
)
def test_bad_config_raises_config_error(config: PIIConfig, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PIIMasker(config)


def test_actions_accept_strings_in_any_case() -> None:
    masker = PIIMasker(PIIConfig(default_action="REDACT", pattern_actions={"email": "Hash"}))

    assert masker.mask("10.0.0.1 a@b.co") == f" [EMAIL:{_hash12('a@b.co')}]"


def test_custom_pattern_can_be_named_in_pattern_actions() -> None:
    PIIMasker(PIIConfig(patterns={"emp": "EMP"}, pattern_actions={"emp": "allow"}))


def test_masker_exposes_its_config() -> None:
    config = PIIConfig(field_actions={"input": "allow"})

    assert PIIMasker(config).config is config
    assert PIIMasker().config == PIIConfig()


def test_default_config_enables_every_detector() -> None:
    assert PIIConfig().detectors == DETECTORS
    assert PIIConfig().default_action is Action.MASK


# --- Properties -----------------------------------------------------------------------


_pii_alphabet = st.sampled_from(
    [*"abcXYZ0123456789 .-:@+()=_\"'/\n", "é", "€", "\ud800", "bob@example.com", "10.0.0.1", "sk-"]
)


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(_pii_alphabet, max_size=60))
def test_findings_are_ordered_disjoint_and_in_bounds(pieces: list[str]) -> None:
    text = "".join(pieces)

    found = MASKER.findings(text)

    last = 0
    for finding in found:
        assert last <= finding.start < finding.end <= len(text)
        last = finding.end
    MASKER.mask(text)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300))
def test_mask_never_raises_and_is_idempotent_on_clean_output(text: str) -> None:
    once = MASKER.mask(text)

    assert isinstance(once, str)
    assert MASKER.mask(once) == once
