//! GGUF files: a bounds-checked reader over an mmap, typed metadata values, and a writer.
//!
//! Unlike candle's reader, every count, length, dimension and offset is checked against the bytes
//! that remain in the file before anything is allocated or read, so a hostile file can neither make
//! us allocate more than its own size nor read out of bounds.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// "GGUF" read as a little-endian u32 (ref: ggml/include/gguf.h GGUF_MAGIC).
const MAGIC: u32 = 0x4655_4747;
/// Default data alignment when `general.alignment` is absent (ref: gguf.h GGUF_DEFAULT_ALIGNMENT).
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// The tensor types chimera reads; ids are ggml's `enum ggml_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum TensorType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
}

impl TensorType {
    /// Maps a ggml type id; `None` for ids chimera does not support.
    pub fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            6 => Self::Q5_0,
            7 => Self::Q5_1,
            8 => Self::Q8_0,
            10 => Self::Q2K,
            11 => Self::Q3K,
            12 => Self::Q4K,
            13 => Self::Q5K,
            14 => Self::Q6K,
            30 => Self::BF16,
            _ => return None,
        })
    }

    /// The ggml type id.
    pub fn id(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q5_0 => 6,
            Self::Q5_1 => 7,
            Self::Q8_0 => 8,
            Self::Q2K => 10,
            Self::Q3K => 11,
            Self::Q4K => 12,
            Self::Q5K => 13,
            Self::Q6K => 14,
            Self::BF16 => 30,
        }
    }

    /// (elements per block, bytes per block) (ref: ggml.c type_traits).
    pub fn block(self) -> (usize, usize) {
        match self {
            Self::F32 => (1, 4),
            Self::F16 | Self::BF16 => (1, 2),
            Self::Q4_0 => (32, 18),
            Self::Q4_1 => (32, 20),
            Self::Q5_0 => (32, 22),
            Self::Q5_1 => (32, 24),
            Self::Q8_0 => (32, 34),
            Self::Q2K => (256, 84),
            Self::Q3K => (256, 110),
            Self::Q4K => (256, 144),
            Self::Q5K => (256, 176),
            Self::Q6K => (256, 210),
        }
    }

    /// Bytes taken by `n` elements, `None` if `n` is not a whole number of blocks or overflows.
    pub fn bytes_for(self, n: u64) -> Option<u64> {
        let (be, bb) = self.block();
        if !n.is_multiple_of(be as u64) {
            return None;
        }
        (n / be as u64).checked_mul(bb as u64)
    }

    /// The name llama.cpp prints (`Q4_K`, `F16`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::BF16 => "BF16",
            Self::Q4_0 => "Q4_0",
            Self::Q4_1 => "Q4_1",
            Self::Q5_0 => "Q5_0",
            Self::Q5_1 => "Q5_1",
            Self::Q8_0 => "Q8_0",
            Self::Q2K => "Q2_K",
            Self::Q3K => "Q3_K",
            Self::Q4K => "Q4_K",
            Self::Q5K => "Q5_K",
            Self::Q6K => "Q6_K",
        }
    }

    /// Parses a llama.cpp type name (case-insensitive).
    pub fn from_name(s: &str) -> Option<Self> {
        let all = [
            Self::F32,
            Self::F16,
            Self::BF16,
            Self::Q4_0,
            Self::Q4_1,
            Self::Q5_0,
            Self::Q5_1,
            Self::Q8_0,
            Self::Q2K,
            Self::Q3K,
            Self::Q4K,
            Self::Q5K,
            Self::Q6K,
        ];
        all.into_iter().find(|t| t.name().eq_ignore_ascii_case(s))
    }
}

/// A metadata value. Arrays are typed so a 262,144-entry token list stays compact.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Array),
}

/// A typed metadata array.
#[derive(Debug, Clone, PartialEq)]
pub enum Array {
    Ints(Vec<i64>),
    Floats(Vec<f64>),
    Bools(Vec<bool>),
    Strings(Vec<String>),
}

