//! Argument handling shared by the bindings: input coercion (S1), axes (S2), `out=` (S3),
//! temperatures (S4), and memory layouts turned into [`Lanes`].

use numpy::npyffi::NPY_TYPES;
use numpy::{PyArray, PyArrayDescrMethods, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyKeyboardInterrupt, PyMemoryError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{IntoPyDict, PyBool, PyFloat, PyInt, PyList, PyTuple};

use crate::{Error, Lanes};

/// The element types the kernels take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dtype {
    F16,
    F32,
    F64,
    /// bfloat16, passed as its bits: a uint16 `logitkit._coerce.BFloat16Bits` view that
    /// `logitkit._coerce.adapt` makes of ml_dtypes/torch/JAX bfloat16 (no copy), and the
    /// bindings make for results, which `Back` views as bfloat16 again.
    BF16,
}

impl Dtype {
    fn of(arr: &Bound<'_, PyUntypedArray>) -> Option<Dtype> {
        let d = arr.dtype();
        if d.is_native_byteorder() == Some(false) {
            return None;
        }
        let num = d.num();
        if num == NPY_TYPES::NPY_FLOAT as i32 {
            Some(Dtype::F32)
        } else if num == NPY_TYPES::NPY_DOUBLE as i32 {
            Some(Dtype::F64)
        } else if num == NPY_TYPES::NPY_HALF as i32 {
            Some(Dtype::F16)
        } else if num == NPY_TYPES::NPY_USHORT as i32 && is_bf16_bits(arr) {
            Some(Dtype::BF16)
        } else {
            None
        }
    }

    pub(crate) fn itemsize(self) -> usize {
        match self {
            Dtype::F16 | Dtype::BF16 => 2,
            Dtype::F32 => 4,
            Dtype::F64 => 8,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Dtype::F16 => "float16",
            Dtype::BF16 => "bfloat16",
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
        }
    }

    /// A new uninitialised C-contiguous array of this dtype; `MemoryError` when NumPy cannot
    /// allocate it (contract R1).
    pub(crate) fn empty<'py>(
        self,
        py: Python<'py>,
        shape: &[usize],
    ) -> PyResult<Bound<'py, PyUntypedArray>> {
        self.empty_in(py, shape, false)
    }

    /// [`Dtype::empty`], Fortran-contiguous when `fortran`.
    pub(crate) fn empty_in<'py>(
        self,
        py: Python<'py>,
        shape: &[usize],
        fortran: bool,
    ) -> PyResult<Bound<'py, PyUntypedArray>> {
        match self {
            Dtype::F16 => new_empty_in::<half::f16>(py, shape, fortran),
            Dtype::F32 => new_empty_in::<f32>(py, shape, fortran),
            Dtype::F64 => new_empty_in::<f64>(py, shape, fortran),
            Dtype::BF16 => Ok(new_empty_in::<u16>(py, shape, fortran)?
                .call_method1("view", (bf16_bits_class(py)?,))?
                .cast_into::<PyUntypedArray>()?),
        }
    }
}

/// `logitkit._coerce.BFloat16Bits`, the marker type of bfloat16 bits.
pub(crate) fn bf16_bits_class(py: Python<'_>) -> PyResult<&Bound<'_, pyo3::types::PyType>> {
    static CLASS: PyOnceLock<Py<pyo3::types::PyType>> = PyOnceLock::new();
    CLASS.import(py, "logitkit._coerce", "BFloat16Bits")
}

/// Whether the uint16 array `arr` is bfloat16 bits (a `BFloat16Bits`).
fn is_bf16_bits(arr: &Bound<'_, PyUntypedArray>) -> bool {
    bf16_bits_class(arr.py()).is_ok_and(|cls| arr.get_type().is(cls))
}

/// Runs `$body` with `$t` bound to the element type of `$dtype`.
macro_rules! dispatch {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            $crate::python::arrays::Dtype::F32 => {
                type $t = f32;
                $body
            }
            $crate::python::arrays::Dtype::F64 => {
                type $t = f64;
                $body
            }
            $crate::python::arrays::Dtype::F16 => {
                type $t = half::f16;
                $body
            }
            $crate::python::arrays::Dtype::BF16 => {
                type $t = half::bf16;
                $body
            }
        }
    };
}
pub(crate) use dispatch;

