//! PyTorch zip checkpoints (`torch.save` since 1.6) read defensively. The pickle is run by
//! `candle_core::pickle::Stack`, a data-only VM that never imports or calls anything, but only
//! after [`prescan`] has replayed it with sizes alone: candle's VM allocates a string's
//! declared length before reading it, deep-clones memo entries (a 100-byte pickle can ask for
//! 2^40 objects), recurses over nesting depth, and its tensor helpers index tuples without
//! checking their length. Tensor bytes are then cut from the archive only after the declared
//! shape, offset and dtype were checked (with overflow checks) against the storage member's
//! real size, so no header can make us allocate more than the file holds.

use std::collections::HashMap;
use std::path::Path;

use candle_core::pickle::{Object, Stack};
use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};

type Res<T> = std::result::Result<T, String>;

/// Deepest object nesting accepted (state dicts nest well under 20).
const MAX_DEPTH: u32 = 100;
/// Budget of bytes the pickle VM may allocate, clones included (about 64 per object).
const MAX_PICKLE_ALLOC: u64 = 256 << 20;
const OBJECT_COST: u64 = 64;
/// Tensors may share a storage (tied weights), but all of them together may use at most
/// this many times the file's size.
const MAX_TENSOR_BYTES_PER_FILE_BYTE: u64 = 4;

/// The tensors of a PyTorch checkpoint, by their names in the file.
pub(crate) fn read(path: &Path) -> Result<HashMap<String, Tensor>> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| Error::invalid_data(format!("weights file {shown}: {e}")))?;
    let fail = |reason: String| Error::invalid_data(format!("weights file {shown} could not be read as a PyTorch checkpoint: {reason}"));
    let archive = Archive::parse(&bytes).map_err(fail)?;
    let objects = archive.pickles().map_err(fail)?;
    // A state dict at the top level, or nested under the keys training scripts commonly use.
    for key in [None, Some("state_dict"), Some("model"), Some("model_state_dict")] {
        let tensors = tensors(&archive, &objects, key).map_err(fail)?;
        if !tensors.is_empty() {
            return Ok(tensors);
        }
    }
    Err(Error::invalid_data(format!("weights file {shown} holds no tensors (looked at the top level and under state_dict/model/model_state_dict)")))
}

fn u16_at(b: &[u8], at: usize) -> Res<u16> {
    b.get(at..at + 2).map(|s| u16::from_le_bytes([s[0], s[1]])).ok_or_else(|| "truncated zip structure".to_string())
}
fn u32_at(b: &[u8], at: usize) -> Res<u32> {
    b.get(at..at + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]])).ok_or_else(|| "truncated zip structure".to_string())
}
fn u64_at(b: &[u8], at: usize) -> Res<u64> {
    b.get(at..at + 8).map(|s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8]))).ok_or_else(|| "truncated zip structure".to_string())
}

/// The stored members of a zip archive, by name, as ranges of the file.
struct Archive<'a> {
    bytes: &'a [u8],
    /// (name, data range) in central-directory order.
    members: Vec<(String, std::ops::Range<usize>)>,
    /// Name to index in `members` (the last of duplicate names, as the zip crate does).
    by_name: HashMap<String, usize>,
}

