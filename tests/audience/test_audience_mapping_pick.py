"""French CRM headers of events files are recognised without a mapping (N° client, Réf. événement)."""

from __future__ import annotations

import json
import shutil

from cxctl.core.resources import examples_dir


def test_the_example_events_export_imports_without_naming_a_mapping(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("CXCTL_SECRET", "test-secret-of-some-length")
    ws = tmp_path / "ecommerce"
    shutil.copytree(examples_dir() / "ecommerce", ws)
    code, out, err = cli("contacts", "import", str(ws / "data" / "contacts.csv"), "-w", str(ws), "--json")
    assert code == 0, err
    code, out, err = cli("events", "import", str(ws / "data" / "events.csv"), "-w", str(ws), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["rejected"], result["inserted"]) == (0, 58)
    assert result["columns"]["Réf. événement"] == "event_id"
    assert result["columns"]["N° client"] == "external_id"
    assert any("day first" in note for note in result["notes"])