/// A reduction's result array as Python gets it: a 0-d one becomes a NumPy scalar, except
/// bfloat16 bits, which become a 0-d `logitkit._coerce.BFloat16Scalar` for `Back` to view as
/// a bfloat16 scalar (a scalar here would lose that they are bits); any other shape as it is.
pub(crate) fn result_of<'py>(arr: Bound<'py, PyAny>, dtype: Dtype) -> PyResult<Bound<'py, PyAny>> {
    let zero_d = arr.cast::<PyUntypedArray>().is_ok_and(|a| a.ndim() == 0);
    if !zero_d {
        return Ok(arr);
    }
    if dtype != Dtype::BF16 {
        return arr.get_item(());
    }
    static CLASS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let cls = CLASS.import(arr.py(), "logitkit._coerce", "BFloat16Scalar")?;
    arr.call_method1("view", (cls,))
}

/// A new uninitialised C-contiguous array of `T`. Unlike `PyArray::new`, which panics on a
/// null pointer, a failed allocation is NumPy's own `MemoryError` (contracts R1, R2). Every
/// caller writes every element before the array is visible to Python.
pub(crate) fn new_empty<'py, T: numpy::Element>(
    py: Python<'py>,
    shape: &[usize],
) -> PyResult<Bound<'py, PyUntypedArray>> {
    new_empty_in::<T>(py, shape, false)
}

/// [`new_empty`], Fortran-contiguous when `fortran`.
fn new_empty_in<'py, T: numpy::Element>(
    py: Python<'py>,
    shape: &[usize],
    fortran: bool,
) -> PyResult<Bound<'py, PyUntypedArray>> {
    use numpy::npyffi::{self, npy_intp, NPY_ARRAY_F_CONTIGUOUS, PY_ARRAY_API};
    let mut dims: Vec<npy_intp> = shape.iter().map(|&d| d as npy_intp).collect();
    let flags = if fortran { NPY_ARRAY_F_CONTIGUOUS } else { 0 };
    // SAFETY: the descriptor reference is handed to (and stolen by) PyArray_NewFromDescr; the
    // dims pointer is valid for `dims.len()` entries for the call; null strides and data ask
    // NumPy for a fresh buffer, Fortran-contiguous when `flags` says so, else C-contiguous. The
    // result is a new reference or null with a Python error set, which `from_owned_ptr_or_err`
    // turns into that error.
    unsafe {
        let ptr = PY_ARRAY_API.PyArray_NewFromDescr(
            py,
            npyffi::get_type_object(py, npyffi::NpyTypes::PyArray_Type),
            T::get_dtype(py).into_dtype_ptr(),
            dims.len() as std::ffi::c_int,
            dims.as_mut_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            flags,
            std::ptr::null_mut(),
        );
        Ok(Bound::from_owned_ptr_or_err(py, ptr)?.cast_into_unchecked::<PyUntypedArray>())
    }
}

/// A float array the kernels can read: native byte order, aligned, dtype float16/32/64.
pub(crate) struct FloatArray<'py> {
    pub arr: Bound<'py, PyUntypedArray>,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Strides in elements.
    pub strides: Vec<isize>,
    pub data: *mut u8,
}

impl<'py> FloatArray<'py> {
    /// Wraps `arr` when the kernels can read it in place.
    pub(crate) fn view(arr: &Bound<'py, PyUntypedArray>) -> Option<FloatArray<'py>> {
        let dtype = Dtype::of(arr)?;
        if !arr.is_aligned() {
            return None;
        }
        let item = dtype.itemsize() as isize;
        // A stride only matters along an axis longer than 1 (NumPy ignores the others, and they
        // may be any byte count).
        let used = |(&n, &s): (&usize, &isize)| if n > 1 { s } else { 0 };
        if arr
            .shape()
            .iter()
            .zip(arr.strides())
            .map(used)
            .any(|s| s % item != 0)
        {
            return None;
        }
        let strides: Vec<isize> = arr
            .shape()
            .iter()
            .zip(arr.strides())
            .map(used)
            .map(|s| s / item)
            .collect();
        // SAFETY: a live ndarray's data pointer.
        let data = unsafe { (*arr.as_array_ptr()).fields.data }.cast::<u8>();
        Some(FloatArray {
            arr: arr.clone(),
            dtype,
            shape: arr.shape().to_vec(),
            strides,
            data,
        })
    }

    /// `x` as a float array (contract S1): float16/32/64 read in place when aligned and native;
    /// integers and bool converted to float64; anything else is a `TypeError` naming the
    /// argument `name`.
    pub(crate) fn coerce(
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        name: &str,
    ) -> PyResult<FloatArray<'py>> {
        if let Ok(arr) = x.cast::<PyUntypedArray>() {
            if let Some(v) = FloatArray::view(arr) {
                return Ok(v);
            }
        }
        static COERCE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let f = COERCE.import(py, "logitkit._coerce", "as_float_array")?;
        let arr = f.call1((x, name))?.cast_into::<PyUntypedArray>()?;
        FloatArray::view(&arr)
            .ok_or_else(|| PyTypeError::new_err("internal: coercion gave an unusable array"))
    }

