"""POST /api/tls/reload-certificates: reload the certificate, key and CA files of every TLS
listener (amqps, HTTPS management, MQTT over TLS, WSS), as SIGHUP does. Established
connections keep their session; new handshakes present the new certificate.

Our extension: rabbitmqctl reloads certificates over Erlang distribution
(`rabbitmqctl eval 'ssl:clear_pem_cache().'`), which a Python broker does not speak, so
`amqpbroker ctl reload_certificates` calls this endpoint (docs/compatibility.md).
Administrators only. A bad file is a 400 naming it, and the old certificate stays.
"""

from __future__ import annotations

from typing import Any

import structlog

from amqpbroker.management.errors import bad_request
from amqpbroker.management.router import Context, route
from amqpbroker.tls import TLSConfigError

log = structlog.get_logger("amqpbroker.management")


@route("POST", "/api/tls/reload-certificates", access="administrator")
def reload_certificates(ctx: Context) -> Any:
    reload = ctx.admin.reload_certificates
    if reload is None:
        raise bad_request("no TLS listener is running")
    try:
        listeners = reload()
    except TLSConfigError as exc:
        log.error("tls.reload_failed", error=str(exc), user=ctx.user.name)
        raise bad_request(f"certificates not reloaded: {exc}") from None
    log.info("tls.reload_requested", user=ctx.user.name, listeners=listeners)
    return {"reloaded": listeners}
