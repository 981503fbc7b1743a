"""TopicMatcher: RabbitMQ topic semantics, checked against a regex reference."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amqpbroker.model.topic import TopicMatcher, split_words


def ref_words(key: str) -> list[str]:
    # RabbitMQ (rabbit_db_topic_exchange:split_topic_key) gives "" no words.
    return [] if key == "" else key.split(".")


def ref_matches(pattern: str, routing_key: str) -> bool:
    """Reference matcher: each word becomes "/word"; "*" and "#" become regexes."""
    regex = "".join(
        "(?:/[^/]*)*" if w == "#" else "/[^/]*" if w == "*" else re.escape("/" + w)
        for w in ref_words(pattern)
    )
    subject = "".join("/" + w for w in ref_words(routing_key))
    return re.fullmatch(regex, subject) is not None


def matches(pattern: str, routing_key: str) -> bool:
    m = TopicMatcher()
    m.add(pattern, "q")
    return m.match(routing_key) == ("q",)


@pytest.mark.parametrize(
    "pattern, key",
    [
        ("stock.usd.nyse", "stock.usd.nyse"),
        ("*.orange.*", "quick.orange.rabbit"),
        ("*.*.rabbit", "lazy.pink.rabbit"),
        ("lazy.#", "lazy"),
        ("lazy.#", "lazy.brown.fox"),
        ("#", "a.b.c"),
        ("#", ""),
        ("#.#", ""),
        ("", ""),
        ("*", "a"),
        ("*", "*"),
        ("*", "#"),
        ("#", "."),
        ("a.*.b", "a..b"),
        ("*.*.*", "a..b"),
        ("a.#.b", "a.b"),
        ("a.#.b", "a..b"),
        ("a.#.b", "a.x.y.z.b"),
        ("#.a", "a"),
        ("a.#", "a."),
        ("*.", "a."),
        ("a*", "a*"),
        ("#a", "#a"),
        ("a.#.#.b", "a.b"),
        ("#.*", "a"),
        ("*.#.*", "a.b"),
    ],
)
def test_matches(pattern: str, key: str) -> None:
    assert matches(pattern, key)
    assert ref_matches(pattern, key)


@pytest.mark.parametrize(
    "pattern, key",
    [
        ("*.orange.*", "orange"),
        ("*.orange.*", "a.orange.b.c"),
        ("lazy.#", "lazy_fox"),
        ("lazy.#", "a.lazy"),
        ("*", ""),  # the empty key has zero words
        ("", "a"),
        ("", "."),
        ("*", "a.b"),
        ("*", "."),
        ("a", "*"),  # a "*" in a routing key is just a word
        ("a", "#"),
        ("a*", "ab"),
        ("#a", "xa"),
        ("a.*.b", "a.b"),
        ("a..b", "a.b"),
        ("#.*", ""),
        ("*.#.*", "a"),
        ("a.#", "b.a"),
    ],
)
def test_does_not_match(pattern: str, key: str) -> None:
    assert not matches(pattern, key)
    assert not ref_matches(pattern, key)


def test_split_words_like_rabbitmq() -> None:
    assert split_words("") == []
    assert split_words("a") == ["a"]
    assert split_words("a..b") == ["a", "", "b"]
    assert split_words(".") == ["", ""]


def test_add_remove_len() -> None:
    m = TopicMatcher()
    assert len(m) == 0
    assert m.add("a.*", "q1")
    assert not m.add("a.*", "q1")
    assert m.add("a.*", "q2")
    assert m.add("#", "q1")
    assert len(m) == 3
    assert set(m.match("a.b")) == {"q1", "q2"}
    assert m.remove("a.*", "q1")
    assert not m.remove("a.*", "q1")
    assert not m.remove("a.b", "q2")
    assert not m.remove("a.*.c", "q2")
    assert len(m) == 2
    assert set(m.match("a.b")) == {"q1", "q2"}
    assert m.remove("#", "q1")
    assert m.match("a.b") == ("q2",)
    assert sorted(m) == [("a.*", "q2")]


def test_each_destination_once() -> None:
    m = TopicMatcher()
    for pattern in ("#", "a.#", "*.b", "a.b", "#.b", "#.#"):
        m.add(pattern, "q")
    assert m.match("a.b") == ("q",)


def test_remove_prunes_trie() -> None:
    m = TopicMatcher()
    patterns = ["a.b.c", "a.*.#", "#.x", "a.#.#", "", "*"]
    for p in patterns:
        m.add(p, "q")
    for p in patterns:
        assert m.remove(p, "q")
    root = m._root
    assert root.is_empty()
    assert list(m) == []


def test_cache_is_invalidated_on_add_and_remove() -> None:
    m = TopicMatcher()
    assert m.match("a.b") == ()
    m.add("a.*", "q")
    assert m.match("a.b") == ("q",)
    m.add("#", "r")
    assert set(m.match("a.b")) == {"q", "r"}
    m.remove("a.*", "q")
    assert m.match("a.b") == ("r",)
    m.remove("#", "r")
    assert m.match("a.b") == ()


def test_cache_is_bounded() -> None:
    m = TopicMatcher(cache_size=8)
    m.add("#", "q")
    for i in range(100):
        assert m.match(f"k.{i}") == ("q",)
        assert len(m._cache) <= 8


def test_many_hashes_do_not_blow_up() -> None:
    # Naive backtracking over 25 "#" against 40 words is astronomically slow;
    # the state-set walk visits each (node, word) pair once.
    m = TopicMatcher()
    m.add(".".join(["#"] * 25 + ["x"]), "q")
    m.add(".".join(["#", "a"] * 12), "r")
    key = ".".join(["a"] * 40)
    assert m.match(key) == ("r",)
    assert m.match(key + ".x") == ("q",)


def test_thousand_bindings() -> None:
    m = TopicMatcher()
    for n in range(250):
        m.add(f"a.*.c.{n}", ("star-middle", n))
        m.add(f"#.{n}", ("hash-prefix", n))
        m.add(f"*.b.*.{n}", ("star-b-star", n))
        m.add(f"{n}.#.z", ("n-hash-z", n))
    assert len(m) == 1000
    for n in (0, 7, 249):
        assert set(m.match(f"a.b.c.{n}")) == {
            ("star-middle", n),
            ("hash-prefix", n),
            ("star-b-star", n),
        }
    assert set(m.match("5.z")) == {("n-hash-z", 5)}
    assert set(m.match("5.q.r.z")) == {("n-hash-z", 5)}
    assert m.match("a.b.c.250") == ()


# --------------------------------------------------------------- property tests

KEY_WORDS = st.sampled_from(["a", "b", "c", ""])
PATTERN_WORDS = st.sampled_from(["a", "b", "c", "", "*", "#"])
KEYS = st.lists(KEY_WORDS, max_size=6).map(".".join)
PATTERNS = st.lists(PATTERN_WORDS, max_size=6).map(".".join)
PROPERTY_SETTINGS = settings(max_examples=400, deadline=None, database=None)


def expected(bindings: set[tuple[str, int]], key: str) -> set[int]:
    return {dest for pattern, dest in bindings if ref_matches(pattern, key)}


def check(m: TopicMatcher, bindings: set[tuple[str, int]], keys: list[str]) -> None:
    assert len(m) == len(bindings)
    for key in keys:
        got = m.match(key)
        assert len(got) == len(set(got)), "a destination came back twice"
        assert set(got) == expected(bindings, key), key


@PROPERTY_SETTINGS
@given(
    st.lists(st.tuples(PATTERNS, st.integers(0, 4)), max_size=12),
    st.lists(KEYS, min_size=1, max_size=10),
)
def test_trie_agrees_with_regex_reference(
    bindings: list[tuple[str, int]], keys: list[str]
) -> None:
    m = TopicMatcher()
    added: set[tuple[str, int]] = set()
    for pattern, dest in bindings:
        assert m.add(pattern, dest) == ((pattern, dest) not in added)
        added.add((pattern, dest))
    check(m, added, keys)
    check(m, added, keys)  # again, now answered from the cache


@PROPERTY_SETTINGS
@given(
    st.lists(st.tuples(PATTERNS, st.integers(0, 4)), max_size=12, unique=True),
    st.lists(st.booleans(), min_size=12, max_size=12),
    st.lists(KEYS, min_size=1, max_size=10),
)
def test_trie_agrees_after_removals(
    bindings: list[tuple[str, int]], drop: list[bool], keys: list[str]
) -> None:
    m = TopicMatcher()
    for pattern, dest in bindings:
        m.add(pattern, dest)
    check(m, set(bindings), keys)  # fills the cache, which removals must drop
    kept = set()
    for (pattern, dest), gone in zip(bindings, drop):
        if gone:
            assert m.remove(pattern, dest)
        else:
            kept.add((pattern, dest))
    check(m, kept, keys)
    assert sorted(m) == sorted(kept)


def test_a_full_cache_starts_over_and_keeps_answering_right() -> None:
    """Cold keys (never repeating) fill the cache, which is then emptied, not evicted from
    one entry at a time (skipping the deleted slots of a FIFO dict cost 3.7 us each)."""
    m = TopicMatcher(cache_size=4)
    m.add("a.*", "q1")
    m.add("#.z", "q2")
    sizes = []
    for i in range(10):
        assert m.match(f"a.{i}") == ("q1",)
        sizes.append(len(m._cache))
    assert sizes == [1, 2, 3, 4, 1, 2, 3, 4, 1, 2]
    assert set(m.match("a.z")) == {"q1", "q2"}
