"""Property: any workspace built from the model, dumped to YAML and split across files, validates.

This is the round trip a team relies on when a tool writes their YAML for them: whatever the model
accepts, `cxctl validate` must accept too (no check stricter than the model on valid data, no key
the dump writes that the loader rejects).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxctl.validation import check_workspace
from cxctl.workspace.model import WorkspaceFile

ids = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
durations = st.builds(lambda n, unit: f"{n}{unit}", st.integers(1, 60), st.sampled_from("mhdw"))
texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=20)
localised = st.one_of(texts, st.fixed_dictionaries({"fr": texts}, optional={"en": texts}))


@st.composite
def question(draw):
    kind = draw(st.sampled_from(["nps", "csat", "ces", "rating", "single_choice", "multiple_choice", "open"]))
    out = {"type": kind, "text": draw(localised)}
    if kind == "rating":
        low = draw(st.integers(0, 5))
        out.update(min=low, max=low + draw(st.integers(1, 9)))
    if kind == "csat" and draw(st.booleans()):
        out.update(min=1, max=draw(st.integers(2, 10)))
    if kind in ("single_choice", "multiple_choice"):
        choice_ids = draw(st.lists(ids, min_size=1, max_size=4, unique=True))
        out["choices"] = [{"id": c, "label": draw(localised)} for c in choice_ids]
    return out


@st.composite
def workspace(draw):
    stages = draw(st.lists(ids, min_size=1, max_size=4, unique=True))
    channels = draw(st.lists(ids, max_size=3, unique=True))
    journeys = {draw(ids): {"name": draw(localised), "stages": stages, "channels": channels}}
    journey_id = next(iter(journeys))
    question_ids = draw(st.lists(ids, min_size=1, max_size=5, unique=True))
    questions = {q: draw(question()) for q in question_ids}
    scored = [q for q in question_ids if questions[q]["type"] in ("nps", "csat", "ces", "rating")]
    # A follow-up on a scored question, asked after it.
    follow_up = None
    if scored and draw(st.booleans()):
        follow_up = "why_" + scored[0][:8]
        if follow_up not in questions:
            questions[follow_up] = {
                "type": "open",
                "text": draw(localised),
                "ask_if": {"question": scored[0], "at_most": draw(st.integers(0, 6))},
            }
    moments = {}
    for moment_id in draw(st.lists(ids, min_size=1, max_size=4, unique=True)):
        kind = draw(st.sampled_from(["relational", "transactional", "in_the_moment"]))
        asked = draw(st.lists(st.sampled_from(question_ids), min_size=1, max_size=3, unique=True))
        if follow_up and scored[0] in asked:
            asked.append(follow_up)
        moment = {
            "journey": journey_id,
            "stage": draw(st.sampled_from(stages)),
            "kind": kind,
            "questions": asked,
            "sample": draw(st.floats(0.01, 1.0)),
            "priority": draw(st.integers(1, 200)),
            "audience": {"segment": draw(st.lists(texts, max_size=2))} if draw(st.booleans()) else {},
            "targets": {"nps": draw(st.integers(-100, 100))} if draw(st.booleans()) else {},
        }
        if channels and draw(st.booleans()):
            moment["channel"] = draw(st.sampled_from(channels))
        if kind == "relational":
            moment["schedule"] = draw(
                st.sampled_from([{"every": "quarter"}, {"every": "30d"}, {"cron": "0 9 1 */3 *"}])
            )
        else:
            delay = draw(st.integers(0, 20))
            moment["trigger"] = {
                "event": draw(ids),
                "delay": f"{delay}h",
                "expires": f"{delay + draw(st.integers(1, 30))}d",
            }
            if kind == "transactional" and draw(st.booleans()):
                moment["reminders"] = {"count": draw(st.integers(0, 2)), "after": draw(durations)}
        moments[moment_id] = moment
    rules = {
        "quiet_period": draw(durations),
        "cap": {"max": draw(st.integers(1, 5)), "window": draw(durations)},
        "max_reminders": 2,
        "priority": draw(st.permutations(list(moments))),
    }
    settings_block = {
        "name": draw(texts),
        "sender": {"name": draw(texts), "address": "avis@test.example"},
        "survey_url": "https://s.example/{moment}?t={token}",
        "timezone": draw(st.sampled_from(["Europe/Paris", "America/Montreal", "UTC", "Asia/Tokyo"])),
        "default_language": "fr",
        "languages": ["fr", "en"],
    }
    model = WorkspaceFile.model_validate(
        {"workspace": settings_block, "journeys": journeys, "questions": questions, "moments": moments, "rules": rules}
    )
    return model, draw(st.integers(1, 4))


def dump_split(model: WorkspaceFile, parts: int, root: Path) -> None:
    """Dump the model and spread its sections (and their objects) over `parts` files."""
    data = model.model_dump(mode="json", exclude_none=True)
    files: list[dict] = [{} for _ in range(parts)]
    files[0]["workspace"] = data["workspace"]
    files[-1]["rules"] = data["rules"]
    for section in ("journeys", "questions", "moments"):
        for i, (obj_id, obj) in enumerate(data[section].items()):
            files[i % parts].setdefault(section, {})[obj_id] = obj
    for i, content in enumerate(files):
        name = "cxctl.yaml" if i == 0 else f"part{i}/objects.yaml"
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(content, allow_unicode=True, sort_keys=False), encoding="utf-8")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(generated=workspace())
def test_any_model_workspace_dumped_to_yaml_validates(tmp_path, generated):
    model, parts = generated
    root = tmp_path / "generated"
    shutil.rmtree(root, ignore_errors=True)
    dump_split(model, parts, root)
    result = check_workspace([root])
    assert [p.format() for p in result.problems if p.severity == "error"] == []
    assert result.workspace is not None
    assert set(result.workspace.moments) == set(model.moments)
    assert result.workspace.moments == model.moments


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(generated=workspace(), data=st.data())
def test_an_unknown_question_is_reported_exactly_where_it_is_written(tmp_path, generated, data):
    """Wherever the dump puts it, the one broken reference is reported at its own line and column,
    found here by searching the file's text, independently of the loader's marks."""
    model, parts = generated
    model = model.model_copy(deep=True)
    moment_id = data.draw(st.sampled_from(sorted(model.moments)))
    model.moments[moment_id].questions.append("zz_inconnue")
    root = tmp_path / "mutated"
    shutil.rmtree(root, ignore_errors=True)
    dump_split(model, parts, root)
    [path] = [p for p in root.rglob("*.yaml") if "zz_inconnue" in p.read_text(encoding="utf-8")]
    lines = path.read_text(encoding="utf-8").splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "zz_inconnue" in text)
    column = lines[line - 1].index("zz_inconnue") + 1
    errors = [p for p in check_workspace([root]).problems if p.severity == "error"]
    index = len(model.moments[moment_id].questions) - 1
    assert [(Path(p.file).resolve(), p.line, p.column, p.path) for p in errors] == [
        (path.resolve(), line, column, f"moments.{moment_id}.questions[{index}]")
    ]