impl<'a> Archive<'a> {
    fn parse(bytes: &'a [u8]) -> Res<Self> {
        const EOCD: u32 = 0x0605_4b50;
        if bytes.len() < 22 {
            return Err(format!("{} bytes is too short for a zip archive (truncated?)", bytes.len()));
        }
        let lowest = bytes.len().saturating_sub(22 + 0xFFFF);
        let eocd = (lowest..=bytes.len() - 22)
            .rev()
            .find(|&i| u32_at(bytes, i) == Ok(EOCD))
            .ok_or("not a zip archive (no end of central directory; truncated, or a legacy pre-1.6 torch.save file)")?;
        let mut entries = u16_at(bytes, eocd + 10)? as u64;
        let mut cd_size = u32_at(bytes, eocd + 12)? as u64;
        let mut cd_offset = u32_at(bytes, eocd + 16)? as u64;
        if entries == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_offset == 0xFFFF_FFFF {
            // Zip64: the locator sits just before the end record and points at the zip64 end record.
            let locator = eocd.checked_sub(20).ok_or("zip64 locator missing")?;
            if u32_at(bytes, locator)? != 0x0706_4b50 {
                return Err("zip64 locator missing".into());
            }
            let at = usize::try_from(u64_at(bytes, locator + 8)?).map_err(|_| "zip64 record out of range")?;
            if u32_at(bytes, at)? != 0x0606_4b50 {
                return Err("zip64 end record missing".into());
            }
            entries = u64_at(bytes, at + 32)?;
            cd_size = u64_at(bytes, at + 40)?;
            cd_offset = u64_at(bytes, at + 48)?;
        }
        let cd_end = cd_offset.checked_add(cd_size).filter(|&e| e <= bytes.len() as u64).ok_or("central directory out of range")?;
        // Every central entry takes at least 46 bytes: the count cannot exceed what fits.
        if entries > cd_size / 46 {
            return Err(format!("central directory claims {entries} entries in {cd_size} bytes"));
        }
        let (mut at, cd_end) = (cd_offset as usize, cd_end as usize);
        let mut members = Vec::with_capacity(entries as usize);
        for _ in 0..entries {
            if at + 46 > cd_end || u32_at(bytes, at)? != 0x0201_4b50 {
                return Err("corrupt central directory entry".into());
            }
            let flags = u16_at(bytes, at + 8)?;
            let method = u16_at(bytes, at + 10)?;
            let mut compressed = u32_at(bytes, at + 20)? as u64;
            let mut size = u32_at(bytes, at + 24)? as u64;
            let (name_len, extra_len, comment_len) = (u16_at(bytes, at + 28)? as usize, u16_at(bytes, at + 30)? as usize, u16_at(bytes, at + 32)? as usize);
            let mut local = u32_at(bytes, at + 42)? as u64;
            let name = bytes.get(at + 46..at + 46 + name_len).ok_or("truncated zip structure")?;
            let name = String::from_utf8_lossy(name).into_owned();
            let mut extra = bytes.get(at + 46 + name_len..at + 46 + name_len + extra_len).ok_or("truncated zip structure")?;
            while extra.len() >= 4 {
                let (id, len) = (u16_at(extra, 0)?, u16_at(extra, 2)? as usize);
                let body = extra.get(4..4 + len).ok_or("corrupt zip extra field")?;
                if id == 0x0001 {
                    // Zip64 extended information: only the fields saturated in the entry.
                    let mut fields = body.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
                    for field in [&mut size, &mut compressed, &mut local] {
                        if *field == 0xFFFF_FFFF {
                            *field = fields.next().ok_or("corrupt zip64 extra field")?;
                        }
                    }
                }
                extra = &extra[4 + len..];
            }
            at += 46 + name_len + extra_len + comment_len;
            if flags & 1 != 0 {
                return Err(format!("member {name} is encrypted"));
            }
            if method != 0 || compressed != size {
                return Err(format!("member {name} is compressed (method {method}); PyTorch writes checkpoints uncompressed and only those are read"));
            }
            let local = usize::try_from(local).map_err(|_| "member out of range")?;
            if u32_at(bytes, local)? != 0x0403_4b50 {
                return Err(format!("member {name}: corrupt local header"));
            }
            let start = local + 30 + u16_at(bytes, local + 26)? as usize + u16_at(bytes, local + 28)? as usize;
            let end = (start as u64)
                .checked_add(size)
                .filter(|&e| e <= bytes.len() as u64)
                .ok_or_else(|| format!("member {name} declares {size} bytes, past the end of the {}-byte file (truncated?)", bytes.len()))?;
            members.push((name, start..end as usize));
        }
        let by_name = members.iter().enumerate().map(|(i, (name, _))| (name.clone(), i)).collect();
        Ok(Self { bytes, members, by_name })
    }

