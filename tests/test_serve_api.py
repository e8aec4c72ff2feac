"""The HTTP API through FastAPI's TestClient (as a context manager, so the lifespan runs)."""

import pytest
from fastapi.testclient import TestClient
from tiny_run import make_run_dir

from bert4rec.serve import create_app
from bert4rec.serve.settings import ServeSettings

HARRY = [4896, "Harry Potter and the Chamber of Secrets (2002)"]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    run = make_run_dir(tmp_path_factory.mktemp("run"))
    app = create_app(run, ServeSettings(max_body_bytes=2048))
    with TestClient(app) as client:
        yield client


def test_openapi_paths_are_pinned(client):
    schema = client.get("/openapi.json").json()
    assert sorted(schema["paths"]) == ["/health", "/items", "/items/{item}/similar", "/recommend"]
    assert sorted(schema["paths"]["/recommend"]) == ["post"]
    request = schema["components"]["schemas"]["RecommendRequest"]
    assert sorted(request["properties"]) == ["exclude_seen", "explain", "history", "k"]
    assert request["properties"]["k"]["maximum"] == 100


def test_health(client):
    assert client.get("/health").json() == {"status": "ok", "items": 14, "max_len": 8}


def test_recommend_with_ids_and_titles(client):
    answer = client.post("/recommend", json={"history": HARRY, "k": 3, "explain": True})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [h["item"] for h in body["history"]] == [4896, 5816]
    assert [r["rank"] for r in body["items"]] == [1, 2, 3]
    assert not {r["item"] for r in body["items"]} & {4896, 5816}
    assert all(set(r) == {"rank", "item", "title", "genres", "score", "because"}
               for r in body["items"])
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
                                     "genres": ["Horror", "Sci-Fi"]}
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
        ({"k": 3}, "Field required"),
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


def test_similar_items(client):
    body = client.get("/items/2571/similar", params={"k": 4}).json()
    assert body["item"]["title"] == "Matrix, The (1999)"
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
    never content-sniffed; FastAPI's /docs (scripts from a CDN) keeps no CSP."""
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
