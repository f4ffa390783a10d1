"""The studio's server and the mww-studio command, over HTTP without a browser: pages, the API's
answers and refusals, the warning for a non-local address."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from urllib.error import HTTPError

import pytest

from mww.cli.studio import host_warning, main
from mww.studio.project import StudioError, open_project
from mww.studio.server import is_loopback, make_server


@pytest.fixture
def server(project):
    studio = make_server(project, "127.0.0.1", 0)
    thread = threading.Thread(target=studio.serve_forever, daemon=True)
    thread.start()
    yield studio
    studio.shutdown()
    studio.server_close()


def call(server, path, method="GET", body=None, headers=None):
    """(status, parsed JSON or raw bytes) of one request."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(
        server.url.rstrip("/") + path, data=data, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw, kind = response.status, response.read(), response.headers["Content-Type"]
    except HTTPError as exc:
        status, raw, kind = exc.code, exc.read(), exc.headers["Content-Type"]
    return status, json.loads(raw) if kind == "application/json" else raw


WRITE = {"X-Mww-Studio": "1"}


def test_pages_and_static_files(server):
    for page in ("/", "/dataset", "/train", "/evaluate", "/export", "/try"):
        status, html = call(server, page)
        assert status == 200 and b'<script src="/static/app.js">' in html
    status, script = call(server, "/static/app.js")
    assert status == 200 and b"function trainPage" in script
    assert call(server, "/static/../server.py")[0] == 404
    status, answer = call(server, "/api/nothing")
    assert status == 404 and "no such page" in answer["error"]


def test_the_api_answers_and_refuses(server, project):
    status, counts = call(server, "/api/dataset")
    assert status == 200 and counts["folders"][0]["files"] == 24
    status, clip = call(server, "/api/audio?path=" + str(project.root / "dataset/positive/spk00/0.wav"))
    assert status == 200 and clip[:4] == b"RIFF"
    # Writes need the studio's header; a page of another site cannot send it without asking first.
    status, answer = call(server, "/api/settings", "POST", {"wake_word": "x"})
    assert status == 403 and "X-Mww-Studio" in answer["error"]
    # Requests addressed to another name (DNS rebinding) are not answered.
    status, answer = call(server, "/api/dataset", headers={"Host": "attacker.example:80"})
    assert status == 403 and "127.0.0.1 or localhost only" in answer["error"]
    status, answer = call(server, "/api/settings", "POST", {"training_steps": "x"}, WRITE)
    assert status == 400 and answer["error"].startswith("mww-studio: error: The training steps 'x'")
    status, answer = call(server, "/api/train/stop", "POST", {}, WRITE)
    assert status == 400 and answer["error"] == (
        "mww-train: error: No training run is going in this project, so there is nothing to stop."
    )
    status, answer = call(server, "/api/evaluate", "POST", {"model": "checkpoint:x", "split": "dev"}, WRITE)
    assert status == 400 and "'dev' is not a split" in answer["error"]
    assert call(server, "/api/jobs/7")[1]["error"].startswith("mww-studio: error: There is no job 7")
    assert call(server, "/api/clips?kind=positive&offset=-1")[0] == 400
    answer = call(server, "/api/settings", "POST", b"{not json", WRITE)[1]
    assert "The request body is not JSON" in answer["error"]


def test_an_upload_through_the_api(server, project):
    wav = (project.root / "dataset/positive/spk00/0.wav").read_bytes()
    status, answer = call(server, "/api/upload?kind=positive&speaker=dan&name=a.wav", "PUT", wav, WRITE)
    assert status == 200 and answer["saved"].endswith("dataset/positive/dan/a.wav")
    status, answer = call(server, "/api/record?speaker=dan", "PUT", b"not audio", WRITE)
    assert status == 400 and answer["error"].startswith("mww-studio: error: The audio file dan_take.wav")


def test_loopback_names():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.4", "example.org", ""))
    assert host_warning("127.0.0.1") is None
    assert "no authentication" in host_warning("0.0.0.0")


def test_the_command_refuses_bad_input(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["--port", "70000"]) == 2
    assert "70000 is not between 0 and 65535" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["--project", str(tmp_path / "file")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    taken = make_server(open_project(tmp_path), "127.0.0.1", 0)
    try:
        port = taken.server_address[1]
        assert main(["--project", str(tmp_path), "--port", str(port)]) == 2
        err = capsys.readouterr().err
        print(err.strip())
        assert f"cannot listen on 127.0.0.1 port {port}" in err
    finally:
        taken.server_close()
    with pytest.raises(StudioError):
        make_server(open_project(tmp_path), "256.0.0.1", 0)


def test_the_command_warns_on_a_non_local_address(tmp_path):
    command = [
        sys.executable,
        "-m",
        "mww.cli.studio",
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        "--project",
        str(tmp_path),
    ]
    studio = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = studio.stdout.readline() + studio.stdout.readline()
        assert "serving on http://0.0.0.0:" in line, line
    finally:
        time.sleep(0.2)
        studio.send_signal(signal.SIGINT)
        _, err = studio.communicate(timeout=20)
    print(err.strip())
    assert "warning: listening on 0.0.0.0" in err and "no authentication" in err
    assert studio.returncode == 130 and "Traceback" not in err