    pub(crate) fn size(&self) -> usize {
        self.shape.iter().product()
    }

    /// Bytes spanned: [lo, hi), or None when empty.
    fn byte_range(&self) -> Option<(usize, usize)> {
        if self.size() == 0 {
            return None;
        }
        let item = self.dtype.itemsize() as isize;
        let (mut lo, mut hi) = (0isize, 0isize);
        for (&n, &s) in self.shape.iter().zip(&self.strides) {
            let span = (n as isize - 1) * s * item;
            if span < 0 {
                lo += span;
            } else {
                hi += span;
            }
        }
        let base = self.data as isize;
        Some(((base + lo) as usize, (base + hi + item) as usize))
    }

    /// True when both views are the same elements in the same layout.
    pub(crate) fn same_view(&self, other: &FloatArray<'_>) -> bool {
        self.data == other.data
            && self.shape == other.shape
            && self.strides == other.strides
            && self.dtype == other.dtype
    }

    /// True when the two arrays may share memory.
    pub(crate) fn may_overlap(&self, other: &FloatArray<'_>) -> bool {
        match (self.byte_range(), other.byte_range()) {
            (Some((a0, a1)), Some((b0, b1))) => a0 < b1 && b0 < a1,
            _ => false,
        }
    }

    /// A C-contiguous copy.
    pub(crate) fn copy(&self, py: Python<'py>) -> PyResult<FloatArray<'py>> {
        // A slab at a time, so that Ctrl-C is seen during a long copy (R8).
        static C_COPY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let c = C_COPY
            .import(py, "logitkit._coerce", "c_copy")?
            .call1((&self.arr,))?;
        Ok(FloatArray::view(&c.cast_into::<PyUntypedArray>()?).expect("a fresh copy is readable"))
    }

    /// The lanes along `axis`; for `None`, the whole array as one lane when its elements are
    /// evenly spaced in C order.
    pub(crate) fn lanes(&self, axis: Option<usize>) -> Option<Lanes> {
        match axis {
            Some(k) => Some(Lanes::from_strided(&self.shape, &self.strides, k)),
            None => single_lane(&self.shape, &self.strides).map(|(len, stride)| Lanes {
                len,
                stride,
                outer: vec![(1, 0)],
            }),
        }
    }
}

/// The whole array as one evenly spaced run in Fortran order (first index fastest), if it is
/// one: `single_lane` of the axes reversed.
pub(crate) fn fortran_run(shape: &[usize], strides: &[isize]) -> Option<(usize, isize)> {
    let shape: Vec<usize> = shape.iter().rev().copied().collect();
    let strides: Vec<isize> = strides.iter().rev().copied().collect();
    single_lane(&shape, &strides)
}

/// The whole array as one evenly spaced run in C order, if it is one.
pub(crate) fn single_lane(shape: &[usize], strides: &[isize]) -> Option<(usize, isize)> {
    let size: usize = shape.iter().product();
    if size <= 1 {
        return Some((size, 1));
    }
    let dims: Vec<(usize, isize)> = shape
        .iter()
        .zip(strides)
        .filter(|(&n, _)| n != 1)
        .map(|(&n, &s)| (n, s))
        .collect();
    let stride = dims.last().expect("size > 1 has a dimension > 1").1;
    let mut inner = 1isize;
    for &(n, s) in dims.iter().rev() {
        if s != stride * inner {
            return None;
        }
        inner *= n as isize;
    }
    Some((size, stride))
}

fn numpy_fn<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("numpy")?.getattr(name)
}

/// An `axis` argument as the caller gave it (contracts S2, R7): an integer, possibly one too
/// large for `isize` (kept abbreviated for the error message). Extracting it refuses bools and
/// non-integers with a `TypeError` whose message names `axis`.
#[derive(Debug, Clone)]
pub(crate) enum Axis {
    Index(isize),
    /// An integer beyond `isize`, as text, abbreviated.
    Huge(String),
}

