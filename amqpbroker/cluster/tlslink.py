"""TLS for the replication port, from the broker's own `tls:` settings (amqpbroker/tls.py).

When the node has TLS options, the leader's replication listener uses the same certificate
as the amqps listener and, given a CA file, requires the follower's certificate (mutual
TLS); the follower verifies the leader's certificate against that CA and the leader's
advertised host name, and presents its own. The cluster secret's proof runs inside.
"""

from __future__ import annotations

import dataclasses
import ssl

from amqpbroker.tls import TLSOptions, server_context


def leader_context(opts: TLSOptions | None) -> ssl.SSLContext | None:
    if opts is None:
        return None
    if opts.cafile:  # members prove themselves with a certificate the CA signed
        opts = dataclasses.replace(opts, verify="verify_peer", fail_if_no_peer_cert=True)
    return server_context(opts)


def follower_context(opts: TLSOptions | None) -> ssl.SSLContext | None:
    if opts is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=opts.cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(opts.certfile, opts.keyfile, password=opts.password)
    return ctx
