"""The ``socialgraph`` command: serve, migrate, recount, health, events tail."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import TYPE_CHECKING, Protocol, cast

from . import settings as config
from .logs import configure as configure_logs

if TYPE_CHECKING:
    import grpc
    from grpc_health.v1 import health_pb2

    class HealthStub(Protocol):
        """The method ``HealthStub.__init__`` sets (its stubs leave it out)."""

        Check: grpc.UnaryUnaryMultiCallable[health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse]

# The bearer token ``events tail`` sends: a file (flag or variable), else the
# token itself in a variable (never a flag, so it stays out of ``ps``).
TOKEN_FILE_ENV = config.ENV_PREFIX + "TOKEN_FILE"
TOKEN_ENV = config.ENV_PREFIX + "TOKEN"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="socialgraph",
        description="SocialGraph: follows, connections and blocks over gRPC.",
        epilog="Every flag can also be set by the environment variable shown in its place.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help in (
        ("serve", "run the gRPC server (applies migrations first)"),
        ("migrate", "apply database migrations and exit"),
        ("recount", "recompute every counter from the edges and report what was fixed"),
        ("health", "exit 0 when the server at --listen reports SERVING (for container health checks)"),
        ("events", "events tail: print the server's events at --listen as JSON lines"),
    ):
        command = commands.add_parser(name, help=help)
        config.add_arguments(command, name)
        if name == "events":
            _events_arguments(command)
    return parser


def _events_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["tail"], help="tail: follow the event log until interrupted")
    parser.add_argument("--after", default="", metavar="CURSOR", help="start after this cursor (default: from now)")
    parser.add_argument("--kinds", default="", help="comma-separated kinds, e.g. FOLLOWED,BLOCKED (default: all)")
    parser.add_argument("--users", default="", help="comma-separated user ids, actor or subject (default: all)")
    parser.add_argument("--checkpoints", action="store_true", help="print checkpoints too")
    parser.add_argument(
        "--token-file",
        default=os.environ.get(TOKEN_FILE_ENV, ""),
        metavar=TOKEN_FILE_ENV,
        help=f"file holding the bearer token sent as `authorization: Bearer ...` (default: the token in ${TOKEN_ENV}, "
        "else none); with --tls-* the channel speaks the server's TLS",
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = config.load(args)
    except ValueError as exc:
        print(f"socialgraph: {exc}", file=sys.stderr)
        return 2
    configure_logs(settings.log_level, settings.log_format)
    if args.command == "events":
        return _events_tail(settings, args)
    commands = {"serve": _serve, "migrate": _migrate, "recount": _recount, "health": _health}
    return commands[args.command](settings)


def _serve(settings: config.Settings) -> int:
    from .app import InvalidConfiguration, PortInUse, serve
    from .workers import run

    try:
        if settings.workers > 1:
            return run(settings)
        serve(settings)
    except PortInUse as exc:
        print(f"socialgraph: {exc}", file=sys.stderr)
        return 1
    except InvalidConfiguration as exc:
        print(f"socialgraph: {exc}", file=sys.stderr)
        return 2
    # The grace period is over: calls still blocked (say, on a database
    # lock) were cancelled, and their threads must not hold the exit.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _migrate(settings: config.Settings) -> int:
    from storage import open_storage
    from storage.migrate import upgrade

    storage = open_storage(settings.database_url)
    before, after = upgrade(storage)
    storage.close()
    print(f"schema at revision {after}" + ("" if before == after else f" (was {before or 'empty'})"))
    return 0


def _recount(settings: config.Settings) -> int:
    from storage import open_storage
    from storage.migrate import upgrade

    from .app import make_graph

    storage = open_storage(settings.database_url)
    upgrade(storage)
    fixes = make_graph(settings, storage).recount()
    storage.close()
    for fix in fixes:
        print(f"{fix.user_id} {fix.column}: {fix.stored} -> {fix.actual}")
    print(f"recount: {len(fixes)} counter(s) fixed")
    return 0


def health_stub(channel: grpc.Channel) -> HealthStub:
    """A grpc.health.v1 Health client on ``channel``, its ``Check`` typed
    (types-grpcio-health-checking declares no methods on ``HealthStub``).
    The tests and the bench call the health service through this too."""
    from grpc_health.v1 import health_pb2_grpc

    return cast("HealthStub", health_pb2_grpc.HealthStub(channel))


def _health(settings: config.Settings) -> int:
    import grpc
    from grpc_health.v1 import health_pb2

    host, _, port = settings.listen.rpartition(":")
    if host in ("0.0.0.0", "[::]", ""):
        host = "127.0.0.1"
    with _health_channel(settings, f"{host}:{port}") as channel:
        try:
            response = health_stub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
        except grpc.RpcError as exc:
            print(f"socialgraph: {host}:{port} did not answer: {exc.code().name}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(status)
    return 0 if response.status == health_pb2.HealthCheckResponse.SERVING else 1


def _health_channel(settings: config.Settings, target: str) -> grpc.Channel:
    """Plaintext, or with the server's own TLS settings: trusts the CA in
    ``tls_client_ca`` (else the chain in ``tls_cert``, which must then hold
    its root), presents the server's certificate when mutual TLS is on, and
    expects the certificate's first DNS name (else ``localhost``)."""
    import grpc

    if not settings.tls_cert:
        return grpc.insecure_channel(target)
    from pathlib import Path

    from cryptography import x509

    chain = Path(settings.tls_cert).read_bytes()
    roots = Path(settings.tls_client_ca).read_bytes() if settings.tls_client_ca else chain
    identity = (Path(settings.tls_key).read_bytes(), chain) if settings.tls_client_ca else (None, None)
    leaf = x509.load_pem_x509_certificates(chain)[0]
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName
        )
    except x509.ExtensionNotFound:
        names = []
    credentials = grpc.ssl_channel_credentials(roots, *identity)
    override = ("grpc.ssl_target_name_override", names[0] if names else "localhost")
    return grpc.secure_channel(target, credentials, options=[override])


