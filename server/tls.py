"""TLS and mutual TLS from PEM files that are read again when they change.

grpcio asks the fetcher of each server's credentials for a configuration
before every handshake; it answers with a new one when a file's inode,
size or modification time moved, so rotated certificates (cert-manager,
a mounted Kubernetes secret) take effect for new connections without a
restart. A half-written or mismatched pair is logged and the previous one
keeps serving."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .settings import Settings

log = logging.getLogger(__name__)


class CertificateFiles:
    def __init__(self, cert: str, key: str, client_ca: str = "") -> None:
        self._paths = tuple(path for path in (cert, key, client_ca) if path)
        self._cert, self._key, self._client_ca = cert, key, client_ca
        self._configuration()  # fails early on unusable files

    @classmethod
    def from_settings(cls, settings: Settings) -> CertificateFiles | None:
        if not settings.tls_cert:
            return None
        return cls(settings.tls_cert, settings.tls_key, settings.tls_client_ca)

    def credentials(self) -> grpc.ServerCredentials:
        """Credentials for one port; each has its own view of what changed."""
        stamp = self._stamp()
        initial = self._configuration()

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            nonlocal stamp
            current = self._stamp()
            if current == stamp:
                return None
            try:
                configuration = self._configuration()
            except ValueError as exc:
                log.error("TLS files changed but cannot be used yet; serving the previous ones: %s", exc)
                return None
            stamp = current
            log.info("TLS certificate reloaded from %s", self._cert)
            return configuration

        # fetch returns None for "unchanged", as grpc documents; types-grpcio leaves None out.
        return grpc.dynamic_ssl_server_credentials(
            initial, fetch, require_client_authentication=bool(self._client_ca)  # type: ignore[arg-type]
        )

    def _stamp(self) -> tuple[tuple[int, ...], ...]:
        stamps: list[tuple[int, ...]] = []
        for path in self._paths:
            try:
                info = os.stat(path)
                stamps.append((info.st_ino, info.st_mtime_ns, info.st_size))
            except OSError:
                stamps.append(())
        return tuple(stamps)

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        try:
            chain, key = Path(self._cert).read_bytes(), Path(self._key).read_bytes()
            client_ca = Path(self._client_ca).read_bytes() if self._client_ca else None
        except OSError as exc:
            raise ValueError(f"TLS file: {exc}") from None
        _check_pair(chain, key, self._cert, self._key)
        if client_ca is not None:
            try:
                x509.load_pem_x509_certificates(client_ca)
            except ValueError as exc:
                raise ValueError(f"tls_client_ca {self._client_ca}: {exc}") from None
        return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=client_ca)


def _check_pair(chain: bytes, key: bytes, cert_path: str, key_path: str) -> None:
    try:
        leaf = x509.load_pem_x509_certificates(chain)[0]
    except ValueError as exc:
        raise ValueError(f"tls_cert {cert_path}: {exc}") from None
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"tls_key {key_path}: {exc}") from None
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(*der) != private.public_key().public_bytes(*der):
        raise ValueError(f"tls_key {key_path} does not belong to the certificate in {cert_path}")
