"""The studio's web server: Python's own `http.server`, the pages in `static/`, and a small JSON API.

Every page is the same HTML (`static/index.html`) and script (`static/app.js`), which draws the page
of the path (/dataset, /train, /evaluate, /export, /try) from the API below. Actions that write
(POST, PUT) must carry the header `X-Mww-Studio: 1`, which a page of another site cannot send without
the browser asking first (which this server never allows), and while the server is bound to the
loopback address only requests addressed to the loopback name are answered, so a page elsewhere
cannot drive the studio through the browser. A bad request answers 400 with `{"error": paragraph}`,
the paragraph the command would print.
"""

from __future__ import annotations

import ipaddress
import json
import mimetypes
import re
import socket
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from mww.cli import error_line
from mww.errors import MwwError
from mww.studio import dataset, evaluation, exporting, training, tryit
from mww.studio.jobs import Jobs
from mww.studio.project import Project, StudioError, save_settings, settings

PAGES = ("/", "/dataset", "/train", "/evaluate", "/export", "/try")
WRITE_HEADER = "X-Mww-Studio"
MAX_BODY = 1 << 30  # 1 GiB: an hour of 16 kHz audio is 115 MB
PROG = "mww-studio"


@dataclass
class Request:
    """What a route gets: the server's project and jobs, the query and the body."""

    project: Project
    jobs: Jobs
    query: dict[str, str]
    body: bytes
    tail: str = ""  # the rest of the path after a route's prefix

    def json(self) -> dict[str, Any]:
        """The body as a JSON object ({} when empty)."""
        if not self.body:
            return {}
        try:
            data = json.loads(self.body)
        except ValueError as exc:
            raise StudioError(f"The request body is not JSON ({exc}).") from exc
        if not isinstance(data, dict):
            raise StudioError("The request body must be a JSON object.")
        return data

    def arg(self, name: str, default: str | None = None) -> str:
        """A query parameter; StudioError when it is missing and has no default."""
        value = self.query.get(name, default)
        if value is None:
            raise StudioError(f"The request lacks the parameter {name!r}.")
        return value


@dataclass
class Reply:
    """A response: status, content type, body and extra headers."""

    body: bytes
    content_type: str = "application/json"
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()


Route = Callable[[Request], Any]
ROUTES: dict[tuple[str, str], tuple[str, Route]] = {}  # (method, path) -> (prog for errors, route)


def route(method: str, path: str, prog: str = PROG) -> Callable[[Route], Route]:
    """Register a route; a path ending in '/' matches every path under it (the rest is `tail`)."""

    def register(function: Route) -> Route:
        ROUTES[(method, path)] = (prog, function)
        return function

    return register


def _job(request: Request, kind: str, prog: str, action: Callable[[], Any]) -> dict[str, Any]:
    return request.jobs.start(kind, prog, action).to_dict()


# --------------------------------------------------------------------------- project and dataset


@route("GET", "/api/project")
def _project(request: Request) -> dict[str, Any]:
    return {"project": str(request.project.root), "config_file": str(request.project.config_path)}


@route("GET", "/api/dataset")
def _dataset(request: Request) -> dict[str, Any]:
    config = request.project.config()
    return {**dataset.dataset_counts(config), **dataset.ingest_report(config)}


@route("GET", "/api/clips")
def _clips(request: Request) -> dict[str, Any]:
    text = request.arg("offset", "0") or "0"
    if not text.isdigit():
        raise StudioError(f"The offset {text!r} is not a whole number of at least 0.")
    offset = int(text)
    return dataset.list_clips(
        request.project.config(), request.arg("kind"), request.arg("speaker", ""), offset
    )


@route("GET", "/api/audio")
def _audio(request: Request) -> Reply:
    path = dataset.audio_file(request.project.config(), request.project, request.arg("path"))
    return Reply(path.read_bytes(), mimetypes.guess_type(path.name)[0] or "application/octet-stream")


@route("PUT", "/api/upload")
def _upload(request: Request) -> dict[str, Any]:
    saved = dataset.save_upload(
        request.project,
        request.project.config(),
        request.arg("kind"),
        request.arg("speaker", ""),
        request.arg("name"),
        request.body,
    )
    return {"saved": str(saved)}


@route("PUT", "/api/record")
def _record(request: Request) -> dict[str, Any]:
    saved = dataset.save_recording(
        request.project, request.project.config(), request.arg("speaker"), request.body
    )
    return {"saved": str(saved)}