def _events_tail(settings: config.Settings, args: argparse.Namespace) -> int:
    """Prints each event (and with --checkpoints each checkpoint) as one
    line of JSON, in the message's proto3 JSON form; exits 0 on Ctrl-C and
    1 when the stream fails (the error goes to stderr with the last cursor)."""
    import grpc
    from google.protobuf import json_format

    from socialgraph.v1 import watch_pb2, watch_pb2_grpc

    kinds = []
    for name in filter(None, (k.strip().upper() for k in args.kinds.split(","))):
        try:
            kinds.append(watch_pb2.EventKind.Value(name if name.startswith("EVENT_KIND_") else f"EVENT_KIND_{name}"))
        except ValueError:
            print(f"socialgraph: unknown event kind {name!r}", file=sys.stderr)
            return 2
    users = [u.strip() for u in args.users.split(",") if u.strip()]
    try:
        token = _bearer_token(args.token_file)
    except ValueError as exc:
        print(f"socialgraph: {exc}", file=sys.stderr)
        return 2
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    request = watch_pb2.WatchRequest(after_cursor=args.after, kinds=kinds, user_ids=users)
    last = args.after
    with _health_channel(settings, settings.listen) as channel:
        try:
            for message in watch_pb2_grpc.WatchServiceStub(channel).Watch(request, metadata=metadata):
                which = message.WhichOneof("message")
                if which is None:  # a kind of message newer than this client: nothing to print
                    continue
                item = getattr(message, which)
                last = item.cursor
                if which == "event" or args.checkpoints:
                    line = json_format.MessageToDict(item, preserving_proto_field_name=True)
                    print(json.dumps({which: line} if args.checkpoints else line), flush=True)
        except KeyboardInterrupt:
            return 0
        except grpc.RpcError as exc:
            print(f"socialgraph: {exc.code().name}: {exc.details()} (last cursor: {last or 'none'})", file=sys.stderr)
            return 1
    return 0


def _bearer_token(token_file: str) -> str:
    """The token in ``token_file`` (surrounding whitespace dropped), else
    ``$SOCIALGRAPH_TOKEN``, else empty (no credential is sent)."""
    if not token_file:
        return os.environ.get(TOKEN_ENV, "").strip()
    try:
        with open(token_file, encoding="utf-8") as handle:
            token = handle.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"token_file ({TOKEN_FILE_ENV} / --token-file): cannot read {token_file}: {exc}") from None
    if not token or any(c.isspace() for c in token):
        raise ValueError(f"token_file ({TOKEN_FILE_ENV} / --token-file): {token_file} must hold one token")
    return token


if __name__ == "__main__":
    sys.exit(main())
