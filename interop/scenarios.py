"""The tutorial scenarios, shared by the per-client test modules.

All three clients' programs print the same lines (the tutorials' wording with
a bytes-free format), so one scenario can drive any client, or mix clients.
Each scenario resets the fixed-name queues it uses, so the suites can run in
any order against one broker.
"""
from __future__ import annotations

import re
import time

from .harness import WAIT, Client, Runner, delete_queues, queue_depth

FIB = {0: 0, 1: 1, 10: 55, 20: 6765, 25: 75025, 30: 832040}

RECEIVED = r"^ \[x\] Received (.*)$"
RECEIVED_TASK = r"^ \[x\] Received '(.*)'$"
DONE = r"^ \[x\] Done$"
LOG = r"^ \[x\] (?!Sent )(.*)$"
ROUTED_LOG = r"^ \[x\] (?!Sent )([^:]*):'(.*)'$"


def texts(matches: list[re.Match]) -> list[str]:
    return [m.group(1) for m in matches]


# --- 1: "Hello World!" --------------------------------------------------------

def hello_world(runner: Runner, sender: Client, receiver: Client) -> None:
    delete_queues(runner.url, "hello")

    # The message waits in the queue until somebody consumes it.
    sent = runner.run(sender, "send")
    assert sent.matches(r"^ \[x\] Sent 'Hello World!'$"), runner.dump()
    assert queue_depth(runner.url, "hello") == 1
    receive = runner.spawn(receiver, "receive", count=1)
    receive.succeed()
    assert texts(receive.matches(RECEIVED)) == ["Hello World!"], runner.dump()

    # A waiting consumer gets messages in publishing order.
    receive = runner.spawn(receiver, "receive", count=2)
    receive.wait_ready()
    runner.run(sender, "send", "first")
    runner.run(sender, "send", "second", "message")
    receive.succeed()
    assert texts(receive.matches(RECEIVED)) == ["first", "second message"], runner.dump()
    assert queue_depth(runner.url, "hello") == 0


# --- 2: work queues -----------------------------------------------------------

def _tasks_by_worker(workers):
    return [texts(worker.matches(RECEIVED_TASK)) for worker in workers]


def _stop_workers(workers, total: int, timeout: float = WAIT) -> None:
    """Wait until the workers have finished `total` tasks, then CTRL+C them."""
    deadline = time.monotonic() + timeout
    while (done := sum(len(w.matches(DONE)) for w in workers)) < total:
        assert time.monotonic() < deadline, (
            f"workers finished {done} of {total} tasks in {timeout:.0f} s\n"
            f"{workers[0].runner.dump()}")
        assert all(w.returncode is None for w in workers), (
            f"a worker exited early\n{workers[0].runner.dump()}")
        time.sleep(0.05)
    # The tutorial workers print "Done" just before they ack. amqplib may put a
    # Connection.Close (sent on CTRL+C) on the wire ahead of channel frames still in its
    # buffers, and any broker, RabbitMQ too, then requeues that last delivery: give the
    # acks time to leave before interrupting.
    time.sleep(0.3)
    for worker in workers:
        worker.interrupt()
    for worker in workers:
        worker.finish()


def work_queues_round_robin(runner: Runner, producer: Client, worker_client: Client) -> None:
    """Two workers with prefetch 1 and one-second tasks share them evenly."""
    delete_queues(runner.url, "task_queue")
    workers = [runner.spawn(worker_client, "worker") for _ in range(2)]
    for worker in workers:
        worker.wait_ready()

    tasks = [f"Task {i}." for i in range(1, 5)]
    for task in tasks:
        runner.run(producer, "new_task", *task.split(" "))
    _stop_workers(workers, len(tasks))

    got = _tasks_by_worker(workers)
    assert sorted(got[0] + got[1]) == sorted(tasks), runner.dump()
    assert [len(g) for g in got] == [2, 2], f"not round-robin: {got}\n{runner.dump()}"
    # Every task was acknowledged: nothing is left, nothing came back.
    assert queue_depth(runner.url, "task_queue") == 0


