"""workspace.public_url: cxctl's pages become the default links, and `cxctl validate` checks the pair."""

from __future__ import annotations

import re

import pytest

from cxctl.validation import load_workspace


def rewrite(root, old: str, new: str) -> None:
    config = root / "cxctl.yaml"
    text = config.read_text(encoding="utf-8")
    assert re.search(old, text, re.M), old
    config.write_text(re.sub(old, new, text, flags=re.M), encoding="utf-8")


def test_public_url_gives_the_default_links_and_a_survey_tool_still_wins(serve_ws):
    ws = load_workspace(serve_ws.root)
    assert ws.settings.survey_url == f"{serve_ws.base}/s/{{token}}"
    assert ws.settings.unsubscribe_url == f"{serve_ws.base}/u/{{token}}"
    rewrite(
        serve_ws.root,
        r"^  public_url: .*$",
        '  public_url: "https://avis.example.fr/"\n  survey_url: "https://tool.example/f?t={token}"',
    )
    ws = load_workspace(serve_ws.root)
    assert ws.settings.survey_url == "https://tool.example/f?t={token}"
    assert ws.settings.unsubscribe_url == "https://avis.example.fr/u/{token}"


@pytest.mark.parametrize(
    "line, code, expected",
    [
        (
            "",
            1,
            "cxctl.yaml:1:1: workspace: error: missing survey_url: give your survey tool's link with {token} in it, or set "
            "public_url",
        ),
        (
            '  public_url: "avis.example.fr"',
            1,
            "workspace.public_url: error: public_url 'avis.example.fr' is not an http(s) address",
        ),
        (
            '  public_url: "https://avis.example.fr/?a=1"',
            1,
            "workspace.public_url: error: public_url 'https://avis.example.fr/?a=1' carries a query",
        ),
        (
            '  public_url: "http://avis.example.fr"',
            0,
            "workspace.public_url: warning: public_url 'http://avis.example.fr' is not https",
        ),
        (
            '  public_url: "https://avis.example.fr"\n  survey_url: "https://avis.example.fr/survey?t={token}"',
            1,
            "workspace.survey_url: error: survey_url points at public_url but not at cxctl's page https://avis.example.fr/s/{token}",
        ),
        ('  public_url: "https://avis.example.fr"', 0, None),
    ],
)
def test_validate_checks_public_url_and_the_links_under_it(serve_ws, cli, line, code, expected):
    rewrite(serve_ws.root, r"^  public_url: .*\n", line + "\n" if line else "")
    status, out, err = cli("validate", str(serve_ws.root))
    assert status == code, out + err
    if expected:
        assert expected in out + err
    else:
        assert "public_url" not in out + err
