"""The wording of cxctl's own pages, in French and English (the questions come from the workspace YAML).

A contact whose language is neither gets the workspace's default language when it is one of these, else
English.
"""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "fr": {
        "title": "Votre avis",
        "intro": "Quelques secondes suffisent. Merci de votre aide !",
        "send": "Envoyer ma réponse",
        "required": "obligatoire",
        "optional": "facultatif",
        "pick_many": "plusieurs réponses possibles",
        "chars_max": "{n} caractères au plus",
        "answered_before": "Vous avez déjà répondu : un nouvel envoi remplacera votre réponse.",
        "preselected": "Votre note est pré-remplie : vérifiez-la, complétez si vous le souhaitez, puis envoyez.",
        "errors_title": "Votre réponse n'a pas été enregistrée. Corrigez :",
        "err_scale": "choisissez une note de {min} à {max}",
        "err_one": "une seule réponse possible",
        "err_choice": "choisissez parmi les réponses proposées",
        "err_long": "{n} caractères au plus (vous en avez écrit {given})",
        "err_control": "le texte contient des caractères invisibles non autorisés",
        "err_required": "cette question demande une réponse",
        "err_empty": "répondez à au moins une question",
        "err_unknown": "champ inattendu « {name} »",
        "thanks_title": "Merci !",
        "thanks_body": "Votre réponse est enregistrée.",
        "thanks_change": "Vous pouvez la modifier avec le même lien jusqu'au {date}.",
        "closed_title": "Cette enquête est close",
        "closed_body": "Le délai pour répondre est passé. Merci de l'intérêt que vous lui portez.",
        "not_found_title": "Page introuvable",
        "not_found_body": "Ce lien n'est pas valide.",
        "bad_request_title": "Requête refusée",
        "bad_request_body": "La réponse envoyée n'a pas pu être lue. Revenez au lien reçu par e-mail et réessayez.",
        "too_large_title": "Réponse trop longue",
        "too_large_body": "La réponse envoyée dépasse la taille permise. Raccourcissez votre commentaire et réessayez.",
        "too_many_title": "Trop de tentatives",
        "too_many_body": "Trop d'envois depuis votre adresse. Réessayez dans une minute.",
        "unsub_title": "Ne plus recevoir nos enquêtes",
        "unsub_body": "Confirmez pour ne plus recevoir d'invitation à nos enquêtes à cette adresse.",
        "unsub_button": "Me désinscrire",
        "unsub_done_title": "Vous êtes désinscrit",
        "unsub_done_body": "Vous ne recevrez plus nos enquêtes à cette adresse.",
        "low_nps": "Pas du tout probable",
        "high_nps": "Très probable",
        "low_csat": "Pas du tout satisfait",
        "high_csat": "Très satisfait",
        "low_ces": "Pas du tout d'accord",
        "high_ces": "Tout à fait d'accord",
        "date": "{day} {month} {year}",
        "months": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    },
    "en": {
        "title": "Your opinion",
        "intro": "It only takes a few seconds. Thank you for your help!",
        "send": "Send my answer",
        "required": "required",
        "optional": "optional",
        "pick_many": "choose as many as you like",
        "chars_max": "at most {n} characters",
        "answered_before": "You have already answered: sending again replaces your answer.",
        "preselected": "Your score is filled in: check it, add anything you like, then send.",
        "errors_title": "Your answer was not saved. Please correct:",
        "err_scale": "choose a score from {min} to {max}",
        "err_one": "only one answer is possible",
        "err_choice": "choose among the answers offered",
        "err_long": "at most {n} characters (you wrote {given})",
        "err_control": "the text holds invisible characters that are not allowed",
        "err_required": "this question needs an answer",
        "err_empty": "answer at least one question",
        "err_unknown": "unexpected field \u201c{name}\u201d",
        "thanks_title": "Thank you!",
        "thanks_body": "Your answer is saved.",
        "thanks_change": "You can change it with the same link until {date}.",
        "closed_title": "This survey is closed",
        "closed_body": "The time to answer has passed. Thank you for your interest.",
        "not_found_title": "Page not found",
        "not_found_body": "This link is not valid.",
        "bad_request_title": "Request refused",
        "bad_request_body": "The answer sent could not be read. Go back to the link in your email and try again.",
        "too_large_title": "Answer too long",
        "too_large_body": "The answer sent is larger than allowed. Shorten your comment and try again.",
        "too_many_title": "Too many attempts",
        "too_many_body": "Too many submissions from your address. Try again in a minute.",
        "unsub_title": "Stop receiving our surveys",
        "unsub_body": "Confirm to stop receiving invitations to our surveys at this address.",
        "unsub_button": "Unsubscribe me",
        "unsub_done_title": "You are unsubscribed",
        "unsub_done_body": "You will no longer receive our surveys at this address.",
        "low_nps": "Not at all likely",
        "high_nps": "Extremely likely",
        "low_csat": "Very dissatisfied",
        "high_csat": "Very satisfied",
        "low_ces": "Strongly disagree",
        "high_ces": "Strongly agree",
        "date": "{month} {day}, {year}",
        "months": "January February March April May June July August September October November December",
    },
}


def page_language(language: str, default: str) -> str:
    """The language of the page's own wording: the contact's (or its base), else the default, else English."""
    for candidate in (language, language.split("-")[0].lower(), default, default.split("-")[0].lower()):
        if candidate in TEXTS:
            return candidate
    return "en"


def say(lang: str, key: str, **values: object) -> str:
    return TEXTS[lang][key].format(**values) if values else TEXTS[lang][key]


def long_date(lang: str, day) -> str:
    months = TEXTS[lang]["months"].split()
    return TEXTS[lang]["date"].format(day=day.day, month=months[day.month - 1], year=day.year)
