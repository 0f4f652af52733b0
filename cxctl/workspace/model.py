"""The workspace model: journeys, key moments, questions, solicitation rules and settings.

Declared once with pydantic (`extra="forbid"`, so a typo cannot pass); validation, the JSON
Schema (`cxctl schema`) and the docs all derive from these classes. Cross-references between
objects are checked in `cxctl.workspace.loader`, which knows where each object came from.
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import Literal

from pydantic import (
    Field,
    model_validator,
)

from cxctl.core.durations import parse_duration
from cxctl.workspace.channels import DeliveryChannel, SmsHours, SmsSettings
from cxctl.workspace.deliverability_model import Deliverability
from cxctl.workspace.fields import (
    DURATION_PATTERN,
    HOURS_PATTERN,
    AttributeFilter,
    AttributeName,
    Duration,
    EnvVar,
    FieldError,
    Identifier,
    Language,
    Model,
    Text,
    TimeZone,
    Weekday,
    default_links,
)
from cxctl.workspace.followup_model import FollowupSettings

# --- workspace settings -----------------------------------------------------------------------


class Sender(Model):
    """Who the invitations come from."""

    name: str
    """Display name in the From header, e.g. Service Client."""
    address: str
    """From address; use a domain whose SPF/DKIM you control."""
    reply_to: str | None = None
    """Where replies to an invitation go."""


class SmtpSettings(Model):
    """SMTP transport; secrets are named environment variables, never values."""

    host: str = "127.0.0.1"
    """SMTP server."""
    port: int = Field(default=25, ge=1, le=65535)
    """SMTP port (587 with starttls, 465 with tls)."""
    security: Literal["none", "starttls", "tls"] = "none"
    """Connection security; a login needs starttls or tls (none only to a relay on 127.0.0.1)."""
    username_env: EnvVar | None = None
    """Name of the environment variable holding the SMTP user."""
    password_env: EnvVar | None = None
    """Name of the environment variable holding the SMTP password."""
    concurrency: int = Field(default=4, ge=1, le=64)
    """Parallel SMTP connections."""
    rate_per_second: float | None = Field(default=None, gt=0)
    """Throttle: messages per second."""
    max_per_hour: int | None = Field(default=None, ge=1)
    """Provider quota per hour."""
    max_per_day: int | None = Field(default=None, ge=1)
    """Provider quota per day."""
    timeout: Duration = timedelta(seconds=30)
    """Per-message timeout."""
    max_consecutive_failures: int = Field(default=10, ge=1)
    """Stop the run after this many failures in a row."""
    max_attempts: int | None = Field(default=None, ge=1)
    """Optional cap on the runs that try one message (quick retries within a run count as one); by default
    a temporary failure is given up on a clock (give_up_after), not a count."""
    retry_schedule: list[Duration] = Field(
        default_factory=lambda: [timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2), timedelta(hours=6)]
    )
    """Waits before each new try of a temporarily failed message (greylisting asks for minutes to hours); the
    last wait repeats until give_up_after."""
    retry_after: Duration | None = None
    """Deprecated: the first wait of retry_schedule."""
    give_up_after: Duration = timedelta(days=1)
    """A message still failing this long after its first try fails for good."""
    smtputf8: bool = False
    """The server accepts internationalised addresses (SMTPUTF8, e.g. benoît@…): without it, such contacts are
    flagged at import and validate and never handed to the server."""

    def retry_wait(self, attempts: int) -> timedelta:
        """The wait before the next try after `attempts` failed runs."""
        schedule = list(self.retry_schedule) or [timedelta(minutes=5)]
        if self.retry_after is not None:
            schedule[0] = self.retry_after
        return schedule[min(max(attempts, 1), len(schedule)) - 1]


class Retention(Model):
    """How long personal data is kept (applied by `cxctl db prune`)."""

    responses: Duration | None = None
    """Anonymise responses older than this."""
    events: Duration | None = None
    """Delete events older than this."""
    invitations: Duration | None = None
    """Delete invitations older than this."""
    contacts_inactive: Duration | None = None
    """Forget contacts with no activity for this long."""


class Settings(Model):
    """The `workspace:` block of cxctl.yaml."""

    name: str
    """The programme's name (for the team: scorecards, reports); customers see `company`."""
    company: Text | None = Field(
        default=None, examples=["Assurance Horizon", {"fr": "Assurance Horizon", "en": "Horizon Insurance"}]
    )
    """The company's name as customers know it, per language if it differs; the default templates' footer
    names it ("you are a customer of …"). Unset: they say "one of our customers"."""
    database: str = "cxctl.db"
    """SQLite file, relative to the workspace."""
    default_language: Language = "fr"
    """BCP 47 tag; every wording must exist in it."""
    languages: list[Language] = Field(default_factory=lambda: ["fr", "en"])
    """Languages the programme speaks (BCP 47 tags)."""
    timezone: TimeZone = "Europe/Paris"
    """IANA time zone of the team; contacts may have their own."""
    sender: Sender
    """Who the invitations come from."""
    public_url: str | None = Field(default=None, examples=["https://avis.example.fr"])
    """Address at which `cxctl serve` is reached (https, behind your proxy); its pages become the default survey_url and unsubscribe_url."""
    survey_url: str | None = Field(
        default=None, examples=["https://survey.example.com/s/{moment}?lang={lang}&t={token}"]
    )
    """Link to the survey ({token}, {moment}, {lang} replaced; any form tool: put {token} in a hidden field). Default with public_url: {public_url}/s/{token}."""
    unsubscribe_url: str | None = Field(default=None, examples=["https://example.com/unsubscribe?t={token}"])
    """Opt-out link ({token} is replaced); also sent as List-Unsubscribe. Default with public_url: {public_url}/u/{token}."""
    unsubscribe_mailto: str | None = None
    """Opt-out address for the List-Unsubscribe header."""
    token_secret_env: EnvVar = "CXCTL_SECRET"
    """Name of the environment variable holding the secret that signs survey links."""
    token_previous_secret_env: EnvVar = "CXCTL_SECRET_PREVIOUS"
    """After `cxctl send --rotate-secret`: the variable holding the previous secret, so links signed with it verify."""
    token_grace_period: Duration = timedelta(weeks=26)
    """How long links signed with the previous secret keep verifying after a rotation."""
    templates: str = "templates"
    """Folder of the workspace's email templates (cxctl's defaults are used for names not found there)."""
    transport: Literal["outbox", "smtp"] = "outbox"
    """outbox writes .eml files; smtp sends."""
    outbox: str = "outbox"
    """Folder the outbox transport writes to."""
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    """SMTP settings (transport: smtp)."""
    sms: SmsSettings = Field(default_factory=SmsSettings)
    """The SMS channel: transport (outbox, twilio, brevo), sender, opt-out wording, hours, phone region."""
    retention: Retention = Field(default_factory=Retention)
    """How long personal data is kept."""
    min_responses: int = Field(default=30, ge=1, description="Below this n a scorecard cell is marked insufficient.")
    dimensions: list[AttributeName] = Field(default_factory=list, examples=[["region", "event.nature"]])
    """Contact attributes (or columns such as segment), and event attributes as event.<name>, that scorecards
    break down by often: cxctl keeps rollups for them, so `scorecard --by region` reads counts per value
    instead of every response. A response counts under its contact's current value, as without them."""

    _links = model_validator(mode="after")(default_links)


