"""The HTTP API through FastAPI's TestClient (as a context manager, so the lifespan runs)."""

import pytest
from fastapi.testclient import TestClient
from tiny_run import USERS, make_run_dir

import bert4rec
from bert4rec.serve import create_app
from bert4rec.serve.settings import ServeSettings

HARRY = [4896, "Harry Potter and the Chamber of Secrets (2002)"]
ITEM_FIELDS = {"item", "title", "genres", "links"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp("run"), users=USERS, links=True)


@pytest.fixture(scope="module")
def client(run):
    app = create_app(run, ServeSettings(max_body_bytes=2048))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client


@pytest.fixture(scope="module")
def model(run):
    return bert4rec.Model.load(run)


def test_openapi_paths_are_pinned(client):
    schema = client.get("/openapi.json").json()
    assert sorted(schema["paths"]) == ["/health", "/items", "/items/{item}/similar", "/recommend"]
    assert sorted(schema["paths"]["/recommend"]) == ["post"]
    request = schema["components"]["schemas"]["RecommendRequest"]
    assert sorted(request["properties"]) == ["exclude", "explain", "filter_viewed", "history",
                                             "items", "k", "on_unknown", "recent", "user"]
    assert request["properties"]["k"]["maximum"] == 100
    for name, most in (("history", 500), ("recent", 500), ("items", 10_000),
                       ("exclude", 10_000)):
        assert request["properties"][name]["anyOf"][0]["maxItems"] == most, name


def test_health(client):
    assert client.get("/health").json() == {"status": "ok", "items": 14, "max_len": 8}


def test_recommend_with_ids_and_titles(client):
    answer = client.post("/recommend", json={"history": HARRY, "k": 3, "explain": True})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [h["item"] for h in body["history"]] == [4896, 5816]
    assert [r["rank"] for r in body["items"]] == [1, 2, 3]
    assert not {r["item"] for r in body["items"]} & {4896, 5816}
    assert all(set(r) == {*ITEM_FIELDS, "rank", "score", "because"} for r in body["items"])
    scores = [r["score"] for r in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert all(c["item"] in (4896, 5816) and c["score_drop"] >= 0.05
               for r in body["items"] for c in r["because"])


def test_unknown_and_ambiguous_titles_are_422_with_candidates(client):
    answer = client.post("/recommend", json={"history": ["Alien (1980)"]})
    assert answer.status_code == 422
    body = answer.json()
    assert "no item matches title 'Alien (1980)'" in body["detail"]
    assert body["candidates"][0] == {"item": 1214, "title": "Alien (1979)",
                                     "genres": ["Horror", "Sci-Fi"], "links": {}}
    answer = client.post("/recommend", json={"history": ["Emma (1996)"]})
    assert answer.status_code == 422
    assert [c["item"] for c in answer.json()["candidates"]] == [838, 26958]
    assert client.post("/recommend", json={"history": [12345]}).status_code == 422


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"history": [1], "k": 0}, "greater than or equal to 1"),
        ({"history": [1], "k": 101}, "less than or equal to 100"),
        ({"history": [1] * 501}, "at most 500 items"),
        ({"history": [1], "colour": "red"}, "Extra inputs are not permitted"),
        ({"history": ["x" * 301]}, "String should have at most 300 characters"),
    ],
)
def test_request_limits_are_422_with_a_message(client, body, message):
    answer = client.post("/recommend", json=body)
    assert answer.status_code == 422
    assert message in answer.text


def test_oversized_body_is_413(client):
    answer = client.post("/recommend", json={"history": ["x" * 3000]})
    assert answer.status_code == 413
    assert "larger than 2048 bytes" in answer.json()["detail"]


def test_search_for_autocomplete(client):
    body = client.get("/items", params={"q": "harry pot", "limit": 2}).json()
    assert body["query"] == "harry pot" and len(body["items"]) == 2
    assert all(item["title"].startswith("Harry Potter") for item in body["items"])
    assert client.get("/items", params={"q": "matrix"}).json()["items"][0]["item"] == 2571
    assert client.get("/items", params={"q": ""}).status_code == 422


def test_search_ranks_match_quality_then_how_often_watched(client):
    """Issue 16: every Harry Potter title starts with "harry pot", so the most watched
    (users.parquet) comes first, not the model's favourite for an empty history; a nonsense
    query finds nothing; a typo finds its film."""
    def found(q):
        return [i["item"] for i in client.get("/items", params={"q": q}).json()["items"]]

    assert found("harry pot") == [4896, 5816, 8368, 40815]  # watched 4, 3, 2, 1 times
    assert found("zzqqxx") == [] and found("qwerty") == []
    assert found("hary pottr")[:3] == [4896, 5816, 8368]
    assert found("Aliens (1986)") == [1200]  # exact before prefix (Aliens of "alien")


def test_similar_items(client):
    body = client.get("/items/2571/similar", params={"k": 4}).json()
    assert body["item"]["title"] == "Matrix, The (1999)"
    assert body["item"]["links"] == {"imdb": "https://www.imdb.com/title/tt0133093/",
                                     "tmdb": "https://www.themoviedb.org/movie/603"}
    assert len(body["items"]) == 4 and 2571 not in [r["item"] for r in body["items"]]
    missing = client.get("/items/999/similar")
    assert missing.status_code == 404 and "999" in missing.json()["detail"]
    assert client.get("/items/abc/similar").status_code == 404


def test_page_and_static_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="search"' in page.text
    assert "/static/app.js" in page.text and "http" not in page.text.replace("http-equiv", "")
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")


