"""A service that is safe to expose (issue 23): error bodies are short and never echo the
input, non-finite numbers and loose ids are 422 or 404 (never 500), a bug answers 500 with
the security headers, a bearer token guards a service beyond loopback, the Host header is
checked, and recommending by user id can hide the stored history or be switched off."""

from __future__ import annotations

import json
import socket

import pytest
from fastapi.testclient import TestClient
from tiny_run import USERS, make_run_dir

from bert4rec.cli import main
from bert4rec.errors import SettingsError
from bert4rec.serve import create_app
from bert4rec.serve.settings import ServeSettings

TOKEN = "s3cret-token-of-32-characters-xx"
HEADERS = ("X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp("run"), users={1: [4896, 5816], **USERS})


def client_for(run, **settings) -> TestClient:
    return TestClient(create_app(run, ServeSettings(**settings)), base_url="http://127.0.0.1")


@pytest.fixture(scope="module")
def client(run):
    with client_for(run) as client:
        yield client


def post_raw(client: TestClient, body: str):
    return client.post("/recommend", content=body,
                       headers={"content-type": "application/json"})


def test_ten_thousand_bad_entries_get_one_short_422(client):
    answer = client.post("/recommend", json={"user": 7, "items": [{}] * 10_000})
    assert answer.status_code == 422
    assert len(answer.content) < 1000  # was 2.2 MB: every bad element echoed
    assert answer.json()["detail"].startswith("invalid request: body.items.0")


def test_a_huge_title_is_refused_without_echoing_it(client):
    answer = client.post("/recommend", json={"history": ["x" * 60_000]})
    assert answer.status_code == 422 and "at most 300 characters" in answer.text
    assert len(answer.content) < 1000 and "xxxxxxxxxx" not in answer.text  # was 120 KB


def test_unknown_ids_are_named_but_not_all_echoed(client):
    unknown = list(range(10**6, 10**6 + 5000))
    answer = client.post("/recommend", json={"history": [1], "items": unknown})
    assert answer.status_code == 422
    body = answer.json()
    assert body["ids"] == list(range(10**6, 10**6 + 50)) and "nor are 4,999 more" in body["detail"]


@pytest.mark.parametrize("body", [
    '{"user": 7, "k": NaN}', '{"user": 7, "k": 1e309}', '{"user": 7, "items": [NaN]}',
    '{"user": 7, "exclude": [Infinity]}', '{"history": [-Infinity]}',
    '{"user": 7, "filter_viewed": NaN}',
])
def test_non_finite_numbers_are_422_with_the_headers(client, body):
    answer = post_raw(client, body)
    assert answer.status_code == 422, answer.text
    assert all(name in answer.headers for name in HEADERS)
    assert json.loads(answer.text)["detail"].startswith("invalid request: ")


@pytest.mark.parametrize("body", ['{"user": true}', '{"history": [true]}', '{"user": 7.0}',
                                  '{"user": 7, "k": true}', '{"user": 7, "k": "5"}',
                                  '{"user": 7, "items": [true]}'])
def test_strict_types_no_bool_or_float_ids(client, body):
    assert post_raw(client, body).status_code == 422


@pytest.mark.parametrize("segment", ["2_60", "%2B1", "%201", "%D9%A1", "01", "1.0"])
def test_item_ids_in_paths_are_plain_ascii_digits(client, segment):
    assert client.get("/items/1/similar").status_code == 200
    answer = client.get(f"/items/{segment}/similar")
    assert answer.status_code == 404, segment


def test_an_id_in_a_history_is_plain_ascii_digits(client):
    assert client.post("/recommend", json={"history": ["id:1"]}).status_code == 200
    assert client.post("/recommend", json={"history": ["id:\u0661"]}).status_code == 422


def test_a_user_id_sent_as_text_is_not_the_number(client):
    assert client.post("/recommend", json={"user": 1}).status_code == 200
    for text in ("1", " 1", "+1", "\u0661"):
        assert client.post("/recommend", json={"user": text}).status_code == 422


def test_a_bug_answers_500_with_the_headers_and_no_traceback(run, monkeypatch):
    with client_for(run) as client:
        monkeypatch.setattr(client.app.state.recommender.catalog, "search",
                            lambda *a: 1 / 0)
        answer = client.get("/items", params={"q": "alien"})
    assert answer.status_code == 500 and all(name in answer.headers for name in HEADERS)
    assert answer.json() == {"detail": "internal error; the server log has the details"}


def test_a_host_header_not_allowed_is_400(client):
    assert client.get("/health", headers={"host": "attacker.example"}).status_code == 400
    assert client.get("/health", headers={"host": "attacker.example:8000"}).status_code == 400
    assert client.get("/health", headers={"host": "localhost:8000"}).status_code == 200


def test_the_token_guards_every_path_but_health(run):
    with client_for(run, token=TOKEN) as client:
        assert client.get("/health").status_code == 200
        for headers in ({}, {"authorization": "Bearer wrong"},
                        {"authorization": TOKEN}, {"authorization": f"Bearer {TOKEN}x"}):
            answer = client.post("/recommend", json={"user": 7}, headers=headers)
            assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
            assert all(name in answer.headers for name in HEADERS)
        assert client.get("/").status_code == 401
        assert client.get("/openapi.json").status_code == 401
        good = {"authorization": f"Bearer {TOKEN}"}
        assert client.post("/recommend", json={"user": 7}, headers=good).status_code == 200


def test_a_host_beyond_loopback_needs_a_token(run):
    with pytest.raises(SettingsError, match=r"--host 0\.0\.0\.0 exposes the service"):
        create_app(run, ServeSettings(host="0.0.0.0"))
    with pytest.raises(ValueError, match="at least 16"):
        ServeSettings(token="short")
    exposed = TestClient(create_app(run, ServeSettings(host="0.0.0.0", token=TOKEN)),
                         base_url="http://recs.example.org")
    with exposed:  # bound to every interface: any host name, the token guards it
        assert exposed.get("/health").status_code == 200


@pytest.mark.parametrize(("by_user", "status", "history"), [
    ("on", 200, 4), ("no-history", 200, 0), ("off", 403, None)])
def test_by_user_hides_the_history_or_switches_it_off(run, by_user, status, history):
    with client_for(run, by_user=by_user) as client:
        answer = client.post("/recommend", json={"user": 7, "k": 3})
        assert answer.status_code == status
        if history is not None:
            assert len(answer.json()["history"]) == history and len(answer.json()["items"]) == 3
        assert client.post("/recommend", json={"history": [1, 260]}).status_code == 200


def test_cli_serve_refuses_exposure_without_token_and_a_port_in_use(run, tmp_path, capsys):
    assert main(["serve", str(run), "--host", "0.0.0.0"]) == 1
    assert "--host 0.0.0.0 exposes the service beyond this machine" in one_line(capsys)
    short = tmp_path / "token"
    short.write_text("abc\n")
    assert main(["serve", str(run), "--token-file", str(short)]) == 1
    assert "token" in one_line(capsys)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        assert main(["serve", str(run), "--port", str(port)]) == 1
    finally:
        taken.close()
    assert f"127.0.0.1:{port}: Address already in use" in one_line(capsys)


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and ": error: " in lines[0] and "unexpected" not in err, err
    return lines[0]


def test_the_socket_serve_binds_sends_without_delay():
    """Connections accepted on it inherit TCP_NODELAY: without it, uvloop left Nagle's
    algorithm on, and every answer waited for the client's delayed ACK (40 ms on Linux)."""
    from bert4rec.cli.serve import bind

    listening = bind("127.0.0.1", 0)
    try:
        assert listening.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        listening.close()


def test_cli_serve_freezes_the_loaded_heap_before_serving(run, monkeypatch):
    """The model and the catalogue leave the garbage collector's sight before the first
    request: a full collection over them (about 90 ms on ML-1M) was the p99 of every request
    in flight under load (benchmarks/abuse.py)."""
    import gc

    import uvicorn

    frozen = []

    def run_server(self, sockets):
        frozen.append(gc.get_freeze_count())
        sockets[0].close()

    monkeypatch.setattr(uvicorn.Server, "run", run_server)
    try:
        assert main(["serve", str(run), "--port", "0"]) == 0
        assert frozen and frozen[0] > 10_000
    finally:
        gc.unfreeze()
