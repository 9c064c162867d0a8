"""Who is calling, and may they: bearer tokens (hashed static tokens, JWTs)
and mutual-TLS identities, each carrying scopes.

- ``graph`` calls SocialGraphService, ``admin`` AdminService, ``events``
  the change stream (WatchService). Health is open to everyone; reflection
  needs any valid credential unless ``auth_open_reflection``; any other
  service is refused (MISSING_SCOPE) whatever the credential.
- A call with an ``authorization: Bearer ...`` header is judged by that
  token alone. Without one, a verified client certificate whose SPIFFE URI
  or DNS SAN is granted scopes (``tls_client_scopes``) is the caller.
- Token files and JWT keys are reloaded when they change on disk and on
  SIGHUP; a file that fails to load leaves the previous one in force. A
  tokens file without entries counts as failing when it is the only
  credential (no JWT keys, no TLS client scopes): nobody could pass.
- Tokens are never logged; failures are logged at DEBUG with their reason.

``AuthInterceptor`` is installed only when auth is configured, so a server
without it pays nothing per call."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from .errors import status_for
from .interceptors import KINDS, Behavior, Handler, HandlerWrapper
from .logs import note_caller
from .rules import GraphError, PermissionDenied, Reason, Unauthenticated
from .settings import Settings

if TYPE_CHECKING:
    from jwt.algorithms import AllowedPublicKeys

log = logging.getLogger(__name__)

SCOPES = frozenset({"graph", "admin", "events"})
SERVICE_SCOPES = {
    "socialgraph.v1.SocialGraphService": "graph",
    "socialgraph.v1.AdminService": "admin",
    "socialgraph.v1.WatchService": "events",
}
OPEN_SERVICES = frozenset({"grpc.health.v1.Health"})
REFLECTION_SERVICES = frozenset({"grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection"})
JWT_ALGORITHMS = ("RS256", "ES256", "EdDSA")
MAX_TOKEN_LENGTH = 8192
_VERIFIED_CACHE_SIZE = 1024

# A JWT signing key: (kid, algorithm, public key).
JwtKey = tuple[str | None, str, "AllowedPublicKeys"]


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: ``token:NAME``, ``jwt:SUBJECT`` or ``tls:IDENTITY``."""

    name: str
    scopes: frozenset[str]


def _scopes(words: Iterable[str], where: str) -> frozenset[str]:
    scopes = frozenset(words)
    unknown = scopes - SCOPES
    if unknown:
        raise ValueError(f"{where}: unknown scope(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(SCOPES))}")
    return scopes


# ------------------------------------------------------------------ sources


class StaticTokens:
    """``[[token]]`` tables of a TOML file: ``name``, ``sha256`` (hex digest
    of the token) and ``scopes``. A token is checked against every entry in
    constant time."""

    def __init__(self, entries: list[tuple[bytes, Caller]]) -> None:
        self._entries = entries

    @classmethod
    def load(cls, path: str) -> StaticTokens:
        try:
            document = tomllib.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"auth_tokens_file {path}: {exc}") from None
        tables = document.get("token", [])
        if not isinstance(tables, list) or not all(isinstance(entry, dict) for entry in tables):
            raise ValueError(f"auth_tokens_file {path}: `token` must be an array of tables, each under [[token]]")
        entries = []
        for index, entry in enumerate(tables):
            where = f"auth_tokens_file {path}, token {index + 1}"
            name, digest, scopes = entry.get("name"), entry.get("sha256", ""), entry.get("scopes", [])
            if not isinstance(name, str) or not name:
                raise ValueError(f"{where}: needs a name")
            try:
                raw = bytes.fromhex(digest)
            except (TypeError, ValueError):
                raw = b""
            if len(raw) != 32:
                raise ValueError(f"{where} ({name}): sha256 must be 64 hex digits")
            if not isinstance(scopes, list):
                raise ValueError(f"{where} ({name}): scopes must be a list")
            entries.append((raw, Caller(f"token:{name}", _scopes(scopes, where))))
        return cls(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, token: str) -> Caller | None:
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for expected, caller in self._entries:
            if hmac.compare_digest(digest, expected):
                found = caller
        return found


