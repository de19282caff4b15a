/* The engine's per-batch loops in C, each one call where numpy takes several whole-array calls
 * of a few microseconds each: a batch's keys looked up in `KeyIndex`'s table (the same hash,
 * buckets and arena as `consumer/engine/key_index.py`), state rows gathered from and scattered
 * to the state table by slot, and a wave's one-step bookkeeping. Built as the optional extension
 * `consumer.engine._batch_loops`; the numpy code stays the reference and serves when this is
 * not built. Every index is checked against its array's length; the GIL is held throughout. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define EMPTY (-1)
#define SLOT_MASK 0xFFFFFFFFULL
#define PRINT_MASK 0x7FFFFFFFULL
#define MAX_KEY_LENGTH 65535
#define GROUP 32 /* keys whose memory reads are started together */

typedef struct {
    Py_buffer view;
    int held;
} Held;

static int take(PyObject *obj, Held *h, Py_ssize_t itemsize, int writable, const char *name) {
    int flags = PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, &h->view, flags) < 0) return -1;
    h->held = 1;
    if (h->view.itemsize != itemsize) {
        PyErr_Format(PyExc_TypeError, "%s: items of %zd bytes expected, not %zd", name,
                     itemsize, h->view.itemsize);
        return -1;
    }
    return 0;
}

static void release(Held *h) {
    if (h->held) PyBuffer_Release(&h->view);
    h->held = 0;
}

/* The little-endian 32-bit word at `i` of zero-padded `bytes` of length `n`. */
static inline uint64_t word_at(const unsigned char *bytes, Py_ssize_t n, Py_ssize_t i) {
    Py_ssize_t at = i * 4;
    if (at + 4 <= n) {
        return (uint64_t)bytes[at] | (uint64_t)bytes[at + 1] << 8 |
               (uint64_t)bytes[at + 2] << 16 | (uint64_t)bytes[at + 3] << 24;
    }
    uint64_t w = 0;
    for (Py_ssize_t k = 0; at + k < n; k++) w |= (uint64_t)bytes[at + k] << (8 * k);
    return w;
}

/* lookup(keys, seeds, buckets, shift, start, length, arena, out) -> int
 *
 * Writes each key's slot into `out` (intp), -1 for a key without one. Returns 0, or the number
 * of 32-bit words of the longest key when `seeds` is too short for it (nothing is written
 * then: the caller draws more seeds and calls again). */