impl Axis {
    /// The default: the last axis.
    pub(crate) const LAST: Axis = Axis::Index(-1);
}

impl<'a, 'py> FromPyObject<'a, 'py> for Axis {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let obj: &Bound<'py, PyAny> = &obj;
        let wrong_type = || {
            PyTypeError::new_err(format!(
                "axis must be an integer or None, got {}",
                repr(obj)
            ))
        };
        if is_bool(obj) {
            return Err(wrong_type());
        }
        let i = obj.call_method0("__index__").map_err(|_| wrong_type())?;
        match i.extract::<isize>() {
            Ok(a) => Ok(Axis::Index(a)),
            Err(_) => Ok(Axis::Huge(repr(&i))),
        }
    }
}

/// True for a Python bool or a NumPy bool scalar (a wrong type for integer and float
/// parameters, contract R7).
pub(crate) fn is_bool(v: &Bound<'_, PyAny>) -> bool {
    if v.cast::<PyBool>().is_ok() {
        return true;
    }
    // Python floats and ints are not NumPy bools: no type name lookup for them.
    if v.cast::<PyFloat>().is_ok() || v.cast::<PyInt>().is_ok() {
        return false;
    }
    let t = v.get_type();
    let module = t.module().map(|m| m.to_string()).unwrap_or_default();
    let name = t.name().map(|n| n.to_string()).unwrap_or_default();
    if module == "numpy" && (name == "bool" || name == "bool_") {
        return true;
    }
    // A tensor of bools (torch's 0-d `tensor(True)` has an `__index__` that gives 1).
    v.getattr("dtype")
        .is_ok_and(|d| matches!(d.to_string().as_str(), "bool" | "torch.bool"))
}

/// Normalises `axis` against `ndim` (contract S2), raising NumPy's `AxisError`, whose message
/// names `axis` (a huge value abbreviated).
pub(crate) fn normalize_axis(
    py: Python<'_>,
    axis: Option<Axis>,
    ndim: usize,
) -> PyResult<Option<usize>> {
    let Some(axis) = axis else { return Ok(None) };
    let n = ndim as isize;
    let out_of_range = match axis {
        Axis::Index(a) if a < n && a >= -n => {
            return Ok(Some(if a < 0 { (a + n) as usize } else { a as usize }))
        }
        Axis::Index(a) => a.to_string(),
        Axis::Huge(text) => text,
    };
    static AXIS_ERROR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let cls = match AXIS_ERROR.import(py, "numpy.exceptions", "AxisError") {
        Ok(c) => c.clone(),
        Err(_) => py.import("numpy")?.getattr("AxisError")?,
    };
    let msg = format!("axis {out_of_range} is out of bounds for array of dimension {ndim}");
    Err(PyErr::from_value(cls.call1((msg,))?))
}

/// Temperatures of a call, one or one per lane (C order over the dimensions other than axis).
pub(crate) enum Temps {
    Scalar(f64),
    PerLane(Vec<f64>),
}

impl Temps {
    pub(crate) fn as_core(&self) -> crate::Temperature<'_> {
        match self {
            Temps::Scalar(t) => crate::Temperature::Scalar(*t),
            Temps::PerLane(v) => crate::Temperature::PerRow(v),
        }
    }
}

/// `shape` without dimension `axis`.
pub(crate) fn without(shape: &[usize], axis: usize) -> Vec<usize> {
    shape
        .iter()
        .enumerate()
        .filter(|&(d, _)| d != axis)
        .map(|(_, &n)| n)
        .collect()
}

