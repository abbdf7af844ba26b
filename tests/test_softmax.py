"""Behaviour of softmax, log_softmax and logsumexp: contract clauses S1-S8.

Thread-count and concurrency clauses (S9-S11) are in ``test_threads.py``; the property tests
over random shapes, dtypes, axes and strides are in ``test_softmax_properties.py``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from numpy.exceptions import AxisError
from numpy.lib.stride_tricks import as_strided

import logitkit as lk
from conftest import (
    LD,
    assert_logs_close,
    assert_probs_close,
    prob_errors,
    ref_logsumexp,
    ref_map,
)

MAP_FUNCS = [lk.softmax, lk.log_softmax]
ALL_FUNCS = [lk.softmax, lk.log_softmax, lk.logsumexp]
FLOATS = [np.float16, np.float32, np.float64]


def check_map(func, x, axis=-1, temperature=1.0, got=None):
    """Compares ``func(x, axis, temperature)`` (or ``got``) with the longdouble reference."""
    if got is None:
        got = func(x, axis=axis, temperature=temperature)
    log = func is lk.log_softmax
    ref = ref_map(x, axis=axis, temperature=temperature, log=log)
    if log:
        assert_logs_close(got, ref, func.__name__)
    else:
        assert_probs_close(got, ref, func.__name__, axis=axis)
    return got


def check_lse(x, axis=-1, keepdims=False, got=None):
    if got is None:
        got = lk.logsumexp(x, axis=axis, keepdims=keepdims)
    ref = ref_logsumexp(x, axis=axis, keepdims=keepdims)
    assert_logs_close(np.asarray(got), ref, "logsumexp")
    return got


def rng(seed=0):
    return np.random.default_rng(seed)


# ============================================================================================
# S1 Input kinds and result dtypes
# ============================================================================================


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s1_python_list(func):
    """S1: a list is accepted; the result is float64."""
    got = check_map(func, [1.0, 2.0, 3.0])
    assert got.dtype == np.float64


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s1_nested_list(func):
    """S1: a nested list is accepted as a 2-d array."""
    x = [[1.0, 2.0, 3.0], [0.0, -1.0, 5.5]]
    got = check_map(func, x)
    assert got.shape == (2, 3) and got.dtype == np.float64


def test_s1_tuple_and_list_logsumexp():
    """S1: logsumexp accepts lists and tuples."""
    check_lse([[1.0, 2.0], [3.0, 4.0]])
    check_lse((1.0, 2.0, 3.0))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s1_float_dtypes_kept(func, dtype):
    """S1: float16/32/64 input gives the same dtype, accurate per S8."""
    x = rng(1).normal(scale=3, size=(4, 33)).astype(dtype)
    got = check_map(func, x)
    assert got.dtype == dtype


@pytest.mark.parametrize("dtype", FLOATS)
def test_s1_logsumexp_dtypes_kept(dtype):
    """S1: logsumexp keeps the float dtype (array and scalar results)."""
    x = rng(2).normal(scale=3, size=(4, 33)).astype(dtype)
    got = check_lse(x)
    assert got.dtype == dtype
    s = lk.logsumexp(x[0])
    assert isinstance(s, np.generic) and s.dtype == dtype


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s1_float16_rounded_once_from_float32(func):
    """S1/S8: float16 is computed in float32 and rounded once: within one float16 ulp of the
    correctly rounded exact result, and equal to the float32 result rounded to float16 up to
    one ulp."""
    x = rng(3).normal(scale=4, size=(8, 300)).astype(np.float16)
    got = check_map(func, x)
    assert got.dtype == np.float16
    via32 = func(x.astype(np.float32)).astype(np.float16).astype(np.float64)
    diff = np.abs(got.astype(np.float64) - via32)
    assert np.all(diff <= np.spacing(np.abs(via32).astype(np.float16)).astype(np.float64))


@pytest.mark.parametrize("func", MAP_FUNCS)
@pytest.mark.parametrize("shape", [(3, 40_000), (1, 128_256)])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_s1_float16_long_rows_are_float32_rounded_once_bit_for_bit(func, shape, temperature):
    """S1: rows longer than 16384 float16s are read by the float32 kernels (widened and
    rounded in registers): the float32 result on the same values rounded once, bit for bit,
    with -inf entries, into out= too."""
    x = rng(5).normal(scale=4, size=shape).astype(np.float16)
    x[:, ::97] = -np.inf
    want = func(x.astype(np.float32), temperature=temperature).astype(np.float16)
    got = func(x, temperature=temperature)
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))
    out = np.empty_like(x)
    func(x, temperature=temperature, out=out)
    np.testing.assert_array_equal(out.view(np.uint16), want.view(np.uint16))


def test_s1_float16_logsumexp():
    """S1/S8: float16 logsumexp within one float16 ulp of the exact value."""
    x = rng(4).normal(scale=4, size=(8, 300)).astype(np.float16)
    got = check_lse(x)
    assert got.dtype == np.float16


@pytest.mark.parametrize(
    "dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
)
@pytest.mark.parametrize("func", ALL_FUNCS)
def test_s1_integers_give_float64(func, dtype):
    """S1: integer input gives float64."""
    x = np.array([[0, 1, 2, 7], [3, 3, 3, 3]], dtype=dtype)
    got = func(x)
    assert np.asarray(got).dtype == np.float64
    if func is lk.logsumexp:
        check_lse(x, got=got)
    else:
        check_map(func, x, got=got)


@pytest.mark.parametrize("func", ALL_FUNCS)
def test_s1_bool_gives_float64(func):
    """S1: bool input gives float64 (True = 1, False = 0)."""
    x = np.array([True, False, True])
    got = func(x)
    assert np.asarray(got).dtype == np.float64
    np.testing.assert_allclose(got, func(np.array([1.0, 0.0, 1.0])), rtol=0, atol=0)


def test_s1_python_ints_give_float64():
    """S1: a list of Python ints gives float64."""
    got = lk.softmax([1, 2, 3])
    assert got.dtype == np.float64
    check_map(lk.softmax, [1, 2, 3], got=got)


@pytest.mark.parametrize("func", ALL_FUNCS)
@pytest.mark.parametrize(
    "bad",
    [
        np.array([1 + 2j, 3 + 0j]),
        np.array([1 + 2j, 3 + 0j], dtype=np.complex64),
        np.array([1.0, 2.0], dtype=object),
        np.array(["a", "b"]),
        np.array([b"a", b"b"]),
        ["a", "b"],
        [1 + 1j, 2.0],
        np.array(["2001-01-01", "2002-01-01"], dtype="datetime64[D]"),
        np.array([1.0, 2.0], dtype=np.longdouble),
    ],
    ids=["c128", "c64", "object", "str", "bytes", "list-str", "list-complex", "datetime", "f128"],
)
def test_s1_bad_dtypes_raise_type_error(func, bad):
    """S1: complex, object and string input raise TypeError (float128/longdouble too, a
    documented choice)."""
    with pytest.raises(TypeError):
        func(bad)


@pytest.mark.parametrize("func", ALL_FUNCS)
def test_s1_ragged_list_raises_type_error(func):
    """S1: something numpy.asarray cannot turn into a numeric array is a TypeError."""
    with pytest.raises((TypeError, ValueError)):
        func([[1.0, 2.0], [3.0]])


class _Tensorish:
    """A CPU 'tensor' exposing only __array__ (as torch/jax arrays do)."""

    def __init__(self, a):
        self._a = np.asarray(a)

    def __array__(self, dtype=None, copy=None):
        return self._a if dtype is None else self._a.astype(dtype)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("func", ALL_FUNCS)
def test_s1_array_protocol_object(func, dtype):
    """S1: an object exposing __array__ is accepted and keeps its dtype."""
    a = rng(5).normal(size=(3, 10)).astype(dtype)
    got = func(_Tensorish(a))
    assert np.asarray(got).dtype == dtype
    np.testing.assert_array_equal(got, func(a))


@pytest.mark.parametrize("dtype", [">f2", ">f4", ">f8"])
@pytest.mark.parametrize("func", ALL_FUNCS)
def test_s1_byteswapped(func, dtype):
    """S1: non-native byte order is read correctly; the result is the native dtype."""
    a = rng(6).normal(scale=2, size=(3, 17))
    x = a.astype(dtype)
    got = func(x)
    native = np.dtype(dtype).newbyteorder("=")
    assert np.asarray(got).dtype == native
    np.testing.assert_array_equal(got, func(x.astype(native)))


def _unaligned(a):
    """A copy of ``a`` whose data sits one byte off alignment."""
    buf = np.zeros(a.nbytes + 1, dtype=np.uint8)
    u = buf[1:].view(a.dtype).reshape(a.shape)
    u[...] = a
    assert not u.flags.aligned
    return u


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("func", ALL_FUNCS)
def test_s1_unaligned(func, dtype):
    """S1: unaligned data is read correctly."""
    a = rng(7).normal(scale=2, size=(3, 17)).astype(dtype)
    u = _unaligned(a)
    np.testing.assert_array_equal(func(u), func(a))
    np.testing.assert_array_equal(func(u, axis=0), func(a, axis=0))


@pytest.mark.parametrize("func", ALL_FUNCS)
def test_s1_structured_field_view(func):
    """S1: a view of one field of a structured array (element stride not a multiple of the
    item size) is read correctly."""
    rec = np.zeros(5, dtype=[("a", "<f4"), ("b", "<i2")])
    rec["a"] = [1.0, 2.0, 3.0, -1.0, 0.5]
    a = rec["a"]
    np.testing.assert_array_equal(func(a), func(np.ascontiguousarray(a)))


@pytest.mark.parametrize("func", ALL_FUNCS)
def test_s1_structured_field_view_single_record(func):
    """S1: a field of a one-record structured array (stride 6 on a length-1 axis; NumPy marks
    it aligned) is accepted like any other float32 array."""
    rec = np.zeros(1, dtype=[("a", "<f4"), ("b", "<i2")])
    rec["a"] = 1.5
    a = rec["a"]
    np.testing.assert_array_equal(func(a), func(np.array([1.5], dtype=np.float32)))


@pytest.mark.parametrize("func", ALL_FUNCS)
def test_s1_odd_stride_on_length_one_axis(func):
    """S1: "NumPy arrays of any strides": a length-1 axis with a byte stride that is not a
    multiple of the item size (legal; NumPy ignores strides of length-1 axes) is accepted."""
    x = np.array([0.5, 1.5, -2.0], dtype=np.float32)
    y = as_strided(x, shape=(1, 3), strides=(3, 4))
    np.testing.assert_array_equal(func(y), func(x.reshape(1, 3)))


@pytest.mark.parametrize("func", ALL_FUNCS)
def test_s1_real_and_imag_views_of_complex(func):
    """S1: .real / .imag of a complex array (float views with a 2-item stride) are read
    correctly."""
    z = rng(62).normal(size=(4, 9)) + 1j * rng(63).normal(size=(4, 9))
    for v in (z.real, z.imag, z.astype(np.complex64).imag, z.real[:, ::-1]):
        np.testing.assert_array_equal(func(v), func(np.ascontiguousarray(v)))
        np.testing.assert_array_equal(func(v, axis=0), func(np.ascontiguousarray(v), axis=0))


def _views(a):
    """Non-contiguous views of 2-d ``a`` with their contiguous twins."""
    return {
        "neg-rows": a[::-1],
        "neg-cols": a[:, ::-1],
        "neg-both": a[::-1, ::-1],
        "step2-cols": a[:, ::2],
        "step3-rows": a[::3],
        "transposed": a.T,
        "fortran": np.asfortranarray(a),
        "neg-step2": a[::-2, ::-3],
    }


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("func", ALL_FUNCS)
@pytest.mark.parametrize("axis", [0, 1, -1, None])
def test_s1_non_contiguous_views(func, dtype, axis):
    """S1: negative strides, steps, transposes and Fortran order give the same result as a
    contiguous copy of the same values."""
    a = rng(8).normal(scale=3, size=(9, 14)).astype(dtype)
    for name, v in _views(a).items():
        got = func(v, axis=axis)
        want = func(np.ascontiguousarray(v), axis=axis)
        np.testing.assert_array_equal(got, want, err_msg=name)


@pytest.mark.parametrize("func", ALL_FUNCS)
@pytest.mark.parametrize("axis", [0, 1, None])
def test_s1_broadcast_zero_strides(func, axis):
    """S1: np.broadcast_to (zero strides) as input equals a materialised copy."""
    row = np.array([0.5, -1.0, 2.0, 3.0])
    b = np.broadcast_to(row, (5, 4))
    assert b.strides[0] == 0
    np.testing.assert_array_equal(func(b, axis=axis), func(np.array(b), axis=axis))
    col = np.broadcast_to(np.array([[1.0], [2.0], [-3.0]]), (3, 6))
    np.testing.assert_array_equal(func(col, axis=axis), func(np.array(col), axis=axis))


@pytest.mark.parametrize("func", ALL_FUNCS)
def test_s1_scalar_broadcast_zero_stride_vector(func):
    """S1: a vector broadcast from one value (all strides 0) is uniform."""
    b = np.broadcast_to(np.float32(2.0), (7,))
    got = func(b)
    np.testing.assert_array_equal(got, func(np.full(7, 2.0, np.float32)))


@pytest.mark.parametrize("func", ALL_FUNCS)
def test_s1_buffer_protocol_and_array_interface(func):
    """S1: anything numpy.asarray accepts: array.array / memoryview (buffer protocol) and
    objects exposing __array_interface__."""
    import array

    fa = array.array("f", [1.0, 2.0, 0.5])
    got = func(fa)
    assert np.asarray(got).dtype == np.float32
    np.testing.assert_array_equal(got, func(np.array([1.0, 2.0, 0.5], dtype=np.float32)))
    mv = memoryview(array.array("d", [3.0, -1.0]))
    np.testing.assert_array_equal(func(mv), func(np.array([3.0, -1.0])))

    class Iface:
        def __init__(self, a):
            self._a = a
            self.__array_interface__ = a.__array_interface__

    a = np.array([[1.0, 2.0], [4.0, 0.0]])
    np.testing.assert_array_equal(func(Iface(a)), func(a))


def test_s1_readonly_input_is_fine():
    """S1: a read-only input array is accepted and not modified."""
    a = rng(9).normal(size=(3, 5))
    a.flags.writeable = False
    c = a.copy()
    lk.softmax(a)
    lk.log_softmax(a)
    lk.logsumexp(a)
    np.testing.assert_array_equal(a, c)


def test_s1_input_not_modified():
    """S1/S3: without out=, the input is left untouched (all dtypes, strided too)."""
    for dt in FLOATS:
        a = rng(10).normal(size=(6, 8)).astype(dt)
        c = a.copy()
        for f in MAP_FUNCS:
            f(a)
            f(a[:, ::2], axis=0)
            f(a.T, axis=None)
        np.testing.assert_array_equal(a, c)


def test_s1_numpy_scalar_input():
    """S1: NumPy scalars are accepted as 0-d input (with axis=None)."""
    assert lk.softmax(np.float32(3.0), axis=None).dtype == np.float32
    assert lk.softmax(np.float32(3.0), axis=None) == 1.0
    assert lk.log_softmax(np.float16(3.0), axis=None).dtype == np.float16
    assert lk.logsumexp(np.float64(-7.5), axis=None) == -7.5


def test_s1_ndarray_subclass():
    """S1: an ndarray subclass (np.matrix) is accepted."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        m = np.matrix([[1.0, 2.0], [3.0, 5.0]])
    got = lk.softmax(m)
    np.testing.assert_array_equal(np.asarray(got), lk.softmax(np.asarray(m)))


