"""`KeyIndex` against a dictionary: the same answers under any sequence of operations, with the
batch lookup in numpy and in the compiled extension (which `make install` builds)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.engine import compiled_loops
from consumer.engine.key_index import KeyIndex

# Short keys from a small alphabet collide often on prefixes; NUL, multi-byte characters and
# lengths around word boundaries are where a byte layout goes wrong.
_KEYS = st.text(alphabet=["a", "b", "\x00", "é", "中", "😀"], min_size=1, max_size=9)
_OPS = st.lists(
    st.tuples(
        st.sampled_from(["insert", "add", "claim", "remove", "discard", "expect", "fit"]),
        st.lists(_KEYS, max_size=40),
    ),
    max_size=40,
)
# Both lookups are tested wherever the tests run: the extension missing fails the native half.
_NATIVE = pytest.mark.parametrize("native", [False, True], ids=["numpy", "native"])


class _Model:
    """The index and a dict side by side, with a pool of free slots."""

    def __init__(self, index: KeyIndex) -> None:
        self.index = index
        self.expected: dict[str, int] = {}
        self.free = list(range(index.capacity))[::-1]

    def take(self, n: int) -> list[int]:
        while len(self.free) < n:
            old = self.index.capacity
            self.index.resize(max(2 * old, 8))
            self.free[:0] = range(self.index.capacity - 1, old - 1, -1)
        return [self.free.pop() for _ in range(n)]

    def apply(self, op: str, keys: list[str]) -> None:
        if op == "expect":
            self.index.expect(len(keys) * 50)
        elif op == "fit":
            self.index.fit()
        elif op == "claim":  # known keys keep their slots, new ones take slots in order
            distinct = list(dict.fromkeys(keys))
            taken: list[int] = []

            def take(n: int) -> np.ndarray:
                taken.extend(self.take(n))
                return np.asarray(taken[-n:], np.intp)

            got = self.index.lookup_or_insert(distinct, take).tolist()
            new = [k for k in distinct if k not in self.expected]
            self.expected.update(zip(new, taken, strict=True))
            assert got == [self.expected[k] for k in distinct]
        elif op in ("insert", "add"):
            new = [k for k in dict.fromkeys(keys) if k not in self.expected]
            slots = self.take(len(new))
            if op == "insert":
                self.index.insert(new, np.asarray(slots, np.intp))
            else:
                for key, slot in zip(new, slots, strict=True):
                    self.index.add(key, slot)
            self.expected.update(zip(new, slots, strict=True))
        else:
            gone = [k for k in dict.fromkeys(keys) if k in self.expected]
            if op == "remove":
                self.index.remove(np.asarray([self.expected[k] for k in gone], np.intp))
            else:
                assert [self.index.discard(k) for k in gone] == [self.expected[k] for k in gone]
            for key in gone:
                self.free.append(self.expected.pop(key))

    def check(self, probes: list[str]) -> None:
        keys = [*self.expected, *probes]
        assert self.index.lookup(keys).tolist() == [self.expected.get(k, -1) for k in keys]
        assert [self.index.get(k) for k in keys] == [self.expected.get(k) for k in keys]
        assert len(self.index) == len(self.expected)
        assert sorted(self.index.slots().tolist()) == sorted(self.expected.values())
        for key, slot in self.expected.items():
            assert self.index.key_of(slot) == key


def _collide(index: KeyIndex) -> KeyIndex:
    """Every key hashed to the same bucket with the same hash bits: only bytes tell them apart."""
    index._seeds[:] = 0
    index._seed_ints = [0] * len(index._seed_ints)
    return index


@_NATIVE
@settings(max_examples=150, deadline=None)
@given(_OPS, st.lists(_KEYS, max_size=20))
def test_answers_as_a_dictionary_does(
    native: bool, ops: list[tuple[str, list[str]]], probes: list[str]
) -> None:
    model = _Model(KeyIndex(4, seed=1, native=native))
    for op, keys in ops:
        model.apply(op, keys)
        model.check(probes)


@_NATIVE
@settings(max_examples=60, deadline=None)
@given(_OPS, st.lists(_KEYS, max_size=20))
def test_keys_whose_hashes_all_collide_are_told_apart(
    native: bool, ops: list[tuple[str, list[str]]], probes: list[str]
) -> None:
    model = _Model(_collide(KeyIndex(4, seed=1, native=native)))
    for op, keys in ops:
        model.apply(op, keys)
        model.check(probes)


@_NATIVE
def test_many_keys_churned_grow_rebuild_and_compact(native: bool) -> None:
    """Enough keys to rebuild the buckets several times and compact the arena, with keys of
    every length up to the longest allowed."""
    rng = np.random.default_rng(5)
    model = _Model(KeyIndex(0, seed=2, native=native))
    names = [f"k{i}-" + "x" * int(rng.integers(0, 60)) for i in range(30_000)]
    model.apply("insert", names)
    longest = ["L" * n for n in (254, 255, 256, 65_535)]
    model.apply("insert", longest)
    names += longest
    model.check(["nope", "k1", "x" * 8])
    model.apply("remove", names[::2])
    model.apply("insert", [f"again-{i}" for i in range(20_000)])
    model.apply("discard", names[1:200:2])
    model.check(names[:100])
    assert model.index._garbage < model.index._end  # compacted at least once along the way


@_NATIVE
def test_a_batch_of_long_odd_and_absent_keys(native: bool) -> None:
    """Keys longer than any the seeds were drawn for, past the longest a slot can hold, given
    as a tuple, and in batches small and large: found or -1, as the dictionary says."""
    index = KeyIndex(8, seed=3, native=native)
    known = ["a", "b" * 300, "c" * 65_535, "é" * 3]
    index.insert(known, np.arange(4))
    probes = (*known, "x" * 70_000, "b" * 299, "c" * 65_534 + "d", "é" * 2 + "e")
    assert index.lookup(probes).tolist() == [0, 1, 2, 3, -1, -1, -1, -1]
    many = [f"absent-{i}" for i in range(100)] + ["b" * 300]
    assert index.lookup(many).tolist() == [-1] * 100 + [1]


def test_the_extension_names_a_key_that_is_not_text() -> None:
    index = KeyIndex(4, native=True)
    index.add("a", 0)
    with pytest.raises(TypeError, match="key 1 is bytes, not str"):
        index.lookup(["a", b"a"] * 10)  # type: ignore[list-item]
    with pytest.raises(UnicodeEncodeError):
        index.lookup(["a", "\ud800"] * 10)


def test_the_extension_is_built_where_the_tests_run() -> None:
    assert compiled_loops.BUILT, "consumer.engine._batch_loops is missing: run make install"
    assert KeyIndex(1).native


def test_refuses_keys_it_cannot_hold() -> None:
    index = KeyIndex(4)
    with pytest.raises(ValueError, match="1 to 65535 bytes"):
        index.insert([""], np.array([0]))
    with pytest.raises(ValueError, match="1 to 65535 bytes"):
        index.add("x" * 65_536, 0)
    index.add("a", 1)
    with pytest.raises(ValueError, match="holds a key"):
        index.add("b", 1)
    with pytest.raises(ValueError, match="past the capacity"):
        index.insert(["c"], np.array([4]))
    with pytest.raises(ValueError, match="past the new capacity"):
        index.resize(1)
    assert index.get("") is None