impl Value {
    /// Integer view of any integer-typed value.
    pub fn as_i64(&self) -> Option<i64> {
        Some(match *self {
            Value::U8(v) => v as i64,
            Value::I8(v) => v as i64,
            Value::U16(v) => v as i64,
            Value::I16(v) => v as i64,
            Value::U32(v) => v as i64,
            Value::I32(v) => v as i64,
            Value::U64(v) => i64::try_from(v).ok()?,
            Value::I64(v) => v,
            _ => return None,
        })
    }
    /// Float view of any numeric value.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }
    /// String view.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    /// Bool view.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
    /// A short rendering for `chimera show`.
    pub fn brief(&self) -> String {
        match self {
            Value::String(s) if s.len() > 60 => {
                let cut = (0..=57).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
                format!("{:?}… ({} bytes)", &s[..cut], s.len())
            }
            Value::String(s) => format!("{s:?}"),
            Value::Bool(b) => b.to_string(),
            Value::F32(_) | Value::F64(_) => format!("{}", self.as_f64().unwrap_or(f64::NAN)),
            Value::Array(a) => match a {
                Array::Ints(v) => format!("[{} integers]", v.len()),
                Array::Floats(v) => format!("[{} floats]", v.len()),
                Array::Bools(v) => format!("[{} bools]", v.len()),
                Array::Strings(v) => format!("[{} strings]", v.len()),
            },
            _ => self.as_i64().map(|v| v.to_string()).unwrap_or_default(),
        }
    }
}

/// One tensor's header: name, shape in ggml order (ne[0] = row length), type, and data location.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    pub ty: TensorType,
    /// Absolute offset of the data in the file.
    pub offset: u64,
    pub bytes: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// An opened GGUF file: metadata, tensor headers and the mapped bytes.
pub struct Gguf {
    pub path: PathBuf,
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    pub file_size: u64,
    mmap: memmap2::Mmap,
}

impl std::fmt::Debug for Gguf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gguf")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn err(&self, what: impl Into<String>) -> Error {
        Error::Gguf { path: self.path.to_path_buf(), what: what.into() }
    }
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.err(format!(
                "truncated: {what} needs {n} bytes at offset {}, {} remain",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn arr<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.arr(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.arr(what)?))
    }
    /// A count of items each at least `min_size` bytes long, checked against the bytes left.
    fn count(&mut self, what: &str, min_size: usize) -> Result<usize> {
        let n = self.u64(what)?;
        let max = (self.remaining() / min_size.max(1)) as u64;
        if n > max {
            return Err(self.err(format!(
                "{what} is {n}, but only {} bytes remain (at most {max} entries fit)",
                self.remaining()
            )));
        }
        Ok(n as usize)
    }
    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.u64(what)?;
        if n > self.remaining() as u64 {
            return Err(self.err(format!(
                "{what}: string length {n} exceeds the {} bytes that remain",
                self.remaining()
            )));
        }
        let s = self.take(n as usize, what)?;
        String::from_utf8(s.to_vec()).map_err(|_| self.err(format!("{what}: string is not UTF-8")))
    }
    fn scalar(&mut self, ty: u32, what: &str) -> Result<Value> {
        Ok(match ty {
            0 => Value::U8(self.arr::<1>(what)?[0]),
            1 => Value::I8(self.arr::<1>(what)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.arr(what)?)),
            3 => Value::I16(i16::from_le_bytes(self.arr(what)?)),
            4 => Value::U32(self.u32(what)?),
            5 => Value::I32(i32::from_le_bytes(self.arr(what)?)),
            6 => Value::F32(f32::from_le_bytes(self.arr(what)?)),
            7 => match self.arr::<1>(what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(self.err(format!("{what}: bool byte {b}"))),
            },
            8 => Value::String(self.string(what)?),
            10 => Value::U64(self.u64(what)?),
            11 => Value::I64(i64::from_le_bytes(self.arr(what)?)),
            12 => Value::F64(f64::from_le_bytes(self.arr(what)?)),
            t => return Err(self.err(format!("{what}: unknown value type {t}"))),
        })
    }
    fn value(&mut self, what: &str) -> Result<Value> {
        let ty = self.u32(what)?;
        if ty != 9 {
            return self.scalar(ty, what);
        }
        let elem = self.u32(what)?;
        let min = match elem {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            8 | 10..=12 => 8,
            9 => return Err(self.err(format!("{what}: nested arrays are not supported"))),
            t => return Err(self.err(format!("{what}: unknown array element type {t}"))),
        };
        let n = self.count(&format!("{what}: array length"), min)?;
        let arr = match elem {
            8 => Array::Strings((0..n).map(|_| self.string(what)).collect::<Result<_>>()?),
            6 | 12 => Array::Floats(
                (0..n)
                    .map(|_| self.scalar(elem, what).map(|v| v.as_f64().unwrap_or(0.0)))
                    .collect::<Result<_>>()?,
            ),
            7 => Array::Bools(
                (0..n)
                    .map(|_| self.scalar(elem, what).map(|v| v.as_bool().unwrap_or(false)))
                    .collect::<Result<_>>()?,
            ),
            _ => Array::Ints(
                (0..n)
                    .map(|_| {
                        let v = self.scalar(elem, what)?;
                        v.as_i64().ok_or_else(|| self.err(format!("{what}: integer out of range")))
                    })
                    .collect::<Result<_>>()?,
            ),
        };
        Ok(Value::Array(arr))
    }
}

