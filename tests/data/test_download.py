"""`bert4rec data download` against a local HTTP server on 127.0.0.1 serving test-built zips."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import threading
import zipfile

import pytest
from fake_movielens import expected_events, write_release

from bert4rec.cli import main
from bert4rec.data import download, movielens
from bert4rec.errors import ChecksumError, DataError


class Server:
    """Serves `files` (name -> bytes); records request paths; can cut a body short."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.redirects: dict[str, str] = {}  # file name -> Location of a 302
        self.requests: list[str] = []
        self.cut_after: int | None = None
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                moved = server.redirects.get(self.path.rsplit("/", 1)[-1])
                if moved is not None:
                    self.send_response(302)
                    self.send_header("Location", moved)
                    self.end_headers()
                    return
                body = server.files.get(self.path.rsplit("/", 1)[-1])
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: server.cut_after] if server.cut_after else body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/datasets/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    running = Server()
    yield running
    running.close()


def publish(server, monkeypatch, tmp_path, name="ml-100k", *, digests=True, body=None) -> bytes:
    """Serve a fake `name`.zip and record its true digests in the release table."""
    data = body or write_release(name, tmp_path / "build", as_zip=True).read_bytes()
    server.files[f"{name}.zip"] = data
    entry = dataclasses.replace(
        movielens.RELEASES[name],
        sha256=hashlib.sha256(data).hexdigest() if digests else None,
        md5=hashlib.md5(data).hexdigest() if digests else None,
        size=len(data),
    )
    monkeypatch.setitem(movielens.RELEASES, name, entry)
    monkeypatch.setenv(download.BASE_URL_ENV, server.url)
    return data


def leftovers(root):
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


@pytest.mark.parametrize("name", ["ml-100k", "ml-10m", "ml-32m"])
def test_download_verifies_extracts_and_is_idempotent(server, monkeypatch, tmp_path, name):
    publish(server, monkeypatch, tmp_path, name)
    root = tmp_path / "data"
    path = download.download(name, root, progress=False)
    assert path == root / name and leftovers(root) == [name]  # no zip, no .part, no staging
    assert movielens.load_release(path).events.rows() == expected_events(name)
    assert (path / download.MARKER).is_file()
    assert download.download(name, root, progress=False) == path
    assert len(server.requests) == 1  # the second call returned at once


def test_checksum_mismatch_names_everything_and_leaves_nothing(server, monkeypatch, tmp_path):
    publish(server, monkeypatch, tmp_path)
    entry = dataclasses.replace(movielens.RELEASES["ml-100k"], sha256="0" * 64)
    monkeypatch.setitem(movielens.RELEASES, "ml-100k", entry)
    root = tmp_path / "data"
    with pytest.raises(ChecksumError) as err:
        download.download("ml-100k", root, progress=False)
    message = str(err.value)
    actual = hashlib.sha256(server.files["ml-100k.zip"]).hexdigest()
    assert server.url + "ml-100k.zip" in message and str(root / "ml-100k.zip") in message
    assert "0" * 64 in message and actual in message and "run `bert4rec data download" in message
    assert leftovers(root) == []


def test_interrupted_download_leaves_nothing(server, monkeypatch, tmp_path):
    publish(server, monkeypatch, tmp_path)
    server.cut_after = 100
    root = tmp_path / "data"
    with pytest.raises(DataError, match=r"ml-100k\.zip.*run the same command again"):
        download.download("ml-100k", root, progress=False, timeout=5)
    assert leftovers(root) == []


