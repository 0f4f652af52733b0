"""The delivery channels of the workspace model: which channels a moment may use (email, SMS), the SMS
settings (transport, opt-out wording, hours, providers) and the limits every transport shares.

Split from cxctl.workspace.model (one concept: how a message reaches a person, beside what it asks).
The solicitation rules count people, not channels: nothing here has a quiet period or a cap per person.
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from cxctl.workspace.fields import HOURS_PATTERN, Duration, EnvVar, FieldError, Model, Text, Weekday

DeliveryChannel = Literal["email", "sms"]
CHANNELS: tuple[str, ...] = ("email", "sms")


class DeliveryLimits(Model):
    """Throughput, quotas and retries of one channel's transport (the SMS block; smtp has its own)."""

    concurrency: int = Field(default=4, ge=1, le=64)
    """Parallel requests to the provider."""
    rate_per_second: float | None = Field(default=None, gt=0)
    """Throttle: messages per second."""
    max_per_hour: int | None = Field(default=None, ge=1)
    """Provider quota per hour, for this channel alone."""
    max_per_day: int | None = Field(default=None, ge=1)
    """Provider quota per day, for this channel alone."""
    timeout: Duration = timedelta(seconds=15)
    """Per-request timeout."""
    max_consecutive_failures: int = Field(default=10, ge=1)
    """Stop the run after this many failures in a row."""
    max_attempts: int | None = Field(default=None, ge=1)
    """Optional cap on the runs that try one message; by default retries stop on a clock (give_up_after)."""
    retry_schedule: list[Duration] = Field(
        default_factory=lambda: [timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2), timedelta(hours=6)]
    )
    """Waits before each new try of a temporarily failed message; the last wait repeats until give_up_after
    (a provider's Retry-After, when longer, wins)."""
    give_up_after: Duration = timedelta(days=1)
    """A message still failing this long after its first try fails for good."""

    @property
    def retry_after(self) -> timedelta | None:
        """Same interface as SmtpSettings (its deprecated key); SMS never had it."""
        return None

    def retry_wait(self, attempts: int) -> timedelta:
        """The wait before the next try after `attempts` failed runs."""
        schedule = list(self.retry_schedule) or [timedelta(minutes=5)]
        return schedule[min(max(attempts, 1), len(schedule)) - 1]


def _except_sunday() -> list[Weekday]:
    return ["mon", "tue", "wed", "thu", "fri", "sat"]


class SmsHours(Model):
    """When an SMS may go out, in the contact's time zone. The default follows the French operators' code of
    conduct (no SMS before 08:00, after 20:00, on Sundays or public holidays)."""

    hours: str = Field(default="08:00-20:00", pattern=HOURS_PATTERN)
    """Hours SMS may go out, HH:MM-HH:MM in the contact's time zone (within the day: no overnight range)."""
    days: list[Weekday] = Field(default_factory=lambda: _except_sunday())
    """Days SMS may go out (mon…sun)."""
    public_holidays: bool = False
    """Send on public holidays (of the contact's country, else workspace.sms.default_region) too."""

    def bounds(self) -> tuple[time, time]:
        start, end = self.hours.split("-")

        def parse(hhmm: str) -> time:
            h, m = (int(x) for x in hhmm.split(":"))
            return time(23, 59, 59) if h == 24 else time(h, m)

        return parse(start), parse(end)

    @model_validator(mode="after")
    def _within_the_day(self) -> SmsHours:
        start, end = self.bounds()
        if end <= start:
            raise FieldError(
                f"SMS hours {self.hours} end before they start: write a range within the day, e.g. 08:00-20:00", "hours"
            )
        if not self.days:
            raise FieldError("no day allows an SMS: list at least one day, e.g. [mon, tue, wed, thu, fri]", "days")
        return self


class TwilioSettings(Model):
    """Twilio's Messages API (POST /2010-04-01/Accounts/{sid}/Messages.json, HTTP Basic auth)."""

    account_sid_env: EnvVar = "TWILIO_ACCOUNT_SID"
    """Name of the environment variable holding the Account SID (AC…)."""
    auth_token_env: EnvVar = "TWILIO_AUTH_TOKEN"
    """Name of the environment variable holding the Auth Token (also the key of X-Twilio-Signature)."""
    from_number: str | None = Field(default=None, examples=["+33644600000", "BOUTIQUE"])
    """From: a Twilio number in E.164 or an alphanumeric sender id (or use messaging_service_sid)."""
    messaging_service_sid: str | None = Field(default=None, examples=["MG0123456789abcdef0123456789abcdef"])
    """A Messaging Service (MG…) instead of from_number."""
    status_callback: str | None = None
    """URL Twilio posts delivery receipts to (cxctl serve's /hooks/sms/twilio)."""
    base_url: str = "https://api.twilio.com"
    """API root (a test server or a regional edge)."""


