"""The argument checks shared by ``_nn_ops.pyx`` and ``_nn.pyx``: every array a kernel reads
or writes is checked here first (type, dtype, byte order, ndim, C order, writeable,
alignment), with the messages the tests match."""
cimport numpy as cnp
from libc.stdint cimport int64_t


cdef inline bint _float_type(int tn) noexcept:
    return tn == cnp.NPY_FLOAT32 or tn == cnp.NPY_FLOAT64


cdef inline cnp.ndarray _arr(str name, object obj, int typenum, int ndim, bint writeable):
    """A C-contiguous array of the given dtype and ndim (the caller checks the shape).

    A misaligned input is read from an aligned copy: the caller must keep the returned
    array, not ``obj``, alive while it uses the data."""
    if not isinstance(obj, cnp.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(obj).__name__}")
    cdef cnp.ndarray a = <cnp.ndarray>obj
    if cnp.PyArray_TYPE(a) != typenum or not cnp.PyArray_ISNOTSWAPPED(a):
        raise TypeError(f"{name} has dtype {a.dtype}, expected "
                        f"{cnp.PyArray_DescrFromType(typenum)}")
    if cnp.PyArray_NDIM(a) != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {(<object>a).shape}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError(f"{name} must be C-contiguous")
    if writeable and not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"{name} is read-only")
    if not cnp.PyArray_ISALIGNED(a):
        if writeable:
            raise ValueError(f"{name} is not aligned to its {a.dtype} elements (flags.aligned "
                             "is False); pass np.require(a, requirements='A')")
        # an input: read from an aligned copy (np.array(a): a new base-class C array)
        a = cnp.PyArray_FROM_OF(a, cnp.NPY_ARRAY_ENSURECOPY | cnp.NPY_ARRAY_ENSUREARRAY
                                | cnp.NPY_ARRAY_CARRAY)
    return a


cdef inline Py_ssize_t _dim(cnp.ndarray a, int k) noexcept:
    return cnp.PyArray_DIMS(a)[k]


cdef inline int _dtype_of(str name, object x) except -1:
    if not isinstance(x, cnp.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    cdef int tn = cnp.PyArray_TYPE(<cnp.ndarray>x)
    if not _float_type(tn) or not cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>x):
        raise TypeError(f"{name} must have dtype float32 or float64, got {x.dtype}")
    return tn


cdef inline int _blas_int(Py_ssize_t v, str what) except -1:
    if v > 2147483647:
        raise ValueError(f"{what} ({v}) exceeds the BLAS 32-bit index range")
    return <int>v


cdef inline int _check_labels(str name, const int64_t *lab, const int64_t *idx, Py_ssize_t n,
                              Py_ssize_t classes) except -1:
    """Labels ``lab[idx[i]]`` (``lab[i]`` when idx is NULL), i < n, must be in 0..classes-1."""
    cdef Py_ssize_t i
    cdef int64_t v
    for i in range(n):
        v = lab[idx[i] if idx != NULL else i]
        if v < 0 or v >= classes:
            raise ValueError(f"{name} holds the label {v}, outside 0..{classes - 1} "
                             f"for {classes} classes")
    return 0