# --- journeys ---------------------------------------------------------------------------------


class Journey(Model):
    """A customer journey: ordered stages and the channels it runs through."""

    name: Text
    """Name shown on scorecards."""
    description: Text | None = None
    """What the journey covers."""
    stages: list[Identifier] = Field(min_length=1)
    """Ordered stage ids."""
    channels: list[Identifier] = Field(default_factory=list)
    """Channel ids a moment may name (web, store, contact centre…)."""


# --- questions --------------------------------------------------------------------------------


class Choice(Model):
    """One answer option of a choice question (e.g. an NPS+ reason)."""

    id: Identifier
    """Answer id, stored in responses."""
    label: Text
    """Wording of the answer."""


class AskIf(Model):
    """Follow-up condition: ask this question only when another's answer matches."""

    question: Identifier
    """The question whose answer decides."""
    at_most: float | None = None
    """Ask when the score is at most this (e.g. 6 for NPS detractors)."""
    at_least: float | None = None
    """Ask when the score is at least this."""
    equals: str | float | None = None
    """Ask when the answer equals this (a choice id or a score)."""
    any_of: list[str] | None = None
    """Ask when the answer is one of these choice ids."""

    @model_validator(mode="after")
    def _one_condition(self) -> AskIf:
        if all(v is None for v in (self.at_most, self.at_least, self.equals, self.any_of)):
            raise ValueError("a condition needs at_most, at_least, equals or any_of: add one")
        return self


