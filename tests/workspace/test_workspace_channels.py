"""`cxctl validate` on the delivery channels (issue 16): a moment's channels, what an SMS needs (opt-out
wording, a template per language, a sender for a provider, days that ever open) and consent mappings."""

from __future__ import annotations

from cxctl.validation import check_workspace
from cxctl.workspace.channels import SmsSettings

SMS_MOMENT = """\
moments:
  repair_sms:
    journey: ecommerce
    stage: support
    kind: transactional
    trigger: {{event: repair_done, delay: 1h, expires: 3d}}
    questions: [csat]
    targets: {{csat: 80}}
    channels: [{channels}]
{extra}"""


def sms_settings(block: str) -> str:
    return "  sms:\n" + "".join(f"    {line}\n" for line in block.splitlines())


def problems(
    workspace_dir, files: dict[str, str], sms: str | None = "opt_out: {fr: STOP au 36111, en: Reply STOP to 36111}"
):
    config = workspace_dir / "cxctl.yaml"
    text = config.read_text(encoding="utf-8")
    if sms is not None and "  sms:\n" not in text:
        text = text.replace(
            "  token_secret_env: CXCTL_SECRET\n", "  token_secret_env: CXCTL_SECRET\n" + sms_settings(sms)
        )
    config.write_text(text, encoding="utf-8")
    for name, content in files.items():
        (workspace_dir / name).write_text(content, encoding="utf-8")
    result = check_workspace([workspace_dir])
    return [
        (p.file.split("/")[-1], p.line, p.path, p.severity, p.message)
        for p in result.problems
        if p.severity == "error" or "sms" in p.message.lower() or "channel" in p.path
    ]


def test_a_moment_preferring_sms_with_the_bundled_templates_is_valid(workspace_dir):
    assert problems(workspace_dir, {"sms.yaml": SMS_MOMENT.format(channels="sms, email", extra="")}) == []


def test_sms_without_opt_out_wording_is_an_error_at_the_sms_settings(workspace_dir):
    found = problems(workspace_dir, {"sms.yaml": SMS_MOMENT.format(channels="sms", extra="")}, sms=None)
    assert len(found) == 1
    file, line, path, severity, message = found[0]
    assert (file, path, severity) == ("cxctl.yaml", "workspace", "error")
    assert message.startswith(
        "moment 'repair_sms' sends SMS, and every SMS must carry its opt-out wording: add workspace.sms.opt_out"
    )


def test_unknown_and_repeated_channels_are_reported_at_their_place(workspace_dir):
    found = problems(workspace_dir, {"sms.yaml": SMS_MOMENT.format(channels="sms, email, sms", extra="")})
    assert found == [
        ("sms.yaml", 9, "moments.repair_sms.channels[2]", "error", "channel 'sms' is listed twice: keep one")
    ]
    found = problems(workspace_dir, {"sms.yaml": SMS_MOMENT.format(channels="whatsapp", extra="")})
    assert [(f[2], f[3]) for f in found] == [("moments.repair_sms.channels[0]", "error")]
    assert found[0][4] == "'whatsapp' is not allowed: use one of email, sms"


def test_a_custom_template_needs_its_sms_file_in_the_default_language(workspace_dir):
    (workspace_dir / "templates").mkdir()
    for part in ("subject", "txt", "html"):
        (workspace_dir / "templates" / f"repair.fr.{part}.j2").write_text("{{ survey_url }}\n", encoding="utf-8")
    extra = "    template: repair\n"
    found = problems(workspace_dir, {"sms.yaml": SMS_MOMENT.format(channels="sms, email", extra=extra)})
    assert [(f[2], f[3]) for f in found if f[3] == "error"] == [("moments.repair_sms.template", "error")]
    assert "has no repair.fr.sms.j2" in found[0][4]
    (workspace_dir / "templates" / "repair.fr.sms.j2").write_text("{{ survey_url }}\n", encoding="utf-8")
    found = problems(workspace_dir, {}, sms=None)
    assert [(f[2], f[3], f[4]) for f in found if "sms.j2" in f[4]] == [
        (
            "moments.repair_sms.template",
            "warning",
            "template 'repair' has no repair.en.sms.j2: en-speaking contacts get the fr SMS",
        )
    ]


def test_a_provider_needs_a_sender_and_hours_that_can_open(workspace_dir):
    files = {
        "sms.yaml": SMS_MOMENT.format(
            channels="sms", extra="    sms_hours: {days: [sun]}\n    send_window: {days: [mon, tue]}\n"
        )
    }
    found = problems(workspace_dir, files, sms="transport: brevo\nopt_out: STOP au 36111")
    messages = [f[4] for f in found if f[3] == "error"]
    assert messages[1].startswith("no day is both in the send window (mon, tue) and in the SMS hours (sun)")
    assert messages[0] == "transport brevo needs a sender: set sms.sender (up to 11 letters and digits, e.g. BOUTIQUE)"


def test_consent_values_of_a_mapping_must_say_yes_or_no(workspace_dir):
    mapping = """\
mappings:
  crm:
    kind: contacts
    columns: {"Optin SMS": sms_consent, "Mobile": phone}
    values:
      sms_consent: {"Opt-in": oui, "Refus": non, "Inconnu": peut-être}
"""
    found = problems(workspace_dir, {"crm.yaml": mapping})
    assert found == [
        (
            "crm.yaml",
            6,
            "mappings.crm.values.sms_consent.Inconnu",
            "error",
            "sms_consent value 'Inconnu' maps to 'peut-être', which is neither yes nor no: map it to oui or non "
            "(yes/no, 1/0)",
        )
    ]


def test_sms_settings_refuse_an_unknown_region_and_a_bad_sender():
    import pydantic
    import pytest

    assert SmsSettings(default_region="be").default_region == "BE"
    with pytest.raises(pydantic.ValidationError, match="unknown phone region 'XX'"):
        SmsSettings(default_region="XX")
    with pytest.raises(pydantic.ValidationError, match="not an SMS sender id"):
        SmsSettings(sender="Boutique Dupont & Fils")
