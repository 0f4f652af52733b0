"""What people say: NPS+ reason counts (choice questions, by NPS category) and the most frequent words
and word pairs of open answers, with French and English stop words removed."""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

import sqlite_utils

from cxctl.core.errors import UsageError
from cxctl.workspace.loader import Workspace

STOP_WORDS = frozenset(
    [
        "a",
        "à",
        "au",
        "aux",
        "avec",
        "ce",
        "ces",
        "cet",
        "cette",
        "c",
        "ça",
        "ca",
        "dans",
        "de",
        "des",
        "du",
        "d",
        "elle",
        "elles",
        "en",
        "et",
        "est",
        "été",
        "être",
        "il",
        "ils",
        "je",
        "j",
        "la",
        "le",
        "les",
        "l",
        "leur",
        "leurs",
        "lui",
        "ma",
        "mais",
        "me",
        "même",
        "mes",
        "moi",
        "mon",
        "ne",
        "n",
        "nos",
        "notre",
        "nous",
        "on",
        "ou",
        "où",
        "par",
        "pas",
        "pour",
        "qu",
        "que",
        "qui",
        "sa",
        "se",
        "ses",
        "son",
        "sur",
        "ta",
        "te",
        "tes",
        "toi",
        "ton",
        "tu",
        "un",
        "une",
        "vos",
        "votre",
        "vous",
        "y",
        "très",
        "tres",
        "trop",
        "plus",
        "moins",
        "bien",
        "fait",
        "faire",
        "été",
        "avait",
        "avoir",
        "ai",
        "as",
        "avons",
        "avez",
        "ont",
        "suis",
        "es",
        "sommes",
        "êtes",
        "sont",
        "était",
        "c'est",
        "cest",
        "n'est",
        "si",
        "tout",
        "tous",
        "toute",
        "toutes",
        "rien",
        "aussi",
        "encore",
        "alors",
        "donc",
        "car",
        "comme",
        "quand",
        "the",
        "a",
        "an",
        "and",
        "or",
        "but",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "with",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "i",
        "me",
        "my",
        "we",
        "our",
        "you",
        "your",
        "he",
        "she",
        "they",
        "them",
        "their",
        "his",
        "her",
        "not",
        "no",
        "yes",
        "so",
        "very",
        "too",
        "as",
        "by",
        "from",
        "have",
        "has",
        "had",
        "do",
        "does",
        "did",
        "just",
        "than",
        "then",
        "there",
        "here",
        "what",
        "which",
        "who",
        "whom",
        "will",
        "would",
        "can",
        "could",
        "should",
        "all",
        "any",
        "some",
        "more",
        "most",
        "other",
        "such",
        "only",
        "own",
        "same",
    ]
)

WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*", re.UNICODE)


# Elided words: l'équipe, n'est, qu'il, jusqu'à, lorsqu'on…
ELISIONS = frozenset(["l", "d", "j", "m", "n", "s", "t", "c", "qu", "jusqu", "lorsqu", "puisqu", "quoiqu", "presqu"])
# A word right after one of these (stop words between allowed) is counted negated: "pas satisfait" is not
# "satisfait". French "ne … pas" is caught by its "ne".
NEGATIONS = {
    "pas": "pas",
    "ne": "pas",
    "n": "pas",
    "jamais": "pas",
    "sans": "sans",
    "aucun": "pas",
    "aucune": "pas",
    "not": "not",
    "no": "not",
    "never": "not",
    "without": "without",
}
# Clause breaks: word pairs never span them, nor a conjunction or a negation ("élevés et la livraison"
# gives no pair); other stop words do not break one ("livraison en retard" → "livraison retard").
CLAUSE = re.compile(r"[.,;:!?…()\[\]\n\r\"«»]+")
CONJUNCTIONS = frozenset(["et", "ou", "mais", "donc", "car", "puis", "ni", "and", "or", "but", "so", "then", "nor"])