impl Gguf {
    /// Opens and validates a GGUF file. Nothing is allocated beyond what the file's own bytes bound.
    pub fn open(path: &Path) -> Result<Gguf> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let file_size = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let gerr = |what: &str| Error::Gguf { path: path.to_path_buf(), what: what.into() };
        if file_size == 0 {
            return Err(gerr("the file is empty"));
        }
        // SAFETY: the map is read-only; chimera never writes to model files, and a file truncated
        // underneath us is the same hazard every mmap-based loader (llama.cpp included) accepts.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let mut r = Reader { buf: &mmap, pos: 0, path };
        let magic = r.u32("magic").map_err(|_| gerr("shorter than the 4-byte magic"))?;
        if magic != MAGIC {
            return Err(gerr("bad magic (the file does not start with 'GGUF')"));
        }
        let version = r.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(gerr(&format!(
                "unsupported GGUF version {version} (2 and 3 are supported)"
            )));
        }
        // A tensor header is at least 8 (name len) + 4 (n_dims) + 4 (type) + 8 (offset) bytes; a
        // key-value pair at least 8 (key len) + 4 (type) + 1 byte.
        let n_tensors = r.count("tensor count", 24)?;
        let n_kv = r.count("metadata key count", 13)?;
        let mut metadata = BTreeMap::new();
        for i in 0..n_kv {
            let key = r.string(&format!("metadata key #{i}"))?;
            let v = r.value(&format!("metadata '{key}'"))?;
            metadata.insert(key, v);
        }
        let mut raw = Vec::with_capacity(n_tensors);
        for i in 0..n_tensors {
            let name = r.string(&format!("tensor #{i} name"))?;
            let n_dims = r.u32(&format!("tensor '{name}' dims"))?;
            if n_dims == 0 || n_dims > 4 {
                return Err(gerr(&format!("tensor '{name}' has {n_dims} dimensions (1..=4)")));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(r.u64(&format!("tensor '{name}' shape"))?);
            }
            let ty_id = r.u32(&format!("tensor '{name}' type"))?;
            let offset = r.u64(&format!("tensor '{name}' offset"))?;
            raw.push((name, dims, ty_id, offset));
        }
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_i64() {
                Some(a) if a > 0 && (a as u64).is_power_of_two() => a as u64,
                _ => return Err(gerr("general.alignment is not a power of two")),
            },
        };
        let data_start = (r.pos as u64).div_ceil(alignment) * alignment;
        let mut tensors = Vec::with_capacity(raw.len());
        for (name, dims, ty_id, offset) in raw {
            let terr =
                |what: String| Error::Tensor { path: path.to_path_buf(), name: name.clone(), what };
            let ty = TensorType::from_id(ty_id)
                .ok_or_else(|| terr(format!("unsupported tensor type id {ty_id}")))?;
            let n = dims
                .iter()
                .try_fold(1u64, |a, &d| if d == 0 { None } else { a.checked_mul(d) })
                .ok_or_else(|| terr(format!("shape {dims:?} is empty or overflows")))?;
            if dims[0] % ty.block().0 as u64 != 0 {
                return Err(terr(format!(
                    "row length {} is not a multiple of the {} block size {}",
                    dims[0],
                    ty.name(),
                    ty.block().0
                )));
            }
            let bytes = ty.bytes_for(n).ok_or_else(|| terr("size overflows".into()))?;
            if offset % alignment != 0 {
                return Err(terr(format!("offset {offset} is not aligned to {alignment}")));
            }
            let abs = data_start
                .checked_add(offset)
                .filter(|a| a.checked_add(bytes).is_some_and(|e| e <= file_size));
            let abs = abs.ok_or_else(|| {
                terr(format!(
                    "data ({bytes} bytes at offset {offset}) runs past the end of the file ({file_size} bytes)"
                ))
            })?;
            tensors.push(TensorInfo { name, dims, ty, offset: abs, bytes });
        }
        Ok(Gguf { path: path.to_path_buf(), version, metadata, tensors, file_size, mmap })
    }

    /// The raw bytes of a tensor (bounds were checked at open).
    pub fn data(&self, t: &TensorInfo) -> &[u8] {
        &self.mmap[t.offset as usize..(t.offset + t.bytes) as usize]
    }

    /// Looks a tensor up by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The quantization level its `general.file_type` names ([`ftype_name`]).
    pub fn file_type_name(&self) -> Option<&'static str> {
        ftype_name(self.metadata.get("general.file_type")?.as_i64()?)
    }

    /// Parameters: the elements of every tensor.
    pub fn n_params(&self) -> u64 {
        self.tensors.iter().map(|t| t.n_elements()).sum()
    }

    /// The whole mapped file (for weights that are used in place).
    pub fn bytes(&self) -> &[u8] {
        &self.mmap
    }

    /// Drops the resident pages wholly inside `range`, bytes that were copied elsewhere at load,
    /// so that they stop counting toward RSS; a later read maps them from the file again.
    pub fn release(&self, range: std::ops::Range<usize>) {
        // 4 KiB rounding; where pages are larger the call fails and the pages simply stay.
        let (start, end) = (range.start.next_multiple_of(4096), range.end / 4096 * 4096);
        if start < end {
            #[cfg(unix)]
            // SAFETY: the map is read-only and file-backed: after MADV_DONTNEED a read faults in
            // the same bytes from the file, so every outstanding slice keeps its contents.
            let _ = unsafe {
                self.mmap.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    start,
                    end - start,
                )
            };
        }
    }
}