/// A shape as NumPy prints it: `(3,)`, `(2, 4)`, `()`.
pub(crate) fn shape_str(shape: &[usize]) -> String {
    match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Whether `v` is an array of another library that NumPy reads (`__array__` or
/// `__array_interface__`: torch tensors, JAX arrays, ...), and not a NumPy scalar. Parameters
/// given per row or per vector take these as NumPy arrays (`numpy.asarray`).
pub(crate) fn exports_array(v: &Bound<'_, PyAny>) -> bool {
    // Python numbers (the common case, on every sampling call) and the array types the callers
    // read themselves answer without an attribute lookup.
    if v.cast::<PyFloat>().is_ok()
        || v.cast::<PyInt>().is_ok()
        || v.cast::<PyUntypedArray>().is_ok()
        || v.cast::<PyList>().is_ok()
        || v.cast::<PyTuple>().is_ok()
    {
        return false;
    }
    let exports = v.hasattr("__array__").unwrap_or(false)
        || v.hasattr("__array_interface__").unwrap_or(false);
    exports
        && !v
            .py()
            .import("numpy")
            .and_then(|np| v.is_instance(&np.getattr("generic")?))
            .unwrap_or(false)
}

/// Reads a per-vector parameter: a real number, or an array of real numbers broadcastable to
/// `outer_shape` (contracts S4, R7). Complex, string, bool and other non-numeric values (scalars
/// or arrays) are a `TypeError` naming `name`; an integer too large for a float is a
/// `ValueError` with the value abbreviated. Range checks (positive, finite) are the core's.
pub(crate) fn parse_per_lane_f64(
    py: Python<'_>,
    name: &'static str,
    value: Option<&Bound<'_, PyAny>>,
    default: f64,
    outer_shape: &[usize],
) -> PyResult<Temps> {
    let Some(v) = value else {
        return Ok(Temps::Scalar(default));
    };
    let wrong_type = |what: String| {
        PyTypeError::new_err(format!(
            "{name} must be a real number or an array of real numbers, got {what}"
        ))
    };
    let too_big = |item: &Bound<'_, PyAny>| {
        PyValueError::new_err(format!(
            "{name} must be a positive finite float, got {}",
            repr(item)
        ))
    };
    if is_bool(v) {
        return Err(wrong_type(repr(v)));
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return Ok(Temps::Scalar(f.value()));
    }
    if v.cast::<PyInt>().is_ok() {
        return v
            .extract::<f64>()
            .map(Temps::Scalar)
            .map_err(|_| too_big(v));
    }
    let np = py.import("numpy")?;
    let array_like = v.cast::<PyUntypedArray>().is_ok()
        || v.cast::<PyList>().is_ok()
        || v.cast::<PyTuple>().is_ok()
        || v.is_instance(&np.getattr("generic")?)?
        || exports_array(v);
    if !array_like {
        // Other scalars (Decimal, Fraction, 0-d tensors): through `__float__`.
        if v.hasattr("__float__")? {
            return v
                .extract::<f64>()
                .map(Temps::Scalar)
                .map_err(|_| wrong_type(repr(v)));
        }
        return Err(wrong_type(repr(v)));
    }
    let arr = match as_ndarray(py, v, name) {
        Ok(arr) => arr,
        // Its own message for a value that is no array of numbers; other errors as they are.
        Err(e) if refused_conversion(py, &e) => return Err(wrong_type(repr(v))),
        Err(e) => return Err(e),
    };
    let arr = match bfloat16_values(py, &arr)? {
        Some(values) => values,
        None => arr,
    };
    let arr = match arr.dtype().kind() {
        b'f' | b'i' | b'u' => np
            .call_method(
                "asarray",
                (&arr,),
                Some(&[("dtype", "float64")].into_py_dict(py)?),
            )?
            .cast_into::<PyUntypedArray>()?,
        b'O' => {
            // Python ints and floats in an object array (e.g. an int too large for int64):
            // each must be a real number that fits a float.
            let items = arr.call_method0("ravel")?.call_method0("tolist")?;
            let mut vals = Vec::new();
            for item in items.cast::<PyList>()?.iter() {
                let real = item.cast::<PyFloat>().is_ok() || item.cast::<PyInt>().is_ok();
                if is_bool(&item) || !real {
                    return Err(wrong_type(format!("an array holding {}", repr(&item))));
                }
                vals.push(item.extract::<f64>().map_err(|_| too_big(&item))?);
            }
            PyArray::from_vec(py, vals)
                .call_method1("reshape", (PyTuple::new(py, arr.shape())?,))?
                .cast_into::<PyUntypedArray>()?
        }
        _ => {
            return Err(wrong_type(format!(
                "an array of dtype {}",
                arr.dtype().str()?
            )))
        }
    };
    if arr.ndim() == 0 {
        return Ok(Temps::Scalar(arr.call_method0("item")?.extract::<f64>()?));
    }
    let b = np
        .call_method1("broadcast_to", (&arr, PyTuple::new(py, outer_shape)?))
        .map_err(|_| {
            PyValueError::new_err(format!(
                "{name} of shape {} does not broadcast to {} (one value per vector)",
                shape_str(arr.shape()),
                shape_str(outer_shape)
            ))
        })?;
    let flat = np
        .call_method1("ascontiguousarray", (b,))?
        .call_method0("ravel")?
        .cast_into::<numpy::PyArray1<f64>>()?;
    // Read as the f64 slice it is (8 bytes a vector), not through a list of Python floats
    // (about 40 bytes a vector at its peak: contract R1).
    let ro = flat.try_readonly()?;
    let values = ro
        .as_slice()
        .map_err(|e| PyValueError::new_err(format!("{name}: {e}")))?;
    let mut v = Vec::new();
    crate::scratch::reserve(&mut v, values.len(), "the per-vector temperatures")
        .map_err(to_py_err)?;
    v.extend_from_slice(values);
    Ok(Temps::PerLane(v))
}

/// Whether `e` is a conversion's refusal (`TypeError`, `ValueError` or `RuntimeError`, as NumPy
/// and torch raise them), not an error to pass on as it is (`MemoryError`, `KeyboardInterrupt`).
pub(crate) fn refused_conversion(py: Python<'_>, e: &PyErr) -> bool {
    use pyo3::exceptions::PyRuntimeError;
    e.is_instance_of::<PyTypeError>(py)
        || e.is_instance_of::<PyValueError>(py)
        || e.is_instance_of::<PyRuntimeError>(py)
}

/// `numpy.asarray(v)` of parameter `name`; another library's array that NumPy cannot read
/// (a torch tensor that requires grad, or of bfloat16) as the NumPy array of its values
/// (`_coerce.param_array`), else NumPy's error with `name` in its message: a `ValueError` (a
/// ragged list) stays one, anything else is a `TypeError` (P2, R7).
pub(crate) fn as_ndarray<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<Bound<'py, PyUntypedArray>> {
    match py.import("numpy")?.call_method1("asarray", (v,)) {
        Ok(a) => Ok(a.cast_into::<PyUntypedArray>()?),
        // Only a refusal to convert (torch raises TypeError or RuntimeError) is looked at
        // again; MemoryError, KeyboardInterrupt and the like go on as they are.
        Err(e) if !refused_conversion(py, &e) => Err(e),
        Err(e) => {
            static PARAM_ARRAY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
            let f = PARAM_ARRAY.import(py, "logitkit._coerce", "param_array")?;
            let a = f.call1((v,))?;
            if a.is_none() {
                let msg = format!(
                    "{name} must be an array NumPy can read, got {}: {e}",
                    repr(v)
                );
                return Err(if e.is_instance_of::<PyValueError>(py) {
                    PyValueError::new_err(msg)
                } else {
                    PyTypeError::new_err(msg)
                });
            }
            Ok(a.cast_into::<PyUntypedArray>()?)
        }
    }
}

