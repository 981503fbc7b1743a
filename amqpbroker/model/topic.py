"""Topic-pattern matching for the topic exchange.

A routing key and a binding pattern are both lists of *words* separated by
``.`` (AMQP 0-9-1 spec 3.1.3.3; https://www.rabbitmq.com/tutorials/tutorial-five-python).
In a pattern, a word that is exactly ``*`` matches exactly one word and a word
that is exactly ``#`` matches zero or more words; every other word, including
``a*`` or ``#b``, is compared literally. Words may be empty.

Splitting follows RabbitMQ's ``split_topic_key`` (rabbit_db_topic_exchange.erl):
the empty string has *zero* words, otherwise ``s.split(".")``. So ``"a..b"``
has three words (``a``, ``""``, ``b``), ``"."`` has two empty words and ``""``
has none.

Valid patterns (any string is valid; these are typical):
    ``"stock.usd.nyse"``, ``"*.orange.*"``, ``"lazy.#"``, ``"#"``, ``"#.err.#"``, ``""``

Matching / non-matching examples:
    ``"*.orange.*"``  matches ``"quick.orange.rabbit"``; not ``"orange"``, ``"a.orange.b.c"``
    ``"lazy.#"``      matches ``"lazy"``, ``"lazy.brown.fox"``; not ``"lazy_fox"``, ``"a.lazy"``
    ``"#"``           matches every key, including ``""``
    ``""``            matches only ``""``
    ``"*"``           matches any one-word key, e.g. ``"a"``; not ``""`` (zero words),
                      not ``"a.b"``
    ``"a.*.b"``       matches ``"a..b"`` (the middle word is empty)
    ``"a*"``          matches only ``"a*"`` (no partial-word wildcards)
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator

__all__ = ["TopicMatcher", "split_words"]

# Default bound on the routing-key -> result cache. Publishers tend to reuse a
# small set of routing keys, so a few thousand entries catch nearly all traffic.
DEFAULT_CACHE_SIZE = 4096

_EMPTY: tuple = ()


def split_words(key: str) -> list[str]:
    """Split a routing key or pattern into words the way RabbitMQ does."""
    # rabbit_db_topic_exchange:split_topic_key/1 maps <<>> to [] (no words);
    # str.split would give [""], i.e. one empty word, which would let "*"
    # match the empty routing key -- RabbitMQ does not.
    return key.split(".") if key else []


class _Node:
    """One trie node: the state reached after consuming a prefix of a pattern."""

    __slots__ = ("words", "star", "hash", "is_hash", "dests")

    def __init__(self, is_hash: bool = False) -> None:
        self.words: dict[str, _Node] = {}  # literal-word children
        self.star: _Node | None = None  # child for a "*" pattern word
        self.hash: _Node | None = None  # child for a "#" pattern word
        # A node reached through a "#" edge may swallow further words, so
        # during matching it loops on itself.
        self.is_hash = is_hash
        # Destinations of patterns ending here; a dict acts as an ordered set
        # so results come out in a stable (insertion) order.
        self.dests: dict[Hashable, None] = {}

    def is_empty(self) -> bool:
        return not (self.dests or self.words or self.star or self.hash)


class TopicMatcher:
    """A set of (pattern, destination) bindings, queried by routing key.

    ``match`` walks a trie of pattern words as an NFA: the set of live nodes is
    advanced one routing-key word at a time, so each (node, position) pair is
    visited at most once however many ``#`` a pattern holds (the state set is
    the memo; no backtracking, no exponential blow-up). Results are cached per
    routing key and the cache is dropped whenever the bindings change.
    """

    __slots__ = ("_root", "_count", "_cache", "_cache_size")

    def __init__(self, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self._root = _Node()
        self._count = 0
        self._cache: dict[str, tuple] = {}
        self._cache_size = cache_size

    def __len__(self) -> int:
        return self._count

    # ------------------------------------------------------------------ edits

    def add(self, pattern: str, dest: Hashable) -> bool:
        """Add a binding; False if this exact (pattern, dest) is already present."""
        node = self._root
        for word in split_words(pattern):
            node = _child_or_create(node, word)
        if dest in node.dests:
            return False
        node.dests[dest] = None
        self._count += 1
        self._cache.clear()
        return True

    def remove(self, pattern: str, dest: Hashable) -> bool:
        """Remove a binding; False if it was not present."""
        path = self._find_path(pattern)
        if path is None:
            return False
        node = path[-1][2] if path else self._root
        if dest not in node.dests:
            return False
        del node.dests[dest]
        self._count -= 1
        self._cache.clear()
        _prune(path)
        return True

    def _find_path(self, pattern: str) -> list[tuple[_Node, str, _Node]] | None:
        """The (parent, word, child) edges spelling *pattern*, or None."""
        path: list[tuple[_Node, str, _Node]] = []
        node = self._root
        for word in split_words(pattern):
            child = _child(node, word)
            if child is None:
                return None
            path.append((node, word, child))
            node = child
        return path

    # --------------------------------------------------------------- matching

    def match(self, routing_key: str) -> tuple:
        """Destinations whose pattern matches *routing_key*, each once."""
        result = self._cache.get(routing_key)
        if result is None:
            result = self._search(routing_key)
            cache = self._cache
            if len(cache) >= self._cache_size:
                # Full: start over. Evicting the oldest entry instead (del of
                # next(iter(cache))) made every eviction skip the slots deleted
                # before it: 3.7 us per publish once the keys stopped repeating
                # (1M distinct keys, the scale benchmark's cold routing).
                cache.clear()
            cache[routing_key] = result
        return result

    def _search(self, routing_key: str) -> tuple:
        states = _with_hash_chain({}, self._root)
        for word in split_words(routing_key):
            states = _step(states, word)
            if not states:
                return _EMPTY
        found: dict[Hashable, None] = {}
        for node in states:
            if node.dests:
                found.update(node.dests)
        return tuple(found) if found else _EMPTY

    def __iter__(self) -> Iterator[tuple[str, Hashable]]:
        """All (pattern, dest) bindings, for debugging and tests."""
        yield from _walk(self._root, [])


# ---------------------------------------------------------------- helpers


def _step(states: dict[_Node, None], word: str) -> dict[_Node, None]:
    """Advance every live node over one routing-key word."""
    nxt: dict[_Node, None] = {}
    for node in states:
        if node.is_hash:
            # "#" can eat this word too; its own "#"-chain is already live
            # and is made of hash nodes, which loop the same way.
            nxt[node] = None
        child = node.words.get(word)
        if child is not None:
            _with_hash_chain(nxt, child)
        child = node.star
        if child is not None:
            _with_hash_chain(nxt, child)
    return nxt


def _with_hash_chain(states: dict[_Node, None], node: _Node | None) -> dict[_Node, None]:
    """Add *node* and the nodes reachable from it by "#" matching zero words."""
    while node is not None and node not in states:
        states[node] = None
        node = node.hash
    return states


def _child(node: _Node, word: str) -> _Node | None:
    if word == "*":
        return node.star
    if word == "#":
        return node.hash
    return node.words.get(word)


def _child_or_create(node: _Node, word: str) -> _Node:
    child = _child(node, word)
    if child is not None:
        return child
    if word == "*":
        child = node.star = _Node()
    elif word == "#":
        child = node.hash = _Node(is_hash=True)
    else:
        child = node.words[word] = _Node()
    return child


def _prune(path: list[tuple[_Node, str, _Node]]) -> None:
    """Detach nodes left empty by a removal, deepest first, so memory and
    match time do not keep paying for patterns that are gone."""
    for parent, word, child in reversed(path):
        if not child.is_empty():
            return
        if word == "*":
            parent.star = None
        elif word == "#":
            parent.hash = None
        else:
            del parent.words[word]


def _walk(node: _Node, prefix: list[str]) -> Iterator[tuple[str, Hashable]]:
    pattern = ".".join(prefix)
    for dest in node.dests:
        yield pattern, dest
    for word, child in node.words.items():
        yield from _walk(child, prefix + [word])
    if node.star is not None:
        yield from _walk(node.star, prefix + ["*"])
    if node.hash is not None:
        yield from _walk(node.hash, prefix + ["#"])