// ── writer ──

/// A tensor to write: name, ggml-order dims, type and its already-encoded bytes.
pub struct WriteTensor<'a> {
    pub name: String,
    pub dims: Vec<u64>,
    pub ty: TensorType,
    pub data: std::borrow::Cow<'a, [u8]>,
}

fn put_str(w: &mut Vec<u8>, s: &str) {
    w.extend_from_slice(&(s.len() as u64).to_le_bytes());
    w.extend_from_slice(s.as_bytes());
}

fn put_value(w: &mut Vec<u8>, v: &Value) {
    let (ty, body): (u32, Vec<u8>) = match v {
        Value::U8(x) => (0, vec![*x]),
        Value::I8(x) => (1, vec![*x as u8]),
        Value::U16(x) => (2, x.to_le_bytes().to_vec()),
        Value::I16(x) => (3, x.to_le_bytes().to_vec()),
        Value::U32(x) => (4, x.to_le_bytes().to_vec()),
        Value::I32(x) => (5, x.to_le_bytes().to_vec()),
        Value::F32(x) => (6, x.to_le_bytes().to_vec()),
        Value::Bool(x) => (7, vec![*x as u8]),
        Value::String(s) => {
            let mut b = Vec::new();
            put_str(&mut b, s);
            (8, b)
        }
        Value::U64(x) => (10, x.to_le_bytes().to_vec()),
        Value::I64(x) => (11, x.to_le_bytes().to_vec()),
        Value::F64(x) => (12, x.to_le_bytes().to_vec()),
        Value::Array(a) => {
            let mut b = Vec::new();
            match a {
                Array::Ints(v) => {
                    b.extend_from_slice(&5u32.to_le_bytes());
                    b.extend_from_slice(&(v.len() as u64).to_le_bytes());
                    v.iter().for_each(|x| b.extend_from_slice(&(*x as i32).to_le_bytes()));
                }
                Array::Floats(v) => {
                    b.extend_from_slice(&6u32.to_le_bytes());
                    b.extend_from_slice(&(v.len() as u64).to_le_bytes());
                    v.iter().for_each(|x| b.extend_from_slice(&(*x as f32).to_le_bytes()));
                }
                Array::Bools(v) => {
                    b.extend_from_slice(&7u32.to_le_bytes());
                    b.extend_from_slice(&(v.len() as u64).to_le_bytes());
                    v.iter().for_each(|x| b.push(*x as u8));
                }
                Array::Strings(v) => {
                    b.extend_from_slice(&8u32.to_le_bytes());
                    b.extend_from_slice(&(v.len() as u64).to_le_bytes());
                    v.iter().for_each(|s| put_str(&mut b, s));
                }
            }
            (9, b)
        }
    };
    w.extend_from_slice(&ty.to_le_bytes());
    w.extend_from_slice(&body);
}