QuestionType = Literal["nps", "csat", "ces", "rating", "single_choice", "multiple_choice", "open"]

DEFAULT_SCALES = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}


class Question(Model):
    """A survey question with localised wording; scales default by type (NPS 0–10, CSAT 1–5, CES 1–7)."""

    type: QuestionType
    """nps, csat, ces, rating, single_choice, multiple_choice or open."""
    text: Text
    """Wording, per language."""
    min: int | None = None
    """Lowest score (rating; CSAT/CES to change the default)."""
    max: int | None = None
    """Highest score."""
    labels: dict[int, Text] = Field(default_factory=dict)
    """Wording of some scale points, e.g. {1: Pas du tout, 5: Tout à fait}."""
    choices: list[Choice] = Field(default_factory=list)
    """Answers of a choice question (e.g. NPS+ reasons)."""
    ask_if: AskIf | None = None
    """Follow-up condition on another question's answer."""
    required: bool = False
    """The respondent must answer."""
    top_box: int | None = Field(default=None, description="CSAT: how many top answers count as satisfied (default 2).")

    @model_validator(mode="after")
    def _scale(self) -> Question:
        if self.type in DEFAULT_SCALES:
            lo, hi = DEFAULT_SCALES[self.type]
            if self.type == "nps" and (self.min not in (None, 0) or self.max not in (None, 10)):
                raise FieldError(
                    "an NPS question is always 0–10: remove min and max", "min" if self.min not in (None, 0) else "max"
                )
            self.min = lo if self.min is None else self.min
            self.max = hi if self.max is None else self.max
        if self.type in ("nps", "csat", "ces", "rating"):
            if self.min is None or self.max is None:
                raise FieldError(f"a {self.type} question needs min and max: add both, e.g. min: 1, max: 10", "type")
            if self.min >= self.max:
                raise FieldError(f"impossible scale {self.min}–{self.max}: min must be below max", "min")
            bad = [k for k in self.labels if not self.min <= k <= self.max]
            if bad:
                raise FieldError(
                    f"labels {bad} are outside the scale {self.min}–{self.max}: remove them or widen the scale",
                    "labels",
                )
        if self.type in ("single_choice", "multiple_choice") and not self.choices:
            raise FieldError(f"a {self.type} question needs choices: add a list of {{id, label}}", "type")
        return self

    @property
    def scale(self) -> tuple[int, int] | None:
        return (self.min, self.max) if self.min is not None and self.max is not None else None


# --- key moments ------------------------------------------------------------------------------


class Trigger(Model):
    """Transactional / in-the-moment: which event starts the survey, after how long, until when."""

    event: Identifier
    """Event type that starts the survey (as imported: order_delivered, ticket_closed…)."""
    delay: Duration = timedelta(0)
    """Wait after the event."""
    expires: Duration = timedelta(days=7)
    """Do not send once this long has passed since the event."""


