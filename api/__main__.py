"""`python -m api [--host H] [--port P]`: serve the HTTP API with uvicorn."""

from __future__ import annotations

import ipaddress
import logging
from types import FrameType

import uvicorn

from api.waiting import release_waiters
from storage.arguments import OneLineParser, whole_number
from storage.settings import get_settings

# on SIGTERM, long polls answer at once; requests still running after this long are cut off.
# Well inside the 15 s the stack waits before SIGKILL.
SHUTDOWN_GRACE_SECONDS = 3


class Server(uvicorn.Server):
    """uvicorn, whose stop signal first lets every waiting long poll answer (200, the status
    as it stands) instead of holding the shutdown until its wait runs out."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        release_waiters()
        super().handle_exit(sig, frame)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    parser = OneLineParser(prog="python -m api", description=__doc__)
    parser.add_argument("--host", default=settings.api_host, help="FLOWFORGE_API_HOST")
    parser.add_argument(
        "--port", type=whole_number(65535), default=settings.api_port, help="FLOWFORGE_API_PORT"
    )
    args = parser.parse_args(argv)
    if not settings.api_token and not is_loopback(args.host):
        logging.getLogger("api").warning(
            "FLOWFORGE_API_TOKEN is not set and the API listens on %s: anyone who can reach "
            "it can place and cancel orders",
            args.host,
        )
    config = uvicorn.Config(
        "api.app:app",
        host=args.host,
        port=args.port,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
    Server(config).run()


if __name__ == "__main__":
    main()
