"""The README's shell blocks, run as a reader runs them.

Every ```sh block of README.md is either run here against `hookflow dev`
(on the README's own examples and admin token, on a free port instead of
8080), each command's output compared with the `# …` comment right under
it, or it calls what this machine has no account for (AWS, SAM) or is
the suite itself; a block that is neither fails the test, so a new
example is run or classified, never left unchecked. In an expected
answer, `…` stands for what differs run to run: inside a string, any
text; as the last member of an object, any further members."""

import json
import os
import pathlib
import re
import subprocess

import pytest

from test_dev import Dev

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
# A block calling one of these needs what a test machine has no account
# for, or is the suite's own command: not run here.
ELSEWHERE = ("sam ", "aws ", "awscurl", "stack-env", "--table", "scripts/local-aws", "hookflow apply",
             "hookflow console", "scripts/test", "scripts/fuzz", "scripts/bench", "pip install")
ADMIN_TOKEN = "my-admin-token-1234"


def sh_blocks():
    for m in BLOCK.finditer(README):
        if m.group(1) == "sh":
            yield README[: m.start()].count("\n") + 1, m.group(2)


def synopsis(body):
    """A usage line (`[--flag …]`, `DIR`), not a command to run."""
    return "[--" in body or " DIR " in body


def runnable():
    return [(line, body) for line, body in sh_blocks()
            if not any(w in body for w in ELSEWHERE) and not synopsis(body)]


def segments(body):
    """(command, expected output) pairs: an expected output is the comment
    line right under a command that reads like an answer (`# {`, `# [`,
    `# v1,`)."""
    out, command = [], []
    for line in body.splitlines():
        text = line.strip()
        answer = text.startswith(("# {", "# [", "# v1,"))
        if answer and command:
            out.append(("\n".join(command), text[2:]))
            command = []
        elif text and not text.startswith("#"):
            command.append(line)
        elif command and command[-1].rstrip().endswith("\\"):
            command.append(line)
    if command:
        out.append(("\n".join(command), None))
    return out


def matches(expected, got):
    """`got` is what `expected` says, `…` standing for what varies."""
    if isinstance(expected, dict):
        extra = expected.pop("…", False)
        return (isinstance(got, dict) and all(k in got and matches(v, got[k]) for k, v in expected.items())
                and (extra or set(got) == set(expected)))
    if isinstance(expected, list):
        return isinstance(got, list) and len(got) == len(expected) and all(map(matches, expected, got))
    if isinstance(expected, str) and "…" in expected:
        head, _, tail = expected.partition("…")
        return isinstance(got, str) and got.startswith(head) and got.endswith(tail)
    return expected == got


def parse_expected(text):
    """An answer as the README writes it: JSON with `…` members."""
    return json.loads(re.sub(r",\s*…\s*}", ', "…": true}', text))


def test_every_shell_block_run_here_compares_what_it_answers():
    run = runnable()
    assert any("/v1/events" in body for _, body in run) and any("hookflow sign" in body for _, body in run), run
    # A block run here shows what it answers (a `# …` line under a
    # command): one that shows nothing would pass on its exit code alone.
    silent = [line for line, body in run if not any(expected for _, expected in segments(body))]
    assert not silent, f"README.md blocks at lines {silent} run here but show no answer to compare"


def test_the_matcher_takes_the_readme_s_wildcards_and_fails_on_a_difference():
    want = parse_expected('{"id":"sub_…","status":"pending",…}')
    assert matches(dict(want), {"id": "sub_1", "status": "pending", "secret": "x"})
    assert not matches(dict(want), {"id": "sub_1", "status": "active"})
    assert not matches(parse_expected('{"deliveries":1}'), {"deliveries": 0})


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("readme")
    flows = {p.name: p.read_text() for p in (ROOT / "examples").glob("*.yaml")}
    d = Dev(os.environ["HOOKFLOW_BIN"], tmp, flows, ("--admin-token", ADMIN_TOKEN))
    yield d
    d.close()


def test_the_first_command_s_curl_answers_as_its_comment_says(dev):
    line, first = next(sh_blocks())
    assert "cargo run -q -p hookflow -- dev --flows examples/" in first
    curl = next(l for l in first.splitlines() if "curl -s localhost:8080" in l).split("#", 1)[1].strip()
    out = subprocess.run(["bash", "-c", curl.replace("localhost:8080", f"127.0.0.1:{dev.port}")],
                         capture_output=True, text=True, timeout=30)
    assert json.loads(out.stdout)["message"] == "Hello, Ada!", out


@pytest.mark.parametrize("line,body", runnable(), ids=lambda v: str(v) if isinstance(v, int) else "")
def test_a_shell_block_answers_as_its_comments_say(dev, tmp_path, line, body):
    parts = segments(body)
    script = [f'hookflow() {{ "{os.environ["HOOKFLOW_BIN"]}" "$@"; }}', "set -e"]
    for command, _ in parts:
        # Loopback only: the README's receiver is a closed local port here
        # (it never echoes the token either).
        command = command.replace("localhost:8080", f"127.0.0.1:{dev.port}")
        command = command.replace("https://receiver.example/hooks", "http://127.0.0.1:9/hooks")
        script += [command, "echo", "echo '@@@'"]
    out = subprocess.run(["bash", "-c", "\n".join(script)], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert out.returncode == 0, f"README.md:{line}: {out.stderr}"
    answers = out.stdout.split("@@@\n")
    for (command, expected), got in zip(parts, answers):
        if expected is None:
            continue
        got = got.strip()
        if expected.startswith(("{", "[")):
            assert matches(parse_expected(expected), json.loads(got)), f"README.md:{line}: {command}\n{got}"
        else:
            assert got == expected, f"README.md:{line}: {command}\n{got}"
