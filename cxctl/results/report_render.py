"""The report as one self-contained HTML page: the data of `cxctl.results.report`, the charts of
`cxctl.results.charts` inlined as SVG, a Jinja2 template rendered in a sandbox with autoescape (the
workspace's names and the respondents' comments are text, never markup), CSS for screen and A4 print.

Nothing in the page is fetched: no script, no font, no image file, no link to another origin.
"""

from __future__ import annotations

from pathlib import Path

from markupsafe import Markup

from cxctl.results import charts
from cxctl.results.report import Figure, Report, Section

TEMPLATE = Path(__file__).with_name("report.html.j2")

LABELS = {
    "en": {
        "title": "Customer experience report",
        "period": "Period",
        "generated": "Generated",
        "min_n": "cells under {n} responses read 'too few': no verdict",
        "nps": "NPS",
        "csat": "CSAT (% satisfied)",
        "ces": "CES (mean effort)",
        "response_rate": "Response rate (%)",
        "n": "n",
        "margin": "95 % margin",
        "target": "target",
        "met": "met",
        "missed": "missed",
        "change": "vs previous period",
        "significant": "significant change",
        "not_significant": "change not significant",
        "no_previous": "no previous period to compare (give --since)",
        "insufficient": "too few",
        "headline": "Headline",
        "by_moment": "By key moment",
        "moment": "Moment",
        "stage": "Journey stage",
        "stages": "By journey stage",
        "responses": "responses",
        "sent": "sent",
        "trend": "Trend by {granularity} with its 95 % band",
        "week": "week",
        "month": "month",
        "distribution": "Distribution",
        "detractors": "detractors",
        "passives": "passives",
        "promoters": "promoters",
        "reasons": "Reasons (Pareto)",
        "reason": "Reason",
        "count": "Count",
        "cumulative": "Cumulative %",
        "themes": "Verbatim themes",
        "theme": "Word",
        "answers": "answers",
        "quotes": "Quoted",
        "themes_capped": "from the latest {n} comments",
        "followups": "Open follow-ups",
        "closed_loop": "Closing the loop",
        "closed_loop_note": "follow-up cases opened in the period (the same figures as `cxctl scorecard`)",
        "cases_opened": "Cases opened",
        "contacted_in_time": "Contacted within their deadline",
        "median_contact": "Median time to first contact",
        "nps_after_case": "NPS after a resolved case",
        "nps_others": "NPS of the other answers",
        "age": "Age (days)",
        "followups_note": "detractors, dissatisfied and high-effort answers not yet called back (no names: see `cxctl followups`)",
        "oldest": "Oldest open follow-ups",
        "response": "Response",
        "submitted": "Submitted (UTC)",
        "ops": "Operational indicators",
        "events": "events",
        "median_h": "median (h)",
        "p90_h": "p90 (h)",
        "numbers": "The numbers",
        "value": "Value",
        "low": "95 % low",
        "high": "95 % high",
        "text": "As in the terminal",
        "breakdown": "By {by}",
        "group": "Group",
        "none": "nothing in this period",
        "method": "Method: NPS margin from the trinomial variance, proportions with Wilson intervals, CES mean ± 1.96 standard errors; "
        "a change is significant at 95 %. The same computation as `cxctl scorecard`.",
        "total": "Total",
        "colon": ":",
    },
    "fr": {
        "title": "Rapport expérience client",
        "period": "Période",
        "generated": "Généré le",
        "min_n": "les cellules de moins de {n} réponses indiquent « trop peu » : pas de conclusion",
        "nps": "NPS",
        "csat": "CSAT (% satisfaits)",
        "ces": "CES (effort moyen)",
        "response_rate": "Taux de réponse (%)",
        "n": "n",
        "margin": "marge à 95 %",
        "target": "objectif",
        "met": "atteint",
        "missed": "manqué",
        "change": "vs période précédente",
        "significant": "évolution significative",
        "not_significant": "évolution non significative",
        "no_previous": "pas de période précédente à comparer (donner --since)",
        "insufficient": "trop peu",
        "headline": "En bref",
        "by_moment": "Par moment clé",
        "moment": "Moment",
        "stage": "Étape du parcours",
        "stages": "Par étape du parcours",
        "responses": "réponses",
        "sent": "envoyées",
        "trend": "Évolution par {granularity} avec sa bande à 95 %",
        "week": "semaine",
        "month": "mois",
        "distribution": "Répartition",
        "detractors": "détracteurs",
        "passives": "passifs",
        "promoters": "promoteurs",
        "reasons": "Motifs (Pareto)",
        "reason": "Motif",
        "count": "Nombre",
        "cumulative": "% cumulé",
        "themes": "Thèmes des verbatims",
        "theme": "Mot",
        "answers": "réponses",
        "quotes": "Citations",
        "themes_capped": "sur les {n} derniers commentaires",
        "followups": "Rappels en attente",
        "closed_loop": "Boucler la boucle",
        "closed_loop_note": "cas de rappel ouverts sur la période (les mêmes chiffres que `cxctl scorecard`)",
        "cases_opened": "Cas ouverts",
        "contacted_in_time": "Rappelés dans les délais",
        "median_contact": "Délai médian avant le premier contact",
        "nps_after_case": "NPS après un cas résolu",
        "nps_others": "NPS des autres réponses",
        "age": "Âge (jours)",
        "followups_note": "détracteurs, insatisfaits et efforts élevés pas encore rappelés (sans nom : voir `cxctl followups`)",
        "oldest": "Rappels en attente les plus anciens",
        "response": "Réponse",
        "submitted": "Reçue (UTC)",
        "ops": "Indicateurs opérationnels",
        "events": "événements",
        "median_h": "médiane (h)",
        "p90_h": "p90 (h)",
        "numbers": "Les chiffres",
        "value": "Valeur",
        "low": "borne basse 95 %",
        "high": "borne haute 95 %",
        "text": "Comme dans le terminal",
        "breakdown": "Par {by}",
        "group": "Groupe",
        "none": "rien sur cette période",
        "method": "Méthode : marge du NPS par la variance trinomiale, proportions avec intervalles de Wilson, CES moyenne ± 1,96 erreur type ; "
        "une évolution est significative à 95 %. Le même calcul que `cxctl scorecard`.",
        "total": "Total",
        "colon": " :",
    },
}
LIMITS = {"nps": (-100, 100), "csat": (0, 100), "response_rate": (0, 100), "ces": None}


