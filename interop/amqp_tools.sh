#!/usr/bin/env bash
# rabbitmq-c's command line tools (Debian's amqp-tools: amqp-declare-queue,
# amqp-publish, amqp-get, amqp-consume, amqp-delete-queue) against a broker: a C
# client check, run by interop/test_amqp_tools.py.
#
# Usage: AMQP_TOOLS_URL=amqp://guest:guest@127.0.0.1:5672 amqp_tools.sh PREFIX
#   AMQP_TOOLS_URL  broker URL in rabbitmq-c's form: no trailing "/" for the vhost "/"
#                   (rabbitmq-c reads "amqp://host:port/" as the vhost "")
#   PREFIX          unique prefix for the queue names
#   FROM_PIKA       (optional) a queue holding one message "from pika", to read here
#   PROPS_QUEUE     (optional) a queue to leave one message with properties in, which
#                   the test then reads with pika
# Prints "ok <step>" per step, and "PASS amqp-tools" at the end; on the first
# failure prints "FAIL <step>: <why>" and exits 1. Every tool runs under `timeout`.
set -uo pipefail

URL="${AMQP_TOOLS_URL:?AMQP_TOOLS_URL is required}"
PREFIX="${1:?usage: amqp_tools.sh PREFIX}"
T="timeout 20"
Q="$PREFIX.work"
STEP="start"

fail() { echo "FAIL $STEP: $*"; exit 1; }
ok() { echo "ok $STEP"; }
expect_eq() { [[ "$1" == "$2" ]] || fail "expected [$2], got [$1]"; }

for tool in amqp-declare-queue amqp-publish amqp-get amqp-consume amqp-delete-queue; do
  command -v "$tool" >/dev/null || { STEP="tools"; fail "$tool is not installed (apt-get install amqp-tools)"; }
done

STEP="declare-durable-queue"
out=$($T amqp-declare-queue -u "$URL" -d -q "$Q") || fail "status $?"
expect_eq "$out" "$Q"; ok

STEP="declare-server-named-queue"
named=$($T amqp-declare-queue -u "$URL" -q "") || fail "status $?"
[[ -n "$named" ]] || fail "no queue name printed"
out=$($T amqp-delete-queue -u "$URL" -q "$named") || fail "delete: status $?"
expect_eq "$out" "0"; ok

STEP="get-empty"
$T amqp-get -u "$URL" -q "$Q" >/dev/null 2>&1
expect_eq "$?" "2"; ok

STEP="publish"
for i in 1 2 3; do
  $T amqp-publish -u "$URL" -r "$Q" -p -C text/plain -b "hello $i" || fail "status $?"
done
printf 'line one\nline two\n' | $T amqp-publish -u "$URL" -r "$Q" -l || fail "line-buffered: status $?"
ok

STEP="get"
out=$($T amqp-get -u "$URL" -q "$Q") || fail "status $?"
expect_eq "$out" "hello 1"; ok

STEP="consume"
# Each body followed by "|"; amqp-consume acks each after the command exits 0.
# (amqp-publish -l keeps the newline at the end of each line in the body.)
out=$($T amqp-consume -u "$URL" -q "$Q" -c 4 -p 1 -- sh -c 'cat; echo "|"') || fail "status $?"
expect_eq "$out" $'hello 2|\nhello 3|\nline one\n|\nline two\n|'; ok

STEP="drained"
$T amqp-get -u "$URL" -q "$Q" >/dev/null 2>&1
expect_eq "$?" "2"; ok

STEP="consume-topic-binding"
# amqp-consume -e/-r declares a server-named exclusive queue and binds it; publish
# until its one message arrives (it cannot say when it is ready).
tmp=$(mktemp)
errs=$(mktemp)
$T amqp-consume -u "$URL" -e amq.topic -r "$PREFIX.*" -c 1 -- cat >"$tmp" 2>"$errs" &
consumer=$!
deadline=$((SECONDS + 15))
while kill -0 "$consumer" 2>/dev/null; do
  ((SECONDS < deadline)) || { kill "$consumer"; fail "no message arrived in 15 s"; }
  $T amqp-publish -u "$URL" -e amq.topic -r "$PREFIX.news" -b "topical" || fail "publish: status $?"
  sleep 0.2
done
wait "$consumer" || fail "amqp-consume: status $? ($(cat "$tmp" "$errs"))"
out=$(cat "$tmp")
grep -q "^Server provided queue name: ." "$errs" || fail "no server-named queue: $(cat "$errs")"
rm -f "$tmp" "$errs"
expect_eq "$out" "topical"; ok

if [[ -n "${FROM_PIKA:-}" ]]; then
  STEP="get-from-pika"
  out=$($T amqp-get -u "$URL" -q "$FROM_PIKA") || fail "status $?"
  expect_eq "$out" "from pika"; ok
fi

if [[ -n "${PROPS_QUEUE:-}" ]]; then
  STEP="publish-properties"
  $T amqp-publish -u "$URL" -r "$PROPS_QUEUE" -p -C application/json -E utf-8 \
    -t reply.here -H "x-tool: amqp-publish" -H "x-n: 7" -b '{"from": "rabbitmq-c"}' \
    || fail "status $?"
  ok
fi

STEP="delete-queue"
# One message left: publish, then delete reports it.
$T amqp-publish -u "$URL" -r "$Q" -b "left over" || fail "publish: status $?"
out=$($T amqp-delete-queue -u "$URL" -q "$Q") || fail "status $?"
expect_eq "$out" "1"; ok

echo "PASS amqp-tools"