# ============================================================================================
# S2 axis
# ============================================================================================


@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s2_every_axis(func, ndim):
    """S2: every axis (positive and negative) of 1-4-d arrays, against the reference."""
    shape = (3, 4, 5, 2)[:ndim]
    x = rng(11).normal(scale=3, size=shape)
    for axis in range(-ndim, ndim):
        got = check_map(func, x, axis=axis)
        assert got.shape == shape
        np.testing.assert_array_equal(got, func(x, axis=axis % ndim))


@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
def test_s2_logsumexp_every_axis(ndim):
    """S2: logsumexp along every axis, positive and negative."""
    shape = (3, 4, 5, 2)[:ndim]
    x = rng(12).normal(scale=3, size=shape)
    for axis in range(-ndim, ndim):
        got = check_lse(x, axis=axis)
        np.testing.assert_array_equal(got, lk.logsumexp(x, axis=axis % ndim))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s2_axis_none_is_whole_array(func, dtype):
    """S2: axis=None treats the whole array as one vector."""
    x = rng(13).normal(scale=2, size=(3, 4, 5)).astype(dtype)
    got = check_map(func, x, axis=None)
    assert got.shape == x.shape
    flat = func(x.reshape(-1)).reshape(x.shape)
    np.testing.assert_array_equal(got, flat)
    if func is lk.softmax:
        assert abs(float(got.astype(np.float64).sum()) - 1) < 1e-3