class Schedule(Model):
    """Relational waves: exactly one of `every` (quarter, month, or a duration) or `cron`."""

    every: str | None = Field(
        default=None,
        examples=["quarter", "month", "90d"],
        json_schema_extra={"pattern": r"^(quarter|month|year|week)$|" + DURATION_PATTERN},
    )
    """quarter, month, year, week, or a duration such as 90d."""
    cron: str | None = Field(default=None, examples=["0 9 1 */3 *"])
    """Five-field cron expression, in the workspace time zone."""
    spread: Duration | None = Field(default=None, description="Spread a wave over this long (with a daily cap).")

    @model_validator(mode="after")
    def _one(self) -> Schedule:
        if (self.every is None) == (self.cron is None):
            raise ValueError("a schedule needs exactly one of every or cron: keep one")
        if self.every is not None and self.every not in ("quarter", "month", "year", "week"):
            try:
                parse_duration(self.every)
            except ValueError:
                raise FieldError(
                    f"invalid schedule {self.every!r}: write quarter, month, year, week or a duration such as 90d",
                    "every",
                ) from None
        if self.cron is not None:
            from croniter import croniter

            if not croniter.is_valid(self.cron):
                raise FieldError(f"invalid cron expression {self.cron!r}: five fields, e.g. '0 9 1 */3 *'", "cron")
        return self


class Audience(Model):
    """Who a moment addresses; every listed condition must hold (lists mean any of)."""

    segment: list[str] | None = None
    """Contact segments (any of)."""
    country: list[str] | None = None
    """Contact countries (any of), e.g. FR, BE."""
    language: list[Language] | None = None
    """Contact languages (any of)."""
    role: list[str] | None = Field(default=None, description="B2B roles, e.g. requester, buyer, user.")
    contact: dict[AttributeName, AttributeFilter] = Field(default_factory=dict, description="Other contact attributes.")
    event: dict[AttributeName, AttributeFilter] = Field(
        default_factory=dict, description="Attributes of the triggering event."
    )


class Reminders(Model):
    """Reminders to non-responders."""

    count: int = Field(default=1, ge=0, le=5)
    """How many reminders to non-responders."""
    after: Duration = timedelta(days=3)
    """Wait after the invitation (and between reminders)."""


def _working_days() -> list[Weekday]:
    return ["mon", "tue", "wed", "thu", "fri"]


class SendWindow(Model):
    """When messages may go out, in the contact's own time zone."""

    days: list[Weekday] = Field(default_factory=_working_days)
    """Days messages may go out (mon…sun)."""
    hours: str = Field(default="09:00-19:00", pattern=HOURS_PATTERN)
    """Hours, HH:MM-HH:MM in the contact's time zone."""

    def bounds(self) -> tuple[time, time]:
        start, end = self.hours.split("-")

        def parse(hhmm: str) -> time:
            h, m = (int(x) for x in hhmm.split(":"))
            return time(23, 59, 59) if h == 24 else time(h, m)

        return parse(start), parse(end)


class Targets(Model):
    """Targets per indicator, shown as met or missed on scorecards."""

    nps: float | None = Field(default=None, ge=-100, le=100)
    """Target NPS (−100…100)."""
    csat: float | None = Field(default=None, ge=0, le=100, description="% satisfied (top-2 box).")
    ces: float | None = Field(default=None, ge=1, le=7, description="Mean effort score.")
    response_rate: float | None = Field(default=None, ge=0, le=100)
    """Target response rate, in %."""


class ResponseMapping(Model):
    """How a survey tool's export maps to this moment's questions (`cxctl responses import`)."""

    format: (
        Literal["qualtrics", "surveymonkey", "google_forms", "typeform", "limesurvey", "generic", "jsonl"] | None
    ) = None
    """The survey tool's export format."""
    columns: dict[Identifier, str] = Field(
        default_factory=dict, description='question id → export column ("-": this export does not hold the question)'
    )
    token_column: str | None = None
    """Column holding the invitation token."""
    email_column: str | None = None
    """Column holding the respondent's email (fallback match)."""
    external_id_column: str | None = None
    """Column holding the customer id (fallback match)."""
    submitted_column: str | None = None
    """Column holding the submission time."""
    response_id_column: str | None = None
    """Column holding the tool's response id (deduplication)."""
    date_format: str | None = Field(default=None, examples=["%m/%d/%Y %H:%M:%S", "%d/%m/%Y %H:%M"])
    """strptime format of the export's dates, when they read both day first and month first."""
    match_window: Duration = timedelta(days=30)
    """How far back a fallback match looks for the invitation."""
    keep: Literal["first", "last"] = "first"
    """Which response wins when a person answers twice."""
    match: Literal["invitation", "contact", "none"] = "invitation"
    """What an answer must be tied to: its invitation; or only a known contact (invitation if any), or nothing, for
    in-the-moment surveys without invitation (QR code, website link). Those answers count in the scores, not in
    the response rate."""