    fn member(&self, name: &str) -> Option<&'a [u8]> {
        self.by_name.get(name).map(|&i| &self.bytes[self.members[i].1.clone()])
    }

    /// Every `*data.pkl` member unpickled, with the directory its storages live in.
    fn pickles(&self) -> Res<Vec<(String, Object)>> {
        let mut out = Vec::new();
        // One allocation budget for all the pickles: objects of every pickle are kept.
        let mut spent = 0u64;
        for (name, range) in &self.members {
            let Some(dir) = name.strip_suffix(".pkl").filter(|d| d.ends_with("data")) else { continue };
            let pickle = &self.bytes[range.clone()];
            prescan(pickle, &mut spent).map_err(|e| format!("{name}: {e}"))?;
            let mut stack = Stack::empty();
            stack.read_loop(&mut &pickle[..]).map_err(|e| format!("{name}: {e}"))?;
            out.push((dir.to_string(), stack.finalize().map_err(|e| format!("{name}: {e}"))?));
        }
        if out.is_empty() {
            return Err("no data.pkl in the archive".into());
        }
        Ok(out)
    }
}

/// The tensors of the state dict in each pickle (under `key` when given), cut from their
/// storage members after the declared layout was checked against the member's size.
fn tensors(archive: &Archive, objects: &[(String, Object)], key: Option<&str>) -> Res<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    let mut budget = (archive.bytes.len() as u64).saturating_mul(MAX_TENSOR_BYTES_PER_FILE_BYTE);
    for (dir, obj) in objects {
        // TorchScript archives wrap the dict in a `__torch__.Module` BUILD (as candle reads them).
        let obj = match obj {
            Object::Build { callable, args } => match &**callable {
                Object::Reduce { callable, .. } if class(callable) == Some(("__torch__", "Module")) => &**args,
                _ => continue,
            },
            obj => obj,
        };
        let obj = match (key, obj) {
            (Some(key), Object::Dict(entries)) => match entries.iter().find(|(k, _)| matches!(k, Object::Unicode(s) if s == key)) {
                Some((_, v)) => v,
                None => continue,
            },
            (_, obj) => obj,
        };
        let Object::Dict(entries) = obj else { continue };
        for (name, value) in entries {
            let Object::Unicode(name) = name else { continue };
            let read = tensor_info(value).and_then(|info| info.map(|i| read_tensor(archive, dir, i, &mut budget)).transpose());
            if let Some(tensor) = read.map_err(|e| format!("tensor {name}: {e}"))? {
                out.insert(name.clone(), tensor);
            }
        }
    }
    Ok(out)
}

fn class(o: &Object) -> Option<(&str, &str)> {
    match o {
        Object::Class { module_name, class_name } => Some((module_name, class_name)),
        _ => None,
    }
}

fn tuple(o: &Object) -> Option<&[Object]> {
    match o {
        Object::Tuple(t) => Some(t),
        _ => None,
    }
}

fn index(o: &Object) -> Option<usize> {
    match *o {
        Object::Int(v) => usize::try_from(v).ok(),
        Object::Long(v) => usize::try_from(v).ok(),
        _ => None,
    }
}

struct Info<'o> {
    dtype: DType,
    storage: &'o str,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

/// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`, possibly wrapped in
/// `_rebuild_parameter` or `_rebuild_from_type_v2`; None for entries that are not tensors
/// or whose storage type candle does not read (candle skips those too).
fn tensor_info(value: &Object) -> Res<Option<Info<'_>>> {
    let Object::Reduce { callable, args } = value else { return Ok(None) };
    let (mut callable, mut args) = (&**callable, &**args);
    match class(callable) {
        Some(("torch._tensor", "_rebuild_from_type_v2")) => {
            // (func, type, args, state)
            let t = tuple(args).filter(|t| t.len() >= 3).ok_or("malformed _rebuild_from_type_v2")?;
            (callable, args) = (&t[0], &t[2]);
        }
        Some(("torch._utils", "_rebuild_parameter")) => {
            // (data, requires_grad, backward_hooks)
            match tuple(args).and_then(|t| t.first()) {
                Some(Object::Reduce { callable: c, args: a }) => (callable, args) = (&**c, &**a),
                _ => return Err("malformed _rebuild_parameter".into()),
            }
        }
        _ => {}
    }
    if class(callable) != Some(("torch._utils", "_rebuild_tensor_v2")) {
        return Ok(None);
    }
    let t = tuple(args).filter(|t| t.len() >= 4).ok_or("malformed _rebuild_tensor_v2 arguments")?;
    let dims = |o: &Object| tuple(o).and_then(|d| d.iter().map(index).collect::<Option<Vec<_>>>());
    let size = dims(&t[2]).ok_or("malformed size")?;
    let stride = dims(&t[3]).ok_or("malformed stride")?;
    let offset = index(&t[1]).ok_or("malformed storage offset")?;
    // ("storage", <StorageClass>, key, location, numel)
    let storage = match &t[0] {
        Object::PersistentLoad(id) => tuple(id).filter(|s| s.len() >= 5).ok_or("malformed storage id")?,
        _ => return Err("the storage is not a persistent id".into()),
    };
    let dtype = match class(&storage[1]).ok_or("malformed storage type")?.1 {
        "FloatStorage" => DType::F32,
        "DoubleStorage" => DType::F64,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "ByteStorage" => DType::U8,
        "LongStorage" => DType::I64,
        _ => return Ok(None),
    };
    let Object::Unicode(storage) = &storage[2] else { return Err("malformed storage key".into()) };
    Ok(Some(Info { dtype, storage, offset, size, stride }))
}

fn read_tensor(archive: &Archive, dir: &str, info: Info, budget: &mut u64) -> Res<Tensor> {
    let Info { dtype, storage, offset, size, stride } = info;
    let path = format!("{dir}/{storage}");
    let member = archive.member(&path).ok_or_else(|| format!("storage {path} is not in the archive"))?;
    let elems = size.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let span = elems
        .and_then(|n| n.checked_mul(dtype.size_in_bytes()))
        .and_then(|len| Some((offset.checked_mul(dtype.size_in_bytes())?, len)))
        .filter(|&(start, len)| start.checked_add(len).is_some_and(|end| end <= member.len()));
    let Some((start, len)) = span else {
        return Err(format!("shape {size:?} at offset {offset} ({dtype:?}) does not fit its storage {path} of {} bytes", member.len()));
    };
    *budget = budget.checked_sub(len as u64).ok_or("the tensors would need more than 4x the file's size")?;
    // candle's Shape::is_contiguous / is_fortran_contiguous, without overflow.
    let contiguous = |order: &[usize]| {
        let mut acc = 1usize;
        size.len() == stride.len()
            && order.iter().all(|&i| {
                let ok = size[i] <= 1 || stride[i] == acc;
                acc = acc.saturating_mul(size[i]);
                ok
            })
    };
    let f_axes: Vec<usize> = (0..size.len()).collect();
    let c_axes: Vec<usize> = f_axes.iter().rev().copied().collect();
    let (c_order, f_order) = (contiguous(&c_axes), contiguous(&f_axes));
    if !c_order && !f_order {
        return Err(format!("non-contiguous layout (size {size:?}, stride {stride:?})"));
    }
    let bytes = &member[start..start + len];
    let err = |e: candle_core::Error| e.to_string();
    if c_order || size.len() < 2 {
        return Tensor::from_raw_buffer(bytes, dtype, &size, &Device::Cpu).map_err(err);
    }
    // Column-major: read with the dims reversed, then transpose back.
    let reversed: Vec<usize> = size.iter().rev().copied().collect();
    Tensor::from_raw_buffer(bytes, dtype, &reversed, &Device::Cpu).and_then(|t| t.permute(c_axes)).map_err(err)
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Mark,
    List,
    Dict,
    /// The global `collections.OrderedDict` / `defaultdict`: candle's REDUCE makes it a dict.
    DictClass,
    Other,
}