def test_s2_logsumexp_axis_none():
    """S2: logsumexp with axis=None reduces everything to a scalar."""
    x = rng(14).normal(size=(3, 4, 5))
    got = check_lse(x, axis=None)
    assert np.ndim(got) == 0
    assert got == lk.logsumexp(x.reshape(-1))


def test_s2_default_axis_is_last():
    """S2: the default axis is -1."""
    x = rng(15).normal(size=(3, 4, 5))
    np.testing.assert_array_equal(lk.softmax(x), lk.softmax(x, axis=2))
    np.testing.assert_array_equal(lk.log_softmax(x), lk.log_softmax(x, axis=-1))
    np.testing.assert_array_equal(lk.logsumexp(x), lk.logsumexp(x, axis=2))


@pytest.mark.parametrize("func", ALL_FUNCS)
@pytest.mark.parametrize("ndim,axis", [(1, 1), (1, -2), (2, 2), (2, -3), (3, 3), (4, -5)])
def test_s2_out_of_range_axis_error(func, ndim, axis):
    """S2: out-of-range axis raises numpy.exceptions.AxisError."""
    x = np.zeros((2,) * ndim)
    with pytest.raises(AxisError):
        func(x, axis=axis)


@pytest.mark.parametrize("func", ALL_FUNCS)
def test_s2_axis_error_is_also_index_and_value_error(func):
    """S2: the AxisError is NumPy's own (a subclass of ValueError and IndexError)."""
    with pytest.raises(ValueError):
        func(np.zeros(3), axis=5)
    with pytest.raises(IndexError):
        func(np.zeros(3), axis=-2)


@pytest.mark.parametrize("func", ALL_FUNCS)
def test_s2_zero_d_needs_axis_none(func):
    """S2: a 0-d input with the default axis (or any int axis) raises AxisError."""
    for axis in (-1, 0):
        with pytest.raises(AxisError):
            func(np.float64(2.5), axis=axis)
        with pytest.raises(AxisError):
            func(np.array(2.5), axis=axis)


@pytest.mark.parametrize("dtype", FLOATS)
def test_s2_zero_d_axis_none_results(dtype):
    """S2: 0-d input with axis=None: softmax 1.0, log_softmax 0.0 (0-d ndarrays), logsumexp
    the value itself."""
    x = np.array(-3.25, dtype=dtype)
    p = lk.softmax(x, axis=None)
    lp = lk.log_softmax(x, axis=None)
    assert isinstance(p, np.ndarray) and p.shape == () and p.dtype == dtype and p == 1.0
    assert isinstance(lp, np.ndarray) and lp.shape == () and lp.dtype == dtype and lp == 0.0
    s = lk.logsumexp(x, axis=None)
    assert np.ndim(s) == 0 and s == dtype(-3.25)
    assert np.asarray(s).dtype == dtype


def test_s2_zero_d_python_float():
    """S2: a Python float (0-d) with axis=None."""
    assert lk.softmax(7.0, axis=None) == 1.0
    assert lk.log_softmax(7.0, axis=None) == 0.0
    assert lk.logsumexp(7.0, axis=None) == 7.0


@pytest.mark.parametrize("func", ALL_FUNCS)
def test_s2_numpy_integer_axis(func):
    """S2: a NumPy integer is accepted as axis."""
    x = rng(16).normal(size=(3, 4))
    np.testing.assert_array_equal(func(x, axis=np.int64(0)), func(x, axis=0))


# ============================================================================================
# S3 Output
# ============================================================================================


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s3_new_c_contiguous(func):
    """S3: the result is a new C-contiguous array of x's shape, even for strided input."""
    a = rng(17).normal(size=(6, 10))
    for v in (a, a.T, a[::-1, ::2], np.asfortranarray(a)):
        for axis in (0, 1, None):
            r = func(v, axis=axis)
            assert isinstance(r, np.ndarray)
            assert r.shape == v.shape
            assert r.flags.c_contiguous
            assert r.flags.writeable
            assert not np.shares_memory(r, a)


def test_s3_logsumexp_shapes():
    """S3: logsumexp drops the axis, or keeps it as 1 with keepdims=True."""
    x = rng(18).normal(size=(2, 3, 4))
    for axis in range(-3, 3):
        k = axis % 3
        r = lk.logsumexp(x, axis=axis)
        assert r.shape == tuple(n for d, n in enumerate(x.shape) if d != k)
        rk = lk.logsumexp(x, axis=axis, keepdims=True)
        assert rk.shape == tuple(1 if d == k else n for d, n in enumerate(x.shape))
        np.testing.assert_array_equal(rk.reshape(r.shape), r)
        assert rk.flags.c_contiguous and r.flags.c_contiguous
    rn = lk.logsumexp(x, axis=None, keepdims=True)
    assert isinstance(rn, np.ndarray) and rn.shape == (1, 1, 1)
    assert rn.reshape(()) == lk.logsumexp(x, axis=None)


def test_s3_logsumexp_scalar_result_is_numpy_scalar():
    """S3: logsumexp returns a NumPy scalar when the result shape is (), else an ndarray."""
    s = lk.logsumexp(np.arange(4.0))
    assert isinstance(s, np.float64) and not isinstance(s, np.ndarray)
    s32 = lk.logsumexp(np.arange(4, dtype=np.float32))
    assert isinstance(s32, np.float32)
    s0 = lk.logsumexp(np.float64(1.0), axis=None)
    assert isinstance(s0, np.float64)
    r = lk.logsumexp(np.arange(4.0), keepdims=True)
    assert isinstance(r, np.ndarray) and r.shape == (1,)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("func", MAP_FUNCS)
@pytest.mark.parametrize("axis", [0, 1, -1, None])
def test_s3_out_written_and_returned(func, dtype, axis):
    """S3: a correct out= is written and returned (the same object)."""
    x = rng(19).normal(scale=2, size=(5, 7)).astype(dtype)
    out = np.full(x.shape, 123.0, dtype=dtype)
    r = func(x, axis=axis, out=out)
    assert r is out
    np.testing.assert_array_equal(out, func(x, axis=axis))


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s3_out_zero_d(func):
    """S3: out= for a 0-d input with axis=None."""
    out = np.array(9.0)
    r = func(np.array(4.0), axis=None, out=out)
    assert r is out
    assert out == (1.0 if func is lk.softmax else 0.0)


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s3_out_int_input_float64(func):
    """S3: integer input needs a float64 out."""
    x = np.array([[1, 2, 3]], dtype=np.int32)
    out = np.empty((1, 3))
    assert func(x, out=out) is out
    np.testing.assert_array_equal(out, func(x))
    with pytest.raises(TypeError):
        func(x, out=np.empty((1, 3), dtype=np.int32))


