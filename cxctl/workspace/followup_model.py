"""The `followups:` section: who calls an unhappy customer back, by when, and how they are told.

Owners come from rules matched in order (moment, journey, stage, segment, any contact or event
attribute), else the default owner; deadlines per category (detractor, dissatisfied, high effort) are
counted in the working hours of the workspace calendar (days, hours, public holidays from the
`holidays` library, closed days). Declared with pydantic like the rest of the model; cross-references
(moments, stages) are checked in cxctl.workspace.followup_checks.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, model_validator

from cxctl.workspace.fields import (
    HOURS_PATTERN,
    AttributeFilter,
    AttributeName,
    Duration,
    EnvVar,
    FieldError,
    Identifier,
    Language,
    Model,
    TimeZone,
    Weekday,
)

CATEGORIES = ("detractor", "dissatisfied", "high_effort")
Category = Literal["detractor", "dissatisfied", "high_effort"]
CONTACT_KEYS = ("segment", "country", "language", "company", "role")


def _weekdays() -> list[Weekday]:
    """Monday to Friday: the working week when the calendar names none."""
    return ["mon", "tue", "wed", "thu", "fri"]


class WorkCalendar(Model):
    """The team's working time, in which deadlines are counted."""

    days: list[Weekday] = Field(default_factory=_weekdays)
    """Working days (mon…sun)."""
    hours: str = Field(default="09:00-18:00", pattern=HOURS_PATTERN)
    """Working hours, HH:MM-HH:MM."""
    timezone: TimeZone | None = None
    """IANA time zone of the team (default: workspace.timezone)."""
    holidays: str | None = Field(default=None, examples=["FR", "BE", "CA-QC", "DE-BY"])
    """Public holidays of this country (ISO 3166 code, optionally -subdivision: CA-QC), from the holidays library."""
    closed: list[date] = Field(default_factory=list)
    """Other days the team does not work (ISO dates), e.g. a company closure."""

    @model_validator(mode="after")
    def _check(self) -> WorkCalendar:
        start, end = self.hours.split("-")
        if start >= end:
            raise FieldError(f"working hours {self.hours!r} end before they start: write e.g. 09:00-18:00", "hours")
        if not self.days:
            raise FieldError(
                "a calendar without a working day never reaches a deadline: list days, e.g. [mon, tue, wed, thu, fri]",
                "days",
            )
        if self.holidays is not None:
            _check_holidays_code(self.holidays)
        return self


def _check_holidays_code(code: str) -> None:
    """FieldError for an unknown country (read from the library's registry, no country imported) or
    subdivision (the country's calendar is built to know)."""
    if "-" in code or code.upper() not in holiday_countries():
        holiday_calendar(code, 2026)


@lru_cache(maxsize=1)
def holiday_countries() -> frozenset[str]:
    """The country codes (and aliases: UK, GBR) the holidays library knows. Read from its registry:
    `holidays.list_supported_countries()` imports each of its 150-odd country modules to list their
    subdivisions, 0.16 s on every workspace load (issue 18)."""
    try:
        from holidays.registry import EntityLoader

        return frozenset(EntityLoader.get_country_codes())
    except (ImportError, AttributeError):  # an older holidays (the pin allows 0.50): its public, slower list
        import holidays

        return frozenset(holidays.list_supported_countries())


def holiday_calendar(code: str, year: int) -> dict[date, str]:
    """The public holidays of `code` (FR, CA-QC…) in `year`; FieldError naming the fix when unknown."""
    import holidays

    country, _, subdivision = code.partition("-")
    if country.upper() not in holiday_countries():
        raise FieldError(
            f"no public holidays known for country {country!r}: write an ISO 3166 code such as FR, BE, CH, CA or DE",
            "holidays",
        )
    try:
        return dict(holidays.country_holidays(country.upper(), subdiv=subdivision.upper() or None, years=year))
    except NotImplementedError:  # what the library raises for an unknown subdivision
        raise FieldError(
            f"country {country.upper()!r} has no subdivision {subdivision!r}: write e.g. CA-QC, DE-BY, "
            f"or the country alone",
            "holidays",
        ) from None


