"""`esimota serve`: run the platform — HTTPS bridge, gRPC, BIP endpoint, jobs (DESIGN §7; built by server.py)."""

from __future__ import annotations

import argparse


def _serve_command(args: argparse.Namespace) -> int:
    from ..server import serve_main

    return serve_main(args)


def register(sub) -> None:
    serve = sub.add_parser("serve", help="run the platform: HTTPS bridge, gRPC, BIP endpoint, jobs")
    serve.add_argument("--host", default=None, help="address of the HTTP and gRPC listeners (default 127.0.0.1)")
    serve.add_argument("--http-port", type=int, default=None, help="HTTP bridge port (default 8080)")
    serve.add_argument("--grpc-port", type=int, default=None, help="gRPC port (default 50051)")
    serve.add_argument("--bip-port", type=int, default=None, help="BIP endpoint port (default 7700)")
    serve.add_argument("--workers", type=int, default=None, help="worker processes sharing the ports")
    serve.add_argument("--no-tls", action="store_true", help="plain HTTP/gRPC behind a TLS proxy")
    serve.set_defaults(func=_serve_command)