def render_report(report: Report) -> str:
    """The report as one HTML page (a string; write it with UTF-8)."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    labels = LABELS[report.language]
    env = SandboxedEnvironment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["cell"] = lambda f: cell_text(f, labels)
    template = env.from_string(TEMPLATE.read_text(encoding="utf-8"))
    return template.render(
        r=report,
        L=labels,
        indicators=("nps", "csat", "ces", "response_rate"),
        charts=_charts(report, labels),
        stat=_stat,
    )


def cell_text(f: Figure | None, labels: dict) -> str:
    """The terminal's text for a figure (`format_value`: `93 ±15`, or `too few` below the minimum n, here
    in the report's language and with its n)."""
    if f is None:
        return ""
    return f"{labels['insufficient']} (n={f.n})" if f.insufficient else f.text


def _stat(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _charts(report: Report, labels: dict) -> dict[str, Markup]:
    """Every chart of the page as inline SVG, by a key the template asks for."""
    out: dict[str, Markup] = {}
    every = labels[report.granularity]
    for section in report.moments + report.stages:
        _section_charts(section, labels, every, out)
    ages = [label for *_, label in _buckets()]
    totals = [sum(m.get(a, 0) for m in report.followups.by_moment.values()) for a in ages]
    if report.followups.total:
        out["followups"] = Markup(charts.bars(f"{labels['followups']} — {labels['age']}", ages, totals))
    for index, indicator in enumerate(report.ops):
        if indicator.rows:
            out[f"ops:{index}"] = Markup(_ops_chart(indicator, labels))
    return out


def _section_charts(section: Section, labels: dict, every: str, out: dict) -> None:
    key = f"{section.kind}:{section.key}"
    for name, points in section.trends.items():
        shown = [p.figure if p.figure is not None and not p.figure.insufficient else None for p in points]
        target = next((p.figure.target for p in points if p.figure is not None and p.figure.target is not None), None)
        out[f"{key}:trend:{name}"] = Markup(
            charts.trend(
                f"{labels[name]} — {every}",
                [p.period for p in points],
                [f.value if f else None for f in shown],
                [f.low if f else None for f in shown],
                [f.high if f else None for f in shown],
                target,
                LIMITS[name],
            )
        )
    for index, dist in enumerate(section.distributions):
        colours = [charts.COLOURS[p[0]] for p in dist.parts] if dist.indicator == "nps" else None
        names = [labels.get(p[0], p[0]) for p in dist.parts]
        out[f"{key}:dist:{index}"] = Markup(
            charts.stacked(
                f"{labels['distribution']} {labels[dist.indicator]} (n={dist.n})",
                names,
                [p[2] for p in dist.parts],
                colours,
            )
        )
    if section.reasons:
        top = section.reasons[:12]
        out[f"{key}:reasons"] = Markup(charts.pareto(labels["reasons"], [r for r, _ in top], [n for _, n in top]))
    for index, indicator in enumerate(section.ops):
        if indicator.rows:
            out[f"{key}:ops:{index}"] = Markup(_ops_chart(indicator, labels))


def _ops_chart(indicator, labels: dict) -> str:
    if indicator.kind == "count":
        return charts.bars(
            f"{indicator.spec} ({labels['events']})",
            [r.period for r in indicator.rows],
            [r.count for r in indicator.rows],
        )
    return charts.trend(
        f"{indicator.spec} — {labels['median_h']}",
        [r.period for r in indicator.rows],
        [r.median_hours for r in indicator.rows],
        [r.median_hours for r in indicator.rows],
        [r.p90_hours for r in indicator.rows],
    )


def _buckets():
    from cxctl.results.followups import AGE_BUCKETS

    return AGE_BUCKETS