MomentKind = Literal["relational", "transactional", "in_the_moment"]


def _email_only() -> list[DeliveryChannel]:
    """A moment's channels when it names none: email, as before SMS existed."""
    return ["email"]


class Moment(Model):
    """A key moment of a journey, measured by a short survey."""

    name: Text | None = None
    """Name shown on scorecards."""
    journey: Identifier
    """Journey id."""
    stage: Identifier
    """Stage of that journey."""
    kind: MomentKind
    """relational, transactional or in_the_moment."""
    trigger: Trigger | None = None
    """Transactional and in-the-moment: the event, delay and expiry."""
    schedule: Schedule | None = None
    """Relational: when waves go out."""
    audience: Audience = Field(default_factory=Audience)
    """Who is asked (all conditions must hold)."""
    sample: float = Field(default=1.0, gt=0, le=1, description="Share of eligible people invited (hash-based, stable).")
    priority: int = Field(default=100, ge=1, description="1 is the highest; rules.priority, when given, comes first.")
    channel: Identifier = "email"
    """Channel of the journey this moment measures."""
    channels: list[DeliveryChannel] = Field(default_factory=_email_only, min_length=1, examples=[["sms", "email"]])
    """How the invitation reaches the person, in order of preference: the first the person can receive (an SMS
    needs a mobile number and SMS consent) is used. Not `channel`, the touchpoint being measured."""
    sms_hours: SmsHours | None = None
    """Overrides workspace.sms.hours for this moment's SMS."""
    template: str = "invitation"
    """Template name (files <name>.<lang>.subject/txt/html.j2, and <name>.<lang>.sms.j2 for SMS)."""
    questions: list[Identifier] = Field(min_length=1)
    """Question ids, in the order asked."""
    reminders: Reminders | None = None
    """Reminders to non-responders."""
    targets: Targets = Field(default_factory=Targets)
    """Targets per indicator."""
    recontact: Duration | None = Field(
        default=None, description="Do not invite the same person for this moment again within this period."
    )
    daily_cap: int | None = Field(default=None, ge=1)
    """At most this many invitations per day for this moment."""
    send_window: SendWindow | None = None
    """Overrides rules.send_window for this moment."""
    responses: ResponseMapping = Field(default_factory=ResponseMapping)
    """How a survey tool's export maps to the questions."""

    @model_validator(mode="after")
    def _kind_fields(self) -> Moment:
        if self.kind == "relational":
            if self.schedule is None:
                raise FieldError(
                    "a relational moment needs a schedule: add schedule: {every: quarter} or {cron: ...}", "kind"
                )
            if self.trigger is not None:
                raise FieldError(
                    "a relational moment has a schedule, not a trigger: remove trigger or change kind", "trigger"
                )
        else:
            if self.trigger is None:
                raise FieldError(
                    f"a {self.kind} moment needs a trigger: add trigger: {{event: ..., delay: ..., expires: ...}}",
                    "kind",
                )
            if self.schedule is not None:
                raise FieldError(
                    f"a {self.kind} moment has a trigger, not a schedule: remove schedule or change kind to relational",
                    "schedule",
                )
        return self


# --- solicitation rules -----------------------------------------------------------------------


class Cap(Model):
    """At most `max` invitations per person in any rolling `window`."""

    max: int = Field(ge=1)
    """Invitations per person…"""
    window: Duration
    """…in any rolling window this long."""


