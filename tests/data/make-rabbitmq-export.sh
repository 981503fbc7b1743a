#!/usr/bin/env bash
# Regenerates tests/data/rabbitmq-3.10-policies.json with Debian's rabbitmq-server (3.10):
# a private node in a temporary directory on free ports, policies, an operator policy,
# vhost and user limits, topic permissions and a little topology, then
# `rabbitmqctl export_definitions`. Not run by CI (the file is kept in the repository).
# Usage: tests/data/make-rabbitmq-export.sh [python-with-aio-pika]
set -euo pipefail
PY=${1:-.venv/bin/python}
OUT=$(cd "$(dirname "$0")" && pwd)/rabbitmq-3.10-policies.json
DIR=$(mktemp -d)
trap 'rc=$?; rabbitmqctl -n polexp@localhost stop >/dev/null 2>&1 || true; [ $rc = 0 ] && rm -rf "$DIR" || echo "failed: logs in $DIR"' EXIT
export RABBITMQ_NODENAME=polexp@localhost RABBITMQ_NODE_PORT=${NODE_PORT:-21672} RABBITMQ_DIST_PORT=${DIST_PORT:-21673} \
  RABBITMQ_MNESIA_BASE=$DIR/mnesia RABBITMQ_LOG_BASE=$DIR/log \
  RABBITMQ_ENABLED_PLUGINS_FILE=$DIR/enabled_plugins RABBITMQ_CONFIG_FILE=$DIR/rabbitmq \
  RABBITMQ_PID_FILE=$DIR/pid HOME=$DIR ERL_EPMD_PORT=${EPMD_PORT:-21369}
echo '[].' > "$DIR/enabled_plugins"
echo "listeners.tcp.default = $RABBITMQ_NODE_PORT" > "$DIR/rabbitmq.conf"
PATH=/usr/lib/rabbitmq/bin:$PATH
rabbitmq-server > "$DIR/server.out" 2>&1 &
C="rabbitmqctl -n polexp@localhost"
$C wait "$DIR/pid" --timeout 120
$C add_vhost tenant-a
$C add_user alice alicepw
$C set_user_tags alice management
$C set_permissions -p tenant-a alice '.*' '.*' '.*'
$C set_permissions -p tenant-a guest '.*' '.*' '.*'
$C set_topic_permissions -p tenant-a alice amq.topic '^{username}\.' '^{username}\.|^public\.'
$C set_vhost_limits -p tenant-a '{"max-connections": 2, "max-queues": 5}'
$C set_user_limits alice '{"max-connections": 2, "max-channels": 2}'
$C set_policy -p tenant-a dlx-ttl '^work\.' '{"dead-letter-exchange":"dlx","message-ttl":200}' \
  --priority 1 --apply-to queues
$C set_policy -p tenant-a cap '^capped' '{"max-length":3,"overflow":"drop-head"}' --priority 2 \
  --apply-to queues
$C set_policy -p tenant-a ae '^in$' '{"alternate-exchange":"unrouted"}' --apply-to exchanges
$C set_operator_policy -p tenant-a op-cap '.*' '{"max-length":2}' --priority 0 --apply-to queues
"$PY" - <<'PYEOF'
import asyncio, os, aio_pika
async def main():
    port = os.environ["RABBITMQ_NODE_PORT"]
    c = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/tenant-a")
    ch = await c.channel()
    dlx = await ch.declare_exchange("dlx", "fanout", durable=True)
    await ch.declare_exchange("unrouted", "fanout", durable=True)
    await ch.declare_exchange("in", "direct", durable=True)
    dead = await ch.declare_queue("dead", durable=True)
    await dead.bind(dlx, "")
    await ch.declare_queue("work.jobs", durable=True)
    await ch.declare_queue("capped.log", durable=True)
    u = await ch.declare_queue("unrouted.catch", durable=True)
    await u.bind("unrouted", "")
    await c.close()
asyncio.run(main())
PYEOF
$C export_definitions "$OUT"
