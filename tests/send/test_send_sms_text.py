"""SMS texts (issue 16): GSM-7 or UCS-2, the segments a provider bills, the opt-out wording in every SMS,
the link, and what `validate` and `preview --channel sms` show."""

from __future__ import annotations

import json

import pytest

from cxctl.delivery.sms_text import measure

SMS_SETTINGS = "  sms: {opt_out: {fr: STOP au 36111, en: Reply STOP to 36111}, sender: BOUTIQUE, max_segments: 1}\n"
REPAIR = """\
moments:
  repair_sms:
    journey: ecommerce
    stage: support
    kind: transactional
    trigger: {event: repair_done, delay: 1h, expires: 3d}
    questions: [csat]
    targets: {csat: 80}
    channels: [sms, email]
    template: repair
"""


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a" * 160, ("GSM-7", 160, 1)),
        ("a" * 161, ("GSM-7", 161, 2)),
        ("Votre avis : é è à ù ì ò Ç ñ ü ß ?", ("GSM-7", 34, 1)),
        ("€" * 80, ("GSM-7", 160, 1)),  # extension characters count two septets
        ("€" * 81, ("GSM-7", 162, 2)),
        ("Êtes-vous satisfait ?", ("UCS-2", 21, 1)),  # one accent outside GSM-7 sends the whole text as UCS-2
        ("ç" + "a" * 69, ("UCS-2", 70, 1)),
        ("ç" + "a" * 70, ("UCS-2", 71, 2)),
        ("l’avis" + "a" * 128, ("UCS-2", 134, 2)),  # a typographic apostrophe
        ("😀" * 35, ("UCS-2", 70, 1)),  # an emoji is two UTF-16 units
        ("a" * 306, ("GSM-7", 306, 2)),
        ("a" * 307, ("GSM-7", 307, 3)),
    ],
)
def test_encoding_and_segments_as_providers_bill_them(text, expected):
    size = measure(text)
    assert (size.encoding, size.units, size.segments) == expected


def test_the_reason_for_ucs2_is_named():
    assert measure("Êtes-vous ravi ? ç").describe() == "UCS-2 (because of 'Ê', 'ç'), 1 segment (18/70)"
    assert measure("a" * 200).describe() == "GSM-7, 2 segments (200/306)"


def write_sms_workspace(workspace_dir, text_fr: str, text_en: str | None = None):
    config = workspace_dir / "cxctl.yaml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "  token_secret_env: CXCTL_SECRET\n", "  token_secret_env: CXCTL_SECRET\n" + SMS_SETTINGS
        ),
        encoding="utf-8",
    )
    (workspace_dir / "repair.yaml").write_text(REPAIR, encoding="utf-8")
    templates = workspace_dir / "templates"
    templates.mkdir(exist_ok=True)
    for part in ("subject", "txt", "html"):
        (templates / f"repair.fr.{part}.j2").write_text("{{ survey_url }}\n", encoding="utf-8")
    (templates / "repair.fr.sms.j2").write_text(text_fr, encoding="utf-8")
    if text_en is not None:
        (templates / "repair.en.sms.j2").write_text(text_en, encoding="utf-8")


def test_validate_shows_each_sms_template_size_and_warns_past_the_maximum(workspace_dir, cli):
    write_sms_workspace(
        workspace_dir,
        "{{ company or sender.name }} : votre réparation ? {{ survey_url }}\n",
        "Êtes-vous satisfied with the repair of your {{ event.product }}? We'd love to know, it takes one "
        "minute and helps us: {{ survey_url }}\n",
    )
    code, out, err = cli("validate", str(workspace_dir))
    assert code == 0, out + err
    lines = [line for line in err.splitlines() if line.startswith("sms ")]
    assert lines[0].startswith("sms repair_sms (fr): repair.fr.sms.j2: GSM-7, 1 segment (")
    assert lines[1].startswith("sms repair_sms (en): repair.en.sms.j2: UCS-2 (because of 'Ê'), 4 segments (")
    warning = [line for line in out.splitlines() if "max_segments" in line]
    assert (
        len(warning) == 1
        and "repair.yaml:" in warning[0]
        and "moments.repair_sms.template: warning: repair.en.sms.j2 takes UCS-2" in warning[0]
    )
    assert warning[0].endswith(
        "more than workspace.sms.max_segments (1): shorten it, or remove the characters outside GSM-7"
    )
    code, out, _ = cli("validate", str(workspace_dir), "--json")
    sizes = json.loads(out)["workspaces"][0]["sms"]
    assert [(s["language"], s["encoding"], s["segments"]) for s in sizes] == [("fr", "GSM-7", 1), ("en", "UCS-2", 4)]


