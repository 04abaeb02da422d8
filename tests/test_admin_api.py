"""The admin API against its published OpenAPI document: schemathesis
(PyPI) generates requests from docs/openapi.json and sends them to a real
`hookflow dev`; no answer may be a 5xx or differ from the document."""

import os
import pathlib
import subprocess

from test_dev import dev  # noqa: F401 (fixture)
from test_subscriptions import PLACEHOLDER

ROOT = pathlib.Path(__file__).resolve().parent.parent
ADMIN = "fuzz-admin-token"


def test_schemathesis_finds_no_5xx_and_no_schema_violation(dev, tmp_path):
    d = dev({"p.yaml": PLACEHOLDER}, "--admin-token", ADMIN, "--verification-retry", "50ms")
    st = pathlib.Path(os.sys.executable).parent / "schemathesis"
    out = subprocess.run(
        [str(st), "run", str(ROOT / "docs/openapi.json"), "--url", f"http://127.0.0.1:{d.port}",
         "-H", f"Authorization: Bearer {ADMIN}",
         "--checks", "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
         "--max-examples", "30", "--seed", "1", "--workers", "1", "--request-timeout", "10"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    report = out.stdout[-6000:] + out.stderr[-2000:]
    assert out.returncode == 0, report
    assert "passed" in out.stdout, report
    assert "panicked" not in d.stdout()
