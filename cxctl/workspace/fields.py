"""The field types of the workspace model: durations, time zones, language tags, ids, texts per
language, weekdays and hours, and the strict base model every YAML object derives from."""

from __future__ import annotations

import re
from datetime import timedelta
from functools import lru_cache
from typing import Annotated, Any, Literal, Union
from zoneinfo import ZoneInfo, available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    WithJsonSchema,
)

from cxctl.core.durations import PATTERN as DURATION_PATTERN
from cxctl.core.durations import format_duration, parse_duration

# --- scalar types -----------------------------------------------------------------------------


def _to_timedelta(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(f"invalid duration {value!r}: write a number and a unit, e.g. 90m, 36h, 14d, 2w, 18mo, 3y")


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_timedelta),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["36h", "14d", "2w"]}),
]


def _check_timezone(value: str) -> str:
    if value in ("UTC", "Etc/UTC"):
        return value
    try:
        ZoneInfo(value)
        known = "/" in value or value in _timezones()
    except Exception:
        known = False
    if not known:
        import difflib

        close = difflib.get_close_matches(value, sorted(_timezones()), n=1, cutoff=0.7)
        hint = f"did you mean {close[0]!r}?" if close else "use an IANA name such as Europe/Paris or America/Montreal"
        raise ValueError(f"unknown time zone {value!r}: {hint}")
    return value


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())


TimeZone = Annotated[
    str, AfterValidator(_check_timezone), WithJsonSchema({"type": "string", "examples": ["Europe/Paris"]})
]


class FieldError(ValueError):
    """A model-level rule broken by one key: the loader points at `field` rather than the whole object."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


SURVEY_PATH, UNSUBSCRIBE_PATH = "/s/{token}", "/u/{token}"  # `cxctl serve`'s pages, under workspace.public_url


def default_links(settings: Any) -> Any:
    """The workspace settings' links: cxctl's own pages are the defaults when it serves them (public_url);
    a survey tool's survey_url still wins. Without either, survey_url is missing (a located error)."""
    base = (settings.public_url or "").rstrip("/")
    if not base and settings.survey_url is None:
        raise FieldError(
            "missing survey_url: give your survey tool's link with {token} in it, or set public_url to the "
            "https address where `cxctl serve` answers (its page is then the survey link)",
            "survey_url",
        )
    settings.survey_url = settings.survey_url or base + SURVEY_PATH
    settings.unsubscribe_url = settings.unsubscribe_url or (base + UNSUBSCRIBE_PATH if base else None)
    return settings


# BCP 47 (RFC 5646) language tag: language[-script][-region][-variant...]; private use and
# grandfathered tags are not survey languages.
LANGUAGE_PATTERN = (
    r"^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-(?:[A-Za-z]{2}|[0-9]{3}))?(-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*$"
)
_LANGUAGE_RE = re.compile(LANGUAGE_PATTERN)
# ISO 639-1, so that a typo such as `fe` or `eng` in a two-letter slot is caught.
ISO_639_1 = frozenset(
    [
        "aa",
        "ab",
        "ae",
        "af",
        "ak",
        "am",
        "an",
        "ar",
        "as",
        "av",
        "ay",
        "az",
        "ba",
        "be",
        "bg",
        "bi",
        "bm",
        "bn",
        "bo",
        "br",
        "bs",
        "ca",
        "ce",
        "ch",
        "co",
        "cr",
        "cs",
        "cu",
        "cv",
        "cy",
        "da",
        "de",
        "dv",
        "dz",
        "ee",
        "el",
        "en",
        "eo",
        "es",
        "et",
        "eu",
        "fa",
        "ff",
        "fi",
        "fj",
        "fo",
        "fr",
        "fy",
        "ga",
        "gd",
        "gl",
        "gn",
        "gu",
        "gv",
        "ha",
        "he",
        "hi",
        "ho",
        "hr",
        "ht",
        "hu",
        "hy",
        "hz",
        "ia",
        "id",
        "ie",
        "ig",
        "ii",
        "ik",
        "io",
        "is",
        "it",
        "iu",
        "ja",
        "jv",
        "ka",
        "kg",
        "ki",
        "kj",
        "kk",
        "kl",
        "km",
        "kn",
        "ko",
        "kr",
        "ks",
        "ku",
        "kv",
        "kw",
        "ky",
        "la",
        "lb",
        "lg",
        "li",
        "ln",
        "lo",
        "lt",
        "lu",
        "lv",
        "mg",
        "mh",
        "mi",
        "mk",
        "ml",
        "mn",
        "mr",
        "ms",
        "mt",
        "my",
        "na",
        "nb",
        "nd",
        "ne",
        "ng",
        "nl",
        "nn",
        "no",
        "nr",
        "nv",
        "ny",
        "oc",
        "oj",
        "om",
        "or",
        "os",
        "pa",
        "pi",
        "pl",
        "ps",
        "pt",
        "qu",
        "rm",
        "rn",
        "ro",
        "ru",
        "rw",
        "sa",
        "sc",
        "sd",
        "se",
        "sg",
        "si",
        "sk",
        "sl",
        "sm",
        "sn",
        "so",
        "sq",
        "sr",
        "ss",
        "st",
        "su",
        "sv",
        "sw",
        "ta",
        "te",
        "tg",
        "th",
        "ti",
        "tk",
        "tl",
        "tn",
        "to",
        "tr",
        "ts",
        "tt",
        "tw",
        "ty",
        "ug",
        "uk",
        "ur",
        "uz",
        "ve",
        "vi",
        "vo",
        "wa",
        "wo",
        "xh",
        "yi",
        "yo",
        "za",
        "zh",
        "zu",
    ]
)


