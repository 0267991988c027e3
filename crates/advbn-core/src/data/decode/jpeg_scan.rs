//! Is every MCU of every scan of a JPEG present? zune-jpeg (behind the `image` crate) fills the
//! rest of a scan with zero bits when it meets a marker early, so a file cut mid-scan with an
//! end-of-image marker appended decodes silently with grey or smeared rows, even in its strict
//! mode. This walks the segments and Huffman-decodes each scan in counting mode (symbols and
//! magnitude bits are read and dropped: no IDCT, no pixels) to see that the data holds all the
//! MCUs the frame header implies (ITU T.81 A.2) before the scan's first non-RST marker.
//!
//! Checked: baseline and extended sequential (SOF0, SOF1) and progressive (SOF2) Huffman files,
//! every scan of them: interleaved and single-component scans with any sampling factors, restart
//! intervals, byte stuffing and fill bytes; progressive DC-first, DC-refine, AC-first (EOB runs)
//! and AC-refine scans. AC-refine scans read one correction bit per coefficient that earlier
//! scans made non-zero, so for progressive files the check keeps one bit per coefficient (8 bytes
//! per 8x8 block of each component, 1/16 of the decoder's own coefficient buffers); sequential
//! files need nothing proportional to the image.
//!
//! A scan counts as cut short when decoding it needs a bit past its data, as libjpeg's
//! "premature end of data segment" warning does; zune-jpeg says nothing.
//!
//! Not checked: lossless, hierarchical and arithmetic-coded frames; a progressive file that
//! stops exactly at a scan boundary (later scans absent: legal, and the image is blurred rather
//! than grey). Anything this parser does not understand (odd structure, a bad Huffman code, an
//! unexpected RST, data left after a scan's last MCU, no frame or table) is left to the decoder
//! to judge: the check only refuses a file whose scan data provably stops early.

use std::ops::Range;

const FAST: usize = 10;

/// What [`check`] found.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Every scan up to the end-of-image marker holds all its MCUs; the entropy-coded data of
    /// each scan (RST markers included) in file order.
    Complete(Vec<Range<usize>>),
    /// A scan stops early: the reason, e.g. "truncated JPEG: scan data ends after 3 of 40 MCUs".
    Truncated(String),
    /// Outside what the check understands; the decoder judges.
    NotUnderstood,
}

/// Walks the segments and counts every scan's MCUs. Work is bounded by the byte length and the
/// number of 8x8 blocks per scan.
pub fn check(bytes: &[u8]) -> Verdict {
    let mut checker = Checker::default();
    match checker.run(bytes) {
        Ok(()) => Verdict::Complete(checker.ranges),
        Err(Stop::Truncated(reason)) => Verdict::Truncated(reason),
        Err(Stop::Unsure) => Verdict::NotUnderstood,
    }
}

/// The reason a JPEG is refused for missing scan data, or `None` when every scan is complete
/// or the file is outside what the check understands.
pub fn missing_scan_data(bytes: &[u8]) -> Option<String> {
    match check(bytes) {
        Verdict::Truncated(reason) => Some(reason),
        _ => None,
    }
}

enum Stop {
    Unsure,
    Truncated(String),
}
type Step<T> = Result<T, Stop>;

/// A canonical Huffman table: `FAST`-bit lookups of length << 8 | symbol for the code alone
/// (`fast`) and for the code with the magnitude bits that follow it (`comb`, DC size or AC
/// `rs & 15`), 0 where longer, and the per-length largest codes for the rest (T.81 F.2.2.3).
struct Huff {
    fast: [u16; 1 << FAST],
    comb: [u16; 1 << FAST],
    maxcode: [i32; 17],
    valoff: [i32; 17],
    vals: [u8; 256],
}

impl Huff {
    fn build(ac: bool, counts: &[u8], vals: &[u8]) -> Option<Huff> {
        let mut h = Huff { fast: [0; 1 << FAST], comb: [0; 1 << FAST], maxcode: [-1; 17], valoff: [0; 17], vals: [0; 256] };
        h.vals[..vals.len()].copy_from_slice(vals);
        let (mut code, mut k) = (0i32, 0usize);
        for len in 1..=16 {
            h.valoff[len] = k as i32 - code;
            for _ in 0..counts[len - 1] {
                if code >= 1 << len {
                    return None;
                }
                if len <= FAST {
                    let range = (code << (FAST - len)) as usize..((code + 1) << (FAST - len)) as usize;
                    h.fast[range.clone()].fill((len as u16) << 8 | vals[k] as u16);
                    let total = len + if ac { vals[k] as usize & 15 } else { vals[k] as usize };
                    if total <= FAST {
                        h.comb[range].fill((total as u16) << 8 | vals[k] as u16);
                    }
                }
                code += 1;
                k += 1;
            }
            h.maxcode[len] = if counts[len - 1] > 0 { code - 1 } else { -1 };
            code <<= 1;
        }
        Some(h)
    }
}