class SuppressionSource(Model):
    """Where opt-outs come from besides `cxctl suppress`: a contact attribute (CRM flag column)."""

    attribute: str
    """Contact attribute holding the flag."""
    values: list[str] = Field(default_factory=lambda: ["1", "true", "yes", "oui", "vrai", "x"])
    """Values that mean 'do not contact' (case-insensitive)."""
    reason: Literal["opt_out", "bounce", "complaint", "do_not_contact"] = "do_not_contact"
    """Reason recorded for the suppression."""


class Rules(Model):
    """Solicitation rules shared by every moment (a moment may override recontact, window, cap)."""

    quiet_period: Duration = timedelta(days=30)
    """Minimum time between two invitations to one person, all moments together."""
    cap: Cap | None = None
    """At most N invitations per person in a rolling window."""
    recontact: Duration | None = Field(default=None, description="Default per-moment recontact period.")
    max_reminders: int = Field(default=2, ge=0, le=5)
    """Upper bound for every moment's reminders.count."""
    send_window: SendWindow = Field(default_factory=SendWindow)
    """When messages may go out."""
    priority: list[Identifier] = Field(default_factory=list, description="Moment ids, highest priority first.")
    daily_cap: int | None = Field(default=None, ge=1, description="Invitations per day, all moments together.")
    suppression_sources: list[SuppressionSource] = Field(default_factory=list)
    """Opt-out flags read from contact attributes."""


# --- import mappings --------------------------------------------------------------------------

CONTACT_FIELDS = (
    "external_id",
    "email",
    "first_name",
    "last_name",
    "language",
    "timezone",
    "country",
    "segment",
    "company",
    "role",
    "phone",
    "sms_consent",
    "email_consent",
)
EVENT_FIELDS = ("event_id", "external_id", "email", "type", "occurred_at")


class Mapping(Model):
    """A custom column mapping for `contacts import` / `events import --mapping ID`."""

    kind: Literal["contacts", "events"] = "contacts"
    """contacts or events."""
    preset: str | None = Field(
        default=None, description="Start from a built-in preset (salesforce_report, hubspot, …)."
    )
    columns: dict[str, str] = Field(default_factory=dict, description="export column → field (or attribute name)")
    date_format: str | None = Field(default=None, examples=["%d/%m/%Y", "%d/%m/%Y %H:%M"])
    """strptime format of the file's dates, e.g. %d/%m/%Y."""
    decimal_comma: bool | None = None
    """Numbers are written 4,5."""
    values: dict[str, dict[str, str]] = Field(default_factory=dict, description="field → {export value: stored value}")
    event_type: str | None = Field(default=None, description="Fixed event type when the file has no type column.")
    encoding: str | None = None
    """File encoding (detected when absent)."""
    delimiter: str | None = None
    """Column separator (sniffed when absent)."""


# --- one file, and the whole workspace -----------------------------------------------------------


class WorkspaceFile(Model):
    """One YAML file of a workspace; any file may declare any section, ids are global."""

    workspace: Settings | None = None
    """Workspace settings (once, in cxctl.yaml)."""
    journeys: dict[Identifier, Journey] = Field(default_factory=dict)
    """Journeys by id."""
    moments: dict[Identifier, Moment] = Field(default_factory=dict)
    """Key moments by id."""
    questions: dict[Identifier, Question] = Field(default_factory=dict)
    """Questions by id."""
    rules: Rules | None = None
    """Solicitation rules (once per workspace)."""
    mappings: dict[Identifier, Mapping] = Field(default_factory=dict)
    """Custom import mappings by id."""
    followups: FollowupSettings | None = None
    """Follow-up cases: owners, deadlines, working calendar, alerts (once per workspace)."""
    deliverability: Deliverability | None = None
    """Bounces and complaints: when an address is suppressed, when a moment stops (once per workspace)."""


def localise(text: Text | None, language: str, default: str) -> str:
    """Pick the wording for `language`, falling back to the base language, then the default."""
    if text is None:
        return ""
    if isinstance(text, str):
        return text
    base = language.split("-")[0]
    for key in (language, base, default, default.split("-")[0]):
        if key in text:
            return text[key]
    return next(iter(text.values()))
