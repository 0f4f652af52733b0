"""The shipped examples (campaigns/) validate with cxctl and against the exported JSON Schema, and their
sample data agrees with their own mappings and triggers."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from cxctl.core.resources import examples_dir
from cxctl.validation import check_workspace, load_workspace
from cxctl.workspace.operations import json_schema

EXAMPLES = examples_dir()
WORKSPACES = sorted(p.parent for p in EXAMPLES.glob("*/cxctl.yaml"))
YAML_FILES = sorted(p for p in EXAMPLES.rglob("*.yaml"))


def test_both_programmes_are_shipped():
    assert [w.name for w in WORKSPACES] == ["ecommerce", "immobilier"]


@pytest.mark.parametrize("root", WORKSPACES, ids=lambda p: p.name)
def test_example_validates_without_warnings(root):
    result = check_workspace([root])
    assert [p.format() for p in result.problems] == []
    assert result.workspace is not None


def test_cli_validates_the_examples_folder(cli):
    code, out, err = cli("validate", str(EXAMPLES), "--strict")
    assert (code, out) == (0, ""), err


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json_schema())


def as_json(path: Path):
    # What a JSON-Schema tool sees: YAML read, then JSON types (integer keys become strings).
    return json.loads(json.dumps(yaml.safe_load(path.read_text(encoding="utf-8"))))


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_file_validates_against_the_json_schema(validator, path):
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(as_json(path))]
    assert errors == []


def test_json_schema_rejects_a_typo_in_an_example(validator):
    data = as_json(EXAMPLES / "ecommerce" / "moments" / "livraison.yaml")
    data["moments"]["livraison_csat"]["trigger"]["dealy"] = "2d"
    assert not validator.is_valid(data)


def test_ecommerce_moments_cover_the_issue():
    ws = load_workspace(EXAMPLES / "ecommerce")
    assert ws.journeys["ecommerce"].stages == ["decouverte", "achat", "livraison", "support", "fidelite"]
    delivery = ws.moments["livraison_csat"]
    assert (delivery.trigger.event, delivery.trigger.delay.days) == ("order_delivered", 2)
    assert ws.questions[delivery.questions[0]].type == "csat"
    assert ws.questions[ws.moments["support_ces"].questions[0]].type == "ces"
    assert ws.moments["appel_a_chaud"].kind == "in_the_moment"
    assert ws.moments["appel_a_chaud"].trigger.event == "call_ended"
    nps = ws.moments["nps_trimestriel"]
    assert (nps.kind, nps.schedule.every) == ("relational", "quarter")
    types = [ws.questions[q].type for q in nps.questions]
    assert types == ["nps", "multiple_choice", "open"]
    why = ws.questions[nps.questions[2]].ask_if
    assert (why.question, why.at_most) == ("nps", 6)
    assert all(
        isinstance(ws.questions[q].text, dict) and set(ws.questions[q].text) == {"fr", "en"} for q in ws.questions
    )


def test_immobilier_addresses_each_moment_to_a_role():
    ws = load_workspace(EXAMPLES / "immobilier")
    assert ws.journeys["vefa"].stages == [
        "reservation",
        "financement",
        "signature",
        "construction",
        "livraison",
        "apres_vente",
    ]
    roles = {moment_id: set(m.audience.role or []) for moment_id, m in ws.moments.items()}
    assert all(r and r <= {"requester", "buyer", "user"} for r in roles.values()), roles
    assert roles["acte_authentique"] == {"buyer"}
    assert "user" in roles["remise_des_cles"] and roles["sav_intervention"] == {"user"}
    assert ws.moments["acte_authentique"].trigger.event == "acte_signed"


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle, delimiter=";"))


def test_ecommerce_sample_data_matches_its_mappings_and_triggers():
    root = EXAMPLES / "ecommerce"
    ws = load_workspace(root)
    contacts = read_csv(root / "data" / "contacts.csv")
    events = read_csv(root / "data" / "events.csv")
    assert 35 <= len(contacts) <= 45
    assert set(ws.mappings["clients_crm"].columns) <= set(contacts[0])
    assert set(ws.mappings["evenements_crm"].columns) <= set(events[0])
    assert {c["Langue"] for c in contacts} == {"fr", "en"}
    known = {c["N° client"] for c in contacts}
    assert {e["N° client"] for e in events} <= known
    triggers = {m.trigger.event for m in ws.moments.values() if m.trigger}
    assert {e["Type"] for e in events} == {"order_delivered", "ticket_closed", "call_ended"}
    assert {e["Type"] for e in events} <= triggers
    assert all(e["Date"][2:10] == "/11/2026" for e in events)


def test_every_key_of_the_schema_says_what_it_means():
    # The descriptions come from the docstring under each attribute, read only when the schema is asked
    # for (issue 18: not at every workspace load). A `$ref` does not repeat its model's description.
    schema = json_schema()
    for name, definition in schema["$defs"].items():
        for key, prop in definition.get("properties", {}).items():
            if "description" not in prop:
                target = schema["$defs"][prop["$ref"].rsplit("/", 1)[1]]
                assert target["description"], f"{name}.{key}"


def test_a_field_is_described_by_its_docstring_its_description_or_its_base(tmp_path, monkeypatch):
    import importlib.util

    from cxctl.workspace.fields import field_description

    (tmp_path / "described.py").write_text(
        "from pydantic import Field\n"
        "from cxctl.workspace.fields import Model\n\n"
        "class Base(Model):\n"
        "    kept: int = 0\n"
        '    """Inherited,\n    on two lines."""\n'
        "    explicit: int = Field(default=0, description='From Field.')\n"
        '    """Not this one."""\n\n'
        "class Child(Base):\n"
        "    own: str = ''\n"
        '    """Its own."""\n'
        "    bare: str = ''\n",
        encoding="utf-8",
    )
    spec = importlib.util.spec_from_file_location("described", tmp_path / "described.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "described", module)
    spec.loader.exec_module(module)
    described = {name: field_description(module.Child, name) for name in ("kept", "explicit", "own", "bare")}
    assert described == {
        "kept": "Inherited,\non two lines.",
        "explicit": "From Field.",
        "own": "Its own.",
        "bare": None,
    }
    properties = module.Child.model_json_schema()["properties"]
    assert properties["kept"]["description"] == "Inherited,\non two lines." and "description" not in properties["bare"]