def _check_language(value: str) -> str:
    hint = value.replace("_", "-") if "_" in value else "fr, en or fr-CA"
    if not _LANGUAGE_RE.fullmatch(value):
        raise ValueError(f"invalid language tag {value!r}: write a BCP 47 tag such as {hint}")
    primary = value.split("-")[0].lower()
    if len(primary) == 2 and primary not in ISO_639_1:
        raise ValueError(f"unknown language {primary!r} in {value!r}: use an ISO 639-1 code such as fr, en, de, es")
    return value


def is_language(value: str) -> bool:
    """True when `value` is a usable BCP 47 tag (see _check_language)."""
    try:
        _check_language(value)
    except ValueError:
        return False
    return True


Language = Annotated[
    str,
    AfterValidator(_check_language),
    WithJsonSchema({"type": "string", "pattern": LANGUAGE_PATTERN, "examples": ["fr", "en", "fr-CA"]}),
]

ID_PATTERN = r"^[a-z][a-z0-9_]*$"
_ID_RE = re.compile(ID_PATTERN)


def _check_identifier(value: str) -> str:
    if not _ID_RE.fullmatch(value):  # fullmatch: `$` alone would accept a trailing newline
        suggestion = re.sub(r"[^a-z0-9_]+", "_", value.lower()).strip("_")
        hint = f", e.g. {suggestion!r}" if suggestion and suggestion[0].isalpha() else ""
        raise ValueError(
            f"invalid id {value!r}: ids are lower-case letters, digits and _, starting with a letter{hint}"
        )
    return value


Identifier = Annotated[
    str, AfterValidator(_check_identifier), WithJsonSchema({"type": "string", "pattern": ID_PATTERN})
]

ENV_VAR_PATTERN = r"^[A-Z_][A-Z0-9_]*$"
EnvVar = Annotated[str, Field(pattern=ENV_VAR_PATTERN)]


# Localised wording: either a plain string (the default language) or {fr: ..., en: ...}.
def _text_form(value: Any) -> str | None:
    if isinstance(value, dict):
        return "by_language"
    if isinstance(value, str):
        return "text"
    return None


Text = Annotated[
    Union[Annotated[str, Tag("text")], Annotated[dict[Language, str], Tag("by_language")]],
    Discriminator(
        _text_form,
        custom_error_type="text_type",
        custom_error_message="write the wording as text, or per language as {fr: ..., en: ...}",
    ),
]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

HOURS_PATTERN = r"^([01]\d|2[0-4]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d$"


def _module_attribute_docs(filename: str) -> dict[str, dict[str, str]]:
    """class name -> {attribute: the docstring under it}, for every class of one source file."""
    import ast
    import inspect

    with open(filename, encoding="utf-8") as source:
        tree = ast.parse(source.read())
    found: dict[str, dict[str, str]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        docs = found[node.name] = {}
        for statement, following in zip(node.body, node.body[1:]):
            if (
                isinstance(statement, ast.AnnAssign)
                and isinstance(statement.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[statement.target.id] = inspect.cleandoc(following.value.value)
    return found


_ATTRIBUTE_DOCS: dict[str, dict[str, dict[str, str]]] = {}


def field_description(model: type[BaseModel], name: str) -> str | None:
    """A field's `description=`, else the docstring written under it (in its class or the nearest base
    that has one). Read from the source only when the schema or the key reference asks: pydantic's
    `use_attribute_docstrings` reads it for every model at every workspace load (issue 18: ~0.05 s)."""
    import inspect

    info = model.model_fields[name]
    if info.description is not None:
        return info.description
    for cls in model.__mro__:
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            filename = inspect.getsourcefile(cls)
        except TypeError:  # no source file (a class made at run time): no docstring to read, as for pydantic
            continue
        if filename is None:
            continue
        if filename not in _ATTRIBUTE_DOCS:
            _ATTRIBUTE_DOCS[filename] = _module_attribute_docs(filename)
        doc = _ATTRIBUTE_DOCS[filename].get(cls.__name__, {}).get(name)
        if doc is not None:
            return doc
    return None


def _describe_properties(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """The JSON Schema of a model gets each field's description (see field_description)."""
    import inspect

    properties = schema.get("properties", {})
    for name, info in model.model_fields.items():
        key = info.alias or name
        if key in properties and "description" not in properties[key]:
            description = field_description(model, name)
            # As pydantic does: a `$ref` does not repeat the description of the model it points to.
            referenced = info.annotation if isinstance(info.annotation, type) else None
            if (
                referenced
                and issubclass(referenced, BaseModel)
                and description == inspect.cleandoc(referenced.__doc__ or "")
            ):
                continue
            if description:
                properties[key]["description"] = description


class Model(BaseModel):
    """Base for every YAML object: unknown keys are errors, values are checked strictly."""

    model_config = ConfigDict(
        extra="forbid", frozen=False, populate_by_name=True, json_schema_extra=_describe_properties
    )


# --- attribute filters (audiences, owner rules) ---------------------------------------------------

AttributeFilter = Union[str, int, float, bool, list[Union[str, int, float, bool]]]


def _check_attribute_name(value: str) -> str:
    # Attribute names become SQLite JSON paths ($."name", bound, never spliced); a double quote cannot be
    # escaped inside one, so such a name would silently match nothing.
    if '"' in value:
        raise ValueError(
            f"attribute name {value!r} contains a double quote, which attribute names cannot hold: "
            f"rename the column or map it to another name"
        )
    return value


AttributeName = Annotated[str, AfterValidator(_check_attribute_name)]