@route("POST", "/api/generate", "mww-generate")
def _generate(request: Request) -> dict[str, Any]:
    options = request.json()
    return _job(request, "generate", "mww-generate", lambda: dataset.generate(request.project, options))


@route("POST", "/api/prepare", "mww-prepare")
def _prepare(request: Request) -> dict[str, Any]:
    config = request.project.config()
    return _job(request, "check the dataset", "mww-prepare", lambda: dataset.check_dataset(config))


@route("GET", "/api/jobs/")
def _job_status(request: Request) -> dict[str, Any]:
    if not request.tail.isdigit():
        raise StudioError(f"{request.tail!r} is not a job number.")
    return request.jobs.get(int(request.tail)).to_dict()


# --------------------------------------------------------------------------- training


@route("GET", "/api/settings")
def _settings(request: Request) -> dict[str, Any]:
    return settings(request.project)


@route("POST", "/api/settings")
def _save_settings(request: Request) -> dict[str, Any]:
    return save_settings(request.project, request.json())


@route("POST", "/api/train/start", training.PROG)
def _train_start(request: Request) -> dict[str, Any]:
    return training.start_training(request.project, resume=bool(request.json().get("resume")))


@route("POST", "/api/train/stop", training.PROG)
def _train_stop(request: Request) -> dict[str, Any]:
    return training.stop_training(request.project)


@route("GET", "/api/train/status")
def _train_status(request: Request) -> dict[str, Any]:
    return evaluation.finite(training.training_status(request.project))


# --------------------------------------------------------------------------- evaluation


@route("GET", "/api/models")
def _models(request: Request) -> dict[str, Any]:
    config = request.project.config()
    return {**evaluation.model_choices(config), "manifests": tryit.exported_manifests(config)}


@route("POST", "/api/evaluate", "mww-evaluate")
def _evaluate(request: Request) -> dict[str, Any]:
    body, config = request.json(), request.project.config()
    model, split = str(body.get("model", "")), str(body.get("split", "val"))
    evaluation.split_folder(request.project, split)
    evaluation.model_path(config, model)
    return _job(
        request,
        "evaluate",
        "mww-evaluate",
        lambda: evaluation.run_evaluation(request.project, config, model, split),
    )


@route("GET", "/api/evaluation")
def _evaluation(request: Request) -> dict[str, Any]:
    return {"evaluation": evaluation.load_evaluation(request.project, request.arg("split", "val"))}


@route("POST", "/api/choice")
def _choice(request: Request) -> dict[str, Any]:
    body = request.json()
    return evaluation.save_choice(request.project, body.get("cutoff"), body.get("window"))


@route("GET", "/api/snippet")
def _snippet(request: Request) -> Reply:
    data = evaluation.snippet_wav(request.project.config(), request.arg("file"), request.arg("t"))
    return Reply(data, "audio/wav")


# --------------------------------------------------------------------------- export and trying


@route("GET", "/api/export")
def _export_defaults(request: Request) -> dict[str, Any]:
    return exporting.export_defaults(request.project, request.project.config())


@route("POST", "/api/export", "mww-export")
def _export(request: Request) -> dict[str, Any]:
    body, config = request.json(), request.project.config()
    return _job(
        request,
        "export",
        "mww-export",
        lambda: exporting.export_model(
            request.project,
            config,
            str(body.get("checkpoint", "")),
            str(body.get("model_name", "")),
            body.get("cutoff"),
            body.get("window"),
        ),
    )


@route("GET", "/download/")
def _download(request: Request) -> Reply:
    path = exporting.download_path(request.project.config(), unquote(request.tail))
    disposition = f'attachment; filename="{path.name}"'
    return Reply(
        path.read_bytes(), "application/octet-stream", headers=(("Content-Disposition", disposition),)
    )


@route("PUT", "/api/try", "mww-detect")
def _try(request: Request) -> dict[str, Any]:
    config = request.project.config()
    manifest, armed = request.arg("model"), request.arg("armed", "0") == "1"
    audio = tryit.save_audio(request.project, request.arg("name"), request.body)
    return _job(request, "try it", "mww-detect", lambda: tryit.try_model(config, manifest, audio, armed))


# --------------------------------------------------------------------------- the server


