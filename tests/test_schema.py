"""Checks the published JSON Schema with an independent validator.

Every example flow must validate against docs/flow.schema.json (as an editor
would check it), and typical mistakes must fail it, so the schema is neither
too strict nor too loose.
"""

import copy
import json
import pathlib

import jsonschema
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "docs" / "flow.schema.json").read_text())




EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate_against_the_published_schema(path):
    jsonschema.validate(yaml.safe_load(path.read_text()), SCHEMA)


def test_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


FIXTURE = {
    "id": "demo",
    "tenant": "acme",
    "trigger": {"type": "webhook", "path": "orders", "methods": ["POST"]},
    "steps": [
        {"id": "send", "type": "http", "url": "https://example.com/x", "body": {"json": {"a": "{{ trigger.body.a }}"}},
         "status": {"success": ["200-299"], "retry": [429]}, "retry": {"schedule": ["5s", "1m"]}},
        {"id": "answer", "type": "respond", "status": "{{ 200 }}"},
        {"id": "v", "type": "set", "vars": {"x": 1}, "on_failure": {"goto": "send"}},
    ],
}


def test_a_full_flow_validates():
    jsonschema.validate(FIXTURE, SCHEMA)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda f: f.pop("tenant"),
        lambda f: f["trigger"].update(methods=["HEAD"]),
        lambda f: f["trigger"].update(unknown=1),
        lambda f: f["steps"][0].update(type="carrier-pigeon"),
        lambda f: f["steps"][0]["status"].update(success=["2xx"]),
        lambda f: f["steps"][2].update(on_failure="explode"),
    ],
)
def test_mistakes_fail_the_schema(mutate):
    flow = copy.deepcopy(FIXTURE)
    mutate(flow)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(flow, SCHEMA)