class JwtVerifier:
    """JWTs signed by one of the keys of a PEM file (one or more public
    keys) or a JWKS document; RS256, ES256 or EdDSA, each key bound to the
    algorithm of its type. ``exp``, ``iss`` and ``aud`` are required."""

    def __init__(self, keys: list[JwtKey], issuer: str, audience: str, leeway: float) -> None:
        self._keys = keys  # (kid, algorithm, public key)
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway

    @classmethod
    def load(cls, path: str, issuer: str, audience: str, leeway: float) -> JwtVerifier:
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"auth_jwt_keys {path}: {exc}") from None
        keys = _jwks_keys(text, path) if text.lstrip().startswith("{") else _pem_keys(text, path)
        if not keys:
            raise ValueError(f"auth_jwt_keys {path}: no usable RS256, ES256 or EdDSA public key")
        return cls(keys, issuer, audience, leeway)

    def verify(self, token: str) -> tuple[Caller, float]:
        """The caller and the token's expiry (epoch seconds)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid bearer token: {exc}") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in JWT_ALGORITHMS:
            raise Unauthenticated(f"invalid bearer token: algorithm {str(algorithm)[:16]!r} is not accepted")
        candidates = [
            key for key_id, alg, key in self._keys if alg == algorithm and (kid is None or key_id in (None, kid))
        ]
        if not candidates:
            raise Unauthenticated("invalid bearer token: no key for its algorithm and key id")
        error: jwt.PyJWTError | None = None
        for key in candidates:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=[algorithm],
                    audience=self._audience,
                    issuer=self._issuer,
                    leeway=self._leeway,
                    options={"require": ["exp", "iss", "aud"]},
                )
                break
            except jwt.InvalidSignatureError as exc:
                error = exc
            except jwt.PyJWTError as exc:
                raise Unauthenticated(f"invalid bearer token: {exc}") from None
        else:
            raise Unauthenticated(f"invalid bearer token: {error}")
        scope = claims.get("scope", "")
        words = scope.split() if isinstance(scope, str) else []
        caller = Caller(f"jwt:{str(claims.get('sub', ''))[:128]}", frozenset(words) & SCOPES)
        return caller, float(claims["exp"])


def _pem_keys(text: str, path: str) -> list[JwtKey]:
    marker = "-----BEGIN PUBLIC KEY-----"
    keys: list[JwtKey] = []
    for block in text.split(marker)[1:]:
        try:
            key = load_pem_public_key((marker + block).encode())
        except ValueError as exc:
            raise ValueError(f"auth_jwt_keys {path}: {exc}") from None
        # _algorithm_of refuses every other kind of key.
        keys.append((None, _algorithm_of(key, path), cast("AllowedPublicKeys", key)))
    return keys


def _algorithm_of(key: PublicKeyTypes, path: str) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "EdDSA"
    raise ValueError(f"auth_jwt_keys {path}: {type(key).__name__} is not an RSA, P-256 or Ed25519 public key")


def _jwks_keys(text: str, path: str) -> list[JwtKey]:
    try:
        document = json.loads(text)
        keys: list[JwtKey] = []
        for data in document.get("keys", []):
            if data.get("use", "sig") != "sig":
                continue
            jwk = jwt.PyJWK(data)
            if jwk.algorithm_name in JWT_ALGORITHMS:
                keys.append((jwk.key_id, jwk.algorithm_name, jwk.key))
        return keys
    except (ValueError, TypeError, AttributeError, jwt.PyJWTError) as exc:
        raise ValueError(f"auth_jwt_keys {path}: not a JWKS document: {exc}") from None


def parse_peer_scopes(text: str) -> dict[str, frozenset[str]]:
    """``IDENTITY=SCOPE SCOPE,IDENTITY=SCOPE`` into a map."""
    grants: dict[str, frozenset[str]] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        identity, sep, words = item.rpartition("=")
        if not sep or not identity.strip():
            raise ValueError(f"tls_client_scopes: expected IDENTITY=SCOPES, got {item!r}")
        grants[identity.strip()] = _scopes(words.split(), "tls_client_scopes")
    return grants


# ------------------------------------------------------------ authenticator


@dataclass(frozen=True)
class _Credentials:
    """One loaded set of credentials and the JWTs verified against it. A
    reload builds a new one and installs it with a single assignment, so a
    call sees one whole set, and a cache entry never outlives its keys."""

    tokens: StaticTokens | None
    jwt: JwtVerifier | None
    verified: dict[str, tuple[Caller, float]] = field(default_factory=dict)


class Authenticator:
    """The credentials the settings configure, reloaded when their files change."""

    def __init__(self, settings: Settings, *, poll_interval: float = 1.0) -> None:
        self._settings = settings
        self._poll_interval = poll_interval
        self._peers = parse_peer_scopes(settings.tls_client_scopes)
        self._files = [path for path in (settings.auth_tokens_file, settings.auth_jwt_keys) if path]
        self._lock = threading.Lock()
        self._stamps = {path: _stamp(path) for path in self._files}
        self._credentials = self._load()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def _load(self) -> _Credentials:
        s = self._settings
        tokens = StaticTokens.load(s.auth_tokens_file) if s.auth_tokens_file else None
        verifier = (
            JwtVerifier.load(s.auth_jwt_keys, s.auth_jwt_issuer, s.auth_jwt_audience, s.auth_jwt_leeway)
            if s.auth_jwt_keys
            else None
        )
        if tokens is not None and len(tokens) == 0 and verifier is None and not self._peers:
            raise ValueError(
                f"auth_tokens_file {s.auth_tokens_file}: no [[token]] entries, and neither auth_jwt_keys nor "
                "tls_client_scopes is set, so no call could pass"
            )
        return _Credentials(tokens, verifier)

    def reload(self) -> bool:
        """Loads every file again; keeps the previous credentials if one fails.
        Once it returns, every call is judged by the new credentials; a call
        already running finishes with the set it started with."""
        with self._lock:
            self._stamps = {path: _stamp(path) for path in self._files}
            try:
                credentials = self._load()
            except ValueError as exc:
                log.error("credentials not reloaded, the previous ones stay in force: %s", exc)
                return False
            self._credentials = credentials  # one assignment: the old set or the new, never a mix
        log.info("credentials reloaded")
        return True

    def start(self) -> Authenticator:
        if self._files and self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="auth-reload", daemon=True)
            self._watcher.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(self._poll_interval):
            if any(_stamp(path) != self._stamps.get(path) for path in self._files):
                try:
                    self.reload()
                except Exception:  # the watcher outlives any one bad file
                    log.exception("credentials not reloaded, the previous ones stay in force")

    def authenticate(self, context: grpc.ServicerContext) -> Caller:
        token = _bearer(context.invocation_metadata())
        if token is not None:
            return self._from_token(token)
        if self._peers:
            # grpc gives each property as a list of values; types-grpcio says one bytes value.
            caller = self._from_peer(context.auth_context())  # type: ignore[arg-type]
            if caller is not None:
                return caller
        raise Unauthenticated("this call needs a credential: an `authorization: Bearer` token or a client certificate")

    def _from_token(self, token: str) -> Caller:
        credentials = self._credentials  # read once: a reload swaps the whole set
        if credentials.tokens is not None:
            caller = credentials.tokens.find(token)
            if caller is not None:
                return caller
        if credentials.jwt is None or token.count(".") != 2:
            raise Unauthenticated("invalid bearer token")
        verified = credentials.verified
        cached = verified.get(token)
        if cached is not None and time.time() < cached[1] + self._settings.auth_jwt_leeway:
            return cached[0]
        caller, expires = credentials.jwt.verify(token)
        if len(verified) >= _VERIFIED_CACHE_SIZE:
            verified.clear()
        # Into the cache of the set that verified it: a token checked against
        # keys a reload has since replaced is not remembered by the new set.
        verified[token] = (caller, expires)
        return caller

    def _from_peer(self, auth_context: Mapping[str, Iterable[bytes]]) -> Caller | None:
        for key in ("peer_spiffe_id", "peer_uri", "peer_dns"):
            for value in auth_context.get(key, ()):
                identity = value.decode(errors="replace")
                scopes = self._peers.get(identity)
                if scopes is not None:
                    return Caller(f"tls:{identity}", scopes)
        return None


def _stamp(path: str) -> tuple[int, ...]:
    try:
        info = os.stat(path)
    except OSError:
        return ()
    return (info.st_ino, info.st_mtime_ns, info.st_size)


def _bearer(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    values = [value for key, value in metadata if key == "authorization"]
    if not values:
        return None
    if len(values) > 1:
        raise Unauthenticated("more than one authorization header")
    value = values[0]
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    scheme, _, token = value.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("the authorization header must be `Bearer TOKEN`")
    if len(token) > MAX_TOKEN_LENGTH:
        raise Unauthenticated(f"bearer token longer than {MAX_TOKEN_LENGTH} characters")
    return token


# -------------------------------------------------------------- interceptor


class AuthInterceptor(HandlerWrapper):
    """Checks the caller's credential and scope before every handler. Health
    stays open; reflection takes any valid credential (or none, when opened);
    a service no scope grants is refused to every credential."""

    def __init__(self, authenticator: Authenticator, *, open_reflection: bool = False) -> None:
        self._authenticator = authenticator
        self._open = OPEN_SERVICES | (REFLECTION_SERVICES if open_reflection else frozenset())
        super().__init__()

    def wrap(self, method: str, handler: Handler) -> Handler:
        service = method.strip("/").partition("/")[0]
        if service in self._open:
            return handler
        return self._guard(handler, service)

    def _guard(self, handler: Handler, service: str) -> Handler:
        authenticate = self._authenticator.authenticate
        scope = SERVICE_SCOPES.get(service)
        any_credential = service in REFLECTION_SERVICES

        def check(context: grpc.ServicerContext) -> None:
            try:
                caller = authenticate(context)
                note_caller(caller.name)
                if scope is None and not any_credential:
                    # Default deny: no metadata["scope"], as no scope grants it.
                    raise PermissionDenied(
                        Reason.MISSING_SCOPE, f"no scope grants {service}, so {caller.name} may not call it"
                    )
                if scope is not None and scope not in caller.scopes:
                    raise PermissionDenied(
                        Reason.MISSING_SCOPE, f"{caller.name} lacks the {scope!r} scope", scope=scope
                    )
            except GraphError as exc:
                log.debug("refused %s from %s: %s", scope or "call", context.peer(), exc.message)
                context.abort_with_status(status_for(exc))

        # grpc's handlers are namedtuples; the stubs declare only the abstract class.
        return handler._replace(  # type: ignore[attr-defined, no-any-return]
            **{kind: _checked(getattr(handler, kind), check) for kind in KINDS if getattr(handler, kind) is not None}
        )


def _checked(behavior: Behavior, check: Callable[[grpc.ServicerContext], None]) -> Behavior:
    def checked(request: Any, context: grpc.ServicerContext) -> Any:
        check(context)
        return behavior(request, context)

    return checked