@pytest.mark.parametrize("func", MAP_FUNCS)
@pytest.mark.parametrize("shape", [(4,), (2, 3), (3, 2), (6, 1), (1, 2, 3), ()])
def test_s3_out_wrong_shape(func, shape):
    """S3: out of another shape (even the same size, or broadcastable) is a ValueError."""
    x = np.zeros((2, 3))
    if shape == (2, 3):
        shape = (2, 3, 1)
    with pytest.raises(ValueError):
        func(x, out=np.empty(shape))


@pytest.mark.parametrize("func", MAP_FUNCS)
@pytest.mark.parametrize(
    "xdt,odt",
    [
        (np.float64, np.float32),
        (np.float32, np.float64),
        (np.float16, np.float32),
        (np.float32, np.float16),
        (np.float64, np.int64),
        (np.float64, np.complex128),
        (np.float64, np.longdouble),
        (np.int64, np.float32),
    ],
)
def test_s3_out_wrong_dtype(func, xdt, odt):
    """S3: out of another dtype than the result dtype is a TypeError."""
    x = np.zeros((2, 3), dtype=xdt)
    with pytest.raises(TypeError):
        func(x, out=np.empty((2, 3), dtype=odt))


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s3_out_readonly(func):
    """S3: a read-only out is a ValueError, and it is left unchanged."""
    x = np.zeros((2, 3))
    out = np.full((2, 3), 5.0)
    out.flags.writeable = False
    with pytest.raises(ValueError):
        func(x, out=out)
    assert np.all(out == 5.0)
    with pytest.raises(ValueError):
        func(x, out=np.broadcast_to(np.empty(3), (2, 3)))


@pytest.mark.parametrize("func", MAP_FUNCS)
@pytest.mark.parametrize("bad", [[0.0, 0.0, 0.0], (0.0, 0.0, 0.0), "out", 3.0])
def test_s3_out_not_ndarray(func, bad):
    """S3: out that is not an ndarray is a TypeError."""
    with pytest.raises(TypeError):
        func(np.zeros(3), out=bad)


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s3_out_tensorish_not_ndarray(func):
    """S3: an object with __array__ is fine as x but not as out (TypeError)."""
    with pytest.raises(TypeError):
        func(np.zeros(3), out=_Tensorish(np.zeros(3)))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("func", MAP_FUNCS)
@pytest.mark.parametrize("axis", [0, 1, 2, -1, None])
def test_s3_in_place(func, dtype, axis):
    """S3: out=x computes in place, for every axis."""
    x = rng(20).normal(scale=3, size=(3, 4, 5)).astype(dtype)
    want = func(x, axis=axis)
    r = func(x, axis=axis, out=x)
    assert r is x
    np.testing.assert_array_equal(x, want)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("func", MAP_FUNCS)
@pytest.mark.parametrize("axis", [0, 1, None])
def test_s3_in_place_strided_views(func, dtype, axis):
    """S3: out=x in place on strided views writes only the view's elements."""
    base = rng(21).normal(scale=3, size=(8, 12)).astype(dtype)
    for sl in [np.s_[::-1, :], np.s_[:, ::2], np.s_[::2, ::-3], np.s_[1:7, 2:9]]:
        b = base.copy()
        v = b[sl]
        want = func(v.copy(), axis=axis)
        untouched = np.ones(b.shape, bool)
        untouched[sl] = False
        before = b[untouched].copy()
        r = func(v, axis=axis, out=v)
        assert r is v
        np.testing.assert_array_equal(v, want, err_msg=str(sl))
        np.testing.assert_array_equal(b[untouched], before, err_msg=str(sl))
    b = base.copy()
    t = b.T
    want = func(t.copy(), axis=axis)
    func(t, axis=axis, out=t)
    np.testing.assert_array_equal(t, want)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("func", MAP_FUNCS)
@pytest.mark.parametrize("axis", [0, 1, -1, None])
def test_s3_partial_overlap_shifted_rows(func, dtype, axis):
    """S3: out=buf[1:] for x=buf[:-1] (partial overlap) computes as if x had been copied first,
    or raises ValueError; never a wrong result."""
    buf = rng(22).normal(scale=3, size=(7, 6)).astype(dtype)
    x, out = buf[:-1], buf[1:]
    want = func(x.copy(), axis=axis)
    try:
        r = func(x, axis=axis, out=out)
    except ValueError:
        return
    assert r is out
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("func", MAP_FUNCS)
@pytest.mark.parametrize("axis", [0, -1, None])
def test_s3_partial_overlap_1d_shift(func, axis):
    """S3: 1-d partial overlap in both directions (out ahead of and behind x)."""
    for shift in (1, -1, 3, -5):
        buf = rng(23).normal(scale=3, size=40)
        n = 30
        if shift > 0:
            x, out = buf[:n], buf[shift : shift + n]
        else:
            x, out = buf[-shift : -shift + n], buf[:n]
        want = func(x.copy(), axis=axis)
        try:
            r = func(x, axis=axis, out=out)
        except ValueError:
            continue
        assert r is out
        np.testing.assert_array_equal(out, want, err_msg=f"shift {shift}")


@pytest.mark.parametrize("func", MAP_FUNCS)
@pytest.mark.parametrize("axis", [0, 1, None])
def test_s3_overlap_transposed_same_buffer(func, axis):
    """S3: out = x.T on a square buffer (same elements, other layout) is computed as if x had
    been copied first, or refused with ValueError."""
    bb = rng(24).normal(scale=3, size=(6, 6))
    want = func(bb.copy(), axis=axis)
    out = bb.T
    try:
        r = func(bb, axis=axis, out=out)
    except ValueError:
        return
    assert r is out
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s3_overlap_reversed_same_elements(func, dtype):
    """S3: out = x[::-1] (the same elements in the opposite order) is computed as if x had
    been copied first, or refused with ValueError."""
    b = rng(60).normal(scale=3, size=(5, 8)).astype(dtype)
    for axis in (0, 1, None):
        for make_out in (lambda a: a[::-1], lambda a: a[:, ::-1], lambda a: a[::-1, ::-1]):
            bb = b.copy()
            want = func(bb.copy(), axis=axis)
            out = make_out(bb)
            try:
                r = func(bb, axis=axis, out=out)
            except ValueError:
                continue
            assert r is out
            np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s3_overlap_interleaved(func):
    """S3: x = buf[::2] and out = buf[1::2] share a byte range without sharing elements."""
    buf = rng(25).normal(size=(20,))
    x, out = buf[0:18:2], buf[1:19:2]
    want = func(x.copy())
    xc = x.copy()
    try:
        r = func(x, out=out)
    except ValueError:
        return
    assert r is out
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(x, xc)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("func", MAP_FUNCS)
@pytest.mark.parametrize("axis", [0, 1, None])
def test_s3_out_non_contiguous(func, dtype, axis):
    """S3: a non-contiguous out (strided, transposed, reversed) receives the right values and
    nothing around it is touched."""
    x = rng(26).normal(scale=3, size=(5, 6)).astype(dtype)
    want = func(x, axis=axis)
    big = np.full((10, 12), 77.0, dtype=dtype)
    for sl in [np.s_[::2, ::2], np.s_[::-2, 1::2], np.s_[2:7, 3:9]]:
        b = big.copy()
        out = b[sl]
        r = func(x, axis=axis, out=out)
        assert r is out
        np.testing.assert_array_equal(out, want)
        mask = np.ones(b.shape, bool)
        mask[sl] = False
        assert np.all(b[mask] == 77.0)
    outf = np.empty((6, 5), dtype=dtype).T
    assert func(x, axis=axis, out=outf) is outf
    np.testing.assert_array_equal(outf, want)


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s3_out_byteswapped_and_unaligned(func):
    """S3: out with non-native byte order (same dtype kind) or unaligned data is written
    correctly, or refused with TypeError for the byte order; never wrong."""
    x = rng(27).normal(size=(3, 5))
    want = func(x)
    ua = _unaligned(np.zeros((3, 5)))
    assert func(x, out=ua) is ua
    np.testing.assert_array_equal(ua, want)
    bs = np.zeros((3, 5), dtype=">f8")
    try:
        r = func(x, out=bs)
    except TypeError:
        return
    assert r is bs
    np.testing.assert_array_equal(bs, want)


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s3_out_empty(func):
    """S3/S7: out= with an empty shape is returned as is."""
    x = np.zeros((0, 4))
    out = np.empty((0, 4))
    assert func(x, out=out) is out