/// The values of `arr` as a float32 ndarray when it is of NumPy's bfloat16 (`ml_dtypes`, as
/// `numpy.asarray` makes of JAX's too), else `None`: per-row parameters, such as a
/// temperature, take bfloat16 as they take float16 (contract S4). (torch's are widened by
/// [`as_ndarray`].)
pub(crate) fn bfloat16_values<'py>(
    py: Python<'py>,
    arr: &Bound<'py, PyUntypedArray>,
) -> PyResult<Option<Bound<'py, PyUntypedArray>>> {
    if arr.dtype().kind() != b'V' {
        return Ok(None);
    }
    static VALUES: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let f = VALUES.import(py, "logitkit._coerce", "bfloat16_as_float32")?;
    let r = f.call1((arr,))?;
    Ok(if r.is_none() {
        None
    } else {
        Some(r.cast_into::<PyUntypedArray>()?)
    })
}

/// `repr(v)`, abbreviated when long (contract R7: a huge value is not echoed whole).
pub(crate) fn repr(v: &Bound<'_, PyAny>) -> String {
    let r = v
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| unprintable(v));
    abbreviate(&r)
}

/// What a value Python will not print is shown as: an integer of more digits than Python
/// converts to text (`sys.set_int_max_str_digits`, 4300 by default) by its sign and size.
fn unprintable(v: &Bound<'_, PyAny>) -> String {
    match v
        .call_method0("bit_length")
        .and_then(|b| b.extract::<u64>())
    {
        Ok(bits) => {
            let sign = if v.lt(0).unwrap_or(false) { "-" } else { "" };
            format!("{sign}<an integer of {bits} bits>")
        }
        Err(_) => "<unprintable>".into(),
    }
}

