"""Password hashes compatible with RabbitMQ's (rabbit_password), and users from the file."""

import base64
import json
from pathlib import Path

import pytest

from amqpbroker.config import ConfigError, load_config
from amqpbroker.core import BrokerCore
from amqpbroker.model.users import (
    MD5,
    SHA256,
    SHA512,
    check_password,
    hash_password,
    password_hash_problem,
)
from amqpbroker.settings import Settings
from amqpbroker.topology import apply_config

EXPORT = Path(__file__).parent / "data" / "rabbitmq-3.10.8-export.json"
# Taken from that export of a RabbitMQ 3.10.8 node: guest/guest and app/s3cret.
GUEST_HASH = "fep8/xLtKHdlr2FXFMA31A7az+S7ImglgCg6WG0XnnhIBCxt"
APP_HASH = "swQ5VhnHOFwlYkvomu7Ijw4t3aW3r8RKQ5tzYf3quSdcDM6G"


def test_hashes_made_by_rabbitmq_verify():
    assert check_password("guest", GUEST_HASH)
    assert check_password("s3cret", APP_HASH)
    assert not check_password("Guest", GUEST_HASH)
    assert not check_password("", APP_HASH)


def test_we_hash_exactly_as_rabbitmq_given_its_salt():
    salt = base64.b64decode(GUEST_HASH)[:4]
    assert hash_password("guest", salt) == GUEST_HASH


def test_fresh_hashes_are_salted():
    a, b = hash_password("pw"), hash_password("pw")
    assert a != b and check_password("pw", a) and check_password("pw", b)
    assert len(base64.b64decode(a)) == 36


@pytest.mark.parametrize("algorithm,size", [(SHA256, 36), (SHA512, 68), (MD5, 20)])
def test_other_rabbitmq_algorithms(algorithm, size):
    h = hash_password("pw", algorithm=algorithm)
    assert len(base64.b64decode(h)) == size
    assert check_password("pw", h, algorithm)
    assert not check_password("pw", h, SHA256 if algorithm != SHA256 else SHA512)
    assert password_hash_problem(h, algorithm) is None


def test_bad_hashes_are_explained():
    assert password_hash_problem("@@@") == "not valid base64"
    assert "decodes to 3 bytes" in password_hash_problem("YWJj")
    assert "unknown hashing algorithm 'sha1'" in password_hash_problem(GUEST_HASH, "sha1")
    assert password_hash_problem("") is None  # a user without password
    assert not check_password("", "")


def test_users_of_a_rabbitmq_export_log_in():
    config = load_config(EXPORT)
    core = BrokerCore(Settings(data_dir=None))
    apply_config(core, config)
    assert set(core.users) == {"guest", "app"}
    assert core.authenticate("app", "s3cret", loopback=True).tags == ["monitoring"]
    assert core.authenticate("guest", "guest", loopback=True).tags == ["administrator"]
    assert json.loads(EXPORT.read_text())["users"][1]["password_hash"] == APP_HASH


def test_config_with_hash_plain_password_and_no_password():
    config = load_config(f"""
users:
  - {{name: hashed, password_hash: "{APP_HASH}"}}
  - {{name: plain, password: dev, hashing_algorithm: {SHA512}}}
  - {{name: locked, password_hash: ""}}
permissions:
  - {{user: hashed, vhost: /, configure: ".*", write: ".*", read: ".*"}}
""")
    core = BrokerCore(Settings(data_dir=None))
    apply_config(core, config)
    assert core.authenticate("hashed", "s3cret", loopback=False).name == "hashed"
    assert core.users["plain"].hashing_algorithm == SHA512
    assert core.authenticate("plain", "dev", loopback=False).name == "plain"
    from amqpbroker import errors

    with pytest.raises(errors.LoginRefused):
        core.authenticate("locked", "", loopback=True)
    with pytest.raises(errors.LoginRefused):
        core.authenticate("guest", "guest", loopback=True)  # not listed: gone


def test_password_and_hash_together_is_an_error():
    with pytest.raises(ConfigError, match="give either 'password' or 'password_hash'"):
        load_config(f'users: [{{name: a, password: x, password_hash: "{APP_HASH}"}}]')


def test_hash_of_the_wrong_algorithm_is_an_error():
    with pytest.raises(ConfigError, match="a rabbit_password_hashing_sha512 hash has 68"):
        load_config(f'users: [{{name: a, password_hash: "{APP_HASH}", '
                    f'hashing_algorithm: {SHA512}}}]')