def _static(name: str) -> Reply:
    if not re.fullmatch(r"[a-z]+\.(js|css|html)", name):
        raise FileNotFoundError(name)
    data = resources.files("mww.studio").joinpath("static", name).read_bytes()
    kind = {"js": "text/javascript", "css": "text/css", "html": "text/html"}[name.rsplit(".", 1)[1]]
    return Reply(data, f"{kind}; charset=utf-8")


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address) names this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class StudioServer(ThreadingHTTPServer):
    """The HTTP server of one project."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], project: Project) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)
        self.project = project
        self.jobs = Jobs()
        self.loopback_only = is_loopback(address[0])

    @property
    def url(self) -> str:
        """Where the studio is served."""
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else str(host)
        return f"http://{shown}:{port}/"


class Handler(BaseHTTPRequestHandler):
    """Pages, static files and the API."""

    server: StudioServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged (the page polls every second)."""

    def do_GET(self) -> None:
        """GET: pages, static files, the API's reads and downloads."""
        self._answer("GET")

    def do_POST(self) -> None:
        """POST: actions."""
        self._answer("POST")

    def do_PUT(self) -> None:
        """PUT: uploads."""
        self._answer("PUT")

    def _refusal(self, method: str) -> str | None:
        """Why this request is not answered at all, or None."""
        host = urlsplit(f"//{self.headers.get('Host') or ''}").hostname or ""
        if self.server.loopback_only and not is_loopback(host):
            return f"This studio answers requests to 127.0.0.1 or localhost only, not to {host!r}."
        if method != "GET" and self.headers.get(WRITE_HEADER) != "1":
            return f"Actions need the header {WRITE_HEADER}: 1 (the studio's pages send it)."
        return None

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise StudioError(
                f"The upload is {length / 1e6:.0f} MB, more than the studio takes in one file "
                f"({MAX_BODY / 1e6:.0f} MB). Split the recording, or copy it into the dataset folder."
            )
        return self.rfile.read(length) if length else b""

    def _answer(self, method: str) -> None:
        url = urlsplit(self.path)
        refusal = self._refusal(method)
        if refusal:
            self.close_connection = True  # its body, if any, is not read
            self._send(Reply(json.dumps({"error": error_line(PROG, refusal)}).encode(), status=403))
            return
        if method == "GET" and (url.path in PAGES or url.path.startswith("/static/")):
            try:
                self._send(_static("index.html" if url.path in PAGES else url.path[len("/static/") :]))
            except (FileNotFoundError, OSError):
                self._send(Reply(b'{"error": "not found"}', status=404))
            return
        found = ROUTES.get((method, url.path))
        tail = ""
        if found is None:
            prefix = next(
                (p for (m, p) in ROUTES if m == method and p.endswith("/") and url.path.startswith(p)), None
            )
            found, tail = (ROUTES[(method, prefix)], url.path[len(prefix) :]) if prefix else (None, "")
        if found is None:
            self.close_connection = True
            self._send(
                Reply(json.dumps({"error": f"{PROG}: error: no such page: {url.path}"}).encode(), status=404)
            )
            return
        prog, function = found
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            body = b""
            body = self._body()
            result = function(Request(self.server.project, self.server.jobs, query, body, tail))
            reply = result if isinstance(result, Reply) else Reply(json.dumps(result).encode())
        except MwwError as exc:
            self.close_connection = self.close_connection or (not body and method != "GET")
            reply = Reply(json.dumps({"error": error_line(prog, exc)}).encode(), status=400)
        except Exception as exc:  # a bug: its traceback goes to the terminal, the page says so
            traceback.print_exc(file=sys.stderr)
            message = f"{prog}: internal error: {type(exc).__name__}: {exc}. This is a bug; see the terminal."
            reply = Reply(json.dumps({"error": message}).encode(), status=500)
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in reply.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the tab was closed while it waited: nobody to answer


def make_server(project: Project, host: str = "127.0.0.1", port: int = 7860) -> StudioServer:
    """The studio's server for `project` on host:port (port 0: any free port); StudioError when the
    address cannot be taken."""
    try:
        return StudioServer((host, port), project)
    except OSError as exc:
        raise StudioError(
            f"The studio cannot listen on {host} port {port} ({exc.strerror or exc}). Pass another --port "
            "(or stop the program using that one), or a --host this machine has."
        ) from exc
