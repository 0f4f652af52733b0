"""Each error kind of `cxctl validate`, with the exact file, line, column and key path it reports.

Every case adds one inline file to the shared valid workspace (tests/conftest.py), or replaces
cxctl.yaml, and pins where the problem is reported and what the message says.
"""

from __future__ import annotations

import pytest

MOMENT = """\
moments:
  m1:
    journey: ecommerce
    stage: delivery
    kind: transactional
    trigger: {{event: order_delivered{trigger}}}
    questions: [{questions}]
    targets: {{csat: 80}}
{extra}"""


def moment(trigger: str = "", questions: str = "csat", extra: str = "") -> str:
    return MOMENT.format(trigger=trigger, questions=questions, extra=extra)


SETTINGS_HEAD = """\
workspace:
  name: Test
  sender: {name: Service, address: avis@test.example}
  survey_url: "https://s.example/{moment}?t={token}"
"""

# (case id, files, expected error places [(file, line, col, key path)], a fragment of the first message)
CASES = [
    (
        "yaml_syntax",
        {"extra.yaml": "moments:\n  broken: [a, b\n  other: 1\n"},
        [("ws/extra.yaml", 3, 8, "")],
        "did not find expected ',' or ']' (parsing a flow sequence that started at line 2, column 11)",
    ),
    (
        "unknown_key_did_you_mean",
        {"extra.yaml": moment(extra="    remiders: {count: 1}\n")},
        [("ws/extra.yaml", 9, 5, "moments.m1.remiders")],
        "unknown key 'remiders' (did you mean 'reminders'?)",
    ),
    (
        "unknown_section",
        {"extra.yaml": "moment:\n  m9: {}\n"},
        [("ws/extra.yaml", 1, 1, "moment")],
        "unknown key 'moment' (did you mean 'moments'?)",
    ),
    (
        "not_utf8",
        {"latin1.yaml": "questions:\n  q:\n    type: open\n    text: Écrit en Latin-1\n".encode("latin-1")},
        [("ws/latin1.yaml", 4, 11, "")],
        "not UTF-8 (byte 0xc9",
    ),
    (
        "unknown_key_lists_allowed",
        {"extra.yaml": moment(trigger=", colour: blue")},
        [("ws/extra.yaml", 6, 39, "moments.m1.trigger.colour")],
        "unknown key 'colour': remove it, or use one of event, delay, expires",
    ),
    (
        "wrong_type",
        {"extra.yaml": moment(extra="    sample: beaucoup\n")},
        [("ws/extra.yaml", 9, 5, "moments.m1.sample")],
        "got 'beaucoup': write a number",
    ),
    (
        "yaml_norway_bool",
        {"extra.yaml": moment(extra="    audience: {country: [FR, NO]}\n")},
        [("ws/extra.yaml", 9, 30, "moments.m1.audience.country[1]")],
        "put the value in quotes",
    ),
    (
        "literal_did_you_mean",
        {"extra.yaml": moment().replace("transactional", "transactionel")},
        [("ws/extra.yaml", 5, 5, "moments.m1.kind")],
        "'transactionel' is not allowed (did you mean 'transactional'?)",
    ),
    (
        "missing_key",
        {"extra.yaml": moment().replace("    stage: delivery\n", "")},
        [("ws/extra.yaml", 2, 3, "moments.m1.stage")],
        "missing required key 'stage'",
    ),
    (
        "duplicate_yaml_key",
        {"extra.yaml": moment(extra="    sample: 0.5\n    sample: 0.2\n")},
        [("ws/extra.yaml", 10, 5, "moments.m1.sample")],
        "duplicate key 'sample' (first at line 9)",
    ),
    (
        "duplicate_id_across_files",
        {"extra.yaml": "questions:\n  nps:\n    type: open\n    text: Doublon\n"},
        [("ws/extra.yaml", 2, 3, "questions.nps")],
        "duplicate question id 'nps', first declared at ws/ecommerce.yaml:",
    ),
    (
        "invalid_id",
        {"extra.yaml": "questions:\n  Effort-Client:\n    type: ces\n    text: Facile ?\n"},
        [("ws/extra.yaml", 2, 3, "questions.Effort-Client")],
        "invalid id 'Effort-Client': ids are lower-case letters, digits and _, starting with a letter, e.g. 'effort_client'",
    ),
    (
        "unknown_question",
        {"extra.yaml": moment(questions="csat, nps_whyy")},
        [("ws/extra.yaml", 7, 23, "moments.m1.questions[1]")],
        "unknown question 'nps_whyy' (did you mean 'nps_why'?)",
    ),
    (
        "unknown_journey",
        {"extra.yaml": moment().replace("journey: ecommerce", "journey: ecomerce")},
        [("ws/extra.yaml", 3, 5, "moments.m1.journey")],
        "unknown journey 'ecomerce' (did you mean 'ecommerce'?)",
    ),
    (
        "unknown_stage",
        {"extra.yaml": moment().replace("stage: delivery", "stage: delivry")},
        [("ws/extra.yaml", 4, 5, "moments.m1.stage")],
        "journey 'ecommerce' has no stage 'delivry' (did you mean 'delivery'?)",
    ),
    (
        "unknown_template",
        {"extra.yaml": moment(extra="    template: merci_livraison\n")},
        [("ws/extra.yaml", 9, 5, "moments.m1.template")],
        "unknown template 'merci_livraison': merci_livraison.fr.subject.j2 and merci_livraison.fr.txt.j2 not found",
    ),
    (
        "malformed_duration",
        {"extra.yaml": moment(trigger=", delay: 2 jours")},
        [("ws/extra.yaml", 6, 39, "moments.m1.trigger.delay")],
        "invalid duration '2 jours'",
    ),
    (
        "impossible_scale",
        {"extra.yaml": "questions:\n  effort:\n    type: rating\n    text: Note\n    min: 5\n    max: 1\n"},
        [("ws/extra.yaml", 5, 5, "questions.effort.min")],
        "impossible scale 5–1: min must be below max",
    ),
    (
        "nps_scale_fixed",
        {"extra.yaml": "questions:\n  nps2:\n    type: nps\n    text: Note\n    max: 5\n"},
        [("ws/extra.yaml", 5, 5, "questions.nps2.max")],
        "an NPS question is always 0–10",
    ),
    (
        "followup_unknown_question",
        {
            "extra.yaml": "questions:\n  why:\n    type: open\n    text: Pourquoi ?\n    ask_if: {question: npss, at_most: 6}\n"
        },
        [("ws/extra.yaml", 5, 14, "questions.why.ask_if.question")],
        "follow-up condition on unknown question 'npss' (did you mean 'nps'?)",
    ),
    (
        "followup_on_text_question",
        {
            "extra.yaml": "questions:\n  why2:\n    type: open\n    text: Et encore ?\n    ask_if: {question: nps_why, at_most: 6}\n"
        },
        [("ws/extra.yaml", 5, 33, "questions.why2.ask_if.at_most")],
        "at_most compares a score but 'nps_why' is an open question",
    ),
    (
        "followup_asked_before",
        {"extra.yaml": moment(questions="nps_why, nps")},
        [("ws/extra.yaml", 7, 17, "moments.m1.questions[0]")],
        "question 'nps_why' follows up 'nps', which this moment does not ask before it",
    ),
    (
        "priority_unknown_moment",
        {"cxctl.yaml": SETTINGS_HEAD + "rules:\n  priority: [delivery_csat, suport_ces]\n"},
        [("ws/cxctl.yaml", 6, 29, "rules.priority[1]")],
        "unknown moment 'suport_ces' (did you mean 'support_ces'?)",
    ),
    (
        "dimension_typo",
        {
            "cxctl.yaml": SETTINGS_HEAD + "  dimensions: [segment, regoin, event.nature]\n",
            "mappings.yaml": "mappings:\n  crm:\n    kind: contacts\n    columns: {Region: attributes.region}\n",
        },
        [("ws/cxctl.yaml", 5, 25, "workspace.dimensions[1]")],
        "unknown dimension 'regoin' (did you mean 'region'?): no mapping imports it; list a contact attribute, one of "
        "segment, country, language, company, role, or event.<attribute>",
    ),
    (
        "dimension_builtin_field_twice_or_empty",
        {"cxctl.yaml": SETTINGS_HEAD + "  dimensions: [month, email, region, region, event.]\n"},
        [
            ("ws/cxctl.yaml", 5, 16, "workspace.dimensions[0]"),
            ("ws/cxctl.yaml", 5, 23, "workspace.dimensions[1]"),
            ("ws/cxctl.yaml", 5, 38, "workspace.dimensions[3]"),
            ("ws/cxctl.yaml", 5, 46, "workspace.dimensions[4]"),
        ],
        "'month' needs no dimension: scorecards by moment, journey, stage, week, month, quarter already read rollups; "
        "remove it",
    ),
    (
        "unknown_time_zone",
        {"cxctl.yaml": SETTINGS_HEAD + "  timezone: Europe/Pariss\n"},
        [("ws/cxctl.yaml", 5, 3, "workspace.timezone")],
        "unknown time zone 'Europe/Pariss': did you mean 'Europe/Paris'?",
    ),
    (
        "bad_bcp47_language",
        {"cxctl.yaml": SETTINGS_HEAD + "  languages: [fr, en_GB]\n"},
        [("ws/cxctl.yaml", 5, 19, "workspace.languages[1]")],
        "invalid language tag 'en_GB': write a BCP 47 tag such as en-GB",
    ),
    (
        "unknown_iso_language",
        {"extra.yaml": "questions:\n  q_fe:\n    type: open\n    text: {fr: Bonjour, fe: Hello}\n"},
        [("ws/extra.yaml", 4, 25, "questions.q_fe.text.fe")],
        "unknown language 'fe'",
    ),
    (
        "secret_in_clear",
        {"cxctl.yaml": SETTINGS_HEAD + "  smtp:\n    host: smtp.example\n    password: hunter2\n"},
        [("ws/cxctl.yaml", 7, 5, "workspace.smtp.password")],
        "a secret is written in clear",
    ),
    (
        "login_without_encryption",
        {
            "cxctl.yaml": SETTINGS_HEAD + "  smtp:\n    host: smtp.example\n    security: none\n"
            "    username_env: SMTP_USER\n    password_env: SMTP_PASSWORD\n"
        },
        [("ws/cxctl.yaml", 7, 5, "workspace.smtp.security")],
        "would send the password in clear: set security: starttls",
    ),
    (
        "login_without_encryption_by_default",
        {
            "cxctl.yaml": SETTINGS_HEAD + "  smtp:\n    host: smtp.example\n"
            "    username_env: SMTP_USER\n    password_env: SMTP_PASSWORD\n"
        },
        [("ws/cxctl.yaml", 7, 5, "workspace.smtp.username_env")],
        "would send the password in clear",
    ),
    (
        "secret_in_an_env_key",
        {
            "cxctl.yaml": SETTINGS_HEAD + "  smtp:\n    host: 127.0.0.1\n    username_env: SMTP_USER\n"
            "    password_env: Sup3rS3cret!\n"
        },
        [("ws/cxctl.yaml", 8, 5, "workspace.smtp.password_env")],
        "must be the NAME of an environment variable",
    ),
    (
        "id_with_a_trailing_newline",
        {"extra.yaml": 'questions:\n  "nps2\\n": {type: open, text: Pourquoi ?}\n'},
        [("ws/extra.yaml", 2, 3, "questions.nps2\n")],
        "invalid id 'nps2\\n'",
    ),
    (
        "attribute_name_with_a_quote",
        {"extra.yaml": moment(extra="    audience: {contact: {'a\"b': q1}}\n")},
        [("ws/extra.yaml", 9, 26, 'moments.m1.audience.contact.a"b')],
        "contains a double quote",
    ),
    (
        "mapped_attribute_with_a_quote",
        {"extra.yaml": "mappings:\n  crm:\n    columns: {Note: 'attributes.a\"b'}\n"},
        [("ws/extra.yaml", 3, 15, "mappings.crm.columns.Note")],
        "contains a double quote",
    ),
    (
        "secret_under_another_name",
        {"cxctl.yaml": SETTINGS_HEAD + "  smtp:\n    host: 127.0.0.1\n    smtp_pass: hunter22\n"},
        [("ws/cxctl.yaml", 7, 5, "workspace.smtp.smtp_pass")],
        "a secret is written in clear",
    ),
    (
        "secret_in_url",
        {"cxctl.yaml": SETTINGS_HEAD.replace("https://s.example", "https://admin:hunter2@s.example")},
        [("ws/cxctl.yaml", 4, 3, "workspace.survey_url")],
        "a password is written in clear in this URL",
    ),
    (
        "sender_address",
        {"cxctl.yaml": SETTINGS_HEAD.replace("avis@test.example", "avis-at-test.example")},
        [("ws/cxctl.yaml", 3, 27, "workspace.sender.address")],
        "invalid email 'avis-at-test.example'",
    ),
    (
        "mapping_unknown_field",
        {
            "extra.yaml": "mappings:\n  crm:\n    columns:\n      Courriel: email\n      Prénom: first_nam\n      VIP: attributes.vip\n"
        },
        [("ws/extra.yaml", 5, 7, "mappings.crm.columns.Prénom")],
        "column 'Prénom' maps to unknown contact field 'first_nam' (did you mean 'first_name'?)",
    ),
    (
        "mapping_event_field",
        {"extra.yaml": "mappings:\n  evts:\n    kind: events\n    columns: {Quand: occured_at}\n"},
        [("ws/extra.yaml", 4, 15, "mappings.evts.columns.Quand")],
        "unknown event field 'occured_at' (did you mean 'occurred_at'?)",
    ),
    (
        "mapping_unknown_preset",
        {"extra.yaml": "mappings:\n  crm:\n    preset: hubspott\n    columns: {Checksum: '-', Origine: ignore}\n"},
        [("ws/extra.yaml", 3, 5, "mappings.crm.preset")],
        "unknown preset 'hubspott' (did you mean 'hubspot'?)",
    ),
    (
        "mapping_date_format",
        {"extra.yaml": "mappings:\n  crm:\n    date_format: dd/mm/yyyy\n"},
        [("ws/extra.yaml", 3, 5, "mappings.crm.date_format")],
        "date_format 'dd/mm/yyyy' has no % code",
    ),
    (
        "mapping_bad_directive",
        {"extra.yaml": 'mappings:\n  crm:\n    date_format: "%d/%m/%Q"\n'},
        [("ws/extra.yaml", 3, 5, "mappings.crm.date_format")],
        "invalid date_format '%d/%m/%Q'",
    ),
    (
        "mapping_encoding",
        {"extra.yaml": "mappings:\n  crm:\n    encoding: klingon\n"},
        [("ws/extra.yaml", 3, 5, "mappings.crm.encoding")],
        "unknown encoding 'klingon': use utf-8",
    ),
    (
        "mapping_delimiter",
        {"extra.yaml": "mappings:\n  crm:\n    encoding: ANSI\n    delimiter: '::'\n"},
        [("ws/extra.yaml", 4, 5, "mappings.crm.delimiter")],
        "invalid delimiter '::': give one character",
    ),
    (
        "alias_bomb",
        {
            "extra.yaml": "x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
            + "".join(f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 8))
        },
        [("ws/extra.yaml", 2, 10, "")],
        "expand to more than 200,000 values: refused",
    ),
    (
        "recursive_alias",
        {"extra.yaml": "x: &a\n  y: *a\n"},
        [("ws/extra.yaml", 2, 6, "")],
        "an alias refers to the block that contains it",
    ),
    (
        "nested_too_deeply",
        {"extra.yaml": "deep: " + "[" * 3000 + "]" * 3000 + "\n"},
        [("ws/extra.yaml", 1, 7 + 63, "")],
        "nested too deeply: more than 64 levels",
    ),
    (
        "tab_indentation",
        {"extra.yaml": "moments:\n\tm1: {}\n"},
        [("ws/extra.yaml", 2, 1, "")],
        "YAML syntax error: a tab character: YAML indents with spaces only",
    ),
    (
        "two_documents",
        {"extra.yaml": moment() + "---\nquestions: {}\n"},
        [("ws/extra.yaml", 9, 1, "")],
        "expected a single document in the stream",
    ),
    (
        "response_column_not_asked",
        {"extra.yaml": moment(extra="    responses: {columns: {csat: Q1, nps: Q2}}\n")},
        [("ws/extra.yaml", 9, 37, "moments.m1.responses.columns.nps")],
        "question 'nps' is not asked by this moment",
    ),
    (
        "expires_before_delay",
        {"extra.yaml": moment(trigger=", delay: 3d, expires: 2d")},
        [("ws/extra.yaml", 6, 50, "moments.m1.trigger.expires")],
        "the survey expires before it is due",
    ),
]


