"""`cxctl validate`, `cxctl schema` and `cxctl init` as a user runs them: exit codes and formats."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from cxctl.core.errors import Problem
from cxctl.validation import github_annotation

BAD_MOMENT = """\
moments:
  m1:
    journey: ecommerce
    stage: delivery
    kind: transactional
    trigger: {event: order_delivered}
    questions: [csat, nps_whyy]
    targets: {csat: 80}
"""

UNTARGETED_MOMENT = BAD_MOMENT.replace(", nps_whyy", "").replace("    targets: {csat: 80}\n", "")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")


@pytest.fixture
def in_parent(workspace_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(workspace_dir.parent)
    return workspace_dir


def test_valid_workspace_exits_0(cli, in_parent):
    code, out, err = cli("validate", "ws")
    assert (code, out) == (0, "")
    assert "ws: valid — 0 error(s), 0 warning(s) in 2 file(s)" in err


def test_errors_exit_1_with_one_line_each(cli, in_parent):
    write(in_parent / "extra.yaml", BAD_MOMENT)
    code, out, err = cli("validate", "ws")
    assert code == 1
    assert out == (
        "ws/extra.yaml:7:23: moments.m1.questions[1]: error: unknown question 'nps_whyy' (did you mean 'nps_why'?)\n"
    )
    assert "invalid — 1 error(s)" in err


def test_warnings_pass_unless_strict(cli, in_parent):
    write(in_parent / "extra.yaml", UNTARGETED_MOMENT)
    code, out, _ = cli("validate", "ws")
    assert code == 0
    assert (
        out
        == "ws/extra.yaml:2:3: moments.m1: warning: moment 'm1' has no target: add targets (nps, csat, ces) to read it against a goal\n"
    )
    code, _, err = cli("validate", "ws", "--strict")
    assert code == 1
    assert "--strict: warnings fail" in err


def test_json_format(cli, in_parent):
    write(in_parent / "extra.yaml", BAD_MOMENT)
    code, out, _ = cli("validate", "ws", "--format", "json")
    assert code == 1
    assert cli("validate", "ws", "--json")[:2] == (1, out)  # --json, like every other command
    report = json.loads(out)
    assert (report["valid"], report["errors"], report["warnings"]) == (False, 1, 0)
    assert report["workspaces"] == [{"root": "ws", "files": 3, "errors": 1, "warnings": 0}]
    assert report["problems"] == [
        {
            "file": "ws/extra.yaml",
            "line": 7,
            "column": 23,
            "path": "moments.m1.questions[1]",
            "severity": "error",
            "message": "unknown question 'nps_whyy' (did you mean 'nps_why'?)",
        }
    ]


def test_github_format(cli, in_parent):
    write(in_parent / "extra.yaml", BAD_MOMENT)
    code, out, _ = cli("validate", "ws", "--format", "github")
    assert code == 1
    assert out == (
        "::error file=ws/extra.yaml,line=7,col=23,title=cxctl validate::moments.m1.questions[1]: "
        "unknown question 'nps_whyy' (did you mean 'nps_why'?)\n"
    )


def test_github_annotation_escapes_properties_and_newlines():
    problem = Problem("a,b:c.yaml", 3, 4, "x", "50% done\nnext", "warning")
    assert (
        github_annotation(problem)
        == "::warning file=a%2Cb%3Ac.yaml,line=3,col=4,title=cxctl validate::x: 50%25 done%0Anext"
    )


@pytest.mark.parametrize("args", [("validate", "nowhere"), ("validate", "ws", "--format", "xml")])
def test_usage_errors_exit_2(cli, in_parent, args):
    code, _, _ = cli(*args)
    assert code == 2


def test_a_file_is_checked_with_its_whole_workspace(cli, in_parent):
    """ids are global: checking one file alone would call every id of the other files unknown."""
    write(in_parent / "moments" / "extra.yaml", BAD_MOMENT)
    code, out, _ = cli("validate", "ws/moments/extra.yaml", "--format", "json")
    report = json.loads(out)
    assert code == 1
    assert [p["path"] for p in report["problems"]] == ["moments.m1.questions[1]"]


def test_a_folder_of_workspaces_checks_each(cli, in_parent):
    """`cxctl validate campaigns/` when campaigns/ holds several workspaces (and no cxctl.yaml)."""
    for name in ("boutique", "magasins/lyon"):
        for file in ("cxctl.yaml", "ecommerce.yaml"):
            write(in_parent.parent / "programmes" / name / file, (in_parent / file).read_text(encoding="utf-8"))
    write(in_parent.parent / "programmes" / "magasins" / "lyon" / "extra.yaml", BAD_MOMENT)
    code, out, _ = cli("validate", "programmes", "--format", "json")
    report = json.loads(out)
    assert code == 1
    assert [(w["root"], w["errors"]) for w in report["workspaces"]] == [
        ("programmes/boutique", 0),
        ("programmes/magasins/lyon", 1),
    ]
    assert [p["file"] for p in report["problems"]] == ["programmes/magasins/lyon/extra.yaml"]


def test_defaults_to_the_current_folder(cli, in_parent, monkeypatch):
    monkeypatch.chdir(in_parent)
    code, _, err = cli("validate")
    assert code == 0
    assert "valid" in err


def test_schema_is_draft_2020_12_and_self_valid(cli):
    code, out, _ = cli("schema")
    assert code == 0 and cli("schema", "--json")[:2] == (0, out)  # --json accepted: always JSON
    schema = json.loads(out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].startswith("urn:cxctl:schema:workspace-file:")
    assert schema["title"] == "cxctl workspace file"
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert not validator.is_valid({"journeys": {"Bad-Id": {"name": "x", "stages": ["a"]}}})
    assert not validator.is_valid({"questions": {"q": {"type": "open", "text": "x", "requierd": True}}})
    assert validator.is_valid({"questions": {"q": {"type": "open", "text": {"fr": "x", "en": "y"}}}})
    wave = {"journey": "j", "stage": "s", "kind": "relational", "questions": ["q"]}
    assert validator.is_valid({"moments": {"m": {**wave, "schedule": {"every": "quarter"}}}})
    assert validator.is_valid({"moments": {"m": {**wave, "schedule": {"every": "1w 3d"}}}})
    assert not validator.is_valid({"moments": {"m": {**wave, "schedule": {"every": "2 weeks"}}}})


def test_init_writes_a_workspace_that_validates(cli, tmp_path):
    target = tmp_path / "programme"
    code, _, err = cli("init", str(target), "--name", "Mon programme")
    assert code == 0
    assert {p.name for p in target.iterdir()} == {
        "cxctl.yaml",
        "journeys.yaml",
        "questions.yaml",
        "moments.yaml",
        "cxctl.schema.json",
    }
    assert 'name: "Mon programme"' in (target / "cxctl.yaml").read_text(encoding="utf-8")
    code, out, _ = cli("validate", str(target), "--strict")
    assert (code, out) == (0, "")
    code, out, _ = cli("init", str(tmp_path / "other"), "--json")
    written = json.loads(out)
    assert code == 0 and written["folder"] == str(tmp_path / "other")
    assert sorted(written["created"]) == sorted(
        str(tmp_path / "other" / name)
        for name in ("cxctl.yaml", "journeys.yaml", "questions.yaml", "moments.yaml", "cxctl.schema.json")
    )
    # The schema it writes for editors accepts the files it writes.
    validator = jsonschema.Draft202012Validator(json.loads((target / "cxctl.schema.json").read_text(encoding="utf-8")))
    for path in target.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        assert text.startswith("# yaml-language-server: $schema=./cxctl.schema.json\n")
        assert list(validator.iter_errors(json.loads(json.dumps(yaml.safe_load(text))))) == []


def test_reading_commands_on_a_new_workspace_create_no_store(cli, tmp_path, monkeypatch):
    """plan, scorecard and the lists only read: before the first import there is nothing to read, and they
    must not leave a cxctl.db behind (an empty store reads the same)."""
    monkeypatch.setenv("CXCTL_SECRET", "test-secret-of-some-length")
    target = tmp_path / "programme"
    assert cli("init", str(target))[0] == 0
    for args in (
        ("plan", "--now", "2026-11-20T10:00"),
        ("scorecard", "--now", "2026-11-20T10:00", "--json"),
        ("scorecard", "--by", "segment,month", "--now", "2026-11-20T10:00", "--json"),
        ("followups", "--json"),
        ("contacts", "list", "--json"),
        ("suppress", "list", "--json"),
        ("responses", "quarantine", "--json"),
        ("ops", "count", "complaint", "--json"),
    ):
        code, out, err = cli(*args, "-w", str(target))
        assert code == 0, (args, err)
    assert not (target / "cxctl.db").exists()
    assert cli("db", "status", "-w", str(target))[0] == 0  # status creates it: it reports the schema


@pytest.mark.parametrize(
    "name", ["2024", "yes", "null", "Programme: 2025", "#1 Satisfaction", "[x]", 'Le "grand" baromètre']
)
def test_init_writes_any_name_as_text(cli, tmp_path, name):
    target = tmp_path / "p"
    assert cli("init", str(target), "--name", name)[0] == 0
    code, out, err = cli("validate", str(target), "--strict")
    assert (code, out) == (0, ""), err
    assert yaml.safe_load((target / "cxctl.yaml").read_text(encoding="utf-8"))["workspace"]["name"] == name


def test_init_refuses_to_overwrite_then_force(cli, tmp_path):
    target = tmp_path / "programme"
    target.mkdir()
    (target / "cxctl.yaml").write_text("# mine\n", encoding="utf-8")
    code, _, err = cli("init", str(target))
    assert code == 1
    assert "already exist" in err and "--force" in err
    assert (target / "cxctl.yaml").read_text(encoding="utf-8") == "# mine\n"
    assert not (target / "moments.yaml").exists()
    code, _, _ = cli("init", str(target), "--force")
    assert code == 0
    assert (target / "cxctl.yaml").read_text(encoding="utf-8") != "# mine\n"