def test_security_headers_on_the_page_static_files_and_api(client):
    """Issue 14: the page and its files may run only their own scripts, are never framed and
    never content-sniffed; /docs (Swagger UI's inline start-up script) keeps no CSP."""
    for path in ("/", "/static/app.js", "/static/style.css", "/health", "/static/missing.js"):
        headers = client.get(path).headers
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["x-frame-options"] == "DENY", path
        policy = headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
        assert "unsafe-inline" not in policy
    assert client.post("/recommend", json={"history": ["x" * 3000]}).headers[
        "x-content-type-options"] == "nosniff"  # a 413 from the body limit too
    docs = client.get("/docs").headers
    assert "content-security-policy" not in docs and docs["x-frame-options"] == "DENY"
    assert "script-src 'self'" in client.get("/docs-assets/swagger-ui-bundle.js").headers[
        "content-security-policy"]


def test_docs_work_offline(client):
    """Issue 16: /docs loads Swagger UI from the package, never from a CDN; no /redoc (its
    logo comes from a CDN)."""
    html = client.get("/docs").text
    assert "cdn" not in html and "https://" not in html
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/docs-assets/{asset}" in html, asset
        assert client.get(f"/docs-assets/{asset}").status_code == 200, asset
    assert client.get("/redoc").status_code == 404


def recommended(client, **body):
    answer = client.post("/recommend", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_recommend_for_a_user_equals_the_python_api(client, model):
    """A known user's whole history, everything they watched left out, as Model.recommend."""
    body = recommended(client, user=7, k=5, explain=True)
    expected = model.recommend(users=[7], k=5)
    assert body["user"] == 7 and [h["item"] for h in body["history"]] == USERS[7]
    assert [r["item"] for r in body["items"]] == expected["item"].to_list()
    assert [r["score"] for r in body["items"]] == pytest.approx(expected["score"].to_list(),
                                                              abs=1e-4)
    assert not {r["item"] for r in body["items"]} & set(USERS[7])
    kept = recommended(client, user=7, k=14, filter_viewed=False)
    assert {r["item"] for r in kept["items"]} >= set(USERS[7])


@pytest.mark.parametrize("who", [{"user": 8}, {"history": [4896, "Alien (1979)"]}])
def test_allow_and_deny_lists_as_the_python_api(client, model, who):
    allowed, denied = [1, 260, 1196, 2571, 4896, 26958], [260]
    body = recommended(client, **who, k=10, items=allowed, exclude=denied)
    if "user" in who:
        expected = model.recommend(users=[8], k=10, items=allowed, exclude=denied)
    else:
        expected = model.recommend(histories=[who["history"]], k=10, items=allowed,
                                   exclude=denied)
    items = [r["item"] for r in body["items"]]
    assert items == expected["item"].to_list()
    assert set(items) == {1, 1196, 2571, 26958}  # allowed, not denied, not watched


def test_unknown_user_or_item_is_422_naming_it_or_skipped(client):
    answer = client.post("/recommend", json={"user": 99})
    assert answer.status_code == 422
    assert "user 99 is not among the 4 users" in answer.json()["detail"]
    assert answer.json()["ids"] == [99]
    text = client.post("/recommend", json={"user": "7"})  # the ids are numbers
    assert text.status_code == 422 and "their ids are integers" in text.json()["detail"]
    assert recommended(client, user=99, on_unknown="skip") == {
        "user": 99, "history": [], "items": [], "filter_viewed": True, "recent_unknown": 0}

    answer = client.post("/recommend", json={"user": 7, "items": [1, 12345], "exclude": [54321]})
    assert answer.status_code == 422 and answer.json()["ids"] == [12345]
    assert "item 12345 is not among the model's 14 items" in answer.json()["detail"]
    body = recommended(client, user=7, items=[1, 12345], exclude=[54321], on_unknown="skip")
    assert [r["item"] for r in body["items"]] == [1]

    answer = client.post("/recommend", json={"history": [2571, "Alien (1980)", 777]})
    assert answer.status_code == 422 and "Alien (1980)" in answer.json()["detail"]
    body = recommended(client, history=[2571, "Alien (1980)", 777], on_unknown="skip")
    assert [h["item"] for h in body["history"]] == [2571]
    ambiguous = client.post("/recommend", json={"history": ["Hamlet"], "on_unknown": "skip"})
    assert ambiguous.status_code == 422  # it names items the caller meant: never skipped


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"user": 7, "history": [1]}, "either 'user'"),
        ({"k": 3}, "either 'user'"),
        ({"user": 7, "on_unknown": "ignore"}, "'raise' or 'skip'"),
        ({"user": "u" * 301}, "String should have at most 300 characters"),
        ({"user": 7, "items": ["x" * 301]}, "String should have at most 300 characters"),
    ],
)
def test_user_requests_are_checked(client, body, message):
    answer = client.post("/recommend", json=body)
    assert answer.status_code == 422 and message in answer.text


def test_links_come_from_the_item_table(client):
    body = recommended(client, history=[1], k=13)
    links = {r["item"]: r["links"] for r in body["items"]}
    assert links[4896] == {"imdb": "https://www.imdb.com/title/tt0241527/",
                           "tmdb": "https://www.themoviedb.org/movie/671"}
    assert links[1214] == {} and body["history"][0]["links"]["tmdb"].endswith("/862")


def test_a_run_without_users_answers_histories_and_names_why_not_users(tmp_path):
    with TestClient(create_app(make_run_dir(tmp_path / "old")),
                    base_url="http://127.0.0.1") as old:
        assert old.post("/recommend", json={"history": [1]}).status_code == 200
        answer = old.post("/recommend", json={"user": 7})
        assert answer.status_code == 422
        assert "cannot recommend by user id" in answer.json()["detail"]
        assert "users.parquet is missing" in answer.json()["detail"]
