"""The `serve` process raises its own limit of open files to the hard limit at start.

Every client connection is a file descriptor, and Debian's default soft limit (1,024) caps
a broker at about a thousand connections while the hard limit is usually far higher.
RabbitMQ's packages raise the limit for the node (its docs' "Open File Handles Limit"
section) and the node reports it as `fd_total`; `serve` does it itself so that
`pip install` users get the same, and logs what it got (`server.fd_limit`). The embedded
`Broker` leaves the host process's limits alone.
"""

from __future__ import annotations

import resource

import structlog

log = structlog.get_logger("amqpbroker")

# When the hard limit is "unlimited", Linux still refuses more than fs.nr_open (1,048,576
# by default): ask for that.
UNLIMITED_TARGET = 1 << 20


def raise_fd_limit() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE -> hard limit; returns (before, after) and logs them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("server.fd_limit_unchanged", soft=soft, hard=hard, error=str(exc))
            return soft, soft
    after = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    log.info("server.fd_limit", before=soft, now=after, hard=hard)
    return soft, after
