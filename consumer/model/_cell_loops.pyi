# The C extension built from cell_loops.c (see consumer/model/compiled_cells.py).
import numpy as np
import numpy.typing as npt

def lstm_cell(gates: npt.NDArray[np.float32], rows: int, c: npt.NDArray[np.float32]) -> None: ...
