"""The documents' names of the code are true: every `path` and
`path::symbol` that docs/ARCHITECTURE.md (its code map, entry points and
failure table) or a decision record names exists, as
shared/core/src/layers.rs checks the imports. A renamed file or function
fails here, not in a newcomer's first hour."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = [ROOT / "docs" / "ARCHITECTURE.md", *sorted((ROOT / "docs" / "decisions").glob("*.md"))]
TOP = ("shared/", "functions/", "cli/", "bench/", "tests/", "scripts/", "docs/", "examples/", "fuzz/", ".ci/")
QUOTED = re.compile(r"`([^`\n]+)`")
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def references(text):
    """(path, [symbols]) for each backquoted name that starts with a
    top-level folder; `a.rs::{f, g}` names f and g, `a.rs::T::m` T and m."""
    for quoted in QUOTED.findall(text):
        for word in re.split(r"[\s,()]+(?=[a-z.]+/)", quoted):
            word = word.strip().rstrip(".,;:")
            if not word.startswith(TOP) or "…" in word or "*" in word or "{tenant}" in word:
                continue
            path, _, rest = word.partition("::")
            # A command's arguments after its path: `scripts/bench tail`.
            path = path.split()[0]
            # A test's name after the file: `tests/test_x.py::test_y`.
            symbols = IDENT.findall(rest) if rest else []
            yield path.rstrip("/"), symbols


def cases():
    for doc in DOCS:
        for path, symbols in references(doc.read_text()):
            yield pytest.param(doc.name, path, tuple(symbols), id=f"{doc.name}:{path}::{'|'.join(symbols)}")


@pytest.mark.parametrize("doc,path,symbols", list(dict.fromkeys(cases())))
def test_every_named_path_and_symbol_exists(doc, path, symbols):
    target = ROOT / path
    assert target.exists(), f"{doc} names `{path}`, which does not exist"
    if not symbols:
        return
    assert target.is_file(), f"{doc} names symbols in `{path}`, a folder"
    text = target.read_text(errors="replace")
    missing = [s for s in symbols if not re.search(rf"\b{re.escape(s)}\b", text)]
    assert not missing, f"{doc} names {missing} in `{path}`, which has no such name"


def test_the_architecture_is_read_in_one_sitting():
    lines = (ROOT / "docs" / "ARCHITECTURE.md").read_text().count("\n")
    assert lines <= 400, f"docs/ARCHITECTURE.md has {lines} lines: move decisions to docs/decisions/"


def test_the_check_finds_names_and_fails_on_a_missing_one():
    found = list(references("see `shared/core/src/lib.rs::{load_flow, nope}` and `cli/` and `x/y`"))
    assert found == [("shared/core/src/lib.rs", ["load_flow", "nope"]), ("cli", [])]
    with pytest.raises(AssertionError, match="nope"):
        test_every_named_path_and_symbol_exists("t", "shared/core/src/lib.rs", ("load_flow", "nope"))


IAM = ROOT / "docs" / "iam"
ACTION = re.compile(r"^[a-z0-9-]+:[A-Za-z*]+$")
# What each of template.yaml's resource types needs its deployer to do.
DEPLOYS = {"CloudWatch": ["cloudwatch"], "DynamoDB": ["dynamodb"], "IAM": ["iam"], "Logs": ["logs"], "SNS": ["sns"], "SQS": ["sqs"],
           "Serverless::Function": ["lambda", "iam"], "Serverless::HttpApi": ["apigateway"]}
# The SDK calls of the AWS driver and the CLI, as IAM names them (a
# batch is allowed by its single form).
SDK_ACTIONS = {
    "query": "dynamodb:Query", "get_item": "dynamodb:GetItem", "put_item": "dynamodb:PutItem",
    "update_item": "dynamodb:UpdateItem", "delete_item": "dynamodb:DeleteItem",
    "batch_write_item": "dynamodb:BatchWriteItem", "transact_write_items": "dynamodb:TransactWriteItems",
    "describe_table": "dynamodb:DescribeTable", "send_message_batch": "sqs:SendMessage",
    "send_message": "sqs:SendMessage", "change_message_visibility_batch": "sqs:ChangeMessageVisibility",
    "get_secret_value": "secretsmanager:GetSecretValue", "create_secret": "secretsmanager:CreateSecret",
    "put_secret_value": "secretsmanager:PutSecretValue", "delete_secret": "secretsmanager:DeleteSecret",
    "describe_stacks": "cloudformation:DescribeStacks",
}


def allowed(policy):
    doc = __import__("json").loads((IAM / policy).read_text())
    actions = set()
    for st in doc["Statement"]:
        assert st["Effect"] == "Allow" and st["Resource"], st
        for a in st["Action"]:
            assert ACTION.match(a), f"{policy}: `{a}` is not service:Action"
            actions.add(a)
    return actions


def test_the_deployer_policy_covers_every_service_of_the_template():
    actions = allowed("deployer.json")
    services = {a.split(":")[0] for a in actions}
    kinds = set(re.findall(r"Type: AWS::([A-Za-z]+(?:::Function|::HttpApi)?)", (ROOT / "template.yaml").read_text()))
    for kind in kinds:
        need = DEPLOYS.get(kind) or DEPLOYS.get(kind.split("::")[0])
        assert need, f"template.yaml has AWS::{kind}: say what deploying it takes (DEPLOYS, docs/iam/deployer.json)"
        assert set(need) <= services, f"AWS::{kind} needs {need} in docs/iam/deployer.json"
    assert {"cloudformation:CreateChangeSet", "iam:PassRole", "s3:PutObject"} <= actions


def test_the_operator_policy_allows_every_call_the_cli_makes_and_the_caller_only_the_admin_api():
    operator = allowed("operator.json")
    code = ROOT / "shared" / "aws" / "src"
    files = [p for p in code.rglob("*.rs") if p.name not in ("testing.rs", "provision.rs")]
    files += list((ROOT / "cli" / "src").rglob("*.rs"))
    called = {m for p in files for m in re.findall(r"\.([a-z_]+)\(\)", p.read_text()) if m in SDK_ACTIONS}
    assert {"query", "transact_write_items", "send_message_batch", "describe_stacks"} <= called, called
    missing = {SDK_ACTIONS[m] for m in called} - operator
    assert not missing, f"docs/iam/operator.json lacks {sorted(missing)}"
    assert allowed("admin-caller.json") == {"execute-api:Invoke"}
    assert "/v1/" in (IAM / "admin-caller.json").read_text()
