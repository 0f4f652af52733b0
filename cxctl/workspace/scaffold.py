"""The starter workspace written by `cxctl init`: small, valid, and commented so that a newcomer
learns the format by reading it. `{{NAME}}` is replaced by the workspace's name."""

from __future__ import annotations

SCHEMA_COMMENT = "# yaml-language-server: $schema=./cxctl.schema.json\n"

CXCTL_YAML = (
    SCHEMA_COMMENT
    + """\
# cxctl.yaml — the settings of this workspace. Every other .yaml file below this folder is part of
# the workspace too: split journeys, questions and moments into as many files as you like; ids are
# global. Check everything with `cxctl validate` (it names the file, line and key of each problem).

workspace:
  name: {{NAME}}
  company: Exemple                # the company as customers know it (footer of the messages); per
                                  # language if it differs: {fr: Exemple, en: Example Ltd}
  database: cxctl.db              # SQLite file, relative to this folder
  default_language: fr            # BCP 47 tags: fr, en, fr-CA…
  languages: [fr, en]
  timezone: Europe/Paris          # IANA name; send windows use each contact's own time zone
  sender:
    name: Service Client
    address: avis@exemple.fr
    reply_to: service-client@exemple.fr
  # The survey link put in every invitation: {token} ties the answer to the invitation,
  # {moment} and {lang} let one form serve several moments and languages.
  survey_url: "https://enquete.exemple.fr/s/{moment}?lang={lang}&t={token}"
  unsubscribe_url: "https://www.exemple.fr/desinscription?t={token}"
  token_secret_env: CXCTL_SECRET  # the NAME of the environment variable holding the signing secret
  transport: outbox               # outbox: write .eml files to outbox/; smtp: send for real
  # smtp:
  #   host: smtp.exemple.fr
  #   port: 587
  #   security: starttls
  #   username_env: CXCTL_SMTP_USER       # secrets come from environment variables,
  #   password_env: CXCTL_SMTP_PASSWORD   # never from this file (a password here is an error)

# Solicitation rules: how often one person may be asked, whatever the moment.
rules:
  quiet_period: 30d               # at least 30 days between two invitations to the same person
  cap: {max: 3, window: 90d}      # and at most 3 invitations in any 90 days
  max_reminders: 1
  send_window:                    # in the contact's time zone
    days: [mon, tue, wed, thu, fri]
    hours: "09:00-19:00"
  priority: [livraison_csat, nps_relationnel]   # when two moments compete, the first wins
  daily_cap: 2000                 # invitations per day, all moments together
"""
)

JOURNEYS_YAML = (
    SCHEMA_COMMENT
    + """\
# A journey is the path a customer takes, in ordered stages, through channels.
journeys:
  achat:
    name: {fr: Parcours d'achat, en: Purchase journey}
    stages: [decouverte, achat, livraison, fidelite]
    channels: [web, magasin, email]
"""
)

QUESTIONS_YAML = (
    SCHEMA_COMMENT
    + """\
# Questions are shared by moments. Scales have defaults: NPS 0–10, CSAT 1–5, CES 1–7.
# Wording is per language; the default language (cxctl.yaml) must always be there.
questions:
  nps:
    type: nps
    text:
      fr: Quelle est la probabilité que vous recommandiez notre enseigne à un proche ?
      en: How likely are you to recommend us to a friend or colleague?
  nps_pourquoi:
    type: open
    text: {fr: "Qu'est-ce qui explique votre note ?", en: "What is the main reason for your score?"}
    ask_if: {question: nps, at_most: 6}   # asked only to detractors
  csat_livraison:
    type: csat
    text:
      fr: Êtes-vous satisfait(e) de la livraison de votre commande ?
      en: How satisfied are you with the delivery of your order?
    labels: {1: {fr: Pas du tout satisfait, en: Very dissatisfied}, 5: {fr: Très satisfait, en: Very satisfied}}
"""
)

MOMENTS_YAML = (
    SCHEMA_COMMENT
    + """\
# Key moments: when to ask whom, and what. Three kinds:
#   transactional  — after an event (trigger.event), with a delay and an expiry;
#   in_the_moment  — right after an interaction (short delay, no reminder);
#   relational     — periodic waves to all active customers (schedule.every or schedule.cron).
moments:
  livraison_csat:
    name: {fr: Satisfaction livraison, en: Delivery satisfaction}
    journey: achat
    stage: livraison
    kind: transactional
    trigger: {event: order_delivered, delay: 2d, expires: 14d}
    questions: [csat_livraison]
    reminders: {count: 1, after: 3d}
    recontact: 60d                # never this survey twice within 60 days for one person
    targets: {csat: 85}           # % satisfied (top-2 box)

  nps_relationnel:
    name: {fr: Baromètre NPS trimestriel, en: Quarterly NPS}
    journey: achat
    stage: fidelite
    kind: relational
    schedule: {every: quarter}
    audience:
      segment: [particulier, premium]   # lists mean "any of"
    sample: 0.5                   # invite half of the eligible customers (stable, hash-based)
    questions: [nps, nps_pourquoi]
    targets: {nps: 30}
"""
)

SCAFFOLD: dict[str, str] = {
    "cxctl.yaml": CXCTL_YAML,
    "journeys.yaml": JOURNEYS_YAML,
    "questions.yaml": QUESTIONS_YAML,
    "moments.yaml": MOMENTS_YAML,
}