class BrevoSettings(Model):
    """Brevo's transactional SMS API (POST /v3/transactionalSMS/send, `api-key` header)."""

    api_key_env: EnvVar = "BREVO_API_KEY"
    """Name of the environment variable holding the API key."""
    webhook_token_env: EnvVar | None = None
    """Name of the variable holding the bearer token Brevo's webhook sends (Brevo does not sign bodies)."""
    type: Literal["transactional", "marketing"] = "transactional"
    """Brevo's SMS type; survey invitations are transactional."""
    web_url: str | None = None
    """URL Brevo posts delivery events to (cxctl serve's /hooks/sms/brevo)."""
    base_url: str = "https://api.brevo.com"
    """API root (a test server)."""


class SmsSettings(DeliveryLimits):
    """The SMS channel: where messages go, who they come from, the opt-out wording and the hours."""

    transport: Literal["outbox", "twilio", "brevo"] = "outbox"
    """outbox writes .sms files; twilio and brevo send through their HTTP APIs."""
    outbox: str = "outbox/sms"
    """Folder the SMS outbox transport writes to."""
    default_region: str = "FR"
    """Region (ISO 3166 code) of phone numbers written without a country code, when the contact has no country."""
    sender: str | None = Field(default=None, examples=["BOUTIQUE", "+33644600000"])
    """Sender id shown to the person: up to 11 letters and digits, or a number (Brevo's `sender`;
    Twilio's From when twilio.from_number is not set)."""
    opt_out: Text | None = Field(
        default=None, examples=["STOP au 36111", {"fr": "STOP au 36111", "en": "Reply STOP to 36111"}]
    )
    """Opt-out wording, per language: every SMS ends with it (added when the template does not write it)."""
    max_segments: int = Field(default=2, ge=1, le=10)
    """validate and preview warn when a rendered SMS needs more segments than this (each is billed)."""
    hours: SmsHours = Field(default_factory=lambda: SmsHours.model_validate({}))
    """When SMS may go out (a moment may override it with sms_hours)."""
    twilio: TwilioSettings = Field(default_factory=lambda: TwilioSettings.model_validate({}))
    """Twilio settings (transport: twilio)."""
    brevo: BrevoSettings = Field(default_factory=lambda: BrevoSettings.model_validate({}))
    """Brevo settings (transport: brevo)."""

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        import phonenumbers

        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown phone region {value!r}: write an ISO 3166 country code such as FR, BE, CH or CA")
        return region

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str | None) -> str | None:
        if value is None:
            return value
        text = value.strip()
        digits = text.lstrip("+")
        if digits.isdigit():
            if len(digits) > 15:
                raise ValueError(
                    f"sender {value!r} has more than 15 digits: write a number in E.164, e.g. +33644600000"
                )
        elif not (text.isascii() and text.replace(" ", "").isalnum() and 1 <= len(text) <= 11 and not text.isdigit()):
            raise ValueError(
                f"sender {value!r} is not an SMS sender id: up to 11 ASCII letters and digits (e.g. BOUTIQUE)"
            )
        return text


_YES = frozenset({"1", "true", "yes", "y", "oui", "o", "vrai", "x", "opt-in", "optin", "opt_in", "consent", "granted"})
_NO = frozenset({"0", "false", "no", "n", "non", "faux", "opt-out", "optout", "opt_out", "refused", "denied", "-"})


def consent_value(value: str) -> str:
    """A consent cell → '1' (yes) or '0' (no); raises ValueError for anything else (never guessed)."""
    text = value.strip().lower()
    if text in _YES:
        return "1"
    if text in _NO:
        return "0"
    raise ValueError(
        f"consent {value!r} is neither yes nor no: write oui/non, yes/no, 1/0, true/false, "
        f"or map the value in the mapping's values"
    )