# ============================================================================================
# S4 Temperature
# ============================================================================================


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("func", MAP_FUNCS)
@pytest.mark.parametrize("T", [1e-3, 0.1, 0.5, 0.7, 1.0, 2.0, 3.3, 100.0, 1e4])
def test_s4_scalar_temperature_is_division(func, dtype, T):
    """S4: func(x, temperature=T) == func(x / T) (S8 accuracy against the reference of x / T
    computed exactly)."""
    x = rng(28).normal(scale=3, size=(4, 50)).astype(dtype)
    check_map(func, x, temperature=T)
    got = func(x, temperature=T)
    ref_div = ref_map(x.astype(LD) / LD(T), log=func is lk.log_softmax)
    if func is lk.softmax:
        assert_probs_close(got, ref_div)
    else:
        assert_logs_close(got, ref_div)


def test_s4_temperature_float16():
    """S4: float16 with a temperature is within one float16 ulp of the exact result."""
    x = rng(29).normal(scale=3, size=(4, 50)).astype(np.float16)
    for T in (0.3, 2.5):
        check_map(lk.softmax, x, temperature=T)
        check_map(lk.log_softmax, x, temperature=T)


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s4_temperature_one_and_none_are_default(func):
    """S4: temperature=1.0 and temperature=None (documented: means 1.0) equal the default."""
    x = rng(30).normal(size=(3, 9))
    d = func(x)
    np.testing.assert_array_equal(func(x, temperature=1.0), d)
    np.testing.assert_array_equal(func(x, temperature=None), d)
    np.testing.assert_array_equal(func(x, temperature=1), d)
    np.testing.assert_array_equal(func(x, temperature=np.float32(1.0)), d)
    np.testing.assert_array_equal(func(x, temperature=np.array(1.0)), d)


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s4_per_vector_last_axis(func):
    """S4: shape (B,) temperatures for (B, V), axis=-1: row i uses T[i]."""
    x = rng(31).normal(scale=3, size=(5, 40))
    T = np.array([0.1, 0.5, 1.0, 2.0, 10.0])
    got = check_map(func, x, temperature=T)
    for i in range(5):
        np.testing.assert_array_equal(got[i], func(x[i], temperature=T[i]))
    np.testing.assert_array_equal(func(x, temperature=list(T)), got)


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s4_per_vector_axis0(func):
    """S4: shape (V,) temperatures for (B, V), axis=0: column j uses T[j]."""
    x = rng(32).normal(scale=3, size=(40, 4))
    T = np.array([0.25, 1.0, 3.0, 7.0])
    got = check_map(func, x, axis=0, temperature=T)
    for j in range(4):
        np.testing.assert_array_equal(got[:, j], func(x[:, j], temperature=T[j]))


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s4_per_vector_broadcasting_3d(func):
    """S4: temperatures broadcast to the non-axis shape of a 3-d array."""
    x = rng(33).normal(scale=3, size=(3, 20, 4))
    Ta = np.array([[0.5], [1.0], [2.0]])  # (3, 1) -> (3, 4)
    Tb = np.array([0.3, 1.0, 2.0, 4.0])  # (4,) -> (3, 4)
    Tc = np.array([[0.3, 1.0, 2.0, 4.0]])  # (1, 4) -> (3, 4)
    Tfull = rng(34).uniform(0.2, 5, size=(3, 4))
    for T in (Ta, Tb, Tc, Tfull):
        got = check_map(func, x, axis=1, temperature=T)
        Tb_full = np.broadcast_to(T, (3, 4))
        for i in range(3):
            for k in range(4):
                np.testing.assert_array_equal(
                    got[i, :, k], func(x[i, :, k], temperature=Tb_full[i, k])
                )


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s4_per_vector_strided_input(func):
    """S4: per-vector temperatures follow the logical (C-order) vector order, also for
    transposed / reversed input."""
    a = rng(35).normal(scale=3, size=(30, 6))
    T = np.linspace(0.2, 4, 6)
    for v in (a.T, a.T[::-1], np.asfortranarray(a.T)):
        got = func(v, temperature=T)
        want = func(np.ascontiguousarray(v), temperature=T)
        np.testing.assert_array_equal(got, want)
        check_map(func, v, temperature=T, got=got)


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s4_per_vector_temperature_strided_or_other_dtype(func):
    """S4: the temperature array itself may be strided, reversed, float32 or integer."""
    x = rng(64).normal(scale=3, size=(5, 20))
    T = np.linspace(0.5, 4.0, 10)[::2][::-1]
    want = func(x, temperature=T.copy())
    np.testing.assert_array_equal(func(x, temperature=T), want)
    np.testing.assert_array_equal(
        func(x, temperature=np.array([1, 2, 3, 4, 5], dtype=np.int32)),
        func(x, temperature=np.array([1.0, 2.0, 3.0, 4.0, 5.0])),
    )
    T32 = np.float32([0.5, 1.5, 2.5, 3.5, 4.5])
    np.testing.assert_array_equal(func(x, temperature=T32), func(x, temperature=T32.astype(float)))


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s4_per_vector_in_place(func):
    """S4/S3: per-vector temperatures with out=x."""
    x = rng(36).normal(scale=3, size=(4, 30))
    T = np.array([0.5, 1.0, 2.0, 4.0])
    want = func(x, temperature=T)
    func(x, temperature=T, out=x)
    np.testing.assert_array_equal(x, want)


@pytest.mark.parametrize("func", MAP_FUNCS)
@pytest.mark.parametrize(
    "T", [0.0, -0.0, -1.0, -1e-300, float("nan"), float("inf"), float("-inf"), -np.float32(2)]
)
def test_s4_bad_scalar_temperature(func, T):
    """S4: T <= 0, NaN or inf raise ValueError naming temperature."""
    with pytest.raises(ValueError, match="temperature"):
        func(np.array([1.0, 2.0]), temperature=T)