def clauses(text: str) -> list[list[str | None]]:
    """The answer's clauses, each a list of its kept words (negated where a negation precedes them) with
    None where a conjunction or a negation stood, so that pairs never join across them."""
    out: list[list[str | None]] = []
    for part in CLAUSE.split(text.lower()):
        kept: list[str | None] = []
        negation = None
        for w in WORD.findall(part):
            w = w.replace("’", "'")
            if "'" in w:  # l'équipe → équipe, n'est → est (and a negation), jusqu'à → à
                head, _, tail = w.partition("'")
                if head in ELISIONS or len(head) <= 2:
                    negation = NEGATIONS.get(head, negation)
                    w = tail
            if w in NEGATIONS or w.endswith("n't"):  # don't, isn't, wasn't…
                negation = NEGATIONS.get(w, "not")
                kept.append(None)
                continue
            if len(w) > 1 and w not in STOP_WORDS and _plain(w) not in STOP_WORDS:
                kept.append(f"{negation} {w}" if negation else w)
                negation = None
            elif w in CONJUNCTIONS:
                kept.append(None)
        out.append(kept)
    return out


def words(text: str) -> list[str]:
    """Lower-cased words of an answer, stop words and one-letter words removed (accents kept); a negated
    word keeps its negation ("pas satisfait")."""
    return [w for clause in clauses(text) for w in clause if w is not None]


def pairs(text: str) -> list[str]:
    """Pairs of kept words next to each other in one clause, stop words aside ("livraison retard" from
    "livraison en retard"; none from "élevés et la livraison")."""
    return [
        f"{a} {b}" for clause in clauses(text) for a, b in zip(clause, clause[1:]) if a is not None and b is not None
    ]


