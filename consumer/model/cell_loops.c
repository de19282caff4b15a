/* The element-wise middle of an LSTM step in one C loop, where numpy takes five whole-array
 * calls of a microsecond or more each: the three sigmoid gates from their tanh, and the new cell
 * state. Every value is computed with the same float32 operations in the same order as
 * `consumer.model.cells.LstmCell` does with numpy (a product, then a sum, each rounded; built
 * with -ffp-contract=off so no two are fused), so results are equal bit for bit. The tanh calls
 * stay numpy's. Built as the optional extension `consumer.model._cell_loops`; the numpy code
 * stays the reference and serves when this is not built. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* A float32 buffer, in numpy's spellings of it ("f", "<f", "=f"). */
static int is_float32(const Py_buffer *b) {
    size_t len = b->format == NULL ? 0 : strlen(b->format);
    return b->itemsize == 4 && len > 0 && len <= 2 && b->format[len - 1] == 'f' &&
           (len == 1 || b->format[0] == '<' || b->format[0] == '=');
}

/* lstm_cell(gates, rows, c) -> None
 *
 * `gates`: the cell's (4, capacity, units) float32 buffer, gate blocks i, f, o, g, each already
 * through tanh (the sigmoid gates' weights halved). For rows [0, rows): i, f and o become
 * 0.5 * t + 0.5 (their sigmoid) in place, and `c` (rows, units) becomes c * f + i * g. */
static PyObject *lstm_cell(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "lstm_cell takes 3 arguments");
        return NULL;
    }
    Py_ssize_t rows = PyLong_AsSsize_t(args[1]);
    if (rows == -1 && PyErr_Occurred()) return NULL;
    Py_buffer g, c;
    if (PyObject_GetBuffer(args[0], &g, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE | PyBUF_FORMAT) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[2], &c, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&g);
        return NULL;
    }
    PyObject *result = NULL;
    if (g.ndim != 3 || g.shape[0] != 4 || !is_float32(&g)) {
        PyErr_SetString(PyExc_ValueError, "gates: a (4, capacity, units) float32 array expected");
    } else if (c.ndim != 2 || !is_float32(&c)) {
        PyErr_SetString(PyExc_ValueError, "c: a (rows, units) float32 array expected");
    } else if (rows < 0 || rows > g.shape[1] || c.shape[0] != rows || c.shape[1] != g.shape[2]) {
        PyErr_Format(PyExc_ValueError,
                     "c: (%zd, %zd) does not fit %zd rows of gates of %zd rows and %zd units",
                     c.shape[0], c.shape[1], rows, g.shape[1], g.shape[2]);
    } else {
        Py_ssize_t units = g.shape[2], block = g.shape[1] * units, n = rows * units;
        float *gi = (float *)g.buf, *gf = gi + block, *go = gf + block, *gg = go + block;
        float *cell = (float *)c.buf;
        for (Py_ssize_t k = 0; k < n; k++) {
            float i = gi[k] * 0.5f, f = gf[k] * 0.5f, o = go[k] * 0.5f;
            i = i + 0.5f;
            f = f + 0.5f;
            o = o + 0.5f;
            gi[k] = i;
            gf[k] = f;
            go[k] = o;
            float kept = cell[k] * f;
            float added = i * gg[k];
            cell[k] = kept + added;
        }
        result = Py_None;
        Py_INCREF(result);
    }
    PyBuffer_Release(&c);
    PyBuffer_Release(&g);
    return result;
}

static PyMethodDef methods[] = {
    {"lstm_cell", (PyCFunction)(void (*)(void))lstm_cell, METH_FASTCALL,
     "An LSTM's sigmoid gates from their tanh, and its new cell state, in place."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cell_loops", "The element-wise middle of an LSTM step in one call.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cell_loops(void) { return PyModule_Create(&module); }