def test_a_template_error_in_an_sms_is_reported_like_an_email_one(workspace_dir, cli):
    write_sms_workspace(workspace_dir, "{{ survey_url }} {{ contact.nickname.first }}\n")
    code, out, _ = cli("validate", str(workspace_dir))
    assert code == 1
    assert "moments.repair_sms.template: error: repair.fr.sms.j2:" in out


def test_preview_sms_shows_the_text_with_its_opt_out_encoding_and_segments(workspace_dir, cli, tmp_path):
    write_sms_workspace(
        workspace_dir,
        "{{ company or sender.name }} : {% if contact.first_name %}bonjour "
        "{{ contact.first_name }}, {% endif %}votre avis ? {{ survey_url }}\n",
        "{{ company or sender.name }}: how was it? {{ survey_url }}\n",
    )
    code, out, err = cli(
        "preview", "repair_sms", "--channel", "sms", "-w", str(workspace_dir), "-o", str(tmp_path / "p"), "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["text"].startswith(
        "Service Client : bonjour Camille, votre avis ? https://survey.example/s/repair_sms?"
    )
    assert result["text"].endswith("\nSTOP au 36111")  # added: the template does not write it
    assert (result["encoding"], result["segments"], result["to"]) == ("GSM-7", 1, "+33612345678")
    written = (tmp_path / "p" / "repair_sms.fr.sms").read_text(encoding="utf-8")
    assert written.startswith("To: +33612345678\nFrom: BOUTIQUE\nInvitation: preview\nEncoding: GSM-7\nSegments: 1\n")
    code, out, err = cli(
        "preview", "repair_sms", "--channel", "sms", "--lang", "en", "-w", str(workspace_dir), "-o", str(tmp_path / "p")
    )
    assert code == 0 and "repair_sms (en) SMS for sample contact to +33612345678: GSM-7, 1 segment" in out
    assert out.rstrip().endswith("\nReply STOP to 36111")  # the opt-out in the SMS's own language


def test_an_opt_out_the_template_writes_is_not_repeated(workspace_dir, cli, tmp_path):
    write_sms_workspace(workspace_dir, "Votre avis : {{ survey_url }} ({{ opt_out }})\n")
    code, out, _ = cli(
        "preview", "repair_sms", "--channel", "sms", "-w", str(workspace_dir), "-o", str(tmp_path), "--json"
    )
    text = json.loads(out)["text"]
    assert text.count("STOP au 36111") == 1 and text.endswith("(STOP au 36111)")


def test_the_link_is_cxcts_own_page_when_public_url_is_set(workspace_dir):
    from cxctl.delivery.render import Renderer
    from cxctl.delivery.sms_render import sms_link
    from cxctl.validation import load_workspace

    write_sms_workspace(workspace_dir, "{{ survey_url }}\n")
    ws = load_workspace(workspace_dir)
    renderer = Renderer(ws, b"secret-for-the-test-1234")
    assert (
        sms_link(ws, renderer, "tok/1", "repair_sms", "fr") == "https://survey.example/s/repair_sms?lang=fr&t=tok%2F1"
    )
    ws.settings.public_url = "https://avis.boutique.example/"  # `cxctl serve` answers there
    assert sms_link(ws, renderer, "tok/1", "repair_sms", "fr") == "https://avis.boutique.example/s/tok%2F1"