def work_queues_fair_dispatch(runner: Runner, producer: Client, worker_client: Client) -> None:
    """prefetch 1: while one worker is busy with a heavy task, the other gets
    every light task."""
    delete_queues(runner.url, "task_queue")
    workers = [runner.spawn(worker_client, "worker") for _ in range(2)]
    for worker in workers:
        worker.wait_ready()

    runner.run(producer, "new_task", "Heavy", "task...")
    light = [f"Light task {i}" for i in range(1, 4)]
    for task in light:
        runner.run(producer, "new_task", *task.split(" "))
    _stop_workers(workers, 1 + len(light))

    got = _tasks_by_worker(workers)
    heavy_worker = 0 if "Heavy task..." in got[0] else 1
    assert got[heavy_worker] == ["Heavy task..."], f"{got}\n{runner.dump()}"
    assert got[1 - heavy_worker] == light, f"{got}\n{runner.dump()}"
    assert queue_depth(runner.url, "task_queue") == 0


def work_queues_durable_backlog(runner: Runner, producer: Client, worker_client: Client) -> None:
    """Tasks published with no worker running wait in the durable queue; a
    worker started later processes all of them in order."""
    delete_queues(runner.url, "task_queue")
    tasks = ["First message.", "Second message", "Third message", "Fourth message"]
    for task in tasks:
        runner.run(producer, "new_task", *task.split(" "))
    assert queue_depth(runner.url, "task_queue") == len(tasks)
    worker = runner.spawn(worker_client, "worker", count=len(tasks))
    worker.succeed()
    assert texts(worker.matches(RECEIVED_TASK)) == tasks, runner.dump()
    assert queue_depth(runner.url, "task_queue") == 0


# --- 3: publish/subscribe -----------------------------------------------------

def publish_subscribe(runner: Runner, emitter: Client, receiver: Client) -> None:
    messages = ["info: one", "warning: two", "error: three"]
    receivers = [runner.spawn(receiver, "receive_logs", count=len(messages)) for _ in range(2)]
    for proc in receivers:
        proc.wait_ready()
    # Each receiver has its own exclusive, server-named queue.
    names = [proc.wait_for(r"Waiting for logs in (\S+)\.")[0].group(1) for proc in receivers]
    assert names[0] != names[1]
    for message in messages:
        runner.run(emitter, "emit_log", *message.split(" "))
    for proc in receivers:
        proc.succeed()
        assert texts(proc.matches(LOG)) == messages, runner.dump()
    # Exclusive queues go away with their connection.
    for name in names:
        deadline = time.monotonic() + 5
        while queue_depth(runner.url, name) is not None:
            assert time.monotonic() < deadline, f"exclusive queue {name} outlived its connection"
            time.sleep(0.05)


# --- 4: routing ---------------------------------------------------------------

def routing(runner: Runner, emitter: Client, receiver: Client) -> None:
    # The last message of each receiver's expected list is published last, so
    # a misrouted message would show up before it (per-queue FIFO).
    bad = runner.spawn(receiver, "receive_logs_direct", "warning", "error", count=3)
    info = runner.spawn(receiver, "receive_logs_direct", "info", count=2)
    everything = runner.spawn(receiver, "receive_logs_direct", "info", "warning", "error",
                              "debug", count=6)
    for proc in (bad, info, everything):
        proc.wait_ready()
    sent = [("debug", "d1"), ("info", "i1"), ("warning", "w1"), ("error", "e1"),
            ("info", "i-last"), ("error", "e-last")]
    for severity, text in sent:
        runner.run(emitter, "emit_log_direct", severity, text)
    for proc in (bad, info, everything):
        proc.succeed()
    got = {name: [(m.group(1), m.group(2)) for m in proc.matches(ROUTED_LOG)]
           for name, proc in (("bad", bad), ("info", info), ("all", everything))}
    assert got == {
        "bad": [("warning", "w1"), ("error", "e1"), ("error", "e-last")],
        "info": [("info", "i1"), ("info", "i-last")],
        "all": sent,
    }, runner.dump()


# --- 5: topics ----------------------------------------------------------------

TOPIC_BINDINGS = {
    "all": ["#"],
    "kern": ["kern.*"],
    "critical": ["*.critical"],
    "kern_or_critical": ["kern.*", "*.critical"],
    "lazy": ["lazy.#", "*.*.rabbit"],
    "orange": ["*.orange.*"],
}
# Routing keys in publishing order; "kern.critical" comes last and goes to the
# first four receivers, "lazy.orange.rabbit" to the last two.
TOPIC_KEYS = ["anonymous.info", "kern.info", "auth.critical", "a.b.critical", "kern",
              "kern.a.b", "quick.orange.rabbit", "lazy", "lazy.pink.rabbit",
              "quick.brown.fox", "quick.orange.male.rabbit", "orange", "",
              "lazy.orange.rabbit", "kern.critical"]