def test_truncated_zip_with_matching_digest_is_rejected(server, monkeypatch, tmp_path):
    whole = write_release("ml-100k", tmp_path / "build", as_zip=True).read_bytes()
    publish(server, monkeypatch, tmp_path, body=whole[: len(whole) // 2])
    root = tmp_path / "data"
    with pytest.raises(DataError, match="damaged") as err:
        download.download("ml-100k", root, progress=False)
    assert leftovers(root) == []
    message = str(err.value)  # names the URL, not the temporary .part file already deleted
    assert message.startswith(server.url + "ml-100k.zip: ") and ".part" not in message
    assert "the download was deleted" in message


def test_unverifiable_release_warns_and_still_installs(server, monkeypatch, tmp_path, caplog):
    publish(server, monkeypatch, tmp_path, "ml-latest", digests=False)
    path = download.download("ml-latest", tmp_path / "data", progress=False)
    assert "could not be verified" in caplog.text
    assert movielens.detect(path)[0] is movielens.CSV


def test_path_traversal_is_refused(server, monkeypatch, tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("ml-100k/u.data", "1\t1\t5\t1\n")
        archive.writestr("ml-100k/../../escaped.txt", "gotcha")
    publish(server, monkeypatch, tmp_path, body=evil.read_bytes())
    root = tmp_path / "data"
    with pytest.raises(DataError, match=r"unsafe member 'ml-100k/\.\./\.\./escaped\.txt'"):
        download.download("ml-100k", root, progress=False)
    assert not (tmp_path / "escaped.txt").exists() and leftovers(root) == []


def test_only_https_or_loopback_http(tmp_path):
    with pytest.raises(DataError, match="refusing to download over http; use an https URL"):
        download.download("ml-1m", tmp_path, base_url="http://example.org/movielens/")
    assert leftovers(tmp_path) == []


def test_http_error_names_the_url(server, monkeypatch, tmp_path):
    monkeypatch.setenv(download.BASE_URL_ENV, server.url)
    with pytest.raises(DataError, match=r"ml-1m\.zip: download failed.*404"):
        download.download("ml-1m", tmp_path / "data", progress=False)
    assert leftovers(tmp_path / "data") == []


def test_cli_download_and_list(server, monkeypatch, tmp_path, capsys):
    publish(server, monkeypatch, tmp_path)
    root = tmp_path / "data"
    monkeypatch.setattr(movielens, "default_root", lambda: tmp_path / "cache")
    monkeypatch.delenv(movielens.DATA_DIR_ENV, raising=False)
    assert main(["data", "download", "ml-100k", "--data-dir", str(root)]) == 0
    assert capsys.readouterr().out.strip() == str(root / "ml-100k")
    assert main(["data", "list", "--data-dir", str(root)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert f"present  {root / 'ml-100k'}" in lines["ml-100k"] and "absent" in lines["ml-1m"]


def test_cli_checksum_mismatch_exits_non_zero_with_one_line(server, monkeypatch, tmp_path, capsys):
    publish(server, monkeypatch, tmp_path)
    entry = dataclasses.replace(movielens.RELEASES["ml-100k"], md5="f" * 32)
    monkeypatch.setitem(movielens.RELEASES, "ml-100k", entry)
    assert main(["data", "download", "ml-100k", "--data-dir", str(tmp_path / "d")]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "checksum mismatch" in errors[0] and "f" * 32 in errors[0]


def test_unwritable_data_dir_says_pass_data_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match=r"cannot write there.*pass --data-dir"):
        download.download("ml-1m", blocker / "data", progress=False)


def test_a_redirect_may_not_leave_https(server, monkeypatch, tmp_path):
    """Issue 14: a loopback http mirror redirecting to another plain-http host is refused
    before anything is fetched there; from loopback to loopback is the test mirror's right."""
    publish(server, monkeypatch, tmp_path)
    server.files["moved.zip"] = server.files.pop("ml-100k.zip")
    server.redirects["ml-100k.zip"] = "http://example.invalid/datasets/moved.zip"
    root = tmp_path / "data"
    with pytest.raises(DataError, match=r"http://example\.invalid/datasets/moved\.zip.*https"):
        download.download("ml-100k", root, progress=False)
    assert leftovers(root) == []
    server.redirects["ml-100k.zip"] = server.url + "moved.zip"
    assert download.download("ml-100k", root, progress=False) == root / "ml-100k"
    assert server.requests[-2:] == ["/datasets/ml-100k.zip", "/datasets/moved.zip"]


def test_a_folder_bert4rec_did_not_create_is_never_replaced(server, monkeypatch, tmp_path):
    """Issue 14: an unrecognised ml-latest/ holding the user's files is refused by name, before
    any download; a folder an earlier download made (it has the marker) is replaced."""
    publish(server, monkeypatch, tmp_path, "ml-latest", digests=False)
    root = tmp_path / "data"
    mine = root / "ml-latest"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("my own notes")
    with pytest.raises(DataError, match=rf"{mine}: already exists and is not a release that "
                                        r"bert4rec downloaded.*move or rename it"):
        download.download("ml-latest", root, progress=False)
    assert (mine / "notes.txt").read_text() == "my own notes" and server.requests == []
    (mine / "notes.txt").unlink()
    (mine / download.LEGACY_MARKER).write_text("{}")  # an earlier bert4rec's download,
    assert download.download("ml-latest", root, progress=False) == mine  # damaged since
    assert movielens.detect(mine)[0] is movielens.CSV
