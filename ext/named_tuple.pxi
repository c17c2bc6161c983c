# Building a named tuple (a tuple subclass such as Completion or codec.Result) in one allocation,
# for the per-record ones: included by record_path.pyx (completing.pxi) and codec.pyx.
#
# Why: the named tuple's `__new__` is Python code, and `tuple.__new__(cls, fields)` takes a tuple
# of the fields and one of its arguments, two more allocations and a wrapper's checks per record
# (the allocator was the control thread's first cost in a perf profile of batch mode). This is
# what CPython's tuple_subtype_new ends in: the type's allocator, then the items.

from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_SET_ITEM

cdef extern from *:
    """
    /* An instance of the tuple subclass `cls` with `n` items, each NULL until set, tracked by
       the collector (which skips NULL items). 3.14 caches a tuple's hash in the object: the
       allocator zeroes it, which would read as a hash of 0, so it is reset as CPython does. */
    static PyObject *pyrallel_named_tuple_alloc(PyObject *cls, Py_ssize_t n) {
        PyTypeObject *type = (PyTypeObject *)cls;
        PyObject *made = type->tp_alloc(type, n);
        if (made == NULL) return NULL;
    #if PY_VERSION_HEX >= 0x030E0000
        ((PyTupleObject *)made)->ob_hash = -1;
    #endif
        if (!PyObject_GC_IsTracked(made)) PyObject_GC_Track(made);
        return made;
    }
    """
    object pyrallel_named_tuple_alloc(object cls, Py_ssize_t n)


cdef inline void _set_item(object made, Py_ssize_t index, object value):
    """Item `index` of a tuple from pyrallel_named_tuple_alloc, set once."""
    Py_INCREF(value)  # PyTuple_SET_ITEM takes over a reference
    PyTuple_SET_ITEM(made, index, value)