/// MSB-first bits of entropy-coded data. At a marker (or the end of the bytes) it stops reading
/// and supplies zero bits, as decoders do; `n` (the real bits held) turns negative once more were read.
struct Bits<'a> {
    b: &'a [u8],
    pos: usize,
    acc: u64,
    n: i32,
    /// Reached a marker: `Some(index of its code byte)`, or `Some(len)` at the end of the bytes.
    marker: Option<usize>,
}

impl<'a> Bits<'a> {
    fn new(b: &'a [u8], pos: usize) -> Self {
        Bits { b, pos, acc: 0, n: 0, marker: None }
    }

    /// Tops the buffer up to 32 bits or more, unless a marker (or the end) comes first.
    #[inline(always)]
    fn fill(&mut self) {
        if self.n >= 32 {
            return;
        }
        if let (None, Some(&[a, b, c, d])) = (self.marker, self.b.get(self.pos..self.pos + 4)) {
            let w = u32::from_be_bytes([a, b, c, d]);
            if (!w).wrapping_sub(0x0101_0101) & w & 0x8080_8080 == 0 {
                // No 0xFF among the four bytes: no stuffing, no marker.
                self.acc |= (w as u64) << (32 - self.n);
                self.n += 32;
                self.pos += 4;
                return;
            }
        }
        while self.n <= 56 && self.marker.is_none() {
            let Some(&x) = self.b.get(self.pos) else {
                self.marker = Some(self.b.len());
                break;
            };
            if x == 0xFF {
                let mut q = self.pos + 1;
                while self.b.get(q) == Some(&0xFF) {
                    q += 1;
                }
                if self.b.get(q) != Some(&0) {
                    self.marker = Some(q.min(self.b.len()));
                    break;
                }
                self.pos = q + 1;
            } else {
                self.pos += 1;
            }
            self.acc |= (x as u64) << (56 - self.n);
            self.n += 8;
        }
    }

    #[inline(always)]
    fn consume(&mut self, k: u32) {
        self.acc <<= k; // k <= 32
        self.n -= k as i32;
    }

    fn over(&self) -> bool {
        self.n < 0
    }

    /// The next `k` (at most 16) bits as a number.
    fn get(&mut self, k: u32) -> u32 {
        if k == 0 {
            return 0;
        }
        self.fill();
        let v = (self.acc >> (64 - k)) as u32;
        self.consume(k);
        v
    }

    fn skip(&mut self, mut k: u32) {
        while k > 0 {
            let step = k.min(16);
            self.get(step);
            k -= step;
        }
    }

    /// A symbol and the magnitude bits after it (DC: `size` bits, AC: `rs & 15`).
    #[inline(always)]
    fn coded(&mut self, h: &Huff, ac: bool) -> Step<u8> {
        self.fill();
        let e = h.comb[(self.acc >> (64 - FAST)) as usize];
        if e != 0 {
            self.consume((e >> 8) as u32);
            return Ok(e as u8);
        }
        let sym = self.decode(h)?;
        let extra = if ac { sym & 15 } else { sym };
        if extra > 16 {
            return Err(Stop::Unsure);
        }
        self.get(extra as u32);
        Ok(sym)
    }

    #[inline(always)]
    fn decode(&mut self, h: &Huff) -> Step<u8> {
        self.fill();
        let e = h.fast[(self.acc >> (64 - FAST)) as usize];
        let (len, sym) = match long_code(h, e, (self.acc >> 48) as i32) {
            Some(code) => code,
            // Real bits and zero fill make no code: the data ran out.
            None if self.marker.is_some() && self.n < 16 => (self.n.max(0) as u32 + 1, 0),
            None => return Err(Stop::Unsure),
        };
        self.consume(len);
        Ok(sym)
    }
}