@pytest.mark.parametrize("func", MAP_FUNCS)
@pytest.mark.parametrize("badval", [0.0, -1.0, float("nan"), float("inf")])
def test_s4_bad_value_in_per_vector_temperature(func, badval):
    """S4: one bad value among per-vector temperatures is a ValueError naming temperature,
    and out is not half-written."""
    x = rng(37).normal(size=(3, 4))
    T = np.array([1.0, badval, 2.0])
    out = np.full((3, 4), 42.0)
    with pytest.raises(ValueError, match="temperature"):
        func(x, temperature=T, out=out)
    assert np.all(out == 42.0)
    with pytest.raises(ValueError, match="temperature"):
        func(x, temperature=list(T))
    with pytest.raises(ValueError, match="temperature"):
        func(x.T, axis=0, temperature=T)


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s4_bad_temperature_on_empty_input(func):
    """S4/S7: a bad temperature is refused even when x is empty."""
    with pytest.raises(ValueError, match="temperature"):
        func(np.zeros((0, 3)), temperature=-1.0)
    with pytest.raises(ValueError, match="temperature"):
        func(np.zeros((3, 0)), temperature=0.0)


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s4_array_temperature_with_axis_none(func):
    """S4: with axis=None only a scalar (or 0-d array) temperature is allowed."""
    x = rng(38).normal(size=(3, 4))
    for T in (np.array([2.0]), np.array([2.0, 2.0, 2.0]), [2.0], np.ones((3, 4))):
        with pytest.raises(ValueError, match="temperature"):
            func(x, axis=None, temperature=T)
    got = func(x, axis=None, temperature=np.array(2.0))
    np.testing.assert_array_equal(got, func(x, axis=None, temperature=2.0))
    np.testing.assert_array_equal(got, func(x / 2.0, axis=None))


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s4_wrong_shape_temperature(func):
    """S4: temperatures that do not broadcast to x's shape without axis are a ValueError."""
    x = np.zeros((3, 4))
    for axis, T in [
        (-1, np.ones(4)),
        (-1, np.ones(2)),
        (-1, np.ones((3, 1))),
        (-1, np.ones((3, 4))),
        (0, np.ones(3)),
        (0, np.ones((4, 3))),
    ]:
        with pytest.raises(ValueError, match="temperature"):
            func(x, axis=axis, temperature=T)
    with pytest.raises(ValueError, match="temperature"):
        func(np.zeros(5), temperature=np.ones(5))
    with pytest.raises(ValueError, match="temperature"):
        func(np.zeros(5), temperature=np.ones(1))


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s4_zero_d_temperature_array_is_scalar(func):
    """S4: a 0-d temperature array acts as a scalar for every axis."""
    x = rng(39).normal(size=(3, 4))
    for axis in (0, 1):
        np.testing.assert_array_equal(
            func(x, axis=axis, temperature=np.array(0.5)), func(x, axis=axis, temperature=0.5)
        )


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s4_huge_temperature_huge_values_f64(func):
    """S4/S8: softmax(x, temperature=T) is softmax(x / T) also when x - max(x) overflows
    float64 but x / T is moderate: [1.7e308, -1.7e308] at T=1e308 is softmax([1.7, -1.7]) =
    [0.9677, 0.0323]."""
    x = np.array([1.7e308, -1.7e308])
    got = func(x, temperature=1e308)
    want = func(np.array([1.7, -1.7]))
    check_map(func, x, temperature=1e308, got=got)
    np.testing.assert_allclose(got, want, rtol=1e-13)


@pytest.mark.parametrize("func", MAP_FUNCS)
@pytest.mark.parametrize("T", [1.5, 2.0, 10.0, 1e100, 1e300, 1e306, 1e307, 1e308, 1.7e308])
@pytest.mark.parametrize("shape", [(3, 50), (2, 40000)])
def test_s4_f64_full_range_values_large_temperature(func, T, shape, restore_threads):
    """S4/S8: float64 values spread over the whole range (x - max overflows) with T > 1 match
    the reference of x / T, rows in parallel and split inside a row, 1 and 2 threads alike."""
    big = float(np.finfo(np.float64).max)
    x = rng(61).uniform(-1, 1, size=shape) * big
    x[:, 0] = big
    x[:, 1] = -big
    want = None
    for threads in (1, 2):
        lk.set_num_threads(threads)
        got = check_map(func, x, temperature=T)
        if want is None:
            want = got
        assert got.tobytes() == want.tobytes()


# ============================================================================================
# S5 Overflow safety
# ============================================================================================


def test_s5_contract_example_tiny_temperature():
    """S5: softmax([1e30, 0], temperature=1e-30) is [1, 0]."""
    got = lk.softmax([1e30, 0], temperature=1e-30)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, [1.0, 0.0])
    np.testing.assert_array_equal(lk.log_softmax([1e30, 0], temperature=1e-30)[0], 0.0)


def test_s5_contract_example_f32_extremes():
    """S5: softmax(np.float32([3e38, -3e38])) is [1, 0] (float32)."""
    got = lk.softmax(np.float32([3e38, -3e38]))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.float32([1.0, 0.0]))
    lp = lk.log_softmax(np.float32([3e38, -3e38]))
    assert lp[0] == 0.0 and (lp[1] == -np.inf or lp[1] < -1e38)
    assert lk.logsumexp(np.float32([3e38, -3e38])) == np.float32(3e38)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("T", [1e-30, 1e-10, 1e-3, 1.0, 2.0, 1e3, 1e30, 1e37, 1e306])
def test_s5_huge_magnitudes(dtype, T):
    """S5: huge magnitudes and any temperature never give NaN or inf probabilities, and match
    the reference. Above 1, a temperature may turn an overflowing ``x - max`` back into a
    probability that does not underflow: 1e37 (float32) and 1e306 (float64) do (``big - (-big)``
    over them is about -68 and -360), and those rows must still match; up to float32's max / 128
    and float64's max / 1024 they cannot, and the fast kernels' 0 is exact."""
    big = float(np.finfo(dtype).max)
    x = np.array(
        [
            [big, -big, 0.0, big / 2],
            [big, big, -big, -big],
            [-big, -big / 3, -big / 2, -big],
            [1e30, 0.0, -1e30, 1e30 * (1 - 1e-6)],
        ],
        dtype=dtype,
    )
    for func in MAP_FUNCS:
        got = func(x, temperature=T)
        assert not np.isnan(got).any()
        assert not np.isposinf(got).any()
        if func is lk.softmax:
            assert np.all(np.isfinite(got))
            assert_probs_close(got, ref_map(x, temperature=T))
        else:
            assert_logs_close(got, ref_map(x, temperature=T, log=True))
    s = lk.logsumexp(x)
    assert np.all(np.isfinite(s))
    check_lse(x)


def test_s5_subnormal_temperature():
    """S5/S4: the smallest positive temperature is valid and overflow-safe."""
    T = float(np.finfo(np.float64).smallest_subnormal)
    np.testing.assert_array_equal(lk.softmax([1.0, 0.0], temperature=T), [1.0, 0.0])
    np.testing.assert_array_equal(lk.softmax([2.0, 2.0], temperature=T), [0.5, 0.5])
    np.testing.assert_array_equal(
        lk.softmax(np.float32([1.0, 0.0, 1.0]), temperature=T), np.float32([0.5, 0.0, 0.5])
    )
    lp = lk.log_softmax([1.0, 0.0], temperature=T)
    assert lp[0] == 0.0 and lp[1] == -np.inf


