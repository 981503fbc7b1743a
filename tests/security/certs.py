"""Certificates for the TLS tests, made by trustme (a throwaway CA per test session)."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import trustme


@dataclass
class CertFiles:
    ca: str          # the CA that signs server and client certificates (PEM)
    server_cert: str
    server_key: str
    client_cert: str  # CN=alice, signed by `ca`
    client_key: str
    client_pem: str   # client cert + key in one file (pika, openssl)
    expired_pem: str  # CN=alice, signed by `ca`, expired yesterday
    untrusted_pem: str  # CN=alice, signed by another CA


def make_cert_files(directory: str) -> CertFiles:
    ca = trustme.CA(organization_name="amqpbroker tests")
    other = trustme.CA(organization_name="somebody else")
    server = ca.issue_cert("localhost", "127.0.0.1")
    client = ca.issue_cert("alice@example.com", common_name="alice",
                           organization_name="amqpbroker tests")
    yesterday = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    expired = ca.issue_cert("alice@example.com", common_name="alice",
                            not_before=yesterday - datetime.timedelta(days=30),
                            not_after=yesterday)
    untrusted = other.issue_cert("alice@example.com", common_name="alice")

    def path(name: str) -> str:
        return os.path.join(directory, name)

    ca.cert_pem.write_to_path(path("ca.pem"))
    server.cert_chain_pems[0].write_to_path(path("server.pem"))
    server.private_key_pem.write_to_path(path("server.key"))
    client.cert_chain_pems[0].write_to_path(path("client.pem"))
    client.private_key_pem.write_to_path(path("client.key"))
    client.private_key_and_cert_chain_pem.write_to_path(path("client-bundle.pem"))
    expired.private_key_and_cert_chain_pem.write_to_path(path("expired.pem"))
    untrusted.private_key_and_cert_chain_pem.write_to_path(path("untrusted.pem"))
    return CertFiles(path("ca.pem"), path("server.pem"), path("server.key"),
                     path("client.pem"), path("client.key"), path("client-bundle.pem"),
                     path("expired.pem"), path("untrusted.pem"))