def _topic_matches(binding: str, key: str) -> bool:
    """Reference matcher: '*' is exactly one word, '#' zero or more words."""
    def match(b: list[str], k: list[str]) -> bool:
        if not b:
            return not k
        if b[0] == "#":
            return any(match(b[1:], k[i:]) for i in range(len(k) + 1))
        return bool(k) and (b[0] == "*" or b[0] == k[0]) and match(b[1:], k[1:])
    return match(binding.split("."), key.split(".") if key else [])


def topics(runner: Runner, emitter: Client, receiver: Client) -> None:
    expected = {
        name: [key for key in TOPIC_KEYS if any(_topic_matches(b, key) for b in bindings)]
        for name, bindings in TOPIC_BINDINGS.items()
    }
    # Sanity-check the reference against the tutorial's own examples.
    assert expected["orange"] == ["quick.orange.rabbit", "lazy.orange.rabbit"]
    assert expected["lazy"] == ["quick.orange.rabbit", "lazy", "lazy.pink.rabbit",
                                "lazy.orange.rabbit"]
    assert expected["all"] == TOPIC_KEYS
    assert expected["kern"] == ["kern.info", "kern.critical"]

    procs = {name: runner.spawn(receiver, "receive_logs_topic", *bindings,
                                count=len(expected[name]))
             for name, bindings in TOPIC_BINDINGS.items()}
    for proc in procs.values():
        proc.wait_ready()
    for key in TOPIC_KEYS:
        runner.run(emitter, "emit_log_topic", key, f"msg-{key or 'empty'}")
    for name, proc in procs.items():
        proc.succeed()
        got = [(m.group(1), m.group(2)) for m in proc.matches(ROUTED_LOG)]
        want = [(key, f"msg-{key or 'empty'}") for key in expected[name]]
        assert got == want, f"{name} {TOPIC_BINDINGS[name]}\n{runner.dump()}"


# --- 6: RPC -------------------------------------------------------------------

def rpc(runner: Runner, client: Client, server_client: Client,
        program: str = "rpc_client") -> None:
    delete_queues(runner.url, "rpc_queue")
    server = runner.spawn(server_client, "rpc_server", count=3)
    server.wait_ready()

    call = runner.run(client, program, "30")
    assert call.matches(r"^ \[x\] Requesting fib\(30\)$"), runner.dump()
    assert texts(call.matches(r"^ \[\.\] Got (\d+)$")) == [str(FIB[30])], runner.dump()

    # Concurrent callers each get their own answer (correlation id + reply_to).
    calls = {n: runner.spawn(client, program, str(n)) for n in (10, 20)}
    for n, proc in calls.items():
        proc.succeed()
        assert texts(proc.matches(r"^ \[\.\] Got (\d+)$")) == [str(FIB[n])], runner.dump()

    server.succeed()
    assert sorted(texts(server.matches(r"^ \[\.\] fib\((\d+)\)$"))) == ["10", "20", "30"]
    assert queue_depth(runner.url, "rpc_queue") == 0


# --- 7: publisher confirms ----------------------------------------------------

CONFIRMS = re.compile(
    r"^Published (\d+) messages (individually|in batch|and handled confirms asynchronously) "
    r"in (\d+) ms \((\d+) acked, (\d+) nacked, (\d+) in queue\)$")


def publisher_confirms(runner: Runner, client: Client, count: int = 500) -> None:
    proc = runner.run(client, "publisher_confirms", env={"MESSAGE_COUNT": str(count)},
                      timeout=60)
    results = {m.group(2): m for line in proc.stdout if (m := CONFIRMS.match(line))}
    assert list(results) == ["individually", "in batch",
                             "and handled confirms asynchronously"], runner.dump()
    for strategy, m in results.items():
        published, acked, nacked, depth = (int(m.group(i)) for i in (1, 4, 5, 6))
        assert (published, acked, nacked, depth) == (count, count, 0, count), (
            f"{strategy}\n{runner.dump()}")
