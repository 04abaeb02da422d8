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