/// (length, symbol) of the code the `FAST`-bit lookup gave (`e`), or of a longer one among
/// the next 16 bits.
#[inline(always)]
fn long_code(h: &Huff, e: u16, bits16: i32) -> Option<(u32, u8)> {
    if e != 0 {
        return Some(((e >> 8) as u32, e as u8));
    }
    longer_code(h, bits16)
}

#[cold]
fn longer_code(h: &Huff, bits16: i32) -> Option<(u32, u8)> {
    (FAST + 1..=16).find(|&len| bits16 >> (16 - len) <= h.maxcode[len]).map(|len| (len as u32, h.vals[((bits16 >> (16 - len)) + h.valoff[len]) as usize]))
}

#[derive(Clone, Copy, Default)]
struct Comp {
    id: u8,
    h: usize,
    v: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Sequential,
    DcFirst,
    DcRefine,
    AcFirst,
    AcRefine,
}

#[derive(Default)]
struct Checker {
    /// (width, height, progressive) once a frame header is read.
    frame: Option<(usize, usize, bool)>,
    comps: Vec<Comp>,
    tables: [Option<Box<Huff>>; 8],
    restart: usize,
    /// Progressive only: per component, one bit per coefficient (zig-zag index) per block.
    nonzero: Vec<Vec<u64>>,
    eobrun: u32,
    scans: usize,
    ranges: Vec<Range<usize>>,
}

fn be16(b: &[u8]) -> usize {
    u16::from_be_bytes([b[0], b[1]]) as usize
}

impl Checker {
    fn run(&mut self, b: &[u8]) -> Step<()> {
        if b.len() < 4 || b[..2] != [0xFF, 0xD8] {
            return Err(Stop::Unsure);
        }
        let mut i = 2;
        loop {
            if b.get(i) != Some(&0xFF) {
                return Err(Stop::Unsure);
            }
            while b.get(i) == Some(&0xFF) {
                i += 1;
            }
            let m = *b.get(i).ok_or(Stop::Unsure)?;
            i += 1;
            match m {
                0xD9 if self.scans > 0 => return Ok(()),
                0xD9 => return Err(Stop::Unsure), // no scan to judge
                0x01 | 0xD0..=0xD8 => continue,
                _ => {}
            }
            let len = if i + 2 <= b.len() { be16(&b[i..]) } else { 0 };
            if len < 2 || i + len > b.len() {
                return Err(Stop::Unsure);
            }
            let seg = &b[i + 2..i + len];
            i += len;
            match m {
                0xC0..=0xC2 => self.frame(m == 0xC2, seg)?,
                0xC4 => self.huffman_tables(seg)?,
                0xDD if seg.len() == 2 => self.restart = be16(seg),
                0xDA => i = self.scan(seg, b, i)?,
                // Lossless, hierarchical, arithmetic, DNL, malformed DRI: the decoder judges.
                0xC3 | 0xC5..=0xCB | 0xCD..=0xCF | 0xDC | 0xDD | 0x00 => return Err(Stop::Unsure),
                _ => {} // APPn, COM, DQT, ...
            }
        }
    }

    fn frame(&mut self, progressive: bool, seg: &[u8]) -> Step<()> {
        if self.frame.is_some() || seg.len() < 6 || !matches!(seg[0], 8 | 12) {
            return Err(Stop::Unsure);
        }
        let (h, w, nf) = (be16(&seg[1..]), be16(&seg[3..]), seg[5] as usize);
        if h == 0 || w == 0 || !(1..=4).contains(&nf) || seg.len() < 6 + 3 * nf {
            return Err(Stop::Unsure);
        }
        for c in seg[6..6 + 3 * nf].chunks_exact(3) {
            let (hs, vs) = ((c[1] >> 4) as usize, (c[1] & 15) as usize);
            if !(1..=4).contains(&hs) || !(1..=4).contains(&vs) {
                return Err(Stop::Unsure);
            }
            self.comps.push(Comp { id: c[0], h: hs, v: vs });
        }
        self.frame = Some((w, h, progressive));
        self.nonzero = vec![Vec::new(); nf];
        Ok(())
    }