def _as_list(value: Any) -> Any:
    # `moment: delivery_csat` reads as a list of one: rules are written by people, not schemas.
    return [value] if isinstance(value, str) else value


_ONE_OR_MANY = WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]})
Ids = Annotated[list[Identifier], BeforeValidator(_as_list), _ONE_OR_MANY]
Texts = Annotated[list[str], BeforeValidator(_as_list), _ONE_OR_MANY]
Categories = Annotated[list[Category], BeforeValidator(_as_list), _ONE_OR_MANY]
Languages = Annotated[list[Language], BeforeValidator(_as_list), _ONE_OR_MANY]


class OwnerWhen(Model):
    """Conditions of an owner rule; all must hold (a list means any of)."""

    moment: Ids | None = None
    """Key moments (any of)."""
    journey: Ids | None = None
    """Journeys (any of)."""
    stage: Ids | None = None
    """Stages (any of)."""
    category: Categories | None = None
    """Why the case opened: detractor, dissatisfied, high_effort (any of)."""
    segment: Texts | None = None
    """Contact segments (any of)."""
    country: Texts | None = None
    """Contact countries (any of)."""
    language: Languages | None = None
    """Contact languages (any of)."""
    company: Texts | None = None
    """Contact companies (any of)."""
    role: Texts | None = None
    """Contact roles (any of)."""
    contact: dict[AttributeName, AttributeFilter] = Field(default_factory=dict)
    """Other contact attributes, e.g. {region: Sud}."""
    event: dict[AttributeName, AttributeFilter] = Field(default_factory=dict)
    """Attributes of the event behind the survey, e.g. {store: Lyon}."""

    @model_validator(mode="after")
    def _something(self) -> OwnerWhen:
        if (
            not self.contact
            and not self.event
            and all(getattr(self, k) is None for k in ("moment", "journey", "stage", "category", *CONTACT_KEYS))
        ):
            raise ValueError(
                "a rule without a condition matches every case: add one (moment, stage, segment, "
                "event: {…}) or use default_owner"
            )
        return self


class OwnerRule(Model):
    """Cases that match `when` go to `owner` (the first matching rule wins)."""

    when: OwnerWhen
    """Conditions; all must hold."""
    owner: str = Field(min_length=1, examples=["lyon-cx@example.com"])
    """Who calls back: an address (alerts go there) or a team name."""
    deadline: Duration | None = None
    """Overrides the category's deadline for these cases, in working time."""


class Webhook(Model):
    """A chat channel told of new cases: a Slack or Microsoft Teams incoming webhook."""

    kind: Literal["slack", "teams"]
    """slack or teams."""
    url_env: EnvVar
    """Name of the environment variable holding the webhook URL (it is a secret: anyone with it can post)."""
    owners: list[str] | None = None
    """Only the cases of these owners (default: every case)."""


class Alerts(Model):
    """How an owner is told at once of a new case, and of overdue ones by the daily digest."""

    email: bool = True
    """Email the owner through the workspace's transport (owners that are addresses)."""
    webhooks: list[Webhook] = Field(default_factory=list)
    """Chat channels (Slack, Teams) told of each new case and of the digest."""
    only_within: Duration = timedelta(days=7)
    """No alert for an answer submitted longer ago than this (a back-catalogue import does not flood anyone)."""
    sender: str | None = None
    """From address of alert emails (default: workspace.sender.address)."""


class FollowupSettings(Model):
    """The `followups:` section: owners, deadlines, the working calendar and alerts."""

    language: Language | None = None
    """The team's language, for labels in lists and alerts (default: workspace.default_language)."""
    default_owner: str | None = None
    """Owner of the cases no rule matches (none: they stay unassigned)."""
    owners: list[OwnerRule] = Field(default_factory=list)
    """Owner rules, the first matching one wins."""
    deadlines: dict[Category, Duration] = Field(
        default_factory=dict, examples=[{"detractor": "48h", "dissatisfied": "72h"}]
    )
    """Time to the first contact per category, in working time; a case with several categories takes the shortest."""
    calendar: WorkCalendar = Field(default_factory=WorkCalendar)
    """Working days, hours and holidays in which deadlines count."""
    alerts: Alerts | None = None
    """Tell owners of new and overdue cases (none: no alert)."""
