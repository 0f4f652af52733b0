"""Mobile numbers of imported contacts, read with Google's libphonenumber (`phonenumbers`) and stored in E.164.

A number written the national way (`06 12 34 56 78`, `0470 12 34 56`) is read in the contact's country
when the row has one, else in the workspace's default region (workspace.sms.default_region). The forms
a French CRM or spreadsheet produces are all read: spaces and dots, `0033 6…`, `+33 (0)6…`, and the
leading 0 Excel drops from a number it took for an integer (`612345678`). A number that cannot be read,
is not a valid number, or is not a mobile (a landline cannot take an SMS) is rejected with the reason;
never guessed. In North America mobiles and landlines share their ranges: such numbers are accepted.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

from cxctl.workspace.channels import consent_value as consent  # noqa: F401  (the converter's consent check)

# `+33 (0)6 12…`: the national trunk 0 in brackets after the country code, which libphonenumber keeps.
_TRUNK_IN_BRACKETS = re.compile(r"\(\s*0\s*\)")
_MOBILE = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
_TYPE_NAMES = {
    PhoneNumberType.FIXED_LINE: "a landline",
    PhoneNumberType.TOLL_FREE: "a toll-free number",
    PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    PhoneNumberType.SHARED_COST: "a shared-cost number",
    PhoneNumberType.VOIP: "a VoIP number",
    PhoneNumberType.PERSONAL_NUMBER: "a personal routing number",
    PhoneNumberType.PAGER: "a pager",
    PhoneNumberType.UAN: "a company number",
    PhoneNumberType.VOICEMAIL: "a voicemail access",
}


def phone_hash(e164: str) -> str:
    """Stable pseudonym of a number in E.164 (keys the SMS suppressions, as email_hash keys the others)."""
    return hashlib.sha256(e164.strip().encode("ascii", "replace")).hexdigest()


def region_for(country: str | None, default_region: str) -> str:
    """The region a national number is read in: the contact's country when libphonenumber knows it."""
    if country:
        code = country.strip().upper()
        if code in phonenumbers.SUPPORTED_REGIONS:
            return code
    return default_region


@lru_cache(maxsize=65536)
def mobile_e164(raw: str, region: str) -> str:
    """`06 12 34 56 78` (region FR) → `+33612345678`; raises ValueError naming the value and the fix."""
    text = _TRUNK_IN_BRACKETS.sub("", raw.strip())
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException:
        raise ValueError(
            f"phone {raw!r} is not a phone number: write it as 06 12 34 56 78 or +33 6 12 34 56 78, or empty the cell"
        ) from None
    if not phonenumbers.is_valid_number(number):
        where = phonenumbers.region_code_for_number(number) or region
        raise ValueError(
            f"phone {raw!r} is not a valid number in {where} (read as "
            f"+{number.country_code} {number.national_number}): check its digits, add the country code "
            f"(+32…, +41…) for a number from abroad, or empty the cell"
        )
    kind = phonenumbers.number_type(number)
    if kind not in _MOBILE:
        what = _TYPE_NAMES.get(kind, "not a mobile number")
        raise ValueError(
            f"phone {raw!r} is {what}, which cannot receive an SMS: give a mobile number, or empty the cell"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
