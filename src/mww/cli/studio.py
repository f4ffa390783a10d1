"""mww-studio: the local web app, from recordings to a model ready to flash.

Serves the studio of one project folder (created when missing) on http://127.0.0.1:7860/: pages for
the dataset, training, evaluation, export and trying a model, over the same library functions the
commands call. It listens on this machine only unless --host says otherwise; it has no
authentication, so a --host other than the loopback address prints a warning. A training run started
from it goes on when the studio stops. Exit status: 130 when stopped with Ctrl+C, 2 for bad input
(the reason is printed as one paragraph).
"""

from __future__ import annotations

import argparse
import os
import sys

from mww.cli import Parser, checked, run_command

PROG = "mww-studio"

_port = checked(int, "a port number", lambda v: 0 <= v <= 65535, "{text} is not between 0 and 65535")


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; another address prints a warning)",
    )
    parser.add_argument("--port", type=_port, default=7860, help="port (default 7860; 0 picks a free one)")
    parser.add_argument(
        "--project",
        default=".",
        metavar="DIR",
        help="the project folder: project.yaml, dataset/, checkpoints/, models/ (default: this folder)",
    )
    return parser


def host_warning(host: str) -> str | None:
    """The warning for a --host that other machines may reach, or None for the loopback address."""
    from mww.studio.server import is_loopback

    if is_loopback(host):
        return None
    return (
        f"{PROG}: warning: listening on {host}, which other machines may reach. The studio has no "
        "authentication: anyone who can reach this port can read the dataset, start training and write "
        "files in the project folder. Use the default --host 127.0.0.1 unless this network is yours alone."
    )


def _serve(args: argparse.Namespace) -> int:
    from mww.studio.project import open_project
    from mww.studio.server import make_server

    warning = host_warning(args.host)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    project = open_project(args.project)
    os.chdir(project.root)  # the config's relative paths resolve here, as for a command run in the folder
    server = make_server(project, args.host, args.port)
    print(f"{PROG}: project {project.root}", flush=True)
    print(f"{PROG}: serving on {server.url} (Ctrl+C to stop)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of mww-studio."""
    return run_command(
        PROG,
        _parser(),
        _serve,
        argv,
        interrupted=lambda args: "stopped. A training run it started goes on; the next studio shows it.",
    )


if __name__ == "__main__":
    raise SystemExit(main())
