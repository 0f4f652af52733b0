"""Export cells → answers: each question's reader checks a cell against the question's scale or choices
and turns labels (`Très satisfait`, `10 - Extremely likely`) into numbers. `cxctl.results.importer` builds one
reader per question of a moment and calls it on every row.
"""

from __future__ import annotations

import json
import math
import unicodedata
from dataclasses import dataclass, field

from cxctl.workspace.model import Question

# Labels tools write instead of numbers (compared without accents, case or punctuation).
BUILTIN_LABELS = {
    "csat": {
        "tres satisfait": 5,
        "very satisfied": 5,
        "extremement satisfait": 5,
        "extremely satisfied": 5,
        "satisfait": 4,
        "satisfied": 4,
        "plutot satisfait": 4,
        "somewhat satisfied": 4,
        "neutre": 3,
        "neutral": 3,
        "ni satisfait ni insatisfait": 3,
        "neither satisfied nor dissatisfied": 3,
        "insatisfait": 2,
        "dissatisfied": 2,
        "plutot insatisfait": 2,
        "peu satisfait": 2,
        "somewhat dissatisfied": 2,
        "tres insatisfait": 1,
        "very dissatisfied": 1,
        "pas du tout satisfait": 1,
        "extremely dissatisfied": 1,
    },
    "ces": {
        "tout a fait d accord": 7,
        "strongly agree": 7,
        "d accord": 6,
        "agree": 6,
        "plutot d accord": 5,
        "somewhat agree": 5,
        "ni d accord ni pas d accord": 4,
        "neither agree nor disagree": 4,
        "neutre": 4,
        "neutral": 4,
        "plutot pas d accord": 3,
        "somewhat disagree": 3,
        "pas d accord": 2,
        "disagree": 2,
        "pas du tout d accord": 1,
        "strongly disagree": 1,
    },
    "nps": {
        "extremely likely": 10,
        "extremement probable": 10,
        "tres probable": 10,
        "not at all likely": 0,
        "pas du tout probable": 0,
        "tres improbable": 0,
    },
}
INDICATORS = {"nps": 0, "csat": 1, "ces": 2}
MISSING_MARKERS = {"na", "n/a", "-", "#n/a"}  # what spreadsheets and R write for "no answer"


def _fold(text: str) -> str:
    """Label key: accents, case and punctuation removed (`Très satisfait !` → `tres satisfait`)."""
    text = unicodedata.normalize("NFKD", text.strip().lower())
    text = "".join(ch if ch.isalnum() else " " for ch in text if not unicodedata.combining(ch))
    return " ".join(text.split())


class ValueProblem(ValueError):
    """A value that does not fit its question; the message says why and what is accepted."""


@dataclass
class QuestionReader:
    """Turns one export cell into (value_num, value_text) for one question, or raises ValueProblem."""

    id: str
    question: Question
    index: int
    labels: dict[str, int] = field(default_factory=dict)
    choices: dict[str, str] = field(default_factory=dict)
    indicator: int | None = None  # 0 nps, 1 csat, 2 ces: this answer is the moment's indicator
    # Cell text → reading, for the questions whose answers repeat (scales, choices): a million rows hold a
    # handful of distinct cells. Open answers are not cached.
    cache: dict[str, tuple[float | None, str | None] | None] | None = None

    @classmethod
    def build(cls, qid: str, question: Question, index: int) -> QuestionReader:
        reader = cls(qid, question, index)
        if question.type in ("nps", "csat", "ces", "rating", "single_choice"):
            reader.cache = {}
        reader.labels.update(BUILTIN_LABELS.get(question.type, {}))
        for value, text in question.labels.items():
            for wording in text.values() if isinstance(text, dict) else [text]:
                reader.labels[_fold(wording)] = value
        for choice in question.choices:
            reader.choices[_fold(choice.id)] = choice.id
            for wording in choice.label.values() if isinstance(choice.label, dict) else [choice.label]:
                reader.choices[_fold(wording)] = choice.id
        return reader

    def read(self, cell: str) -> tuple[float | None, str | None] | None:
        """None for an empty cell (no answer)."""
        cache = self.cache
        if cache is not None:
            if cell in cache:
                return cache[cell]
            value = self._read(cell)
            if len(cache) < 4096:
                cache[cell] = value
            return value
        return self._read(cell)

    def _read(self, cell: str) -> tuple[float | None, str | None] | None:
        text = cell.strip()
        if not text or text.lower() in MISSING_MARKERS:  # NA in one question is no answer, not a bad row (issue 12)
            return None
        q = self.question
        if q.type in ("nps", "csat", "ces", "rating"):
            try:
                number = float(text.replace(",", "."))
            except ValueError:
                number = self._label(text)
            if not math.isfinite(number):  # NaN, inf: float() reads them, a scale has no such point
                raise ValueProblem(f"{self.id}: {text!r} is not a number of the {q.min}–{q.max} scale")
            if number != int(number):
                raise ValueProblem(f"{self.id}: {text!r} is not a whole number of the {q.min}–{q.max} scale")
            assert q.min is not None and q.max is not None, "Question._scale gives every scale its min and max"
            if not q.min <= number <= q.max:
                raise ValueProblem(f"{self.id}: {text!r} is outside the {q.min}–{q.max} scale")
            return float(number), None
        if q.type == "single_choice":
            return None, self._choice(text)
        if q.type == "multiple_choice":
            key = _fold(text)
            if key in self.choices:
                return None, json.dumps([self.choices[key]])
            parts = [p for p in (text.replace("|", ";").replace(",", ";").split(";")) if p.strip()]
            return None, json.dumps([self._choice(p) for p in parts])
        return None, text

    def _label(self, text: str) -> float:
        key = _fold(text)
        if key in self.labels:
            return float(self.labels[key])
        head = key.split(" ", 1)[0]
        # `10 - Extremely likely`, `5 (Très satisfait)`: the number leads the label.
        if head.isdigit():
            return float(head)
        raise ValueProblem(
            f"{self.id}: {text!r} is neither a number nor a known label of the {self.question.min}–"
            f"{self.question.max} scale: add it to the question's labels"
        )

    def _choice(self, text: str) -> str:
        key = _fold(text)
        if key not in self.choices:
            known = ", ".join(c.id for c in self.question.choices)
            raise ValueProblem(
                f"{self.id}: {text.strip()!r} is not one of the choices ({known}): add it to the question's choices"
            )
        return self.choices[key]
