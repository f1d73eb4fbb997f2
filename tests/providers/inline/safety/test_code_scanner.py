"""inline::code-scanner: insecure code samples per rule, safe look-alikes, fenced blocks and
their languages, the violation a user sees, params and config errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from providers.inline.safety.code_scanner import CodeScannerConfig, create, register_providers
from providers.inline.safety.code_scanner._rules import RULES
from stack.apis.inference import CompletionMessage, UserMessage
from stack.apis.shields import Shield
from stack.errors import BadRequestError
from stack.registry import ProviderContext


async def make(config: dict | None = None):
    specs = []
    register_providers(specs.append)
    context = ProviderContext(provider_id="code-scanner", spec=specs[0], image_name="t", data_dir=Path("."))
    scanner = await create(CodeScannerConfig.model_validate(config or {}), context)
    await scanner.register_shield(Shield(identifier="CodeScanner", provider_resource_id="CodeScanner",
                                         provider_id="code-scanner"))
    return scanner


async def rules_hit(text: str, config: dict | None = None) -> list[str]:
    response = await (await make(config)).run_shield("CodeScanner", [UserMessage(content=text)], {})
    return response.violation.metadata["rules"] if response.violation else []


def fenced(language: str, code: str) -> str:
    return f"Here you go:\n\n```{language}\n{code}\n```\n"


INSECURE = [
    ("python", "result = eval(user_input)", "eval-injection"),
    ("python", "exec(compile(src, 'x', 'exec'))", "eval-injection"),
    ("javascript", "const f = new Function('a', body);", "eval-injection"),
    ("python", "obj = pickle.loads(request.data)", "python-unsafe-deserialization"),
    ("python", "config = yaml.load(open('c.yml'))", "python-yaml-load"),
    ("python", "subprocess.run(f'ls {path}', shell=True)", "python-shell-injection"),
    ("python", "os.system('rm -rf ' + folder)", "python-shell-injection"),
    ("python", "digest = hashlib.md5(password.encode()).hexdigest()", "weak-hash"),
    ("javascript", "crypto.createHash('sha1').update(pw)", "weak-hash"),
    ("python", "requests.get(url, verify=False)", "tls-verification-disabled"),
    ("c", "char buf[16];\nstrcpy(buf, argv[1]);", "c-unbounded-copy"),
    ("cpp", "sprintf(out, \"%s\", name);", "c-unbounded-copy"),
    ("c", "gets(line);", "c-gets"),
    ("c", "printf(user_text);", "c-format-string"),
    ("javascript", "el.innerHTML = location.hash.slice(1);", "js-dom-injection"),
    ("js", "document.write(params.get('q'));", "js-dom-injection"),
    ("python", "cur.execute(\"SELECT * FROM users WHERE name = '\" + name + \"'\")", "sql-string-building"),
    ("python", "cur.execute(f\"DELETE FROM orders WHERE id = {order_id}\")", "sql-string-building"),
    ("java", "String q = \"SELECT id FROM t WHERE a = \" + a;", "sql-string-building"),
    ("python", "API_KEY = \"k3y-0123456789abcdef\"", "hardcoded-secret"),
    ("python", "aws_access_key_id = 'AKIAIOSFODNN7EXAMPLE'", "hardcoded-secret"),
]

SAFE = [
    ("python", "value = ast.literal_eval(user_input)"),
    ("python", "obj = json.loads(request.data)"),
    ("python", "config = yaml.safe_load(open('c.yml'))"),
    ("python", "config = yaml.load(f, Loader=yaml.SafeLoader)"),
    ("python", "subprocess.run(['ls', path], check=True)"),
    ("python", "digest = hashlib.sha256(data).hexdigest()"),
    ("c", "strncpy(buf, argv[1], sizeof buf - 1);\nfgets(line, sizeof line, stdin);\nprintf(\"%s\", user_text);"),
    ("javascript", "el.textContent = location.hash.slice(1);"),
    ("python", "cur.execute(\"SELECT * FROM users WHERE name = %s\", (name,))"),
    ("python", "api_key = os.environ['API_KEY']"),
]


@pytest.mark.parametrize("language, code, rule", INSECURE, ids=[f"{r}-{i}" for i, (_, _, r) in enumerate(INSECURE)])
async def test_insecure_code_is_flagged_by_its_rule(language, code, rule):
    assert rule in await rules_hit(fenced(language, code))


@pytest.mark.parametrize("language, code", SAFE, ids=[c[:30] for _, c in SAFE])
async def test_safe_code_passes(language, code):
    assert await rules_hit(fenced(language, code)) == []


def test_every_rule_has_an_insecure_sample():
    assert {rule.id for rule in RULES} == {rule for _, _, rule in INSECURE}


async def test_rules_apply_to_their_languages_only():
    # gets( is C's problem; in a Python block it is some other function
    assert await rules_hit(fenced("python", "line = gets(stream)")) == []
    assert await rules_hit(fenced("c", "line = gets(stream);")) == ["c-gets"]


async def test_unfenced_text_is_scanned_as_code_of_any_language():
    assert await rules_hit("just run `os.system(cmd)` and you are done") == ["python-shell-injection"]
    assert await rules_hit("Please explain how sorting works in Python.") == []


async def test_the_violation_names_rules_lines_and_messages():
    scanner = await make()
    messages = [UserMessage(content="write me a loader"),
                CompletionMessage(content=fenced("python", "import pickle\n\nobj = pickle.load(f)\nx = eval(s)"),
                                  stop_reason="end_of_turn")]
    violation = (await scanner.run_shield("CodeScanner", messages, {})).violation
    assert violation.violation_level.value == "error"
    assert violation.user_message == ("The code in this conversation looks insecure: pickle, marshal or shelve load "
                                      "untrusted data as objects; eval/exec/new Function run code built from data.")
    assert violation.metadata["violation_type"] == "python-unsafe-deserialization,eval-injection"
    assert [(m["rule"], m["cwe"], m["message_index"], m["line"], m["language"]) for m in violation.metadata["matches"]] == [
        ("python-unsafe-deserialization", "CWE-502", 1, 3, "python"), ("eval-injection", "CWE-95", 1, 4, "python")]


async def test_secrets_are_not_echoed_in_the_metadata():
    scanner = await make()
    response = await scanner.run_shield("CodeScanner", [UserMessage(content="password = 'hunter2hunter2'")], {})
    assert "hunter2" not in str(response.violation.model_dump())


async def test_disabled_rules_are_not_applied():
    code = fenced("python", "h = hashlib.md5(x)\ny = eval(s)")
    assert await rules_hit(code, {"disabled_rules": ["weak-hash"]}) == ["eval-injection"]


def test_an_unknown_disabled_rule_is_a_config_error_naming_the_known_ones():
    with pytest.raises(ValidationError, match="unknown rule\\(s\\) md5.*known: c-format-string"):
        CodeScannerConfig.model_validate({"disabled_rules": ["md5"]})
    with pytest.raises(ValidationError, match="extra"):
        CodeScannerConfig.model_validate({"semgrep": True})


async def test_params_are_refused_with_the_field_named():
    scanner = await make()
    with pytest.raises(BadRequestError) as err:
        await scanner.run_shield("CodeScanner", [UserMessage(content="x")], {"languages": ["python"]})
    assert err.value.field == "params"


async def test_a_long_conversation_is_scanned_whole():
    filler = "\n".join(f"total += {i}" for i in range(20_000))  # past what is scanned on the event loop
    assert await rules_hit(fenced("python", filler + "\nos.popen(cmd)")) == ["python-shell-injection"]
