"""The worker's Celery app: ``celery -A interop.celery_app.worker worker ...``."""
import os

from . import make_app

app = make_app(
    os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/"),
    os.environ.get("INTEROP_CELERY_QUEUE", "interop.celery"),
    heartbeat=float(os.environ.get("INTEROP_CELERY_HEARTBEAT", "0")),
)
