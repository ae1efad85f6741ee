"""`python -m computer_use.loopback --port 8787 --script demo`: serve the scripted model."""

from __future__ import annotations

import argparse

import uvicorn

from computer_use.loopback.app import LoopbackState, create_app
from computer_use.loopback.demo import demo_responder
from computer_use.loopback.script import Responder

SCRIPTS: dict[str, Responder] = {"demo": demo_responder}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m computer_use.loopback",
        description="A scripted stand-in for the Anthropic Messages API (JSON and streaming).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--script", choices=sorted(SCRIPTS), default="demo")
    parser.add_argument("--delay", type=float, default=0.02, help="seconds between stream deltas")
    parser.add_argument("--api-key", default=None, help="accept only this key (default: any)")
    args = parser.parse_args(argv)

    state = LoopbackState(
        SCRIPTS[args.script], api_key=args.api_key, delay=args.delay, chunk_size=8
    )
    print(
        f"Loopback Messages API ({args.script} script) on http://{args.host}:{args.port}\n"
        f"  point the service at it: ANTHROPIC_BASE_URL=http://{args.host}:{args.port} "
        "ANTHROPIC_API_KEY=<anything>",
        flush=True,
    )
    uvicorn.run(create_app(state), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
