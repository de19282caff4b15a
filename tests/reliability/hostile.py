"""Input records generated up front with hypothesis: mostly malformed, some valid by accident.

Values are raw bytes, JSON documents of any shape, and near-misses of the wire format (a
`features` field holding anything, flags of the wrong type, NaN and huge numbers); keys are
mostly well-formed and unique, sometimes missing, empty, too long or not UTF-8. Whatever comes
out, the scenario decodes each record the way the service does to know what to expect of it.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.reliability.feeder import Raw

_NUMBER = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.sampled_from([1e38, 3.5e38, -3.5e38, 1e39, 0.0, -0.0, 5e-324])
)
_SCALAR = st.none() | st.booleans() | _NUMBER | st.text(max_size=8)
_JSON = st.recursive(
    _SCALAR,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
# A sample or chunk that is almost right: rows of the wrong length, odd elements among numbers.
_ROW = st.lists(_NUMBER | _SCALAR, min_size=0, max_size=5)
_FEATURES = _ROW | st.lists(_ROW, max_size=4) | _JSON
_FLAG = st.booleans() | _SCALAR
_MESSAGE = st.fixed_dictionaries(
    {},
    optional={"features": _FEATURES, "end": _FLAG, "reset": _FLAG, "ts": _NUMBER | _SCALAR},
)


def _dumps(doc: object) -> bytes:
    # The standard library writes NaN and Infinity as bare literals, which is bad input too.
    return json.dumps(doc, allow_nan=True).encode()


_VALUE = (
    st.binary(max_size=120)
    | st.text(max_size=60).map(str.encode)
    | _JSON.map(_dumps)
    | _MESSAGE.map(_dumps)
    | _MESSAGE.map(_dumps).map(lambda b: b[: len(b) // 2])  # truncated
    | st.none()
)
_ODD_KEY = st.none() | st.just(b"") | st.binary(min_size=1, max_size=300)


@st.composite
def _record(draw: st.DrawFn) -> tuple[bool, bytes | None, bytes | None]:
    """(key is the generated odd one, key, value)."""
    odd = draw(st.integers(0, 9)) == 0
    return odd, draw(_ODD_KEY) if odd else None, draw(_VALUE)


def generated_records(n: int) -> list[Raw]:
    """`n` records; well-formed keys are `gen-<i>`, unique, so an accidentally valid record
    starts a sequence of its own."""
    drawn: list[tuple[bool, bytes | None, bytes | None]] = []

    @settings(
        max_examples=n,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    @given(_record())
    def collect(record: tuple[bool, bytes | None, bytes | None]) -> None:
        drawn.append(record)

    while len(drawn) < n:  # hypothesis may stop early once it runs out of new examples
        collect()
    return [
        (key if odd else f"gen-{i}".encode(), value)
        for i, (odd, key, value) in enumerate(drawn[:n])
    ]