    fn huffman_tables(&mut self, mut s: &[u8]) -> Step<()> {
        while !s.is_empty() {
            let (class, id) = ((s[0] >> 4) as usize, (s[0] & 15) as usize);
            let total = s.get(1..17).map(|c| c.iter().map(|&n| n as usize).sum::<usize>()).unwrap_or(usize::MAX);
            if class > 1 || id > 3 || total > 256 || s.len() < 17 + total {
                return Err(Stop::Unsure);
            }
            let table = Huff::build(class == 1, &s[1..17], &s[17..17 + total]).ok_or(Stop::Unsure)?;
            self.tables[class * 4 + id] = Some(Box::new(table));
            s = &s[17 + total..];
        }
        Ok(())
    }

    /// Counts one scan whose data starts at `b[start]`; returns where the next marker is.
    fn scan(&mut self, seg: &[u8], b: &[u8], start: usize) -> Step<usize> {
        let (w, h, progressive) = self.frame.ok_or(Stop::Unsure)?;
        let ns = *seg.first().ok_or(Stop::Unsure)? as usize;
        if !(1..=4).contains(&ns) || seg.len() < 4 + 2 * ns {
            return Err(Stop::Unsure);
        }
        // (component index, DC table, AC table) of each scan component.
        let mut sc = [(0usize, 0usize, 0usize); 4];
        for (j, s) in sc.iter_mut().enumerate().take(ns) {
            let c = self.comps.iter().position(|c| c.id == seg[1 + 2 * j]).ok_or(Stop::Unsure)?;
            let t = seg[2 + 2 * j];
            *s = (c, (t >> 4) as usize & 3, 4 + (t & 3) as usize);
        }
        let (ss, se, ah, al) = (seg[1 + 2 * ns] as u32, seg[2 + 2 * ns] as u32, seg[3 + 2 * ns] >> 4, seg[3 + 2 * ns] & 15);
        let mode = match (progressive, ss, ah) {
            (false, ..) => Mode::Sequential,
            (true, 0, 0) if se == 0 => Mode::DcFirst,
            (true, 0, _) if se == 0 => Mode::DcRefine,
            (true, 1..=63, 0) if ns == 1 && se >= ss && se <= 63 => Mode::AcFirst,
            (true, 1..=63, _) if ns == 1 && se >= ss && se <= 63 => Mode::AcRefine,
            _ => return Err(Stop::Unsure),
        };
        let sc = &sc[..ns];
        let needs_dc = matches!(mode, Mode::Sequential | Mode::DcFirst);
        let needs_ac = matches!(mode, Mode::Sequential | Mode::AcFirst | Mode::AcRefine);
        if sc.iter().any(|&(_, d, a)| (needs_dc && self.tables[d].is_none()) || (needs_ac && self.tables[a].is_none())) || al > 13 {
            return Err(Stop::Unsure);
        }
        let hmax = self.comps.iter().map(|c| c.h).max().unwrap_or(1);
        let vmax = self.comps.iter().map(|c| c.v).max().unwrap_or(1);
        // T.81 A.2: a single-component scan codes that component's own blocks one by one; an
        // interleaved one codes MCUs of h x v blocks of each component.
        let total = if ns == 1 {
            let c = self.comps[sc[0].0];
            (w * c.h).div_ceil(hmax).div_ceil(8) * (h * c.v).div_ceil(vmax).div_ceil(8)
        } else {
            w.div_ceil(8 * hmax) * h.div_ceil(8 * vmax)
        };
        if matches!(mode, Mode::AcFirst | Mode::AcRefine) && self.nonzero[sc[0].0].len() != total {
            if total > 1 << 22 {
                return Err(Stop::Unsure);
            }
            self.nonzero[sc[0].0] = vec![0; total];
        }
        self.scans += 1;
        self.eobrun = 0;
        let mut bits = Bits::new(b, start);
        let ri = self.restart;
        let mut done = 0;
        while done < total {
            let mut result = Ok(());
            'mcu: for &(c, dc, ac) in sc {
                let n = if ns == 1 { 1 } else { self.comps[c].h * self.comps[c].v };
                for _ in 0..n {
                    result = self.block(&mut bits, mode, c, dc, ac, done, ss, se);
                    if result.is_err() || bits.over() {
                        break 'mcu;
                    }
                }
            }
            if bits.over() {
                return Err(self.truncated(done, total));
            }
            result?;
            done += 1;
            if ri > 0 && done % ri == 0 && done < total {
                // Restart: the interval's data ends on a byte boundary right before RSTn.
                bits.consume(bits.n as u32 % 8);
                bits.fill();
                if bits.n > 0 {
                    return Err(Stop::Unsure);
                }
                match bits.marker.and_then(|m| b.get(m)) {
                    Some(0xD0..=0xD7) => {}
                    Some(_) | None => return Err(self.truncated(done, total)),
                }
                bits = Bits::new(b, bits.marker.unwrap_or(0) + 1);
                self.eobrun = 0;
            }
        }
        // All MCUs read: only padding may remain before the next marker. More data means this
        // parse and the encoder disagree, which the decoder judges.
        bits.consume(bits.n as u32 % 8);
        bits.fill();
        match bits.marker {
            Some(m) if bits.n == 0 && m < b.len() => {
                self.ranges.push(start..bits.pos);
                Ok(m - 1)
            }
            _ => Err(Stop::Unsure),
        }
    }

    fn truncated(&self, done: usize, total: usize) -> Stop {
        let which = if self.scans > 1 || self.frame.is_some_and(|f| f.2) { format!(" of scan {}", self.scans) } else { String::new() };
        Stop::Truncated(format!("truncated JPEG: scan data ends after {done} of {total} MCUs{which}"))
    }

    /// Reads one 8x8 block's worth of bits; `index` is the block's position in a
    /// single-component scan (the only kind that carries AC coefficients when progressive).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn block(&mut self, bits: &mut Bits, mode: Mode, c: usize, dc: usize, ac: usize, index: usize, ss: u32, se: u32) -> Step<()> {
        let table = |t: usize| self.tables[t].as_deref().ok_or(Stop::Unsure);
        match mode {
            Mode::Sequential | Mode::DcFirst => {
                bits.coded(table(dc)?, false)?;
                if mode == Mode::Sequential {
                    let t = table(ac)?;
                    let mut k = 1;
                    while k < 64 {
                        let rs = bits.coded(t, true)?;
                        if rs & 15 == 0 && rs != 0xF0 {
                            break;
                        }
                        k += (rs >> 4) as usize + 1;
                    }
                }
            }
            Mode::DcRefine => {
                bits.get(1);
            }
            Mode::AcFirst => {
                if self.eobrun > 0 {
                    self.eobrun -= 1;
                    return Ok(());
                }
                let t = self.tables[ac].as_deref().ok_or(Stop::Unsure)?;
                let mask = &mut self.nonzero[c][index];
                let mut k = ss;
                while k <= se && !bits.over() {
                    let rs = bits.decode(t)?;
                    let (r, s) = ((rs >> 4) as u32, (rs & 15) as u32);
                    if s == 0 {
                        if r < 15 {
                            self.eobrun = (1 << r) + bits.get(r) - 1;
                            break;
                        }
                        k += 16;
                    } else {
                        k += r;
                        bits.get(s);
                        *mask |= 1u64.checked_shl(k).unwrap_or(0);
                        k += 1;
                    }
                }
            }
            Mode::AcRefine => {
                // libjpeg's decode_mcu_AC_refine, reading bits without values.
                let t = self.tables[ac].as_deref().ok_or(Stop::Unsure)?;
                let mask = &mut self.nonzero[c][index];
                let mut k = ss;
                if self.eobrun == 0 {
                    while k <= se && !bits.over() {
                        let rs = bits.decode(t)?;
                        let (mut r, s) = ((rs >> 4) as u32, rs & 15);
                        if s == 0 && r < 15 {
                            self.eobrun = (1 << r) + bits.get(r);
                            break;
                        }
                        if s != 0 {
                            bits.get(1); // sign of the new coefficient
                        }
                        while k <= se {
                            if *mask >> k & 1 != 0 {
                                bits.get(1); // correction bit
                            } else if r == 0 {
                                break;
                            } else {
                                r -= 1;
                            }
                            k += 1;
                        }
                        if s != 0 {
                            *mask |= 1u64.checked_shl(k).unwrap_or(0);
                        }
                        k += 1;
                    }
                }
                if self.eobrun > 0 {
                    // The rest of the block: one correction bit per non-zero coefficient.
                    if k <= se {
                        let band = (u64::MAX >> (63 - se)) & (u64::MAX << k);
                        bits.skip((*mask & band).count_ones());
                    }
                    self.eobrun -= 1;
                }
            }
        }
        Ok(())
    }
}
