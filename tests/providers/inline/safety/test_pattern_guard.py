"""inline::pattern-guard: each detector (true positives and realistic negatives),
rules of one's own, shield and call params, metadata masking, config errors."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from providers.inline.safety.pattern_guard import create, register_providers
from providers.inline.safety.pattern_guard.config import PatternGuardConfig
from stack.apis._content import ImageContentItem, TextContentItem
from stack.apis.inference import CompletionMessage, SystemMessage, UserMessage
from stack.apis.shields import Shield
from stack.errors import BadRequestError, ConfigError, ConflictError, NotFoundError
from stack.registry import ProviderContext

CARD = "4111 1111 1111 1111"  # a Visa test number: passes Luhn
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0" * 2


def _context(provider_id: str = "pattern-guard", deps: dict | None = None) -> ProviderContext:
    specs = []
    register_providers(specs.append)
    return ProviderContext(provider_id=provider_id, spec=specs[0], image_name="test", data_dir=Path("."),
                           deps=deps or {})


async def make(config: dict | None = None, *, params: dict | None = None, shield_id: str = "guard"):
    guard = await create(PatternGuardConfig.model_validate(config or {}), _context())
    await guard.register_shield(Shield(identifier=shield_id, provider_resource_id=shield_id,
                                       provider_id="pattern-guard", params=params))
    return guard


async def check(guard, *texts: str, params: dict | None = None, shield_id: str = "guard"):
    response = await guard.run_shield(shield_id, [UserMessage(content=t) for t in texts], params or {})
    return response.violation


def names(violation) -> list[str]:
    return [m["name"] for m in violation.metadata["matches"]] if violation else []


@pytest.fixture
async def guard():
    return await make()


# -- detectors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    f"my card is {CARD}, expiry 12/27",
    "card: 4111-1111-1111-1111",
    "4111111111111111",
    "amex 3782 822463 10005",
    "5555555555554444 (mastercard)",
])
async def test_card_numbers_are_found(guard, text):
    violation = await check(guard, text)
    assert names(violation) == ["credit_card"]
    assert violation.violation_level.value == "error"


@pytest.mark.parametrize("text", [
    "reference 4111 1111 1111 1112",  # 16 digits, Luhn-invalid
    "order number 1234567890123456 ships tomorrow",
    "in 2024 we sold 1500 units",
    "invoice 2024-000123-45 for $1,299.99",
    "the id is 41111111111111111111111",  # too long for a card
])
async def test_numbers_that_are_not_cards_pass(guard, text):
    assert "credit_card" not in names(await check(guard, text))


@pytest.mark.parametrize("text, found", [
    ("use sk-proj-Ab3dEfGh1jKlMnOpQrStUvWx9z for the API", "sk-p****"),
    (f"aws_access_key_id = {AWS_KEY}", "AKIA****"),
    (f"token {GITHUB_TOKEN}", "ghp_****"),
    ("github_pat_11ABCDEFG0123456789abcdef_xyz", "gith****"),
    ("SLACK=xoxb-123456789012-abcdefghijKL", "xoxb****"),
    ("api_key: 'Zx9fQ2LmT7wR4bN8cV1dK6'", "Zx9f****"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0", "eyJh****"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow...", "-----BEGIN RSA PRIVATE KEY-----"),
])
async def test_secrets_are_found_and_masked(guard, text, found):
    violation = await check(guard, text)
    (match,) = violation.metadata["matches"]
    assert match["name"] == "secret" and match["samples"] == [found]
    assert violation.violation_level.value == "error"


@pytest.mark.parametrize("text", [
    "the secret to good bread is patience",
    "we use sk-learn-and-pandas-for-everything here",
    "my password: hunter2",
    "tokenization_benchmark_results_2024 are in",
    "the keyboard shortcut is ctrl+shift+p",
])
async def test_prose_about_secrets_passes(guard, text):
    assert await check(guard, text) is None


async def test_email_addresses_warn(guard):
    violation = await check(guard, "write to jane.doe+news@example.co.uk or bob@example.org")
    assert violation.violation_level.value == "warn"
    (match,) = violation.metadata["matches"]
    assert match == {"name": "email", "kind": "detector", "violation_level": "warn", "count": 2,
                     "samples": ["j***@example.co.uk", "b***@example.org"]}


@pytest.mark.parametrize("text", ["@jane on social media", "user@localhost", "a @ b", "price: 3 @ $4"])
async def test_things_with_an_at_sign_are_not_addresses(guard, text):
    assert await check(guard, text) is None


@pytest.mark.parametrize("text", [
    "call +49 30 1234567", "+1 (415) 555-2671", "+14155552671", "ring 555-123-4567 today",
    "(415) 555-2671", "1-800-555-1234", "Berlin: 030 12345678", "London 020 7946 0958", "Paris 01 23 45 67 89",
])
async def test_phone_numbers_are_found(guard, text):
    violation = await check(guard, text)
    assert names(violation) == ["phone"]
    assert violation.metadata["matches"][0]["count"] == 1
    assert violation.metadata["matches"][0]["samples"][0].startswith("***")


@pytest.mark.parametrize("text", [
    "the year 2024", "order 4815162342 shipped", "meet on 01-02-2024 10:30", "version 1.2.3",
    "host 192.168.0.12", "score +12345678 points", "route 66 is 3945 km long", "it was 2024-01-15",
])
async def test_numbers_that_are_not_phones_pass(guard, text):
    assert await check(guard, text) is None


async def test_clean_conversation_has_no_violation(guard):
    assert await check(guard, "Hello! What is the capital of France?", "Paris, since 508 AD.") is None


async def test_every_message_and_text_item_is_checked_images_are_not(guard):
    messages = [
        SystemMessage(content="You are helpful."),
        UserMessage(content=[TextContentItem(text="here:"), ImageContentItem(image={"url": {"uri": "https://x/y.png"}}),
                             TextContentItem(text=f"my key {AWS_KEY}")]),
        CompletionMessage(content="mail me at ops@example.com", stop_reason="end_of_turn"),
    ]
    violation = (await guard.run_shield("guard", messages, {})).violation
    assert names(violation) == ["secret", "email"]


async def test_text_items_do_not_run_together_into_a_card_number(guard):
    halves = UserMessage(content=[TextContentItem(text="4111 1111"), TextContentItem(text="1111 1111")])
    assert (await guard.run_shield("guard", [halves], {})).violation is None


async def test_metadata_never_holds_the_card_number_or_secret(guard):
    violation = await check(guard, f"card {CARD} and key {AWS_KEY} and {GITHUB_TOKEN}")
    dumped = repr(violation.model_dump())
    assert "1111 1111" not in dumped and "4111" not in dumped
    assert AWS_KEY not in dumped and GITHUB_TOKEN not in dumped
    card = violation.metadata["matches"][0]
    assert card["samples"] == ["************1111"]


async def test_detectors_can_be_switched_off_and_relevelled():
    guard = await make({"detectors": {"email": False, "phone": {"violation_level": "info", "user_message": "phone!"}}})
    assert await check(guard, "mail a@example.com") is None
    violation = await check(guard, "call +49 30 1234567")
    assert violation.violation_level.value == "info" and violation.user_message == "phone!"


# -- rules ---------------------------------------------------------------------------------------

RULES = {"rules": [
    {"name": "ssn", "regex": r"\b\d{3}-\d{2}-\d{4}\b", "violation_level": "error", "user_message": "No SSNs."},
    {"name": "codenames", "keywords": ["Project Falcon", "bluebird"], "violation_level": "warn"},
    {"name": "shouting", "keywords": ["URGENT"], "case_sensitive": True, "violation_level": "info"},
]}


async def test_regex_rule():
    guard = await make(RULES)
    violation = await check(guard, "my ssn is 078-05-1120")
    assert names(violation) == ["ssn"]
    assert violation.user_message == "No SSNs."
    assert violation.metadata["matches"][0]["samples"] == ["07***"]  # a regex match is masked


async def test_keyword_rule_matches_whole_words_ignoring_case_and_spacing():
    guard = await make(RULES)
    violation = await check(guard, "Status of PROJECT   falcon?")
    assert names(violation) == ["codenames"]
    assert violation.violation_level.value == "warn"
    assert violation.user_message == "The message matches the content rule 'codenames'."
    assert violation.metadata["matches"][0]["samples"] == ["Project Falcon"]  # the configured keyword
    assert await check(guard, "bluebirds and falconry") is None


async def test_case_sensitive_keywords():
    guard = await make(RULES)
    assert names(await check(guard, "URGENT: reply")) == ["shouting"]
    assert await check(guard, "urgent: reply") is None


async def test_most_severe_violation_wins_and_all_matches_are_listed():
    guard = await make(RULES)
    violation = await check(guard, "URGENT bluebird update", f"and my card {CARD}, ssn 078-05-1120")
    assert violation.violation_level.value == "error"
    # the first error-level check in config order decides the message: detectors come before rules
    assert violation.user_message.startswith("The message contains a payment card number")
    assert names(violation) == ["credit_card", "ssn", "codenames", "shouting"]
    assert violation.metadata["violation_type"] == "credit_card,ssn,codenames,shouting"
    assert [m["violation_level"] for m in violation.metadata["matches"]] == ["error", "error", "warn", "info"]


async def test_counts_add_up_over_messages():
    guard = await make(RULES)
    violation = await check(guard, "bluebird, bluebird", "Bluebird")
    assert violation.metadata["matches"][0]["count"] == 3
    assert violation.metadata["matches"][0]["samples"] == ["bluebird"]


# -- params --------------------------------------------------------------------------------------


async def test_call_params_narrow_detectors_and_rules():
    guard = await make(RULES)
    text = f"bluebird {CARD} a@example.com"
    assert names(await check(guard, text, params={"detectors": ["email"]})) == ["email", "codenames"]
    assert names(await check(guard, text, params={"detectors": [], "rules": ["codenames"]})) == ["codenames"]
    assert await check(guard, text, params={"detectors": [], "rules": []}) is None


async def test_shield_params_narrow_and_calls_cannot_widen_them():
    guard = await make(RULES, params={"detectors": ["credit_card"], "rules": []})
    assert names(await check(guard, f"bluebird {CARD} a@example.com")) == ["credit_card"]
    with pytest.raises(BadRequestError) as info:
        await check(guard, "x", params={"detectors": ["email"]})
    assert info.value.field == "params.detectors"
    assert "'email' is not applied by this shield; it applies: credit_card" in info.value.message


@pytest.mark.parametrize("params, field, message", [
    ({"detectors": ["fingerprints"]}, "params.detectors", "unknown detector 'fingerprints'"),
    ({"rules": ["nope"]}, "params.rules", "unknown rule 'nope'; enabled: ssn, codenames, shouting"),
    ({"detectors": "email"}, "params.detectors", "must be a list of names"),
    ({"checks": ["email"]}, "params.checks", "unknown key 'checks'"),
])
async def test_bad_call_params_are_400s_naming_the_field(params, field, message):
    guard = await make(RULES)
    with pytest.raises(BadRequestError) as info:
        await check(guard, "hello", params=params)
    assert info.value.field == field
    assert message in info.value.message


async def test_a_detector_switched_off_in_config_cannot_be_asked_for():
    guard = await make({"detectors": {"phone": False}})
    with pytest.raises(BadRequestError, match="'phone' is switched off in the provider config"):
        await check(guard, "hello", params={"detectors": ["phone"]})


async def test_bad_shield_params_refuse_the_registration():
    guard = await make()
    with pytest.raises(BadRequestError) as info:
        await guard.register_shield(Shield(identifier="g2", provider_resource_id="g2", provider_id="pattern-guard",
                                           params={"rules": ["nope"]}))
    assert info.value.field == "params.rules"
    with pytest.raises(NotFoundError):
        await check(guard, "hello", shield_id="g2")


async def test_two_shields_on_one_provider_shield_id_must_agree():
    guard = await make(params={"detectors": ["email"]}, shield_id="a")
    with pytest.raises(ConflictError, match="shield 'a' already uses provider_shield_id 'a'"):
        await guard.register_shield(Shield(identifier="b", provider_resource_id="a", provider_id="pattern-guard",
                                           params={"detectors": ["phone"]}))
    same = Shield(identifier="c", provider_resource_id="a", provider_id="pattern-guard", params={"detectors": ["email"]})
    await guard.register_shield(same)
    await guard.unregister_shield(Shield(identifier="a", provider_resource_id="a", provider_id="pattern-guard"))
    assert names(await check(guard, "a@example.com +49 30 1234567", shield_id="a")) == ["email"]  # c still holds it
    await guard.unregister_shield(same)
    with pytest.raises(NotFoundError):
        await check(guard, "x", shield_id="a")


async def test_a_shield_registered_by_another_replica_is_learnt_from_the_shields_table():
    class SharedShieldsTable:  # test double: the store shared with another replica
        async def list(self):
            return [Shield(identifier="elsewhere", provider_resource_id="other", provider_id="pattern-guard",
                           params={"detectors": ["email"]})]

    guard = await create(PatternGuardConfig(), _context(deps={"shields": SharedShieldsTable()}))
    violation = (await guard.run_shield("other", [UserMessage(content=f"a@example.com {CARD}")], {})).violation
    assert names(violation) == ["email"]


async def test_a_renamed_provider_shield_id_forgets_the_old_one():
    guard = await make(shield_id="a")
    await guard.register_shield(Shield(identifier="a", provider_resource_id="renamed", provider_id="pattern-guard"))
    assert names(await check(guard, "a@example.com", shield_id="renamed")) == ["email"]
    with pytest.raises(NotFoundError):
        await check(guard, "x", shield_id="a")


# -- config --------------------------------------------------------------------------------------


def test_empty_config_enables_every_detector():
    assert PatternGuardConfig().enabled_detectors() == ["credit_card", "secret", "email", "phone"]


@pytest.mark.parametrize("rule, message", [
    ({"name": "r", "regex": "a", "keywords": ["a"]}, "rule 'r': give exactly one of regex or keywords"),
    ({"name": "r"}, "rule 'r': give exactly one of regex or keywords"),
    ({"name": "r", "regex": "x*"}, "rule 'r': regex 'x*' matches the empty string"),
    ({"name": "r", "keywords": [" "]}, "keywords must not be empty or blank"),
    ({"name": "email", "regex": "x"}, "rule name 'email' is the name of a built-in detector"),
    ({"name": "r", "regex": "x", "colour": "red"}, "Extra inputs are not permitted"),
])
def test_bad_rules_are_rejected(rule, message):
    with pytest.raises(ValidationError, match=re.escape(message)):
        PatternGuardConfig.model_validate({"rules": [rule]})


def test_duplicate_rule_names_are_rejected():
    with pytest.raises(ValidationError, match="rule name 'r' is used twice"):
        PatternGuardConfig.model_validate({"rules": [{"name": "r", "regex": "a"}, {"name": "r", "regex": "b"}]})


def test_invalid_regex_fails_start_up_naming_file_path_and_rule(tmp_path):
    from stack.config import load_run_config
    from stack.plugins import collect_providers, get_plugin_manager
    from stack.resolver import plan

    path = tmp_path / "run.yaml"
    path.write_text(textwrap.dedent("""\
        version: '2'
        image_name: t
        apis: [safety]
        providers:
          safety:
          - provider_id: pattern-guard
            provider_type: inline::pattern-guard
            config:
              rules:
              - name: order-ids
                regex: 'ORD-(\\d+'
        """))
    with pytest.raises(ConfigError) as info:
        plan(load_run_config(path), collect_providers(get_plugin_manager(load_entry_points=False)))
    message = info.value.message
    assert str(path) in message and "providers.safety[0].config.rules[0]" in message
    assert "rule 'order-ids': invalid regex 'ORD-(\\\\d+': missing ), unterminated subpattern" in message