static PyObject *lookup(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "lookup takes 8 arguments");
        return NULL;
    }
    PyObject *keys = args[0];
    if (!PyList_Check(keys)) {
        PyErr_SetString(PyExc_TypeError, "keys must be a list of str");
        return NULL;
    }
    long shift = PyLong_AsLong(args[3]);
    if (shift == -1 && PyErr_Occurred()) return NULL;
    if (shift < 1 || shift > 63) {
        PyErr_SetString(PyExc_ValueError, "shift must be 1..63");
        return NULL;
    }
    Held seeds = {0}, buckets = {0}, start = {0}, length = {0}, arena = {0}, out = {0};
    PyObject *result = NULL;
    if (take(args[1], &seeds, 8, 0, "seeds") < 0 || take(args[2], &buckets, 8, 0, "buckets") < 0 ||
        take(args[4], &start, 4, 0, "start") < 0 || take(args[5], &length, 2, 0, "length") < 0 ||
        take(args[6], &arena, 4, 0, "arena") < 0 || take(args[7], &out, sizeof(Py_ssize_t), 1, "out") < 0)
        goto done;
    Py_ssize_t n = PyList_GET_SIZE(keys);
    const uint64_t *seed = seeds.view.buf;
    Py_ssize_t n_seeds = seeds.view.len / 8;
    const int64_t *bucket = buckets.view.buf;
    uint64_t mask = (uint64_t)(buckets.view.len / 8) - 1;
    const uint32_t *starts = start.view.buf;
    const uint16_t *lengths = length.view.buf;
    Py_ssize_t capacity = start.view.len / 4;
    if (length.view.len / 2 < capacity) capacity = length.view.len / 2;
    const unsigned char *words = arena.view.buf;
    Py_ssize_t arena_bytes = arena.view.len;
    Py_ssize_t *slots = out.view.buf;
    if (out.view.len / (Py_ssize_t)sizeof(Py_ssize_t) < n) {
        PyErr_SetString(PyExc_ValueError, "out is shorter than keys");
        goto done;
    }
    if (((mask + 1) & mask) != 0 || (mask + 1) >> (64 - shift) != 1) {
        PyErr_SetString(PyExc_ValueError, "buckets must be 2**(64 - shift) entries");
        goto done;
    }
    /* Seeds first, so that nothing is written when a key needs more of them. */
    Py_ssize_t widest = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        if (!PyUnicode_Check(key)) {
            PyErr_Format(PyExc_TypeError, "key %zd is %.80s, not str", i, Py_TYPE(key)->tp_name);
            goto done;
        }
        Py_ssize_t size;
        if (PyUnicode_AsUTF8AndSize(key, &size) == NULL) goto done;
        if (size > widest) widest = size;
    }
    if (widest > MAX_KEY_LENGTH) widest = MAX_KEY_LENGTH; /* longer keys are never found */
    if ((widest + 3) / 4 + 2 > n_seeds) {
        result = PyLong_FromSsize_t((widest + 3) / 4);
        goto done;
    }
    /* Keys in groups: every key's bucket is requested from memory before the first is read,
     * then every candidate slot's length and start, then its bytes, so that the cache misses of
     * a group overlap instead of following one another. */
    for (Py_ssize_t first = 0; first < n; first += GROUP) {
        Py_ssize_t count = n - first < GROUP ? n - first : GROUP;
        const unsigned char *key_bytes[GROUP];
        Py_ssize_t key_size[GROUP], candidate[GROUP];
        uint64_t key_pos[GROUP];
        int64_t key_print[GROUP];
        for (Py_ssize_t j = 0; j < count; j++) {
            Py_ssize_t size;
            const unsigned char *bytes =
                (const unsigned char *)PyUnicode_AsUTF8AndSize(PyList_GET_ITEM(keys, first + j), &size);
            key_bytes[j] = bytes;
            key_size[j] = size;
            if (size < 1 || size > MAX_KEY_LENGTH) continue;
            uint64_t h = seed[0] + (uint64_t)size * seed[1];
            Py_ssize_t n_words = (size + 3) / 4;
            for (Py_ssize_t w = 0; w < n_words; w++) h += word_at(bytes, size, w) * seed[2 + w];
            key_pos[j] = h >> shift;
            key_print[j] = (int64_t)((h >> 16) & PRINT_MASK);
            __builtin_prefetch(bucket + key_pos[j]);
        }
        for (Py_ssize_t j = 0; j < count; j++) {
            candidate[j] = -1;
            if (key_size[j] < 1 || key_size[j] > MAX_KEY_LENGTH) continue;
            int64_t entry = bucket[key_pos[j]];
            if (entry >= 0 && (entry >> 32) == key_print[j]) {
                Py_ssize_t slot = (Py_ssize_t)((uint64_t)entry & SLOT_MASK);
                if (slot < capacity) {
                    candidate[j] = slot;
                    __builtin_prefetch(starts + slot);
                    __builtin_prefetch(lengths + slot);
                }
            }
        }
        for (Py_ssize_t j = 0; j < count; j++) {
            if (candidate[j] >= 0 && (Py_ssize_t)starts[candidate[j]] * 4 < arena_bytes)
                __builtin_prefetch(words + (Py_ssize_t)starts[candidate[j]] * 4);
        }
        for (Py_ssize_t j = 0; j < count; j++) {
            Py_ssize_t i = first + j, size = key_size[j];
            const unsigned char *bytes = key_bytes[j];
            slots[i] = -1;
            if (size < 1 || size > MAX_KEY_LENGTH) continue;
            uint64_t pos = key_pos[j];
            int64_t wanted = key_print[j];
            for (uint64_t tries = 0; tries <= mask; tries++, pos = (pos + 1) & mask) {
                int64_t entry = bucket[pos];
                if (entry == EMPTY) break;
                if (entry < 0 || (entry >> 32) != wanted) continue;
                Py_ssize_t slot = (Py_ssize_t)((uint64_t)entry & SLOT_MASK);
                if (slot >= capacity || lengths[slot] != size) continue;
                Py_ssize_t at = (Py_ssize_t)starts[slot] * 4;
                if (at + size <= arena_bytes && memcmp(words + at, bytes, (size_t)size) == 0) {
                    slots[i] = slot;
                    break;
                }
            }
        }
    }
    result = PyLong_FromLong(0);
done:
    release(&seeds);
    release(&buckets);
    release(&start);
    release(&length);
    release(&arena);
    release(&out);
    return result;
}

