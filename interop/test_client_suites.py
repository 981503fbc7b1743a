"""Client libraries' own test suites against the broker (issue 15).

aio-pika and kombu ship their tests in their sdists on PyPI. The tests below download the
sdist of the installed version (`pip download`, nothing is committed), unpack it into a
temporary directory and run selected tests of it with pytest in a subprocess, pointed at
the broker under test:

* aio-pika: `test_non_acked_messages_are_redelivered_to_queue` and
  `test_regression_only_messages_cancelled_subscription_are_nacked` (every class and
  parametrization in tests/test_amqp.py and tests/test_amqp_robust.py: requeued messages
  keep their order) and tests/test_reconnect_channel_snapshot.py (robust reconnect while
  channels are being opened, no ERROR log). Its conftest gets the broker from Docker: an
  override appended to the unpacked conftest.py takes the URL from `AMQP_URL` instead.
* kombu: t/integration/test_py_amqp.py `test_PyAMQPPriority::test_publish_requeue_consume`
  (requeue order on a priority queue) and `test_PyAMQPEventLoop::test_ack_from_another_thread`
  (Queue.DeleteOk before the consumer's Basic.Cancel). kombu takes the broker from
  `RABBITMQ_HOST` / `RABBITMQ_5672_TCP`.

The sdists are kept in `.cache/sdists/` (ignored by git; `.ci/run` fills it before the
tests) so that a second run does not download them again.

A run passes only when every selected test ran and passed (read from a JUnit report):
none may be skipped, deselected by a renamed test, or retried.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.interop

RUN_TIMEOUT = 300
SDISTS = Path(__file__).resolve().parent.parent / ".cache" / "sdists"

AIO_PIKA_TESTS = (
    "test_non_acked_messages_are_redelivered_to_queue",
    "test_regression_only_messages_cancelled_subscription_are_nacked",
    "test_create_channels_during_reconnect",
)
AIO_PIKA_FILES = ("tests/test_amqp.py", "tests/test_amqp_robust.py",
                  "tests/test_reconnect_channel_snapshot.py")
AIO_PIKA_CONFTEST_OVERRIDE = '''

# -- appended by amqpbroker's interop/test_client_suites.py --------------------------------
# The broker under test comes from AMQP_URL, not from a Docker container.
import os as _amqpbroker_os


def pytest_configure(config):  # noqa: F811  (replaces the Docker availability check)
    pass


@pytest.fixture(scope="session")
def amqp_direct_url() -> URL:  # noqa: F811
    return URL(_amqpbroker_os.environ["AMQP_URL"])
'''

KOMBU_TESTS = (
    "t/integration/test_py_amqp.py::test_PyAMQPPriority::test_publish_requeue_consume",
    "t/integration/test_py_amqp.py::test_PyAMQPEventLoop::test_ack_from_another_thread",
)


def sdist(tmp: Path, project: str) -> Path:
    """Unpack the sdist of the installed version of `project` (downloaded if not cached)."""
    version = importlib.metadata.version(project)
    prefix = f"{project.replace('-', '_')}-{version}"
    archives = sorted(SDISTS.glob(f"{prefix}.tar.gz"))
    if not archives:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", project,
             "--disable-pip-version-check", "-d", str(SDISTS), f"{project}=={version}"],
            capture_output=True, text=True, timeout=RUN_TIMEOUT)
        assert proc.returncode == 0, f"pip download {project}=={version} failed:\n{proc.stderr}"
        archives = sorted(SDISTS.glob(f"{prefix}.tar.gz"))
    assert archives, f"no {prefix}.tar.gz in {SDISTS}"
    with tarfile.open(archives[0]) as tar:
        tar.extractall(tmp, filter="data")
    return tmp / prefix


def run_pytest(root: Path, args: list[str], env: dict[str, str]) -> ET.Element:
    report = root / "report.xml"
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly",
            "-p", "no:rerunfailures", "--junitxml", str(report), "-q", *args]
    proc = subprocess.run(argv, cwd=root, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=RUN_TIMEOUT)
    output = proc.stdout[-6000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, f"{' '.join(argv)} failed:\n{output}"
    return ET.parse(report).getroot()


def outcomes(report: ET.Element) -> dict[str, list[str]]:
    """test name (without parametrization) -> outcome of each of its cases."""
    found: dict[str, list[str]] = {}
    for case in report.iter("testcase"):
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                outcome = tag
        found.setdefault(case.get("name", "").split("[")[0], []).append(outcome)
    return found


def test_aio_pika_suite(tmp_path: Path, broker_url: str) -> None:
    root = sdist(tmp_path, "aio-pika")
    conftest = root / "tests" / "conftest.py"
    conftest.write_text(conftest.read_text() + AIO_PIKA_CONFTEST_OVERRIDE)
    url = broker_url + "/" if urlsplit(broker_url).path == "/" else broker_url  # vhost "/"
    report = run_pytest(root, [*AIO_PIKA_FILES, "-k", " or ".join(AIO_PIKA_TESTS)],
                        {"AMQP_URL": url})
    found = outcomes(report)
    assert sorted(found) == sorted(AIO_PIKA_TESTS), found
    assert all(o == "passed" for cases in found.values() for o in cases), found
    # both requeue tests run in every class of both files (plain and robust connections)
    assert len(found[AIO_PIKA_TESTS[0]]) >= 4 and len(found[AIO_PIKA_TESTS[1]]) >= 4, found


def test_kombu_py_amqp_suite(tmp_path: Path, broker_url: str) -> None:
    root = sdist(tmp_path, "kombu")
    parts = urlsplit(broker_url)
    report = run_pytest(root, list(KOMBU_TESTS), {
        "RABBITMQ_HOST": parts.hostname or "localhost",
        "RABBITMQ_5672_TCP": str(parts.port or 5672),
    })
    found = outcomes(report)
    assert found == {"test_publish_requeue_consume": ["passed"],
                     "test_ack_from_another_thread": ["passed"]}, found