/// The name of a `general.file_type` value, as Ollama reports a GGUF's quantization level
/// (ref: llama.h enum llama_ftype; Ollama fs/ggml FileType.String).
pub fn ftype_name(ftype: i64) -> Option<&'static str> {
    Some(match ftype {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        _ => return None,
    })
}

/// Writes a GGUF v3 file atomically (temp file in the same folder, then rename).
pub fn write(
    path: &Path,
    metadata: &BTreeMap<String, Value>,
    tensors: &[WriteTensor],
) -> Result<()> {
    let mut head = Vec::new();
    head.extend_from_slice(&MAGIC.to_le_bytes());
    head.extend_from_slice(&3u32.to_le_bytes());
    head.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    head.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        put_str(&mut head, k);
        put_value(&mut head, v);
    }
    let mut offset = 0u64;
    for t in tensors {
        put_str(&mut head, &t.name);
        head.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        t.dims.iter().for_each(|d| head.extend_from_slice(&d.to_le_bytes()));
        head.extend_from_slice(&t.ty.id().to_le_bytes());
        head.extend_from_slice(&offset.to_le_bytes());
        offset = (offset + t.data.len() as u64).div_ceil(DEFAULT_ALIGNMENT) * DEFAULT_ALIGNMENT;
    }
    let pad =
        |n: usize| (n as u64).div_ceil(DEFAULT_ALIGNMENT) as usize * DEFAULT_ALIGNMENT as usize - n;
    head.resize(head.len() + pad(head.len()), 0);
    crate::atomic_write(path, |w| {
        w.write_all(&head)?;
        for t in tensors {
            w.write_all(&t.data)?;
            w.write_all(&vec![0u8; pad(t.data.len())])?;
        }
        Ok(())
    })
}