/// An integer of more than 40 digits as its first 20 and its digit count; anything else longer
/// than 200 characters as its first 100 and its length; shorter text as it is.
pub(crate) fn abbreviate(r: &str) -> String {
    let digits = r.strip_prefix('-').unwrap_or(r);
    let is_int = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    if is_int && digits.len() > 40 {
        let head = &r[..20 + (r.len() - digits.len())];
        return format!("{head}... ({} digits)", digits.len());
    }
    let n = r.chars().count();
    if n > 200 {
        let head: String = r.chars().take(100).collect();
        return format!("{head}... ({n} characters)");
    }
    r.to_string()
}

/// Maps the core's error to Python: refused memory is `MemoryError` (contract R1), an
/// interruption a `KeyboardInterrupt` (when no pending exception was kept, see
/// [`detach_interruptible`]); every other variant is a bad value, so `ValueError`.
pub(crate) fn to_py_err(e: Error) -> PyErr {
    match e {
        Error::OutOfMemory { .. } => PyMemoryError::new_err(e.to_string()),
        Error::Interrupted => PyKeyboardInterrupt::new_err(()),
        e => PyValueError::new_err(e.to_string()),
    }
}

/// Runs `f` with the GIL released, as [`super::detached`] (a panic becomes `RuntimeError`), and
/// with an interruption check installed (contract R8): between chunks of its work the core
/// reacquires the GIL briefly (at most every 50 ms) to run Python's signal handlers. When a
/// handler raises (Ctrl-C's `KeyboardInterrupt`, or whatever a user's handler raises), the core
/// skips the rest of the work and that exception is what the call raises. Errors of `f` become
/// Python exceptions as [`to_py_err`].
pub(crate) fn detach_interruptible<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    F: Send + FnOnce() -> crate::Result<T>,
    T: Send,
{
    let pending: std::sync::Mutex<Option<PyErr>> = std::sync::Mutex::new(None);
    let r = super::detached(py, || {
        let check = || {
            Python::attach(|py| match py.check_signals() {
                Ok(()) => false,
                Err(e) => {
                    *pending.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    true
                }
            })
        };
        let first = std::time::Instant::now() + crate::interrupt::POLL_EVERY;
        crate::interrupt::with_interrupt_check_from(first, &check, f)
    })?;
    r.map_err(|e| {
        let raised = pending.lock().unwrap_or_else(|p| p.into_inner()).take();
        match (e, raised) {
            (Error::Interrupted, Some(raised)) => raised,
            (e, _) => to_py_err(e),
        }
    })
}

/// Where a function's result goes.
pub(crate) struct Output<'py> {
    /// The array the kernels write.
    pub target: FloatArray<'py>,
    /// The user's `out`, when the kernels could not write it directly.
    pub copy_to: Option<Bound<'py, PyUntypedArray>>,
}