/* A 2-D C-contiguous buffer of `itemsize` items: its rows and row width in items. */
static int take_matrix(PyObject *obj, Held *h, Py_ssize_t itemsize, int writable,
                       const char *name, Py_ssize_t *rows, Py_ssize_t *width) {
    int flags = PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, &h->view, flags) < 0) return -1;
    h->held = 1;
    if (h->view.itemsize != itemsize || h->view.ndim != 2) {
        PyErr_Format(PyExc_TypeError, "%s: a 2-D array of %zd-byte items expected", name, itemsize);
        return -1;
    }
    *rows = h->view.shape[0];
    *width = h->view.shape[1];
    return 0;
}

/* Copies rows between the table's arrays and a wave's arrays, by slot. `gather`: wave row i =
 * table row slots[i]; otherwise table row slots[i] = wave row i (the last one wins for a slot
 * given twice, as numpy's assignment). Every slot and shape is checked before any row moves. */
#define MAX_ARRAYS 64
#define AHEAD 8 /* rows ahead whose table row is requested from memory */
static PyObject *move_rows(PyObject *const *args, Py_ssize_t nargs, int gather) {
    if (nargs != 3 || !PyList_Check(args[0]) || !PyList_Check(args[2]) ||
        PyList_GET_SIZE(args[0]) != PyList_GET_SIZE(args[2]) || PyList_GET_SIZE(args[0]) > MAX_ARRAYS) {
        PyErr_SetString(PyExc_TypeError,
                        "takes (table arrays, slots, wave arrays): two lists of one length, at most 64");
        return NULL;
    }
    Py_ssize_t arrays = PyList_GET_SIZE(args[0]);
    Held slots_held = {0}, table[MAX_ARRAYS], wave[MAX_ARRAYS];
    memset(table, 0, sizeof table);
    memset(wave, 0, sizeof wave);
    Py_ssize_t width[MAX_ARRAYS], rows = PY_SSIZE_T_MAX;
    PyObject *result = NULL;
    if (take(args[1], &slots_held, sizeof(Py_ssize_t), 0, "slots") < 0) goto done;
    const Py_ssize_t *slots = slots_held.view.buf;
    Py_ssize_t n = slots_held.view.len / (Py_ssize_t)sizeof(Py_ssize_t);
    for (Py_ssize_t k = 0; k < arrays; k++) {
        Py_ssize_t table_rows, wave_rows, wave_width;
        if (take_matrix(PyList_GET_ITEM(args[0], k), &table[k], 4, !gather, "table array",
                        &table_rows, &width[k]) < 0 ||
            take_matrix(PyList_GET_ITEM(args[2], k), &wave[k], 4, gather, "wave array", &wave_rows,
                        &wave_width) < 0)
            goto done;
        if (wave_width != width[k] || wave_rows < n) {
            PyErr_SetString(PyExc_ValueError,
                            "a wave array's shape does not match the slots and the table");
            goto done;
        }
        if (table_rows < rows) rows = table_rows;
    }
    for (Py_ssize_t i = 0; i < n && arrays; i++) {
        if (slots[i] < 0 || slots[i] >= rows) {
            PyErr_Format(PyExc_IndexError, "slot %zd is outside the table's %zd rows", slots[i], rows);
            goto done;
        }
    }
    for (Py_ssize_t k = 0; k < arrays; k++) {
        size_t bytes = (size_t)width[k] * sizeof(float);
        for (Py_ssize_t i = 0; i < n; i++) {
            if (i + AHEAD < n) { /* the table's rows are scattered: ask for one early */
                const float *ahead = (float *)table[k].view.buf + slots[i + AHEAD] * width[k];
                for (Py_ssize_t line = 0; line < width[k]; line += 16) __builtin_prefetch(ahead + line);
            }
            float *row = (float *)table[k].view.buf + slots[i] * width[k];
            float *other = (float *)wave[k].view.buf + i * width[k];
            memcpy(gather ? other : row, gather ? row : other, bytes);
        }
    }
    Py_INCREF(Py_None);
    result = Py_None;
done:
    release(&slots_held);
    for (Py_ssize_t k = 0; k < arrays; k++) {
        release(&table[k]);
        release(&wave[k]);
    }
    return result;
}

/* gather_rows(table arrays, slots, outs): outs[k][i] = table_arrays[k][slots[i]]. */
static PyObject *gather_rows(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    return move_rows(args, nargs, 1);
}

/* scatter_rows(table arrays, slots, rows): table_arrays[k][slots[i]] = rows[k][i]. */
static PyObject *scatter_rows(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    return move_rows(args, nargs, 0);
}

/* record_one_step(slots, offsets, seen, outputs, steps, last_offset, last_seen, last_output,
 * changed, new_steps): a wave of distinct slots each took one sample. Per i, s = slots[i]:
 * steps[s] += 1 (and new_steps[i] = it), last_offset[s] = offsets[i], last_seen[s] =
 * max(last_seen[s], seen[i]) (NaN if either is, as numpy's maximum), last_output[s] =
 * outputs[i], changed[s] = True. */
