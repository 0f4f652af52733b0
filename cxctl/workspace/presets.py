"""Column mappings: built-in presets for CRM exports, automatic mapping of common English and French
header names, and the workspace's own mappings (`mappings:` in the YAML, `--mapping ID`).

Every header is first normalised with `cxctl.audience.csvio.normalise_header` (`Adresse e-mail` →
`adresse_e_mail`), so matching ignores case, accents, spaces and punctuation. A column maps to a
field (contacts: external_id, email, first_name, last_name, language, timezone, country, segment, phone,
sms_consent, email_consent,
company, role; events: event_id, external_id, email, type, occurred_at), to `attributes.<name>`, or
(by default) to an attribute named by its normalised header. Presets may also ignore a column (e.g.
Dynamics' row checksum, which changes at every export).

Precedence for each column: the workspace mapping's `columns`, then the preset's, then the automatic
names. A field is taken by the first column that claims it; a later column claiming the same field
stays an attribute, so nothing is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cxctl.core.csvnames import normalise_header
from cxctl.core.errors import UsageError
from cxctl.workspace.model import CONTACT_FIELDS, EVENT_FIELDS, Mapping

IGNORE = "-"
TRUE_VALUES = ("1", "true", "yes", "oui", "vrai", "x", "y")


@dataclass(frozen=True)
class Preset:
    """A known export format: its header names, value maps and opt-out columns."""

    name: str
    description: str
    columns: dict[str, str]
    signature: tuple[str, ...] = ()
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    suppress: dict[str, tuple[tuple[str, ...], str]] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "salesforce_report",
            "Salesforce report, 'Export details' as CSV (field labels, footer lines)",
            {
                "contact_id": "external_id",
                "id_du_contact": "external_id",
                "lead_id": "external_id",
                "first_name": "first_name",
                "prenom": "first_name",
                "last_name": "last_name",
                "nom": "last_name",
                "email": "email",
                "e_mail": "email",
                "account_name": "company",
                "nom_du_compte": "company",
                "title": "role",
                "titre": "role",
                "mailing_country": "country",
                "pays_de_correspondance": "country",
                "preferred_language": "language",
                "language": "language",
                "langue": "language",
            },
            signature=("contact_id", "id_du_contact"),
            suppress={"email_opt_out": (TRUE_VALUES, "opt_out"), "desabonnement_des_e_mails": (TRUE_VALUES, "opt_out")},
        ),
        Preset(
            "salesforce_dataloader",
            "Salesforce Data Loader export (API names: Id, FirstName, HasOptedOutOfEmail…)",
            {
                "id": "external_id",
                "firstname": "first_name",
                "lastname": "last_name",
                "email": "email",
                "account_name": "company",
                "title": "role",
                "mailingcountry": "country",
                "languagelocalekey": "language",
                "language__c": "language",
                "createddate": IGNORE,
                "lastmodifieddate": IGNORE,
                "systemmodstamp": IGNORE,
            },
            signature=("firstname", "lastname", "hasoptedoutofemail", "mailingcountry"),
            suppress={"hasoptedoutofemail": (TRUE_VALUES, "opt_out"), "isemailbounced": (TRUE_VALUES, "bounce")},
        ),
        Preset(
            "hubspot",
            "HubSpot contacts export (Record ID, Country/Region, Unsubscribed from all email…)",
            {
                "record_id": "external_id",
                "first_name": "first_name",
                "last_name": "last_name",
                "email": "email",
                "preferred_language": "language",
                "country_region": "country",
                "company_name": "company",
                "job_title": "role",
                "time_zone": "timezone",
                "contact_owner": IGNORE,
            },
            signature=("record_id",),
            suppress={
                "unsubscribed_from_all_email": (TRUE_VALUES, "opt_out"),
                "email_hard_bounce_reason": ((), "bounce"),
            },
        ),
        Preset(
            "dynamics",
            "Microsoft Dynamics 365 export to Excel/CSV ((Do Not Modify) columns)",
            {
                "do_not_modify_contact": "external_id",
                "do_not_modify_row_checksum": IGNORE,
                "do_not_modify_modified_on": IGNORE,
                "first_name": "first_name",
                "last_name": "last_name",
                "email": "email",
                "e_mail": "email",
                "company_name": "company",
                "account_name": "company",
                "job_title": "role",
                "address_1_country_region": "country",
                "preferred_language": "language",
            },
            signature=("do_not_modify_contact", "do_not_modify_row_checksum"),
            values={},
            suppress={
                "do_not_allow_bulk_emails": (("do not allow", "ne pas autoriser", *TRUE_VALUES), "opt_out"),
                "do_not_allow_emails": (("do not allow", "ne pas autoriser", *TRUE_VALUES), "opt_out"),
            },
        ),
    )
}
# In `suppress`, () means "any non-empty value" (e.g. a bounce reason column).

AUTO_CONTACTS: dict[str, str] = {}
for _field, _names in {
    "external_id": (
        "external_id",
        "id",
        "customer_id",
        "client_id",
        "id_client",
        "contact_id",
        "numero_client",
        "no_client",
        "n_client",
        "num_client",
        "identifiant",
        "identifiant_client",
        "customer_number",
        "code_client",
        "reference_client",
        "ref_client",
    ),
    "email": (
        "email",
        "e_mail",
        "mail",
        "email_address",
        "e_mail_address",
        "courriel",
        "adresse_courriel",
        "adresse_e_mail",
        "adresse_email",
        "adresse_mail",
        "mel",
        "customer_email",
        "client_email",
        "contact_email",
        "email_client",
        "mail_client",
        "courriel_client",
        "adresse_email_client",
        "e_mail_client",
    ),
    "first_name": ("first_name", "firstname", "given_name", "prenom"),
    "last_name": ("last_name", "lastname", "surname", "family_name", "nom", "nom_de_famille"),
    "language": ("language", "lang", "langue", "preferred_language", "langue_preferee", "locale"),
    "timezone": ("timezone", "time_zone", "tz", "fuseau_horaire", "fuseau"),
    "country": ("country", "pays", "country_code", "code_pays", "country_region"),
    "segment": ("segment", "customer_segment", "segment_client", "customer_type", "type_client", "type_de_client"),
    "company": (
        "company",
        "company_name",
        "account",
        "account_name",
        "societe",
        "entreprise",
        "raison_sociale",
        "organisation",
        "organization",
        "compte",
    ),
    "role": ("role", "b2b_role", "contact_role", "role_b2b", "fonction", "job_role"),
    "phone": (
        "phone",
        "mobile",
        "mobile_phone",
        "mobilephone",
        "phone_number",
        "cell",
        "cell_phone",
        "portable",
        "telephone_portable",
        "tel_portable",
        "mobile_number",
        "numero_de_portable",
        "numero_mobile",
        "gsm",
        "telephone_mobile",
        "tel_mobile",
    ),
    "sms_consent": (
        "sms_consent",
        "sms_opt_in",
        "sms_optin",
        "opt_in_sms",
        "optin_sms",
        "consentement_sms",
        "accord_sms",
        "consent_sms",
    ),
    "email_consent": (
        "email_consent",
        "email_opt_in",
        "email_optin",
        "opt_in_email",
        "optin_email",
        "consentement_email",
        "consentement_e_mail",
        "accord_email",
    ),
}.items():
    for _name in _names:
        AUTO_CONTACTS[_name] = _field

AUTO_EVENTS: dict[str, str] = {}
for _field, _names in {
    "event_id": (
        "event_id",
        "event_key",
        "id_event",
        "id_evenement",
        "evenement_id",
        "id",
        "order_id",
        "order_number",
        "n_commande",
        "numero_commande",
        "no_commande",
        "commande",
        "ticket_id",
        "ticket_number",
        "n_ticket",
        "numero_ticket",
        "case_number",
        "transaction_id",
        "call_id",
        "id_appel",
        "ref_evenement",
        "reference_evenement",
        "ref_event",
        "event_ref",
    ),
    "external_id": (
        "external_id",
        "customer_id",
        "client_id",
        "id_client",
        "contact_id",
        "numero_client",
        "no_client",
        "n_client",
        "num_client",
        "identifiant_client",
        "customer_number",
        "code_client",
    ),
    "email": tuple(k for k, v in AUTO_CONTACTS.items() if v == "email"),
    "type": ("type", "event_type", "event", "evenement", "type_evenement", "type_d_evenement"),
    "occurred_at": (
        "occurred_at",
        "date",
        "datetime",
        "timestamp",
        "time",
        "event_date",
        "event_time",
        "date_evenement",
        "date_heure",
        "horodatage",
        "occurred",
        "created_at",
        "delivered_at",
        "closed_at",
        "date_livraison",
        "date_de_livraison",
        "date_cloture",
    ),
}.items():
    for _name in _names:
        AUTO_EVENTS[_name] = _field


@dataclass
class Column:
    """What one column of the file becomes: a field, an attribute (key), or nothing."""

    index: int
    header: str
    target: str  # "field" | "attribute" | "ignore"
    name: str  # field name or attribute key


@dataclass
class Resolved:
    """The column plan for one file, with the options that apply to it."""

    preset: str | None
    columns: list[Column]
    values: dict[str, dict[str, str]]
    suppress: list[tuple[int, frozenset[str], str]]  # column index, values (empty: any), reason
    date_format: str | None = None
    decimal_comma: bool = False
    event_type: str | None = None

    def field_index(self, name: str) -> int | None:
        return next((c.index for c in self.columns if c.target == "field" and c.name == name), None)

    def describe(self) -> dict[str, str]:
        return {
            c.header: (c.name if c.target == "field" else "-" if c.target == "ignore" else f"attributes.{c.name}")
            for c in self.columns
        }


def detect_preset(keys: list[str]) -> str | None:
    """The preset whose signature headers appear in the file, if any."""
    present = set(keys)
    best, best_hits = None, 0
    for preset in PRESETS.values():
        hits = sum(1 for k in preset.signature if k in present)
        if hits > best_hits:
            best, best_hits = preset.name, hits
    return best


def get_preset(name: str) -> Preset:
    key = name.strip().lower().replace("-", "_")
    if key not in PRESETS:
        raise UsageError(f"unknown preset {name!r}: use one of {', '.join(PRESETS)}")
    return PRESETS[key]


def resolve(
    header: list[str], keys: list[str], kind: str, mapping: Mapping | None = None, preset_name: str | None = None
) -> Resolved:
    """Decide what each column becomes; `preset_name` None means detect it from the headers."""
    fields = CONTACT_FIELDS if kind == "contacts" else EVENT_FIELDS
    auto = AUTO_CONTACTS if kind == "contacts" else AUTO_EVENTS
    if preset_name is None and mapping is not None:
        preset_name = mapping.preset
    if preset_name is None and kind == "contacts":
        preset_name = detect_preset(keys)
    preset = get_preset(preset_name) if preset_name else None
    declared = {normalise_header(k): v for k, v in (mapping.columns if mapping else {}).items()}
    taken: set[str] = set()
    columns: list[Column] = []
    for index, (name, key) in enumerate(zip(header, keys, strict=True)):
        target = declared.get(key)
        if target is None and preset is not None and kind == "contacts":
            target = preset.columns.get(key)
        if target is None:
            target = auto.get(key)
        if target in (IGNORE, "ignore"):
            columns.append(Column(index, name, "ignore", key))
        elif target is not None and target in fields and target not in taken:
            taken.add(target)
            columns.append(Column(index, name, "field", target))
        else:
            attribute = key
            if target is not None and target not in fields:
                attribute = (
                    target.partition(".")[2].strip() if target.startswith("attributes.") else normalise_header(target)
                )
            columns.append(Column(index, name, "attribute", attribute))
    values: dict[str, dict[str, str]] = {}
    for source in ((preset.values if preset else {}), (mapping.values if mapping else {})):
        for field_name, table in source.items():
            values.setdefault(field_name, {}).update({k.strip().lower(): v for k, v in table.items()})
    suppress = []
    if preset is not None:
        for column in columns:
            if column.target == "attribute" and column.name in preset.suppress:
                accepted, reason = preset.suppress[column.name]
                suppress.append((column.index, frozenset(accepted), reason))
    return Resolved(
        preset=preset.name if preset else None,
        columns=columns,
        values=values,
        suppress=suppress,
        date_format=mapping.date_format if mapping else None,
        decimal_comma=bool(mapping and mapping.decimal_comma),
        event_type=mapping.event_type if mapping else None,
    )
