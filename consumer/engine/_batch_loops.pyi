# The C extension built from batch_loops.c (see consumer/engine/compiled_loops.py).
from typing import Any

import numpy as np
import numpy.typing as npt

_Array = npt.NDArray[Any]

def lookup(
    keys: list[str],
    seeds: npt.NDArray[np.uint64],
    buckets: npt.NDArray[np.int64],
    shift: int,
    start: npt.NDArray[np.uint32],
    length: npt.NDArray[np.uint16],
    arena: npt.NDArray[np.uint32],
    out: npt.NDArray[np.intp],
) -> int: ...
def gather_rows(table: list[_Array], slots: npt.NDArray[np.intp], out: list[_Array]) -> None: ...
def scatter_rows(table: list[_Array], slots: npt.NDArray[np.intp], rows: list[_Array]) -> None: ...
def record_one_step(
    slots: npt.NDArray[np.intp],
    offsets: npt.NDArray[np.int64],
    seen: npt.NDArray[np.float64],
    outputs: npt.NDArray[np.float32],
    steps: npt.NDArray[np.int32],
    last_offset: npt.NDArray[np.int64],
    last_seen: npt.NDArray[np.float64],
    last_output: npt.NDArray[np.float32],
    changed: npt.NDArray[np.bool_],
    new_steps: npt.NDArray[np.int32],
) -> None: ...