def _plain(word: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", word) if not unicodedata.combining(ch))


@dataclass
class ReasonCount:
    moment: str
    segment: str
    question: str
    category: str
    reason: str
    count: int
    label: str = ""
    """The reason's wording (default language); `reason` is its id."""
    answered: int = 0
    """Responses of this moment, segment and category that answered the question: the base of `share`."""
    share: float | None = None
    """count ÷ answered, in %; a multiple choice adds up to more than 100."""


@dataclass
class Verbatims:
    answers: int
    words: list[tuple[str, int]] = field(default_factory=list)
    pairs: list[tuple[str, int]] = field(default_factory=list)
    note: str | None = None
    """Why there is nothing (no open question, no answer, none in the category), with what to do."""


CHOICE_TYPES = ("single_choice", "multiple_choice")


def chosen_ids(text: str | None) -> list[str]:
    """The choice ids of one stored answer: a JSON list for a multiple choice, the id itself otherwise."""
    if not text:
        return []
    if text.startswith("["):
        return [str(c) for c in json.loads(text) if c]
    return [text]


def choice_label(ws: Workspace, question_id: str, choice_id: str, language: str | None = None) -> str:
    """The wording of a choice in `language` (default: the workspace's default language), or the id when it
    is not one of the question's choices (e.g. an answer kept from an older version of the question)."""
    from cxctl.workspace.model import localise

    question = ws.questions.get(question_id)
    for choice in (question.choices or []) if question is not None else []:
        if choice.id == choice_id:
            return localise(choice.label, language or ws.settings.default_language, ws.settings.default_language)
    return choice_id


def _category(score: float | None) -> str:
    if score is None:
        return "all"
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def reason_counts(
    ws: Workspace,
    db: sqlite_utils.Database,
    moment: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> list[ReasonCount]:
    """Counts of each chosen reason per moment, segment and NPS category (promoter/passive/detractor),
    of the responses submitted on local days `since`..`until` (ISO, inclusive; open when None)."""
    if moment is not None and moment not in ws.moments:
        raise UsageError(f"unknown moment {moment!r}: use one of {', '.join(ws.moments)}")
    counts: Counter[tuple[str, str, str, str, str]] = Counter()  # (moment, segment, question, category, reason)
    bases: Counter[tuple[str, str, str, str]] = Counter()  # (moment, segment, question, category)
    for m in [moment] if moment else list(ws.moments):
        qs = ws.moments[m].questions
        choice_qs = [q for q in qs if ws.questions[q].type in CHOICE_TYPES]
        nps_q = next((q for q in qs if ws.questions[q].type == "nps"), None)
        if not choice_qs:
            continue
        marks = ",".join("?" * len(choice_qs))
        rows = db.execute(
            f"""SELECT COALESCE(c.segment, ''), a.question, a.value_text,
                                  (SELECT n.value_num FROM answers n WHERE n.response_id = r.id AND n.question = ?)
                              FROM responses r JOIN answers a ON a.response_id = r.id LEFT JOIN contacts c ON c.id = r.contact_id
                              WHERE r.status = 'counted' AND r.moment = ? AND r.day BETWEEN ? AND ? AND a.question IN ({marks})""",
            [nps_q, m, since or "0000-00-00", until or "9999-99-99"] + choice_qs,
        ).fetchall()
        for segment, qid, text, score in rows:
            chosen = chosen_ids(text)
            if chosen:
                bases[(m, segment, qid, _category(score))] += 1
            for reason in chosen:
                counts[(m, segment, qid, _category(score), reason)] += 1
    out = []
    for key, n in sorted(counts.items(), key=lambda kv: (kv[0][:4], -kv[1], kv[0][4])):
        base = bases[key[:4]]
        out.append(ReasonCount(*key, n, choice_label(ws, key[2], key[4]), base, 100.0 * n / base if base else None))
    return out


def explain_no_reasons(ws: Workspace, db: sqlite_utils.Database, moment: str | None = None) -> str:
    """Why `reason_counts` found nothing, with what to do: no choice question, or no answer to it yet."""
    moments = [moment] if moment else list(ws.moments)
    asking = [m for m in ws.moments if any(ws.questions[q].type in CHOICE_TYPES for q in ws.moments[m].questions)]
    if not any(m in asking for m in moments):
        where = f"moment {moment!r} asks" if moment else "no moment asks"
        hint = (
            f"; the moments with reasons: {', '.join(asking)}"
            if asking
            else '; add a single_choice or multiple_choice question (the NPS+ "why") to a moment'
        )
        return f"no reasons to count: {where} no choice question (single_choice or multiple_choice){hint}"
    counted = db.execute(
        f"SELECT COUNT(*) FROM responses WHERE status = 'counted' AND moment IN ({','.join('?' * len(moments))})",
        moments,
    ).fetchone()[0]
    if not counted:
        return (
            f"no reasons to count: no counted response yet for {', '.join(m for m in moments if m in asking)}; "
            f"import the survey export with `cxctl responses import`"
        )
    return (
        f"no reasons to count: none of the {counted} counted response(s) answered the choice question; check the "
        f"import's column mapping (columns: in the moment's responses block)"
    )


def frequent_words(
    ws: Workspace, db: sqlite_utils.Database, moment: str | None = None, category: str | None = None, limit: int = 20
) -> Verbatims:
    """The most frequent words and adjacent word pairs of the open answers (optionally of one NPS category)."""
    if moment is not None and moment not in ws.moments:
        raise UsageError(f"unknown moment {moment!r}: use one of {', '.join(ws.moments)}")
    if category not in (None, "promoter", "passive", "detractor"):
        raise UsageError(f"unknown category {category!r}: use promoter, passive or detractor")
    open_qs = sorted(
        {
            q
            for m, spec in ws.moments.items()
            if moment in (None, m)
            for q in spec.questions
            if ws.questions[q].type == "open"
        }
    )
    if not open_qs:
        where = f"moment {moment!r} asks" if moment else "no moment asks"
        return Verbatims(0, note=f"no open answers: {where} no open question (type: open); add one to read its words")
    nps_qs = sorted(q for q, spec in ws.questions.items() if spec.type == "nps")
    marks, nmarks = ",".join("?" * len(open_qs)), ",".join("?" * len(nps_qs)) or "NULL"
    sql = f"""SELECT a.value_text, (SELECT MIN(n.value_num) FROM answers n WHERE n.response_id = r.id AND n.question IN ({nmarks}))
              FROM responses r JOIN answers a ON a.response_id = r.id
              WHERE r.status = 'counted' AND a.question IN ({marks}) AND a.value_text IS NOT NULL"""
    params: list = nps_qs + open_qs
    if moment:
        sql += " AND r.moment = ?"
        params.append(moment)
    single: Counter = Counter()
    pair_counts: Counter = Counter()
    answered = 0
    by_category: Counter = Counter()
    for text, score in db.execute(sql, params).fetchall():
        by_category[_category(score)] += 1
        if category is not None and _category(score) != category:
            continue
        answered += 1
        single.update(set(words(text)))
        pair_counts.update(set(pairs(text)))

    def top(counter: Counter) -> list[tuple[str, int]]:
        return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]  # ties in a stable, readable order

    note = None
    if not answered:
        total = sum(by_category.values())
        if not total:
            note = (
                "no open answers yet"
                + (f" for {moment}" if moment else "")
                + ": import responses with `cxctl responses import`"
            )
        elif set(by_category) == {"all"}:
            note = (
                f"none of the {total} open answer(s) has an NPS score beside it, so none is a {category}: "
                f"drop --category (it needs an NPS question in the same moment)"
            )
        else:
            seen = ", ".join(f"{n} {c}" for c, n in sorted(by_category.items()) if c != "all")
            note = f"no {category} among the {total} open answer(s) ({seen}): try another --category"
    return Verbatims(answered, top(single), [(p, n) for p, n in top(pair_counts) if n > 1], note)


@dataclass
class Theme:
    """A frequent word of the open answers, how many answers use it, and a few of them quoted."""

    word: str
    answers: int
    quotes: list[str] = field(default_factory=list)


@dataclass
class Themes:
    answers: int
    capped: bool
    themes: list[Theme] = field(default_factory=list)


def themes(
    ws: Workspace,
    db: sqlite_utils.Database,
    moment: str,
    since: str,
    until: str,
    *,
    limit: int = 6,
    quotes: int = 2,
    latest: int = 5000,
    quote_length: int = 220,
) -> Themes:
    """The most frequent words of the open answers to `moment` between local days `since` and `until`,
    each with a few answers quoted (the most recent first). Reads the `latest` answers at most (the
    report says so), and never the answers of forgotten people, whose free text must not reappear."""
    open_qs = [q for q in ws.moments[moment].questions if ws.questions[q].type == "open"]
    if not open_qs:
        return Themes(0, False)
    marks = ",".join("?" * len(open_qs))
    rows = db.execute(
        f"""SELECT a.value_text FROM responses r JOIN answers a ON a.response_id = r.id
                          LEFT JOIN contacts c ON c.id = r.contact_id
                          WHERE r.status = 'counted' AND r.moment = ? AND r.day BETWEEN ? AND ? AND a.question IN ({marks})
                            AND a.value_text IS NOT NULL AND a.value_text <> '' AND c.forgotten_at IS NULL
                          ORDER BY r.day DESC, r.id DESC LIMIT ?""",
        [moment, since, until, *open_qs, latest],
    ).fetchall()
    counter: Counter = Counter()
    by_word: dict[str, list[str]] = {}
    for (text,) in rows:
        for word in set(words(text)):
            counter[word] += 1
            seen = by_word.setdefault(word, [])
            if len(seen) < quotes and text not in seen:
                seen.append(text)
    top = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]

    def shorten(text: str) -> str:
        return text if len(text) <= quote_length else text[: quote_length - 1].rstrip() + "…"

    return Themes(
        len(rows),
        len(rows) >= latest,
        [Theme(word, n, [shorten(q) for q in by_word[word]]) for word, n in top if n > 1 or len(rows) < 20],
    )
