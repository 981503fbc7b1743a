"""The YAML loader: good files, broken ones (every problem, with its line), env substitution."""

import os
import textwrap
from pathlib import Path

import pytest

from amqpbroker.config import ConfigError, load_config, load_settings
from amqpbroker.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def load(text: str, **env: str):
    return load_config(textwrap.dedent(text), environ=env)


def problems(text: str, **env: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(text, **env)
    return [str(p) for p in info.value.problems]


def test_shipped_example_is_valid():
    config = load_config(REPO / "config" / "broker.yaml", environ={})
    s = config.settings
    assert (s.port, s.host, s.data_dir) == (5672, None, "./data")
    assert [u.name for u in config.users] == ["guest"]
    assert config.users[0].tags == ["administrator"]
    assert [(e.name, e.type, e.durable) for e in config.exchanges] == [("orders", "topic", True)]
    assert [(q.name, q.durable) for q in config.queues] == [("orders.created", True)]
    assert [(b.source, b.destination, b.routing_key) for b in config.bindings] == [
        ("orders", "orders.created", "order.created")]
    assert config.warnings == []


def test_every_server_key_reaches_settings():
    config = load("""
        listeners:
          - {host: 127.0.0.1, port: 5999}
          - {host: "::1", port: 5999}
        data_dir: /var/lib/x
        sync: false
        shutdown_timeout: 2.5
        limits:
          frame_max: 64KiB
          channel_max: 100
          heartbeat: 0
          max_message_size: 16MiB
          max_connections: 10
          consumer_timeout_ms: 60000
          connection_write_high_water: 2MB
          store_memory_budget: 1GiB
        logging: {level: debug, format: json}
        loopback_users: []
    """)
    s = config.settings
    assert s.host == ["127.0.0.1", "::1"] and s.port == 5999
    assert (s.data_dir, s.sync, s.shutdown_timeout) == ("/var/lib/x", False, 2.5)
    assert (s.frame_max, s.channel_max, s.heartbeat) == (65536, 100, 0)
    assert (s.max_message_size, s.max_connections) == (16 * 1024**2, 10)
    assert (s.consumer_timeout_ms, s.connection_write_high_water) == (60000, 2_000_000)
    assert s.store_memory_budget == 1024**3
    assert (s.log_level, s.log_format, s.loopback_users) == ("debug", "json", ())
    assert set(config.setting_values) >= {"port", "host", "frame_max", "loopback_users"}


def test_missing_keys_keep_defaults():
    config = load("vhosts: [/]\n")
    assert config.settings == Settings()
    assert config.setting_values == {} and config.users is None


def test_empty_file_and_null_data_dir():
    assert load("").settings == Settings()
    assert load("data_dir: null\n").settings.data_dir is None


def test_every_problem_is_listed_with_its_line():
    found = problems("""\
        listeners:
          - port: 70000
        limits:
          heartbeat: often
          frame_max: 100
        logging: {level: loud}
        vhosts: [/, staging]
        users:
          - name: admin
            password_hash: "not base64!"
          - {name: admin, password: x}
          - {name: nopass}
        permissions:
          - {user: admin, vhost: /, configure: ".*", write: ".*", read: "(("}
          - {user: ghost, vhost: nowhere, configure: "", write: "", read: ""}
        exchanges:
          - {name: orders, type: topik, duarble: true}
          - {name: amq.mine, type: direct}
          - {name: orders, type: topic}
        queues:
          - {name: q1, exclusive: true, arguments: {x-max-length: -1}}
        bindings:
          - {source: nowhere, destination: q2}
          - {source: "", destination: q1}
          - {source: amq.topic, destination: orders, destination_type: exchange}
        colour: blue
    """)
    expected = [
        "<config>:2: listeners[0].port: must be at most 65535, got 70000",
        "<config>:4: limits.heartbeat: expected an integer, got a string ('often')",
        "<config>:5: limits.frame_max: must be 0 (no limit) or at least 4096, got 100",
        "<config>:6: logging.level: must be one of: debug, info, warning, error, critical; "
        "got 'loud'",
        "<config>:10: users[0].password_hash: not valid base64",
        "<config>:11: users[1]: duplicate user 'admin' (first at line 9)",
        "<config>:12: users[2]: missing key 'password' or 'password_hash' "
        "(password_hash: '' makes a user that cannot log in)",
        "<config>:14: permissions[0].read: invalid regular expression '((': missing ), "
        "unterminated subpattern at position 1",
        "<config>:15: permissions[1].user: user 'ghost' is not declared under users",
        "<config>:15: permissions[1].vhost: vhost 'nowhere' is not declared under vhosts",
        "<config>:17: exchanges[0].duarble: unknown key 'duarble' (did you mean 'durable'?)",
        "<config>:17: exchanges[0].type: must be one of: direct, fanout, topic, headers, "
        "x-consistent-hash, x-local-random, x-delayed-message; "
        "got 'topik'",
        "<config>:18: exchanges[1].name: exchange name 'amq.mine' contains reserved prefix "
        "'amq.*'",
        "<config>:19: exchanges[2]: duplicate exchange 'orders' in vhost '/' (first at line 17)",
        "<config>:21: queues[0].exclusive: must be false: an exclusive queue belongs to one "
        "connection",
        "<config>:21: queues[0].arguments.x-max-length: must be at least 0, got -1",
        "<config>:23: bindings[0].source: exchange 'nowhere' is not declared in vhost '/' "
        "(nor predeclared)",
        "<config>:23: bindings[0].destination: queue 'q2' is not declared in vhost '/'",
        "<config>:24: bindings[1].source: cannot bind to or from the default exchange "
        "(every queue is bound to it)",
        "<config>:26: colour: unknown key 'colour' (did you mean 'cluster'?)",
    ]
    assert found == expected


def test_errors_name_the_file(tmp_path):
    path = tmp_path / "broker.yaml"
    path.write_text("queues:\n  - name: q\n    durable: maybe\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(info.value).splitlines() == [
        "invalid configuration (1 problem):",
        f"  {path}:3: queues[0].durable: expected true or false, got a string ('maybe')",
    ]


def test_unreadable_file_and_yaml_syntax_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(str(tmp_path / "missing.yaml"))
    assert problems("queues:\n  - name: [unclosed\n") == [
        "<config>:3: invalid YAML: while parsing a flow sequence expected ',' or ']', "
        "but got '<stream end>'"]
    assert problems("- just\n- a list\n") == [
        "<config>:1: the file must be a mapping of keys (listeners, vhosts, queues, ...)"]


def test_duplicate_keys_are_errors_not_silently_overridden():
    assert problems("queues:\n  - name: a\n    name: b\n") == [
        "<config>:3: queues[0].name: duplicate key 'name' (first at line 2)"]


def test_binding_to_an_exchange_with_problems_is_not_reported_twice():
    found = problems("""\
        exchanges: [{name: x, type: nope}]
        queues: [{name: q}]
        bindings: [{source: x, destination: q}]
    """)
    assert found == ["<config>:1: exchanges[0].type: must be one of: direct, fanout, topic, "
                     "headers, x-consistent-hash, x-local-random, x-delayed-message; "
                     "got 'nope'"]


def test_env_substitution_types_and_defaults():
    config = load("""
        listeners: [{port: "${PORT}"}]  # quoted: needed inside [...] and {...}
        data_dir: ${DATA:-/srv/amqp}
        sync: ${SYNC:-false}
        limits:
          heartbeat: ${HB-30}
        users:
          - {name: admin, password: "${ADMIN_PW}", tags: [administrator]}
          - {name: literal, password: "$${NOT_EXPANDED}"}
    """, PORT="5800", ADMIN_PW="s3cret")
    s = config.settings
    assert s.port == 5800  # a string from the environment, typed by the schema
    assert (s.data_dir, s.sync, s.heartbeat) == ("/srv/amqp", False, 30)
    admin, literal = config.users
    from amqpbroker.model.users import check_password

    assert check_password("s3cret", admin.password_hash)
    assert check_password("${NOT_EXPANDED}", literal.password_hash)


def test_env_unquoted_values_are_retyped_quoted_ones_stay_strings():
    config = load("""
        listeners:
          - port: ${P}
        queues:
          - name: q
            arguments:
              x-plain: ${P}
              x-quoted: "${P}"
              x-mixed: a${P}
    """, P="6000")
    assert config.settings.port == 6000
    assert config.queues[0].arguments == {"x-plain": 6000, "x-quoted": "6000",
                                          "x-mixed": "a6000"}
    assert problems("listeners:\n  - port: ${P}\n", P="many") == [
        "<config>:2: listeners[0].port: expected an integer, got a string ('many')"]


def test_env_empty_value_uses_colon_default_only():
    assert load("data_dir: ${D:-/a}\n", D="").settings.data_dir == "/a"
    assert load("data_dir: ${D-/a}/b\n", D="/x").settings.data_dir == "/x/b"


def test_env_missing_variables_are_all_reported():
    assert problems("""\
        data_dir: ${NOPE}
        users: [{name: a, password: "${ALSO_NOPE}"}]
    """) == [
        "<config>:1: data_dir: environment variable NOPE is not set "
        "(write ${NOPE:-default} to give a default)",
        "<config>:2: users[0].password: environment variable ALSO_NOPE is not set "
        "(write ${ALSO_NOPE:-default} to give a default)",
    ]


def test_env_in_a_dict_config_and_os_environ(monkeypatch):
    monkeypatch.setenv("AMQPBROKER_ADMIN_PASSWORD", "from-env")
    config = load_config({"users": [{"name": "admin",
                                     "password": "${AMQPBROKER_ADMIN_PASSWORD}"}]})
    from amqpbroker.model.users import check_password

    assert check_password("from-env", config.users[0].password_hash)
    with pytest.raises(ConfigError, match=r"<config>: users\[0\]\.password: environment"):
        load_config({"users": [{"name": "a", "password": "${SURELY_UNSET_VARIABLE_42}"}]})


def test_load_settings_and_path_detection(tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text("listeners: [{port: 5800}]\n")
    assert load_settings(str(path)).port == 5800
    assert load_settings(path).port == 5800
    assert load_settings("listeners: [{port: 5801}]").port == 5801


def test_hand_written_shorthands():
    config = load("""
        vhosts: [/, staging]
        users: [{name: u, password: p, tags: "administrator, management"}]
        exchanges: [{name: e, type: fanout, vhost: staging}]
        queues: [{name: "2024", vhost: staging}]
        bindings: [{source: e, destination: "2024", vhost: staging, routing_key: 7}]
    """)
    assert [v.name for v in config.vhosts] == ["/", "staging"]
    assert config.users[0].tags == ["administrator", "management"]
    assert config.exchanges[0].durable is True and config.queues[0].name == "2024"
    assert config.bindings[0].routing_key == "7"
    assert config.bindings[0].destination_type == "queue"


def test_multiple_listeners_need_one_port():
    assert problems("""\
        listeners:
          - {host: 127.0.0.1, port: 5672}
          - {port: 5673}
    """) == [
        "<config>:3: listeners[1].port: every amqp listener must use the same port for now "
        "(the first uses 5672, this one 5673)",
        "<config>:3: listeners[1]: a listener without host listens on every address; give "
        "every listener a host when there are several",
    ]


def test_dangling_alternate_exchange_is_a_warning():
    config = load("""
        exchanges: [{name: e, type: direct, arguments: {alternate-exchange: typo}}]
        queues: [{name: q, arguments: {x-dead-letter-exchange: amq.fanout}}]
    """)
    assert [str(w) for w in config.warnings] == [
        "<config>:2: exchanges[0]: alternate-exchange 'typo' is not declared in vhost '/'"]


def test_summary_mentions_counts():
    text = load("queues: [{name: q}]\n").summary()
    assert "1 queues" in text and "default user only" in text


def test_environ_defaults_to_os_environ(monkeypatch):
    monkeypatch.setenv("AMQPBROKER_TEST_PORT", "5811")
    assert load_config("listeners:\n  - port: ${AMQPBROKER_TEST_PORT}\n").settings.port == 5811
    assert os.environ["AMQPBROKER_TEST_PORT"] == "5811"