static PyObject *record_one_step(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "record_one_step takes 10 arguments");
        return NULL;
    }
    Held slots_h = {0}, offsets_h = {0}, seen_h = {0}, outputs_h = {0}, steps_h = {0},
         last_offset_h = {0}, last_seen_h = {0}, last_output_h = {0}, changed_h = {0},
         new_steps_h = {0};
    PyObject *result = NULL;
    Py_ssize_t out_rows, width, table_out_rows, table_width;
    if (take(args[0], &slots_h, sizeof(Py_ssize_t), 0, "slots") < 0 ||
        take(args[1], &offsets_h, 8, 0, "offsets") < 0 || take(args[2], &seen_h, 8, 0, "seen") < 0 ||
        take_matrix(args[3], &outputs_h, 4, 0, "outputs", &out_rows, &width) < 0 ||
        take(args[4], &steps_h, 4, 1, "steps") < 0 ||
        take(args[5], &last_offset_h, 8, 1, "last_offset") < 0 ||
        take(args[6], &last_seen_h, 8, 1, "last_seen") < 0 ||
        take_matrix(args[7], &last_output_h, 4, 1, "last_output", &table_out_rows, &table_width) < 0 ||
        take(args[8], &changed_h, 1, 1, "changed") < 0 ||
        take(args[9], &new_steps_h, 4, 1, "new_steps") < 0)
        goto done;
    Py_ssize_t n = slots_h.view.len / (Py_ssize_t)sizeof(Py_ssize_t);
    Py_ssize_t rows = steps_h.view.len / 4;
    if (last_offset_h.view.len / 8 < rows) rows = last_offset_h.view.len / 8;
    if (last_seen_h.view.len / 8 < rows) rows = last_seen_h.view.len / 8;
    if (table_out_rows < rows) rows = table_out_rows;
    if (changed_h.view.len < rows) rows = changed_h.view.len;
    if (offsets_h.view.len / 8 < n || seen_h.view.len / 8 < n || out_rows < n ||
        new_steps_h.view.len / 4 < n || width != table_width) {
        PyErr_SetString(PyExc_ValueError, "record_one_step: the wave's arrays are shorter than its slots");
        goto done;
    }
    const Py_ssize_t *slots = slots_h.view.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (slots[i] < 0 || slots[i] >= rows) {
            PyErr_Format(PyExc_IndexError, "slot %zd is outside the table's %zd rows", slots[i], rows);
            goto done;
        }
    }
    const int64_t *offsets = offsets_h.view.buf;
    const double *seen = seen_h.view.buf;
    const float *outputs = outputs_h.view.buf;
    int32_t *steps = steps_h.view.buf, *new_steps = new_steps_h.view.buf;
    int64_t *last_offset = last_offset_h.view.buf;
    double *last_seen = last_seen_h.view.buf;
    float *last_output = last_output_h.view.buf;
    unsigned char *changed = changed_h.view.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t s = slots[i];
        new_steps[i] = steps[s] = steps[s] + 1;
        last_offset[s] = offsets[i];
        double a = last_seen[s], b = seen[i];
        last_seen[s] = (a != a) ? a : (b != b) ? b : (a > b ? a : b);
        memcpy(last_output + s * width, outputs + i * width, (size_t)width * sizeof(float));
        changed[s] = 1;
    }
    Py_INCREF(Py_None);
    result = Py_None;
done:
    release(&slots_h);
    release(&offsets_h);
    release(&seen_h);
    release(&outputs_h);
    release(&steps_h);
    release(&last_offset_h);
    release(&last_seen_h);
    release(&last_output_h);
    release(&changed_h);
    release(&new_steps_h);
    return result;
}

static PyMethodDef methods[] = {
    {"lookup", (PyCFunction)(void (*)(void))lookup, METH_FASTCALL,
     "Each key's slot in a KeyIndex's arrays, -1 for none."},
    {"gather_rows", (PyCFunction)(void (*)(void))gather_rows, METH_FASTCALL,
     "Table rows at the slots, into the wave's arrays."},
    {"scatter_rows", (PyCFunction)(void (*)(void))scatter_rows, METH_FASTCALL,
     "The wave's rows, into the table's arrays at the slots."},
    {"record_one_step", (PyCFunction)(void (*)(void))record_one_step, METH_FASTCALL,
     "A wave's one-step bookkeeping in the table's arrays."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_batch_loops", "The engine's per-batch loops in one call each.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__batch_loops(void) { return PyModule_Create(&module); }
