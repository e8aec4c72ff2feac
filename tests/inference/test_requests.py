"""One recommend path: the same request through Python (`bert4rec.Model`), the command line
(`bert4rec recommend`) and HTTP (`POST /recommend`) gives the same list, because all three call
`Recommender.answer`; and what may be offered is decided in one function, `apply_filters`."""

import json

import polars as pl
import pytest
from fastapi.testclient import TestClient
from tiny_run import USERS, make_run_dir

import bert4rec
from bert4rec.cli import main
from bert4rec.inference import recommender as recommender_module
from bert4rec.inference.requests import RecommendRequest
from bert4rec.serve import create_app

# (who, options): by user (with events since training too) and by history (an id and a
# title), with each filter
QUERIES = [
    ({"user": 7}, {"k": 5}),
    ({"user": 9, "recent": [1214, 99999, 1200]}, {"k": 6}),
    ({"user": 8}, {"k": 14, "filter_viewed": False}),
    ({"history": [4896, "Harry Potter and the Chamber of Secrets (2002)"]},
     {"k": 10, "items": [1, 260, 1196, 2571, 4896, 26958], "exclude": [260]}),
    ({"history": [2571, 1214]}, {"k": 4, "exclude": [1200, 1196]}),
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp("run"), users=USERS)


@pytest.fixture(scope="module")
def client(run):
    with TestClient(create_app(run), base_url="http://127.0.0.1") as client:
        yield client


def events(who) -> pl.DataFrame:
    """`who`'s recent events as an events frame, oldest first."""
    recent = who["recent"]
    return pl.DataFrame({"user": [who["user"]] * len(recent), "item": recent,
                         "timestamp": range(len(recent))})


def python(run, who, options) -> list[tuple[int, float]]:
    model = bert4rec.Model.load(run)
    if "recent" in who:
        with pytest.warns(UserWarning, match="1 of the 3 new events"):
            frame = model.recommend(users=[who["user"]], interactions=events(who), **options)
    elif "user" in who:
        frame = model.recommend(users=[who["user"]], **options)
    else:
        frame = model.recommend(histories=[who["history"]], **options)
    return list(zip(frame["item"].to_list(), frame["score"].to_list(), strict=True))


def command_line(run, who, options, tmp_path, capsys) -> list[tuple[int, float]]:
    argv = ["recommend", str(run)]
    if "user" in who:
        argv += ["--user", str(who["user"])]
    else:
        argv += [f"id:{ref}" if isinstance(ref, int) else ref for ref in who["history"]]
    if "recent" in who:
        events(who).write_csv(tmp_path / "events.csv")
        argv += ["--events", str(tmp_path / "events.csv")]
    argv += ["-k", str(options["k"]), "--json"]
    if not options.get("filter_viewed", True):
        argv.append("--keep-seen")
    for name, flag in (("items", "--items-from"), ("exclude", "--exclude-from")):
        if name in options:
            listed = tmp_path / f"{name}.txt"
            listed.write_text("".join(f"{item}\n" for item in options[name]))
            argv += [flag, str(listed)]
    assert main(argv) == 0, capsys.readouterr().err
    body = json.loads(capsys.readouterr().out)
    items = body[0]["items"] if "user" in who else body["items"]
    return [(r["item"], r["score"]) for r in items]


def http(client, who, options) -> list[tuple[int, float]]:
    answer = client.post("/recommend", json={**who, **options})
    assert answer.status_code == 200, answer.text
    assert answer.json()["recent_unknown"] == (1 if "recent" in who else 0)
    return [(r["item"], r["score"]) for r in answer.json()["items"]]


def same(answer: list, expected: list) -> bool:
    """The same items in the same order, with the same scores up to float32 noise (the server
    scores on its own number of threads)."""
    return ([item for item, _ in answer] == [item for item, _ in expected]
            and [s for _, s in answer] == pytest.approx([s for _, s in expected], abs=1e-5))


@pytest.mark.parametrize(("who", "options"), QUERIES)
def test_python_the_command_line_and_http_give_the_same_list(run, client, tmp_path, capsys,
                                                             who, options):
    expected = python(run, who, options)
    assert len(expected) >= 3
    assert same(command_line(run, who, options, tmp_path, capsys), expected)
    assert same(http(client, who, options), expected)


def test_a_filter_changed_in_apply_filters_changes_every_face(run, client, tmp_path, capsys,
                                                            monkeypatch):
    """Leave out one more item in `apply_filters` alone: all three faces lose it, and agree."""
    who, options = QUERIES[0]
    banned = python(run, who, options)[0][0]  # the first recommendation, so far
    plain, calls = recommender_module.apply_filters, []

    def also_banned(scores, query, rows):
        calls.append(len(scores))
        plain(scores, query, rows)
        scores[:, client.app.state.recommender.index_of(banned)] = float("-inf")

    monkeypatch.setattr(recommender_module, "apply_filters", also_banned)
    answers = [python(run, who, options), command_line(run, who, options, tmp_path, capsys),
               http(client, who, options)]
    assert len(calls) == 3  # one call per face, and nothing else filters
    assert same(answers[1], answers[0]) and same(answers[2], answers[0])
    assert banned not in [item for item, _ in answers[0]] and len(answers[0]) == options["k"]


@pytest.mark.parametrize(("request_", "message"), [
    ({}, "users=.* or histories="),
    ({"users": [1], "histories": [[1]]}, "not both"),
    ({"histories": [1, 2]}, r"write histories=\[\[1, 2, 3\]\]"),
    ({"users": [1], "k": 0}, "k must be a positive whole number of items, got 0"),
    ({"users": [1], "k": True}, "got True"),
    ({"users": [1], "on_unknown": "ignore"}, "on_unknown must be 'raise' or 'skip', got 'ignore'"),
])
def test_a_bad_request_is_refused_when_made_naming_the_value(request_, message):
    with pytest.raises(ValueError, match=message):
        RecommendRequest(**request_)