/// What the VM would hold, without the objects: (kind, bytes it owns, nesting depth).
type Slot = (Kind, u64, u32);

/// Replays `Stack::read_loop` (candle 0.9.2) opcode by opcode with sizes only, and refuses
/// what would make it allocate past the budget, nest past `MAX_DEPTH`, read a string longer
/// than the remaining bytes, overflow (`LONG1` over 8 bytes), or fail in a way whose message
/// formats a whole object. Anything accepted here runs in candle's VM in bounded memory.
fn prescan(p: &[u8], spent: &mut u64) -> Res<()> {
    let mut stack: Vec<Slot> = Vec::new();
    let mut memo: HashMap<u32, Slot> = HashMap::new();
    let mut i = 0usize;
    let take = |i: &mut usize, n: usize| -> Res<&[u8]> {
        let s = p.get(*i..*i + n).ok_or("truncated pickle")?;
        *i += n;
        Ok(s)
    };
    let mut charge = |bytes: u64| -> Res<()> {
        *spent = spent.saturating_add(bytes);
        if *spent > MAX_PICKLE_ALLOC {
            return Err(format!("the pickle would build more than {} MiB of objects", MAX_PICKLE_ALLOC >> 20));
        }
        Ok(())
    };
    fn pop(stack: &mut Vec<Slot>) -> Res<Slot> {
        stack.pop().ok_or_else(|| "pickle pops an empty stack".to_string())
    }
    fn pop_to_mark(stack: &mut Vec<Slot>) -> Res<Vec<Slot>> {
        let mark = stack.iter().rposition(|s| s.0 == Kind::Mark).ok_or("pickle marker not found")?;
        let items = stack.split_off(mark + 1);
        stack.pop();
        Ok(items)
    }
    fn parent(kind: Kind, children: &[Slot]) -> Res<Slot> {
        let size = children.iter().fold(OBJECT_COST, |a, c| a.saturating_add(c.1));
        let depth = 1 + children.iter().map(|c| c.2).max().unwrap_or(0);
        if depth > MAX_DEPTH {
            return Err(format!("pickle nests objects deeper than {MAX_DEPTH}"));
        }
        Ok((kind, size, depth))
    }
    let leaf = (Kind::Other, OBJECT_COST, 1);
    loop {
        let op = *take(&mut i, 1)?.first().unwrap_or(&0);
        match op {
            0x80 => {
                take(&mut i, 1)?;
            }
            b'c' => {
                let mut lines = [&p[..0]; 2];
                for line in &mut lines {
                    let n = p[i..].iter().position(|&b| b == b'\n').map_or(p.len() - i, |n| n + 1);
                    *line = &p[i..i + n];
                    i += n;
                }
                let trim = |l: &[u8]| -> Vec<u8> { l.strip_suffix(b"\n").map(|l| l.strip_suffix(b"\r").unwrap_or(l)).unwrap_or(l).to_vec() };
                let kind = match (trim(lines[0]).as_slice(), trim(lines[1]).as_slice()) {
                    (b"collections", b"OrderedDict" | b"defaultdict") => Kind::DictClass,
                    _ => Kind::Other,
                };
                let len = (lines[0].len() + lines[1].len()) as u64;
                charge(OBJECT_COST + len)?;
                stack.push((kind, OBJECT_COST + len, 1));
            }
            b'K' | b'M' | b'J' | b'G' => {
                take(
                    &mut i,
                    match op {
                        b'K' => 1,
                        b'M' => 2,
                        b'J' => 4,
                        _ => 8,
                    },
                )?;
                charge(OBJECT_COST)?;
                stack.push(leaf);
            }
            0x8a => {
                let n = take(&mut i, 1)?[0] as usize;
                if n > 8 {
                    return Err(format!("LONG1 of {n} bytes does not fit 64 bits"));
                }
                take(&mut i, n)?;
                charge(OBJECT_COST)?;
                stack.push(leaf);
            }
            b'X' => {
                let b = take(&mut i, 4)?;
                let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
                let s = take(&mut i, len).map_err(|_| format!("string of {len} bytes runs past the end of the pickle"))?;
                std::str::from_utf8(s).map_err(|_| "string is not UTF-8".to_string())?;
                charge(OBJECT_COST + len as u64)?;
                stack.push((Kind::Other, OBJECT_COST + len as u64, 1));
            }
            b'Q' => {
                let id = pop(&mut stack)?;
                let obj = parent(Kind::Other, &[id])?;
                charge(OBJECT_COST)?;
                stack.push(obj);
            }
            b't' => {
                let items = pop_to_mark(&mut stack)?;
                charge(OBJECT_COST)?;
                stack.push(parent(Kind::Other, &items)?);
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < n {
                    return Err("pickle pops an empty stack".into());
                }
                let items = stack.split_off(stack.len() - n);
                charge(OBJECT_COST)?;
                stack.push(parent(Kind::Other, &items)?);
            }
            0x88 | 0x89 | b'N' | b')' => {
                charge(OBJECT_COST)?;
                stack.push(leaf);
            }
            b'}' | b'd' => {
                // candle 0.9.2 decodes `d` as EMPTY_DICT.
                charge(OBJECT_COST)?;
                stack.push((Kind::Dict, OBJECT_COST, 1));
            }
            b']' => {
                charge(OBJECT_COST)?;
                stack.push((Kind::List, OBJECT_COST, 1));
            }
            b'a' | b'e' | b's' | b'u' => {
                let items = match op {
                    b'a' => vec![pop(&mut stack)?],
                    b's' => {
                        let v = pop(&mut stack)?;
                        vec![pop(&mut stack)?, v]
                    }
                    _ => pop_to_mark(&mut stack)?,
                };
                let want = if matches!(op, b'a' | b'e') { Kind::List } else { Kind::Dict };
                let top = stack.last_mut().ok_or("pickle pops an empty stack")?;
                if top.0 != want {
                    return Err(format!("opcode {:?} needs a {} below it", op as char, if want == Kind::List { "list" } else { "dict" }));
                }
                if op == b'u' && items.len() % 2 != 0 {
                    return Err("SETITEMS with an odd number of objects".into());
                }
                let mut all = items;
                all.push(*top);
                *top = parent(want, &all)?;
            }
            b'b' | b'R' | 0x81 => {
                let args = pop(&mut stack)?;
                let obj = pop(&mut stack)?;
                charge(OBJECT_COST)?;
                if op == b'R' && obj.0 == Kind::DictClass {
                    // candle: `OrderedDict(...)` becomes an empty dict, its arguments dropped.
                    stack.push((Kind::Dict, OBJECT_COST, 1));
                    continue;
                }
                let kind = if op == b'b' && obj.0 == Kind::Dict && args.0 == Kind::Dict { Kind::Dict } else { Kind::Other };
                stack.push(parent(kind, &[obj, args])?);
            }
            b'(' => {
                charge(OBJECT_COST)?;
                stack.push((Kind::Mark, OBJECT_COST, 1));
            }
            b'h' | b'j' => {
                let b = take(&mut i, if op == b'h' { 1 } else { 4 })?;
                let id = b.iter().rev().fold(0u32, |a, &x| (a << 8) | x as u32);
                let obj = *memo.get(&id).ok_or_else(|| format!("pickle reads memo {id}, never stored"))?;
                charge(obj.1)?;
                stack.push(obj);
            }
            b'q' | b'r' => {
                let b = take(&mut i, if op == b'q' { 1 } else { 4 })?;
                let id = b.iter().rev().fold(0u32, |a, &x| (a << 8) | x as u32);
                let top = *stack.last().ok_or("pickle pops an empty stack")?;
                charge(top.1)?;
                memo.insert(id, top);
            }
            b'.' => {
                return if stack.is_empty() { Err("pickle ends with an empty stack".into()) } else { Ok(()) };
            }
            other => return Err(format!("unsupported pickle opcode 0x{other:02x}")),
        }
    }
}