@pytest.mark.parametrize("files, expected, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_error_is_reported_at_its_exact_place(check, files, expected, fragment):
    problems = check(files)
    errors = [p for p in problems if p.severity == "error"]
    assert [(p.file, p.line, p.column, p.path) for p in errors] == expected, [p.format() for p in problems]
    assert fragment in errors[0].message
    assert errors[0].format().startswith(f"{expected[0][0]}:{expected[0][1]}:{expected[0][2]}:")


@pytest.mark.parametrize("backend", ["libyaml", "pure-python"])
@pytest.mark.parametrize("depth, flow", [(65, True), (3000, True), (65, False), (400, False)])
def test_too_deep_a_file_is_cxctls_own_located_error_whatever_the_backend(check, monkeypatch, backend, depth, flow):
    """PyYAML 6.0.4's libyaml stops at 1,000 levels with its own words, pure Python at the recursion
    limit: cxctl's limit (64) comes first, at the block that crosses it, with both."""
    import yaml

    from cxctl.workspace import yamlfile

    if backend == "libyaml" and not hasattr(yaml, "CSafeLoader"):
        pytest.skip("this PyYAML has no libyaml backend")
    monkeypatch.setattr(yamlfile, "SafeLoader", yaml.CSafeLoader if backend == "libyaml" else yaml.SafeLoader)
    if flow:
        text, where = "deep: " + "[" * depth + "]" * depth + "\n", (1, 7 + 63)  # the root mapping is the first level
    else:  # block style: one key per line, two more spaces each
        text = "".join(f"{'  ' * level}k{level}:\n" for level in range(depth)) + "  " * depth + "end: 1\n"
        where = (65, 1 + 2 * 64)
    errors = [p for p in check({"extra.yaml": text}) if p.severity == "error"]
    assert [(p.file, p.line, p.column) for p in errors] == [("ws/extra.yaml", *where)], [p.format() for p in errors]
    assert "nested too deeply: more than 64 levels" in errors[0].message


def test_what_editors_write_is_read_as_written(check):
    """A UTF-8 BOM (Notepad), CRLF line ends (Windows), an empty file, and a legitimate anchor reused by
    alias: no error, and marks stay right (the unknown question is found on its own line)."""
    aliased = (
        "moments:\n  m1: &base\n    journey: ecommerce\n    stage: delivery\n    kind: transactional\n"
        "    trigger: {event: order_delivered}\n    questions: [csat]\n    targets: {csat: 80}\n"
        "  m2:\n    <<: *base\n    trigger: {event: order_delivered, delay: 1d}\n"
    )
    windows = "\ufeff" + moment(questions="csat, inconnue").replace("m1", "m3").replace("\n", "\r\n")
    problems = check({"aliased.yaml": aliased, "windows.yaml": windows, "empty.yaml": ""})
    errors = [(p.file, p.line, p.column, p.path) for p in problems if p.severity == "error"]
    assert errors == [("ws/windows.yaml", 7, 23, "moments.m3.questions[1]")], [p.format() for p in problems]


def test_invalid_moment_still_reports_its_unknown_journey(check):
    """A schema error in a moment must not hide its broken references (both are reported)."""
    text = moment().replace("journey: ecommerce", "journey: ecomerce").replace("transactional", "transactionel")
    problems = check({"extra.yaml": text})
    assert [(p.line, p.column, p.path) for p in problems if p.severity == "error"] == [
        (3, 5, "moments.m1.journey"),
        (5, 5, "moments.m1.kind"),
    ]


def test_invalid_question_is_still_a_declared_id(check):
    """A question with a schema error exists: moments that ask it get no 'unknown question' noise."""
    problems = check(
        {
            "extra.yaml": moment(questions="csat, effort")
            + "questions:\n  effort:\n    type: ces\n    text: Facile ?\n    min: 9\n"
        }
    )
    assert [(p.path, p.message) for p in problems if p.severity == "error"] == [
        ("questions.effort.min", "impossible scale 9–7: min must be below max"),
    ]


def test_every_problem_is_reported_not_only_the_first(check):
    problems = check(
        {
            "a.yaml": moment(questions="csat, inconnue").replace("m1", "m_a"),
            "b.yaml": moment(trigger=", delay: demain").replace("m1", "m_b"),
            "c.yaml": "questions:\n  q_c:\n    type: csat\n    text: Note\n    min: 4\n    max: 2\n",
        }
    )
    assert sorted((p.file, p.path) for p in problems if p.severity == "error") == [
        ("ws/a.yaml", "moments.m_a.questions[1]"),
        ("ws/b.yaml", "moments.m_b.trigger.delay"),
        ("ws/c.yaml", "questions.q_c.min"),
    ]


def test_syntax_error_in_one_file_does_not_flood_unknown_ids(check):
    """Ids declared in a file that cannot be parsed are unknown, not missing: no cascade of errors."""
    problems = check(
        {
            "extra.yaml": moment(questions="csat, dans_le_fichier_casse"),
            "casse.yaml": "questions:\n  dans_le_fichier_casse:\n    text: [oops\n",
        }
    )
    assert [(p.file, p.path) for p in problems if p.severity == "error"] == [("ws/casse.yaml", "")]


def test_nested_workspace_files_are_not_merged(check, workspace_dir):
    """A sub-folder with its own cxctl.yaml is another workspace: its ids must not clash with ours."""
    nested = {
        f"autre/{name}": (workspace_dir / name).read_text(encoding="utf-8") for name in ("cxctl.yaml", "ecommerce.yaml")
    }
    assert check(nested) == []


IN_THE_MOMENT = """\
moments:
  appel:
    journey: ecommerce
    stage: support
    kind: in_the_moment
    trigger: {event: call_ended, delay: 2d, expires: 5d}
    questions: [csat]
    reminders: {count: 1, after: 1d}
    targets: {csat: 80}
"""

WARNINGS = [
    (
        "reminder_in_the_moment",
        {"extra.yaml": IN_THE_MOMENT},
        [("ws/extra.yaml", 6, 34, "moments.appel.trigger.delay"), ("ws/extra.yaml", 8, 5, "moments.appel.reminders")],
    ),
    (
        "question_never_asked",
        {"extra.yaml": "questions:\n  orpheline:\n    type: open\n    text: Rien ?\n"},
        [("ws/extra.yaml", 2, 3, "questions.orpheline")],
    ),
    (
        "wording_in_unlisted_language",
        {
            "extra.yaml": moment(questions="csat, q_de")
            + "questions:\n  q_de:\n    type: open\n    text: {fr: Oui, de: Ja}\n"
        },
        [("ws/extra.yaml", 12, 21, "questions.q_de.text.de")],
    ),
    (
        "link_without_token",
        {"cxctl.yaml": SETTINGS_HEAD.replace("?t={token}", "")},
        [("ws/cxctl.yaml", 4, 3, "workspace.survey_url")],
    ),
]


@pytest.mark.parametrize("files, expected", [c[1:] for c in WARNINGS], ids=[c[0] for c in WARNINGS])
def test_warnings_are_separate_from_errors_and_located(check, files, expected):
    problems = check(files)
    assert [p for p in problems if p.severity == "error"] == []
    assert [(p.file, p.line, p.column, p.path) for p in problems if p.severity == "warning"] == expected


def test_a_second_workspace_block_is_reported_outside_cxctl_yaml(check):
    """a.yaml sorts before cxctl.yaml, yet cxctl.yaml's block is the one kept."""
    problems = check({"a.yaml": SETTINGS_HEAD})
    assert [(p.file, p.line, p.column, p.path) for p in problems if p.severity == "error"] == [
        ("ws/a.yaml", 1, 1, "workspace")
    ]
    assert "a second workspace block (the first is in ws/cxctl.yaml)" in problems[0].message


def test_a_secret_pasted_into_an_env_key_is_never_echoed(check):
    problems = check({"cxctl.yaml": SETTINGS_HEAD + "  token_secret_env: 'hunter2-Sup3r!'\n"})
    assert [p.path for p in problems if p.severity == "error"] == ["workspace.token_secret_env"]
    assert not any("hunter2" in p.format() for p in problems)


@pytest.mark.parametrize(
    "parent, key, value, secret",
    [
        (("workspace", "smtp"), "password", "hunter2", True),
        (("workspace", "smtp"), "smtp_pass", "hunter22", True),
        (("workspace",), "api-key", "AKIA123", True),
        (("workspace",), "client_secret", "x1", True),
        (("workspace", "smtp"), "password_env", "SMTP_PASSWORD", False),
        (("workspace",), "token_secret_env", "CXCTL_SECRET", False),
        (("workspace",), "passage", "x", False),
        (("workspace",), "survey_url", "https://s/{token}", False),
        (("workspace", "smtp"), "password", "", False),
        (("workspace", "smtp"), "credentials", {"user_env": "U"}, False),
        (("moments", "m1", "audience", "event"), "secret_shopper", False, False),
        (("moments", "m1", "audience", "contact"), "motif_password_reset", "oui", False),
        (("moments", "m1", "responses", "columns"), "password", "Q3", False),
        (("mappings", "crm", "columns"), "Password", "-", False),
        (("moments", "m1"), "password", "hunter2", True),
        (("moments", "m1"), "client_secret", "x", False),
    ],
)
def test_what_counts_as_a_secret_in_clear(parent, key, value, secret):
    """The usual names under workspace: (the settings); exact names elsewhere; never the user's own data
    (attribute names, response and CSV columns), never a variable's name, an empty value or a boolean."""
    from cxctl.workspace.loader import secret_in_clear

    assert secret_in_clear(parent, key, value) is secret


def test_an_unknown_key_that_holds_no_secret_is_still_reported(check):
    problems = check(
        {"cxctl.yaml": SETTINGS_HEAD + "  smtp:\n    host: 127.0.0.1\n    credentials: {user_env: SMTP_USER}\n"}
    )
    assert [(p.path, p.message.split(" (")[0].split(":")[0]) for p in problems if p.severity == "error"] == [
        ("workspace.smtp.credentials", "unknown key 'credentials'")
    ]


def test_an_attribute_named_like_a_secret_is_a_filter(check):
    problems = check(
        {
            "extra.yaml": moment(
                extra="    audience: {event: {secret_shopper: false}, contact: {has_credentials: oui}}\n"
            )
        }
    )
    assert [p.format() for p in problems if p.severity == "error"] == []


def test_a_mapped_column_named_password_is_not_a_secret(check):
    problems = check({"extra.yaml": "mappings:\n  crm:\n    columns: {Password: '-', Mot de passe: '-'}\n"})
    assert [p for p in problems if "secret" in p.message] == []


def test_a_dimension_no_mapping_names_is_a_warning_not_an_error(check):
    """An unmapped column is kept as an attribute, so an unknown dimension may be right: said, not refused."""
    problems = check({"cxctl.yaml": SETTINGS_HEAD + "  dimensions: [segment, regoin]\n"})
    assert [(p.severity, p.path) for p in problems if "dimensions" in p.path] == [
        ("warning", "workspace.dimensions[1]")
    ]
    assert "no mapping names the attribute 'regoin'" in next(p.message for p in problems if "dimensions" in p.path)
