"""Key -> slot for the state table, in numpy arrays instead of a Python dictionary.

A dictionary of a million string keys costs about 130 bytes a key beyond the keys' state: the
string object, an int object for the slot, the dictionary's entry and index, and the slot's entry
in a list back to its key. Here a key is its UTF-8 bytes in an arena of 32-bit words (a start
and a length per slot) and the index is an open-addressing table (linear probing, at most 60 %
full) whose entries hold a slot number and 31 bits of its key's hash: under 40 bytes a key. A
micro-batch's keys are looked up at once with whole-array numpy calls: hashed, a window of
entries read from each one's bucket, and the key's bytes compared with those of the first entry
whose hash bits match, so no two keys are ever confused, whatever their hashes.

The hash is multilinear over the key's 32-bit words with 64-bit seeds drawn at random per process
(`h = s + n * t + sum(w[i] * u[i])`, the bucket from its top bits): keys chosen to collide on one
process's table do not collide on another's, as with Python's own string hashing.

Where the optional C extension is built (`consumer.engine.compiled_loops`), a batch's lookup is
one call of it over the same arrays: about a fifth of the numpy rounds' time, and no memory of its
own. The numpy rounds stay the reference; `KeyIndex(native=False)` uses them whatever is built.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from consumer.engine import compiled_loops
from consumer.engine.mapped_arrays import anonymous_zeros

if compiled_loops.BUILT:
    from consumer.engine import _batch_loops

# An entry: a key's hash bits (`_print`) above its slot number; never negative. Or:
_EMPTY = -1
_TOMBSTONE = -2  # a removed entry: probes go on past it
_SLOT_BITS = 32
_SLOT_MASK = 0xFFFF_FFFF
_PRINT_MASK = 0x7FFF_FFFF
_WINDOW = 8  # entries read at once for each key in a batch: one cache line
_FEW = 16  # keys left after a round that are looked up one by one
_WIDE = 256  # characters: keys longer than this are handled one at a time (rows are padded)
_MIN_BUCKETS = 1024
_MAX_KEY_LENGTH = 2**16 - 1  # lengths are stored as uint16
_CHUNK_WORDS = 1 << 22  # padded words of keys handled at once when rebuilding or compacting
_U64 = np.uint64
_WORD = np.dtype("<u4")  # as `_hash_one` reads them, whatever the machine's byte order

Slots = npt.NDArray[np.intp]
Words = npt.NDArray[np.uint32]
Lengths = npt.NDArray[np.int64]


class KeyIndex:
    """Distinct string keys, each at a slot number below `capacity`. One owner, no threads."""

    def __init__(
        self, capacity: int = 0, *, seed: int | None = None, native: bool | None = None
    ) -> None:
        self.native = compiled_loops.choose(native)
        self._rng = np.random.default_rng(
            seed if seed is not None else int.from_bytes(os.urandom(8))
        )
        self._seeds = self._rng.integers(0, 2**64, 2 + 64, dtype=_U64)
        self._seed_ints = [int(s) for s in self._seeds]
        self._buckets = _empty_buckets(_MIN_BUCKETS)
        self._shift = 64 - (_MIN_BUCKETS.bit_length() - 1)
        self._used = 0  # live entries
        self._tombstones = 0
        self._start = anonymous_zeros((capacity,), np.dtype(np.uint32))  # in words
        self._length = anonymous_zeros((capacity,), np.dtype(np.uint16))  # 0: no key
        self._arena = anonymous_zeros((1024,), _WORD)  # zero past each key's bytes
        self._end = 0  # words written
        self._garbage = 0  # words of removed keys

    def __len__(self) -> int:
        return self._used

    @property
    def capacity(self) -> int:
        return len(self._start)

    def nbytes(self) -> int:
        return self._buckets.nbytes + self._start.nbytes + self._length.nbytes + self._arena.nbytes

    def resize(self, capacity: int) -> None:
        """Room for slots below `capacity` (none past it may hold a key)."""
        keep = min(capacity, len(self._start))
        if np.count_nonzero(self._length[keep:]):
            raise ValueError("a slot past the new capacity holds a key")
        start = anonymous_zeros((capacity,), np.dtype(np.uint32))
        length = anonymous_zeros((capacity,), np.dtype(np.uint16))
        start[:keep] = self._start[:keep]
        length[:keep] = self._length[:keep]
        self._start, self._length = start, length

    def slots(self) -> Slots:
        """Every slot holding a key, in slot order."""
        return np.flatnonzero(self._length)

    def key_of(self, slot: int) -> str | None:
        n = int(self._length[slot])
        if not n:
            return None
        at = int(self._start[slot])
        return self._arena[at : at + -(-n // 4)].tobytes()[:n].decode()

    def raw_keys(self, slots: Slots) -> list[bytes]:
        """The UTF-8 bytes of the keys at these slots (each must hold one)."""
        if np.count_nonzero(self._length[slots] == 0):
            raise KeyError("a slot given holds no key")
        keys: list[bytes] = []
        for chunk in self._chunks(len(slots)):
            words, lengths = self._keys_at(slots[chunk])
            width = words.shape[1] * 4
            flat = words.tobytes()
            keys += [flat[i * width : i * width + n] for i, n in enumerate(lengths.tolist())]
        return keys

    # -- one key ---------------------------------------------------------------------------

    def get(self, key: str) -> int | None:
        raw = key.encode()
        n = len(raw)
        if not 0 < n <= _MAX_KEY_LENGTH:
            return None
        padded = raw + bytes(-n % 4)
        h = self._hash_one(padded, n)
        pos, wanted = h >> self._shift, _print(h)
        mask = len(self._buckets) - 1
        buckets, start, length, arena = self._buckets, self._start, self._length, self._arena
        words = len(padded) // 4
        while True:
            entry = int(buckets[pos])
            if entry == _EMPTY:
                return None
            if entry >= 0 and entry >> _SLOT_BITS == wanted:
                slot = entry & _SLOT_MASK
                at = int(start[slot])
                if int(length[slot]) == n and arena[at : at + words].tobytes() == padded:
                    return slot
            pos = (pos + 1) & mask

    def add(self, key: str, slot: int) -> None:
        """Index one key that has no slot yet, at this free slot."""
        raw = key.encode()
        n = len(raw)
        if not 0 < n <= _MAX_KEY_LENGTH:
            raise ValueError(f"a key must be 1 to {_MAX_KEY_LENGTH} bytes of UTF-8")
        if not 0 <= slot < self.capacity or self._length[slot]:
            raise ValueError(f"slot {slot} is past the capacity or holds a key")
        padded = raw + bytes(-n % 4)
        self._reserve(len(padded) // 4)
        self._arena[self._end : self._end + len(padded) // 4] = np.frombuffer(padded, _WORD)
        self._start[slot] = self._end
        self._length[slot] = n
        self._end += len(padded) // 4
        if self._crowded(1):
            self._rebuild(self._used + 1)  # places the new key too
            return
        h = self._hash_one(padded, n)
        pos = h >> self._shift
        mask = len(self._buckets) - 1
        buckets = self._buckets
        while int(buckets[pos]) >= 0:
            pos = (pos + 1) & mask
        if int(buckets[pos]) == _TOMBSTONE:
            self._tombstones -= 1
        buckets[pos] = _print(h) << _SLOT_BITS | slot
        self._used += 1

    def discard(self, key: str) -> int | None:
        """Forget one key; its slot, or None if it had none."""
        slot = self.get(key)
        if slot is not None:
            self.remove(np.array([slot], np.intp))
        return slot

    def _hash_one(self, padded: bytes, n: int) -> int:
        """`_bucket_of`'s hash for one key's bytes, zero-padded to whole words."""
        words = struct.unpack(f"<{len(padded) // 4}I", padded)
        if len(words) + 2 > len(self._seed_ints):
            self._more_seeds(len(words))
        seeds = self._seed_ints
        h = seeds[0] + n * seeds[1]
        for w, s in zip(words, seeds[2:], strict=False):
            h += w * s
        return h & 0xFFFF_FFFF_FFFF_FFFF

    # -- a batch of keys --------------------------------------------------------------------

    def lookup(self, keys: Sequence[str]) -> Slots:
        """Each key's slot, -1 for a key without one."""
        n = len(keys)
        result = np.full(n, -1, np.intp)
        if not n or not self._used:
            return result
        if self.native:
            return self._native_lookup(keys, result)
        if n <= _FEW:  # a call per key costs less than the whole-array calls
            for i, key in enumerate(keys):
                slot = self.get(key)
                result[i] = -1 if slot is None else slot
            return result
        chars = np.fromiter(map(len, keys), np.int64, n)
        if int(chars.max()) > _WIDE:  # rows as wide as the longest key: the long ones alone
            for i in np.flatnonzero(chars > _WIDE).tolist():
                slot = self.get(keys[i])
                result[i] = -1 if slot is None else slot
            narrow = np.flatnonzero(chars <= _WIDE)
            result[narrow] = self.lookup([keys[i] for i in narrow.tolist()])
            return result
        words, lengths = _as_words(keys, chars)
        pos, prints = self._bucket_of(words, lengths)
        return self._probe(keys, words, lengths, pos.copy(), prints)

    def lookup_or_insert(self, keys: Sequence[str], take: Callable[[int], Slots]) -> Slots:
        """Each of these distinct keys' slot; keys without one are indexed at `take(count)`
        slots, in order. In numpy, `lookup` and `insert` in one pass (the keys hashed once); with
        the compiled lookup, that lookup and then `insert` of the new keys alone."""
        n = len(keys)
        chars = None if self.native else np.fromiter(map(len, keys), np.int64, n)
        if chars is None or n <= _FEW or int(chars.max(initial=0)) > _WIDE or not self._used:
            result = self.lookup(keys)
            new = np.flatnonzero(result < 0)
            if len(new):
                result[new] = numbers = take(len(new))
                self.insert([keys[i] for i in new.tolist()], numbers)
            return result
        words, lengths = _as_words(keys, chars)
        pos, prints = self._bucket_of(words, lengths)
        result = self._probe(keys, words, lengths, pos.copy(), prints)
        new = np.flatnonzero(result < 0)
        if len(new):
            result[new] = numbers = take(len(new))
            self._check_new(numbers, lengths[new])
            self._store(numbers, words[new], lengths[new])
            if self._crowded(len(new)):
                self._rebuild(self._used + len(new))  # places the new keys too
            else:
                self._place(numbers, pos[new], prints[new])
        return result

    def _native_lookup(self, keys: Sequence[str], result: Slots) -> Slots:
        batch = keys if isinstance(keys, list) else list(keys)
        args = (self._buckets, self._shift, self._start, self._length, self._arena, result)
        while words := _batch_loops.lookup(batch, self._seeds, *args):
            self._more_seeds(words)  # a key longer than any before: seeds for its words
        return result

    def expect(self, more: int) -> None:
        """`more` keys are about to be added (a restore): room for them in the buckets now,
        rather than a rebuild at every doubling on the way."""
        if self._crowded(more):
            self._rebuild(self._used + more)

    def fit(self) -> None:
        """Buckets sized for the keys there are, after an `expect` that overestimated."""
        if len(self._buckets) > _MIN_BUCKETS and 25 * self._used < 6 * len(self._buckets):
            self._rebuild(self._used)

    def _probe(
        self,
        keys: Sequence[str],
        words: Words,
        lengths: Lengths,
        pos: Slots,
        prints: npt.NDArray[np.int64],
    ) -> Slots:
        """`lookup` for keys hashed already (`pos` is overwritten)."""
        n = len(keys)
        result = np.full(n, -1, np.intp)
        mask = len(self._buckets) - 1
        window = np.arange(_WINDOW)
        todo = np.arange(n)
        # Each round reads a window of entries from each key's position, and compares the key
        # with the first entry whose hash bits match before the first empty one. Found, or an
        # empty entry and no match before it: done. A match that is another key: on after it;
        # neither a match nor an empty entry: on after the window.
        while todo.size > _FEW:
            at = pos[todo]
            entries = self._buckets[(at[:, None] + window) & mask]
            empty = entries == _EMPTY
            stop = np.where(empty.any(axis=1), empty.argmax(axis=1), _WINDOW)
            match = (entries >> _SLOT_BITS == prints[todo, None]) & (entries >= 0)
            match &= window < stop[:, None]
            has = match.any(axis=1)
            col = match.argmax(axis=1)
            done = ~has & (stop < _WINDOW)
            if has.any():
                rows = np.flatnonzero(has)
                cand = entries[rows, col[rows]] & _SLOT_MASK
                found = rows[self._holds(cand, words[todo[rows]], lengths[todo[rows]])]
                result[todo[found]] = entries[found, col[found]] & _SLOT_MASK
                done[found] = True
            going = ~done
            todo = todo[going]
            pos[todo] = (at[going] + np.where(has, col + 1, _WINDOW)[going]) & mask
        for i in todo.tolist():  # a long run of entries: one key at a time costs less
            slot = self.get(keys[i])
            result[i] = -1 if slot is None else slot
        return result

    def insert(self, keys: Sequence[str], slots: Slots) -> None:
        """Index keys that have no slot yet, distinct from each other, at these free slots."""
        m = len(keys)
        if not m:
            return
        chars = np.fromiter(map(len, keys), np.int64, m)
        if int(chars.max()) > _WIDE:  # as in `lookup`
            for i in np.flatnonzero(chars > _WIDE).tolist():
                self.add(keys[i], int(slots[i]))
            narrow = np.flatnonzero(chars <= _WIDE)
            self.insert([keys[i] for i in narrow.tolist()], slots[narrow])
            return
        words, lengths = _as_words(keys, chars)
        self._check_new(slots, lengths)
        self._store(slots, words, lengths)
        if self._crowded(m):
            self._rebuild(self._used + m)  # places the new keys too
            return
        self._place(slots, *self._bucket_of(words, lengths))

    def remove(self, slots: Slots) -> None:
        """Forget the keys at these slots (each must hold one)."""
        if not len(slots):
            return
        wide = self._length[slots] > _WIDE
        if wide.any():  # as in `lookup`
            for slot in slots[wide].tolist():
                key = self.key_of(slot)
                if key is None or self.get(key) != slot:
                    raise KeyError("a slot given holds no indexed key")
                self._remove(np.array([slot], np.intp))
            slots = slots[~wide]
        self._remove(slots)

    def _remove(self, slots: Slots) -> None:
        if not len(slots):
            return
        words, lengths = self._keys_at(slots)
        pos, _ = self._bucket_of(words, lengths)
        mask = len(self._buckets) - 1
        todo = np.arange(len(slots))
        while todo.size:
            at = pos[todo]
            entries = self._buckets[at]
            found = (entries >= 0) & (entries & _SLOT_MASK == slots[todo])
            if (entries[~found] == _EMPTY).any():
                raise KeyError("a slot given holds no indexed key")
            self._buckets[at[found]] = _TOMBSTONE
            todo = todo[~found]
            pos[todo] = (at[~found] + 1) & mask
        self._used -= len(slots)
        self._tombstones += len(slots)
        self._garbage += int((-(-self._length[slots].astype(np.int64) // 4)).sum())
        self._length[slots] = 0
        if self._garbage > max(self._end // 2, 1 << 18):
            self._compact()

    # -- internals --------------------------------------------------------------------------

    def _bucket_of(self, words: Words, lengths: Lengths) -> tuple[Slots, npt.NDArray[np.int64]]:
        """Each key's bucket and the hash bits its entry keeps (as `_hash_one` and `_print`)."""
        if words.shape[1] + 2 > len(self._seeds):
            self._more_seeds(words.shape[1])
        seeds = self._seeds
        h = seeds[0] + lengths.astype(_U64) * seeds[1]
        if words.shape[1]:
            h += (words.astype(_U64) * seeds[2 : 2 + words.shape[1]]).sum(axis=1, dtype=_U64)
        prints = ((h >> _U64(16)) & _U64(_PRINT_MASK)).astype(np.int64)
        return (h >> _U64(self._shift)).astype(np.intp), prints

    def _more_seeds(self, words: int) -> None:
        extra = self._rng.integers(0, 2**64, words + 2 - len(self._seeds), dtype=_U64)
        self._seeds = np.concatenate([self._seeds, extra])
        self._seed_ints = [int(s) for s in self._seeds]

    def _holds(self, slots: Slots, words: Words, lengths: Lengths) -> npt.NDArray[np.bool_]:
        """Whether each slot holds the key in the same row of `words` (zero-padded)."""
        same: npt.NDArray[np.bool_] = self._length[slots] == lengths
        cols = np.arange(words.shape[1])
        at = self._start[slots].astype(np.intp)[:, None] + cols
        np.minimum(at, len(self._arena) - 1, out=at)  # past a key's words: masked out below
        # The arena is zero past each key's bytes up to its next word, as the rows are.
        equal = (self._arena[at] == words) | (cols * 4 >= lengths[:, None])
        same &= equal.all(axis=1)
        return same

    def _check_new(self, slots: Slots, lengths: Lengths) -> None:
        if int(lengths.min()) < 1 or int(lengths.max()) > _MAX_KEY_LENGTH:
            raise ValueError(f"a key must be 1 to {_MAX_KEY_LENGTH} bytes of UTF-8")
        if int(slots.max()) >= self.capacity:
            raise ValueError(f"slot {int(slots.max())} is past the capacity {self.capacity}")
        if np.count_nonzero(self._length[slots]):
            raise ValueError("a slot given already holds a key")

    def _store(self, slots: Slots, words: Words, lengths: Lengths) -> None:
        """Append the keys' words to the arena and point their slots at them."""
        counts = -(-lengths // 4)
        total = int(counts.sum())
        self._reserve(total)
        self._arena[self._end : self._end + total] = words[
            np.arange(words.shape[1]) < counts[:, None]
        ]
        self._start[slots] = self._end + np.cumsum(counts) - counts
        self._length[slots] = lengths
        self._end += total

    def _reserve(self, more: int) -> None:
        """Arena room for `more` words past its end (growing by half)."""
        if self._end + more > len(self._arena):
            size = max(self._end + more, len(self._arena) * 3 // 2)
            if size > 2**32:
                raise MemoryError("the keys' bytes are past 16 GiB")
            grown = anonymous_zeros((size,), _WORD)
            grown[: self._end] = self._arena[: self._end]
            self._arena = grown

    def _place(self, slots: Slots, pos: Slots, prints: npt.NDArray[np.int64]) -> None:
        """Put each slot's entry in the first free bucket from its own (its key known absent)."""
        mask = len(self._buckets) - 1
        todo = np.arange(len(slots))
        while todo.size:
            at = pos[todo]
            free = self._buckets[at] < 0
            # Keys of this batch that want one bucket all write it; the one whose entry is
            # read back holds it, the others go on.
            cand, into = todo[free], at[free]
            was_tombstone = self._buckets[into] == _TOMBSTONE
            self._buckets[into] = prints[cand] << _SLOT_BITS | slots[cand]
            held = self._buckets[into] & _SLOT_MASK == slots[cand]
            self._tombstones -= int(np.count_nonzero(was_tombstone & held))
            placed = np.zeros(len(slots), np.bool_)
            placed[cand[held]] = True
            going = ~placed[todo]
            todo = todo[going]
            pos[todo] = (at[going] + 1) & mask
        self._used += len(slots)

    def _crowded(self, more: int) -> bool:
        """Whether `more` entries would fill the buckets past 60 %, tombstones counted. Rebuilt
        under 48 %, a table that churns (keys removed and added) rebuilds only now and then."""
        return 5 * (self._used + self._tombstones + more) > 3 * len(self._buckets)

    def _rebuild(self, keys: int) -> None:
        """Fresh buckets, at most 48 % full with `keys` keys, and every key placed again."""
        size = _MIN_BUCKETS
        while size * 12 < keys * 25:
            size *= 2
        self._buckets = _empty_buckets(size)
        self._shift = 64 - (size.bit_length() - 1)
        self._used = self._tombstones = 0
        live = self.slots()
        for chunk in self._chunks(len(live)):
            self._place(live[chunk], *self._bucket_of(*self._keys_at(live[chunk])))

    def _chunks(self, n: int) -> list[slice]:
        """Slices of `n` keys whose padded rows take at most `_CHUNK_WORDS` words together."""
        widest = -(-int(self._length.max(initial=0)) // 4)
        rows = max(1, _CHUNK_WORDS // max(widest, 1))
        return [slice(first, first + rows) for first in range(0, n, rows)]

    def _keys_at(self, slots: Slots) -> tuple[Words, Lengths]:
        """The keys at these slots as zero-padded rows of words, and their lengths."""
        lengths = self._length[slots].astype(np.int64)
        counts = -(-lengths // 4)
        cols = np.arange(int(counts.max(initial=0)))
        inside = cols < counts[:, None]
        at = np.where(inside, self._start[slots].astype(np.intp)[:, None] + cols, 0)
        return np.where(inside, self._arena[at], np.uint32(0)).astype(_WORD), lengths

    def _compact(self) -> None:
        """Rewrite the arena with only the live keys' words, in slot order."""
        live = self.slots()
        counts = -(-self._length[live].astype(np.int64) // 4)
        total = int(counts.sum())
        arena = anonymous_zeros((max(1024, total * 5 // 4),), _WORD)
        starts = np.cumsum(counts) - counts
        for chunk in self._chunks(len(live)):
            words, _ = self._keys_at(live[chunk])
            inside = np.arange(words.shape[1]) < counts[chunk, None]
            begin = int(starts[chunk][0])
            arena[begin : begin + int(counts[chunk].sum())] = words[inside]
        self._start[live] = starts
        self._arena, self._end, self._garbage = arena, total, 0


def _empty_buckets(size: int) -> npt.NDArray[np.int64]:
    buckets = anonymous_zeros((size,), np.dtype(np.int64))
    buckets.fill(_EMPTY)
    return buckets


def _print(h: int) -> int:
    """The hash bits an entry keeps beside its slot (as `KeyIndex._bucket_of` takes them)."""
    return (h >> 16) & _PRINT_MASK


def _as_words(keys: Sequence[str], chars: Lengths) -> tuple[Words, Lengths]:
    """The keys' UTF-8 bytes as rows of little-endian words, zero-padded, and their lengths
    (`chars`: their lengths in characters)."""
    n = len(keys)
    width = -(-int(chars.max(initial=0)) // 4) * 4
    try:  # ASCII, a byte per character: numpy encodes them itself, in one pass
        matrix = np.array(keys, dtype=f"S{max(width, 4)}").view(np.uint8).reshape(n, -1)
        return matrix.view(_WORD), chars
    except UnicodeEncodeError:
        pass
    raw = [k.encode() for k in keys]
    lengths = np.fromiter(map(len, raw), np.int64, n)
    longest = int(lengths.max(initial=0))
    matrix = np.zeros((n, -(-longest // 4) * 4), np.uint8)
    if longest:
        matrix[:, :longest] = np.array(raw, f"S{longest}").view(np.uint8).reshape(n, longest)
    return matrix.view(_WORD), lengths