impl<'py> Output<'py> {
    /// A new array of `shape`, or the user's `out` after the checks of contract S3.
    pub(crate) fn prepare(
        py: Python<'py>,
        out: Option<&Bound<'py, PyAny>>,
        shape: &[usize],
        dtype: Dtype,
    ) -> PyResult<Output<'py>> {
        let Some(out) = out else {
            let arr = dtype.empty(py, shape)?;
            return Ok(Output {
                target: FloatArray::view(&arr).expect("fresh array"),
                copy_to: None,
            });
        };
        let arr = out.cast::<PyUntypedArray>().map_err(|_| {
            PyTypeError::new_err(format!(
                "out must be a numpy.ndarray, got {}",
                out.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
        if arr.shape() != shape {
            return Err(PyValueError::new_err(format!(
                "out has shape {}, expected {}",
                shape_str(arr.shape()),
                shape_str(shape)
            )));
        }
        let d = arr.dtype();
        let same_kind = match dtype {
            Dtype::F16 => d.num() == NPY_TYPES::NPY_HALF as i32,
            Dtype::F32 => d.num() == NPY_TYPES::NPY_FLOAT as i32,
            Dtype::F64 => d.num() == NPY_TYPES::NPY_DOUBLE as i32,
            Dtype::BF16 => Dtype::of(arr) == Some(Dtype::BF16),
        };
        if !same_kind {
            let out_dtype = d.str()?.to_string();
            return Err(PyTypeError::new_err(format!(
                "out has dtype {out_dtype}, expected {}",
                dtype.name()
            )));
        }
        if !arr.is_writeable() {
            return Err(PyValueError::new_err(
                "out is read-only; pass a writeable array",
            ));
        }
        refuse_self_overlap(arr.shape(), arr.strides(), dtype.itemsize())?;
        if let Some(v) = FloatArray::view(arr) {
            return Ok(Output {
                target: v,
                copy_to: None,
            });
        }
        // Byte-swapped or unaligned `out`: compute aside, then copy in.
        let tmp = dtype.empty(py, shape)?;
        Ok(Output {
            target: FloatArray::view(&tmp).expect("fresh array"),
            copy_to: Some(arr.clone()),
        })
    }

    /// Copies into the user's `out` if needed and returns the result object.
    pub(crate) fn finish(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self.copy_to {
            None => Ok(self.target.arr.into_any()),
            Some(out) => {
                numpy_fn(py, "copyto")?.call1((&out, &self.target.arr))?;
                Ok(out.into_any())
            }
        }
    }
}

/// Contract R6: an `out` of `shape` and byte `strides` whose elements (`item` bytes each)
/// overlap one another is a `ValueError` naming `out`. What it would hold depends on the order
/// of the threads' writes; computing aside and copying in would only pick one of those orders.
pub(crate) fn refuse_self_overlap(shape: &[usize], strides: &[isize], item: usize) -> PyResult<()> {
    match crate::overlap::self_overlaps(shape, strides, item) {
        Ok(false) => Ok(()),
        Ok(true) => {
            let strides: Vec<String> = strides.iter().map(|s| s.to_string()).collect();
            let strides = match strides.len() {
                1 => format!("({},)", strides[0]),
                _ => format!("({})", strides.join(", ")),
            };
            Err(PyValueError::new_err(format!(
                "out has elements that overlap one another (shape {}, strides {strides} bytes); \
                 pass an array whose elements are distinct, such as numpy.empty_like(x)",
                shape_str(shape)
            )))
        }
        Err(_) => Err(PyMemoryError::new_err(
            "out: no memory to check its elements for overlap",
        )),
    }
}

trait HasWriteable {
    fn is_writeable(&self) -> bool;
}

impl HasWriteable for Bound<'_, PyUntypedArray> {
    fn is_writeable(&self) -> bool {
        // SAFETY: reading the flags of a live ndarray.
        let flags = unsafe { (*self.as_array_ptr()).fields.flags };
        flags & numpy::npyffi::NPY_ARRAY_WRITEABLE != 0
    }
}

/// `keepdims`: a bool (contract P8: a wrong type is named in the message, not only in the
/// exception note PyO3 adds).
pub(crate) fn keepdims_arg(v: &Bound<'_, PyAny>) -> PyResult<bool> {
    v.extract::<bool>()
        .map_err(|_| PyTypeError::new_err(format!("keepdims must be a bool, got {}", repr(v))))
}

/// `return_logprobs` of the sampling functions: a bool, named in the message (P8).
pub(crate) fn return_logprobs_arg(v: &Bound<'_, PyAny>) -> PyResult<bool> {
    v.extract::<bool>().map_err(|_| {
        PyTypeError::new_err(format!("return_logprobs must be a bool, got {}", repr(v)))
    })
}

/// A real-number parameter `name` (contract R7): bool, complex and non-numbers are a
/// `TypeError` naming `name`; an integer too large for a float is a `ValueError`.
pub(crate) fn float_arg(v: &Bound<'_, PyAny>, name: &str) -> PyResult<f64> {
    let wrong_type =
        || PyTypeError::new_err(format!("{name} must be a real number, got {}", repr(v)));
    if is_bool(v) {
        return Err(wrong_type());
    }
    if v.cast::<PyInt>().is_ok() {
        return v.extract::<f64>().map_err(|_| {
            PyValueError::new_err(format!("{name} must be a finite float, got {}", repr(v)))
        });
    }
    if v.cast::<PyFloat>().is_ok() {
        return v.extract::<f64>().map_err(|_| wrong_type());
    }
    let complex = v.is_instance(&v.py().import("numpy")?.getattr("complexfloating")?)?;
    if !complex && v.hasattr("__float__")? {
        return v.extract::<f64>().map_err(|_| wrong_type());
    }
    Err(wrong_type())
}