def test_s5_equal_maxima_ties():
    """S5: ties at a huge maximum share the probability exactly."""
    x = np.float32([3e38, 3e38, -3e38])
    np.testing.assert_array_equal(lk.softmax(x), np.float32([0.5, 0.5, 0.0]))
    y = np.array([1.7e308, 1.7e308, 1.7e308, 1.7e308])
    np.testing.assert_array_equal(lk.softmax(y, temperature=1e-300), [0.25] * 4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_s5_tiny_temperature_near_ties(dtype):
    """S5: a tiny temperature amplifies small differences without overflow."""
    x = np.array([1.0, 1.0 + 1e-6, 1.0 - 1e-6], dtype=dtype)
    got = lk.softmax(x, temperature=1e-20)
    np.testing.assert_array_equal(got, np.array([0, 1, 0], dtype=dtype))
    lp = lk.log_softmax(x, temperature=1e-20)
    assert lp[1] == 0 and np.all(lp[[0, 2]] < -1e10)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_s5_log_softmax_finite_where_probability_representable(dtype):
    """S5: log_softmax is -inf only where the probability underflows (here none does in
    log space: -200 is representable even though exp(-200) underflows in float32)."""
    x = np.array([0.0, -200.0, -5000.0], dtype=dtype)
    lp = lk.log_softmax(x)
    assert np.all(np.isfinite(lp))
    assert_logs_close(lp, ref_map(x, log=True))


# ============================================================================================
# S6 Masking and non-finite input
# ============================================================================================


@pytest.mark.parametrize("dtype", FLOATS)
def test_s6_neg_inf_entries_exactly_zero(dtype):
    """S6: -inf entries get probability exactly 0 and log-probability -inf."""
    x = np.array([[1.0, -np.inf, 2.0, -np.inf], [-np.inf, 0.0, -np.inf, -np.inf]], dtype=dtype)
    p = lk.softmax(x)
    lp = lk.log_softmax(x)
    mask = np.isneginf(x)
    assert np.all(p[mask] == 0.0)
    assert np.all(np.isneginf(lp[mask]))
    assert p[1, 1] == 1.0 and lp[1, 1] == 0.0
    check_map(lk.softmax, x, got=p)
    check_map(lk.log_softmax, x, got=lp)
    # masked entries do not change the others
    np.testing.assert_array_equal(p[0, [0, 2]], lk.softmax(x[0, [0, 2]]))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s6_all_neg_inf_row_is_nan(func, dtype):
    """S6: a vector of only -inf yields NaN everywhere; other vectors are unaffected."""
    x = np.array([[-np.inf] * 4, [0.0, 1.0, 2.0, 3.0]], dtype=dtype)
    got = func(x)
    assert np.all(np.isnan(got[0]))
    np.testing.assert_array_equal(got[1], func(x[1]))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("func", MAP_FUNCS)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("pos", [0, 2, 4])
def test_s6_nan_or_pos_inf_row_is_nan(func, dtype, bad, pos):
    """S6: a vector holding NaN or +inf yields NaN in every position; others unaffected."""
    x = rng(40).normal(size=(3, 5)).astype(dtype)
    x[1, pos] = bad
    got = func(x)
    assert np.all(np.isnan(got[1]))
    np.testing.assert_array_equal(got[0], func(x[0]))
    np.testing.assert_array_equal(got[2], func(x[2]))
    assert not np.isnan(got[[0, 2]]).any()


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s6_mixed_non_finite_rows(func):
    """S6: rows mixing NaN, +inf and -inf are all NaN; columns (axis=0) likewise."""
    x = np.array(
        [
            [np.nan, -np.inf, 1.0],
            [np.inf, -np.inf, 1.0],
            [np.inf, np.nan, -np.inf],
            [np.inf, np.inf, np.inf],
            [-np.inf, 0.0, -np.inf],
        ]
    )
    got = func(x)
    assert np.all(np.isnan(got[:4]))
    assert not np.isnan(got[4]).any()
    g0 = func(x, axis=0)
    assert np.all(np.isnan(g0))  # every column holds a NaN or +inf
    gn = func(x, axis=None)
    assert np.all(np.isnan(gn))


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s6_non_finite_with_axis_and_temperature(func):
    """S6: the rules hold along axis 0, with temperatures, and for strided input."""
    x = rng(41).normal(size=(6, 4))
    x[2, 1] = np.nan
    x[:, 3] = -np.inf
    x[0, 2] = np.inf
    got = func(x.T[::-1], axis=1, temperature=np.array([0.5, 1.0, 2.0, 4.0]))
    # rows of x.T[::-1]: original columns 3, 2, 1, 0
    assert np.all(np.isnan(got[0]))  # all -inf
    assert np.all(np.isnan(got[1]))  # +inf
    assert np.all(np.isnan(got[2]))  # NaN
    assert not np.isnan(got[3]).any()
    np.testing.assert_array_equal(got[3], func(x[:, 0], temperature=4.0))


@pytest.mark.parametrize("dtype", FLOATS)
def test_s6_logsumexp_rules(dtype):
    """S6: logsumexp: all -inf -> -inf; any +inf (no NaN) -> +inf; any NaN -> NaN."""
    ni, pi, nan = -np.inf, np.inf, np.nan
    x = np.array(
        [
            [ni, ni, ni],
            [pi, 1.0, ni],
            [pi, pi, pi],
            [nan, 1.0, 2.0],
            [nan, pi, 1.0],
            [pi, nan, ni],
            [ni, 0.0, ni],
            [1.0, 2.0, 3.0],
        ],
        dtype=dtype,
    )
    got = lk.logsumexp(x)
    assert got[0] == -np.inf
    assert got[1] == np.inf and got[2] == np.inf
    assert np.isnan(got[3]) and np.isnan(got[4]) and np.isnan(got[5])
    assert got[6] == 0.0
    check_lse(x, got=got)
    assert lk.logsumexp(np.array([ni], dtype=dtype)) == -np.inf
    assert lk.logsumexp(np.array([pi], dtype=dtype)) == np.inf


@pytest.mark.parametrize("dtype", FLOATS)
def test_s6_no_warnings(dtype):
    """S6: no Python warning (RuntimeWarning etc.) for any non-finite input."""
    x = np.array(
        [[np.nan, 1.0], [np.inf, 1.0], [-np.inf, -np.inf], [-np.inf, 0.0], [np.inf, -np.inf]],
        dtype=dtype,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for f in ALL_FUNCS:
            f(x)
            f(x, axis=0)
            f(x, axis=None)
        lk.softmax(x, temperature=1e-30)
        lk.log_softmax(x, temperature=np.full(5, 1e-30))
        big = np.array([np.finfo(dtype).max, -np.finfo(dtype).max], dtype=dtype)
        lk.softmax(big)
        lk.log_softmax(big, temperature=1e-300)
        lk.logsumexp(big)
        lk.softmax(np.zeros((0, 3), dtype=dtype))
        lk.logsumexp(np.zeros((3, 0), dtype=dtype))


# ============================================================================================
# S7 Empty input
# ============================================================================================


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("func", MAP_FUNCS)
@pytest.mark.parametrize("shape", [(0,), (0, 5), (5, 0), (2, 0, 3), (0, 0)])
def test_s7_empty_map(func, dtype, shape):
    """S7: zero-length axis or zero vectors give an empty result of the right shape."""
    x = np.zeros(shape, dtype=dtype)
    for axis in list(range(len(shape))) + [-1, None]:
        r = func(x, axis=axis)
        assert isinstance(r, np.ndarray)
        assert r.shape == shape and r.dtype == dtype and r.flags.c_contiguous
    assert func([]).shape == (0,)
    assert func([]).dtype == np.float64


@pytest.mark.parametrize("dtype", FLOATS)
def test_s7_logsumexp_empty_axis_is_neg_inf(dtype):
    """S7: logsumexp over a zero-length axis is -inf, with the right shape."""
    x = np.zeros((3, 0, 2), dtype=dtype)
    r = lk.logsumexp(x, axis=1)
    assert r.shape == (3, 2) and r.dtype == dtype and np.all(r == -np.inf)
    rk = lk.logsumexp(x, axis=1, keepdims=True)
    assert rk.shape == (3, 1, 2) and np.all(rk == -np.inf)
    r0 = lk.logsumexp(x, axis=0)
    assert r0.shape == (0, 2)
    r2 = lk.logsumexp(x, axis=-1)
    assert r2.shape == (3, 0)
    s = lk.logsumexp(np.zeros(0, dtype=dtype))
    assert np.ndim(s) == 0 and s == -np.inf and np.asarray(s).dtype == dtype
    sn = lk.logsumexp(x, axis=None)
    assert np.ndim(sn) == 0 and sn == -np.inf
    snk = lk.logsumexp(x, axis=None, keepdims=True)
    assert snk.shape == (1, 1, 1) and snk[0, 0, 0] == -np.inf
    assert lk.logsumexp([]) == -np.inf


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s7_empty_per_vector_temperature(func):
    """S7/S4: per-vector temperatures of the (empty) outer shape are accepted."""
    x = np.zeros((0, 5))
    assert func(x, temperature=np.ones(0)).shape == (0, 5)
    y = np.zeros((4, 0))
    assert func(y, temperature=np.ones(4)).shape == (4, 0)


# ============================================================================================
# S8 Accuracy
# ============================================================================================


def _s8_rows(n, std, rows, seed):
    return rng(seed).normal(scale=std, size=(rows, n))


@pytest.mark.parametrize("std", [1.0, 6.0])
def test_s8_f32_long_rows_report(std, record_property, capsys):
    """S8: float32 rows of 262144 entries with std 1 and 6: probability relative error, row
    sums, log_softmax and logsumexp absolute error within the bounds. Prints the measured
    maxima."""
    n = 262144
    x = _s8_rows(n, std, 2, seed=int(std * 10)).astype(np.float32)
    p = lk.softmax(x)
    ref = ref_map(x)
    assert_probs_close(p, ref)
    rel = prob_errors(p, ref)
    tight = float(np.max(rel[ref >= 1e-12]))
    loose_sel = (ref >= 1e-30) & (ref < 1e-12)
    loose = float(np.max(rel[loose_sel])) if loose_sel.any() else 0.0
    sums = float(np.max(np.abs(p.astype(np.float64).sum(axis=-1) - 1.0)))
    lp = lk.log_softmax(x)
    lref = ref_map(x, log=True)
    assert_logs_close(lp, lref)
    lerr = float(np.max(np.abs(lp.astype(LD) - lref) / np.maximum(1, np.abs(lref))))
    s = lk.logsumexp(x)
    sref = ref_logsumexp(x)
    assert_logs_close(s, sref, "logsumexp")
    serr = float(np.max(np.abs(s.astype(LD) - sref) / np.maximum(1, np.abs(sref))))
    msg = (
        f"S8 f32 n={n} std={std}: max rel err (p>=1e-12) {tight:.3e}, "
        f"(1e-30<=p<1e-12) {loose:.3e}, max |row sum - 1| {sums:.3e}, "
        f"log_softmax rel-abs err {lerr:.3e}, logsumexp {serr:.3e}"
    )
    record_property(f"s8_f32_std{std:g}", msg)
    with capsys.disabled():
        print("\n" + msg)
    assert tight <= 2e-6 and loose <= 1e-5 and sums <= 1e-6


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 100, 1000, 16383, 16384, 16385, 50000])
@pytest.mark.parametrize("std", [1.0, 6.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_s8_sizes(dtype, std, n):
    """S8: accuracy for assorted vector lengths (block boundaries included), both dtypes."""
    rows = max(1, min(8, 200000 // n))
    x = _s8_rows(n, std, rows, seed=n).astype(dtype)
    check_map(lk.softmax, x)
    check_map(lk.log_softmax, x)
    check_lse(x)


@pytest.mark.parametrize("std", [1.0, 6.0, 30.0])
def test_s8_f64_long_rows(std, capsys):
    """S8: float64 rows of 262144 entries: probabilities >= 1e-250 within 1e-13 relative,
    logs within 1e-13 * max(1, |ref|) (longdouble reference)."""
    x = _s8_rows(262144, std, 1, seed=7).astype(np.float64)
    p = lk.softmax(x)
    ref = ref_map(x)
    assert_probs_close(p, ref)
    worst = float(np.max(prob_errors(p, ref)[ref >= 1e-250]))
    with capsys.disabled():
        print(f"\nS8 f64 n=262144 std={std}: max rel err (p>=1e-250) {worst:.3e}")
    check_map(lk.log_softmax, x)
    check_lse(x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_s8_large_offset(dtype):
    """S8: a large common offset (|x| ~ 1e4) does not cost accuracy beyond the bounds."""
    x = (1e4 + rng(50).normal(scale=3, size=(4, 3000))).astype(dtype)
    check_map(lk.softmax, x)
    check_map(lk.log_softmax, x)
    check_lse(x)


def test_s8_f32_wide_dynamic_range():
    """S8: float32 probabilities spanning 1e-30 .. 1 keep the tiered relative bounds."""
    x = np.linspace(0, -69, 2000).astype(np.float32)  # exp(-69) ~ 1e-30
    check_map(lk.softmax, x)
    check_map(lk.log_softmax, x)


def test_s8_f64_wide_dynamic_range():
    """S8: float64 probabilities down to 1e-250."""
    x = np.linspace(0, -575, 5000)
    check_map(lk.softmax, x)
    check_map(lk.log_softmax, x)
    check_lse(x)


@pytest.mark.parametrize("n", [2, 1000, 262144])
def test_s8_uniform_rows_sum(n):
    """S8: constant rows give probabilities 1/n, and sum to 1 within the bound."""
    for dtype in (np.float32, np.float64):
        x = np.full((2, n), 3.5, dtype=dtype)
        check_map(lk.softmax, x)
        check_map(lk.log_softmax, x)
        check_lse(x)


def test_s8_float16_long_rows():
    """S8: float16 rows within one float16 rounding of the exact (float32) result."""
    x = rng(51).normal(scale=4, size=(2, 262144)).astype(np.float16)
    check_map(lk.softmax, x)
    check_map(lk.log_softmax, x)
    check_lse(x)


def test_s8_mpmath_free_exact_small_cases():
    """S8: exactly known small cases."""
    np.testing.assert_array_equal(lk.softmax([0.0, 0.0]), [0.5, 0.5])
    np.testing.assert_allclose(
        lk.log_softmax([0.0, 0.0]), [-np.log(2)] * 2, rtol=1e-15, atol=0
    )
    np.testing.assert_allclose(lk.logsumexp([1000.0, 1000.0]), 1000 + np.log(2), rtol=1e-15)
    np.testing.assert_allclose(
        lk.logsumexp(np.float32([-1000.0, -1000.0])), np.float32(-1000 + np.log(2)), rtol=2e-7
    )


# --------------------------------------------------------------------------------------------
# R8: every layout is computed by the contiguous code (tiles of lanes), bit for bit
# --------------------------------------------------------------------------------------------


def _r8_layouts(rng, dtype):
    """(array, axis) pairs: C and F orders along both axes at power-of-two shapes (where the
    strided gathers used to thrash the caches), odd shapes, a 3-D middle axis, stepped and
    reversed views, and lanes longer than one block (16k)."""
    def base(shape, order="C"):
        x = (rng.standard_normal(shape) * 4).astype(dtype)
        return np.asarray(x, order=order)

    yield base((256, 512)), 0
    yield base((512, 256), "F"), -1
    yield base((512, 256), "F"), 0
    yield base((1024, 64)), 0
    yield base((100, 300)), 0
    yield base((8, 64, 32)), 1
    yield base((8, 64, 32), "F"), 1
    yield base((8, 64, 32), "F"), 0
    yield base((384, 512))[::3, ::2], 0
    yield base((384, 512))[::3, ::2], -1
    yield base((256, 512))[:, ::-1], 0
    yield base((256, 512))[::-1, 1::2], 0
    yield base((2, 32768)).T, 0
    yield base((20000, 3))[:, 1], 0
    yield base((3, 40000), "F"), -1


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("func", ["softmax", "log_softmax", "logsumexp"])
def test_r8_strided_layouts_equal_the_contiguous_result_bit_for_bit(func, dtype, threads,
                                                                  restore_threads):
    """R8/S9: along any axis of C-, F-, stepped or reversed input, each vector's result is
    bitwise the one the same vector gives as a contiguous row (the tiled path computes lanes
    with the contiguous kernels), at one thread and at two."""
    lk.set_num_threads(threads)
    f = getattr(lk, func)
    rng = np.random.default_rng(8)
    for x, axis in _r8_layouts(rng, dtype):
        rows = np.ascontiguousarray(np.moveaxis(x, axis, -1))
        want = f(rows, axis=-1)
        got = f(x, axis=axis)
        if func != "logsumexp":
            got = np.moveaxis(got, axis, -1)
        assert got.dtype == want.dtype
        got, want = np.ascontiguousarray(got), np.ascontiguousarray(want)
        assert got.shape == want.shape and got.tobytes() == want.tobytes(), (
            x.shape, x.strides, axis)


@pytest.mark.parametrize("func", ["softmax", "log_softmax"])
def test_r8_strided_layouts_with_per_vector_temperature_and_out(func, restore_threads):
    """R8/S4: per-vector temperatures follow their vectors through the tiles, and in-place and
    strided ``out=`` give the same bits as the contiguous rows."""
    f = getattr(lk, func)
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((512, 1024)) * 3).astype(np.float32)
    t = rng.uniform(0.5, 2.0, 1024)
    for threads in [1, 2]:
        lk.set_num_threads(threads)
        want = f(np.ascontiguousarray(x.T), axis=-1, temperature=t).T
        got = f(x, axis=0, temperature=t)
        assert np.array_equal(got, want)
        out = np.empty((1024, 512), np.float32).T
        assert f(x, axis=0, temperature=t, out=out) is out
        assert np.array_equal(out, want)
        y = x.copy()
        f(y, axis=0, temperature=t, out=y)
        assert np.array_equal(y, want)
