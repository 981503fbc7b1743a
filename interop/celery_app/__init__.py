"""The Celery application of the interop suite (interop/test_celery.py).

``make_app(broker_url, queue)`` builds it: kombu's py-amqp transport
(``amqp://``), results through the ``rpc://`` backend (replies to the client's
own queue, matched by correlation id), the default queue ``queue`` (a durable
queue bound to a direct exchange of the same name), JSON only.

The worker side is ``interop.celery_app.worker``, configured from the
environment (``AMQP_URL``, ``INTEROP_CELERY_QUEUE``, ``INTEROP_CELERY_HEARTBEAT``):

    AMQP_URL=amqp://guest:guest@127.0.0.1:5672/ INTEROP_CELERY_QUEUE=q \\
        python -m celery -A interop.celery_app.worker worker --pool solo -l INFO

Tasks carry explicit names so that the test process (which imports this package
as ``interop.celery_app``) and the worker agree on them.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from celery import Celery


def make_app(broker_url: str, queue: str, heartbeat: float = 0) -> Celery:
    app = Celery("interop", broker=broker_url, backend="rpc://", set_as_current=False)
    app.conf.update(
        task_default_queue=queue,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=None,
        broker_heartbeat=heartbeat,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=True,
        worker_redirect_stdouts=False,
        enable_utc=True,
    )

    @app.task(name="interop.add")
    def add(x, y):
        return x + y

    @app.task(name="interop.retry", bind=True, max_retries=5)
    def retry(self, fails: int, countdown: float):
        """Fail `fails` times, each retried after `countdown` seconds, then succeed."""
        if self.request.retries < fails:
            raise self.retry(countdown=countdown)
        return {"retries": self.request.retries, "finished": time.time()}

    @app.task(name="interop.slow", bind=True, acks_late=True)
    def slow(self, marker_dir: str, tag: str, seconds: float, redelivered_seconds: float = 0.1):
        """An acks_late task that leaves a marker file when it starts, then sleeps."""
        redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
        started = time.time()
        marker = Path(marker_dir) / f"{tag}.started.{os.getpid()}"
        marker.write_text(f"{started}\n{self.request.hostname}\n{redelivered}\n")
        time.sleep(redelivered_seconds if redelivered else seconds)
        return {"pid": os.getpid(), "hostname": self.request.hostname,
                "redelivered": redelivered, "started": started, "finished": time.time()}

    return app
