/* Optional accelerator for RFC 6455 masking.
 *
 * faye_websocket._core.frames.mask() XORs a payload with a 4-byte key in
 * pure Python, at about a millisecond per MiB; this does the same eight
 * bytes at a time. The package works without it (the build marks it
 * optional, and FAYE_WEBSOCKET_NO_SPEEDUPS=1 turns it off), and the tests
 * check both against each other.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* XOR whole eight-byte blocks; returns where the tail starts. */
static Py_ssize_t
mask_blocks(const unsigned char *src, unsigned char *dst, Py_ssize_t size, uint64_t key64)
{
    Py_ssize_t i = 0;
    for (; i + 8 <= size; i += 8) {
        uint64_t block;
        memcpy(&block, src + i, 8);
        block ^= key64;
        memcpy(dst + i, &block, 8);
    }
    return i;
}

static PyObject *
speedups_mask(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data, key;
    PyObject *result;
    const unsigned char *src;
    unsigned char *dst, k[4];
    Py_ssize_t size, i;
    uint64_t key64;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "mask() takes exactly 2 arguments (payload, key)");
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &key, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    if (key.len != 4) {
        PyBuffer_Release(&data);
        PyBuffer_Release(&key);
        PyErr_SetString(PyExc_ValueError, "the masking key is 4 bytes");
        return NULL;
    }
    memcpy(k, key.buf, 4);
    PyBuffer_Release(&key);

    size = data.len;
    result = PyBytes_FromStringAndSize(NULL, size);
    if (result == NULL) {
        PyBuffer_Release(&data);
        return NULL;
    }
    src = (const unsigned char *)data.buf;
    dst = (unsigned char *)PyBytes_AS_STRING(result);

    /* The key repeated over eight bytes, in memory order: byte j of every
     * eight-byte block is masked with k[j % 4]. */
    {
        unsigned char eight[8] = {k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]};
        memcpy(&key64, eight, 8);
    }
    if (size >= 65536) {
        /* Worth letting other threads run meanwhile; the buffer export
         * keeps the payload from being resized. */
        Py_BEGIN_ALLOW_THREADS
        i = mask_blocks(src, dst, size, key64);
        Py_END_ALLOW_THREADS
    } else {
        i = mask_blocks(src, dst, size, key64);
    }
    for (; i < size; i++) {
        dst[i] = src[i] ^ k[i & 3];
    }

    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef speedups_methods[] = {
    {"mask", (PyCFunction)(void (*)(void))speedups_mask, METH_FASTCALL,
     "mask(payload, key) -> bytes: XOR payload with the 4-byte key, repeated."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "faye_websocket._core._speedups",
    "Optional C accelerator for WebSocket masking.",
    -1,
    speedups_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&speedups_module);
}
