//! The int8 matrix product every quantised layer runs: `c[m][n] = Σ_k a[m][k] · b[k][n]` with
//! unsigned 8-bit activations `a`, signed 8-bit weights `b` and exact 32-bit sums. Integer
//! arithmetic is exact, so every kernel gives the same bits as the textbook loops it is tested
//! against, whatever the instruction set.
//!
//! Weights are packed once ([`Packed`]): rows of `k` rounded up to a multiple of 4, columns to a
//! multiple of 16, as groups of 4 consecutive `k` per column, the operand layout of AVX-512
//! VNNI's `vpdpbusd` (one 32-bit lane sums 4 byte products).

use crate::nn::vector::{self, Kernels};

/// Columns in one vector of 32-bit sums.
const LANES: usize = 16;

/// Weights `[k][n]` packed for the kernels: `data[((k / 4) · cols + n) · 4 + k % 4]`, zero
/// beyond `k` and `n`.
#[derive(Debug, Clone, PartialEq)]
pub struct Packed {
    k: usize,
    n: usize,
    cols: usize,
    data: Vec<i8>,
    /// The weights as given, `[k][n]`, for the textbook loops.
    plain: Vec<i8>,
}

impl Packed {
    /// Packs `k × n` weights given row-major.
    pub fn new(plain: Vec<i8>, k: usize, n: usize) -> Packed {
        assert_eq!(plain.len(), k * n, "weights are k × n");
        let cols = n.next_multiple_of(LANES);
        let mut data = vec![0; depth(k) * cols];
        for kk in 0..k {
            for nn in 0..n {
                data[((kk / 4) * cols + nn) * 4 + kk % 4] = plain[kk * n + nn];
            }
        }
        Packed { k, n, cols, data, plain }
    }

    /// Rows (the sum's length).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns (outputs).
    pub fn n(&self) -> usize {
        self.n
    }

    /// The weights as given, `[k][n]`.
    pub fn plain(&self) -> &[i8] {
        &self.plain
    }
}

/// Bytes of one row of `a` for a sum over `k`: `k` rounded up to a multiple of 4 (zero-padded).
pub fn depth(k: usize) -> usize {
    k.next_multiple_of(4)
}

/// The instruction set a product runs with, fastest first where the CPU allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Int8Kernel {
    /// AVX-512 VNNI (`vpdpbusd` on 16 sums at once).
    Avx512Vnni,
    /// AVX-VNNI (`vpdpbusd` on 8 sums at once).
    AvxVnni,
    /// AVX2 (`vpmaddwd` on 16-bit pairs, 8 sums at once).
    Avx2,
    /// Plain Rust over the packed layout (what the compiler vectorises for any CPU).
    Portable,
    /// The textbook loops over the unpacked weights.
    Reference,
}

impl Int8Kernel {
    /// The kernel this process runs: the fastest the CPU has under `Kernels::Auto`.
    pub fn chosen() -> Int8Kernel {
        match vector::kernels() {
            Kernels::Reference => Int8Kernel::Reference,
            Kernels::Portable => Int8Kernel::Portable,
            Kernels::Auto if Int8Kernel::Avx512Vnni.runs_here() => Int8Kernel::Avx512Vnni,
            Kernels::Auto if Int8Kernel::AvxVnni.runs_here() => Int8Kernel::AvxVnni,
            Kernels::Auto if Int8Kernel::Avx2.runs_here() => Int8Kernel::Avx2,
            Kernels::Auto => Int8Kernel::Portable,
            Kernels::Avx2 if Int8Kernel::Avx2.runs_here() => Int8Kernel::Avx2,
            Kernels::Avx2 => Int8Kernel::Portable,
        }
    }

    /// Its name, as `bench` reports it.
    pub fn name(self) -> &'static str {
        match self {
            Int8Kernel::Avx512Vnni => "avx512-vnni",
            Int8Kernel::AvxVnni => "avx-vnni",
            Int8Kernel::Avx2 => "avx2",
            Int8Kernel::Portable => "portable",
            Int8Kernel::Reference => "reference",
        }
    }
}

impl Int8Kernel {
    /// Every kernel, fastest first.
    #[cfg(test)]
    pub(crate) const ALL: [Int8Kernel; 5] =
        [Int8Kernel::Avx512Vnni, Int8Kernel::AvxVnni, Int8Kernel::Avx2, Int8Kernel::Portable, Int8Kernel::Reference];

    /// Whether this CPU has the instructions the kernel needs.
    pub fn runs_here(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            match self {
                Int8Kernel::Avx512Vnni => has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512vnni"),
                Int8Kernel::AvxVnni => has!("avx2") && has!("avxvnni"),
                Int8Kernel::Avx2 => has!("avx2"),
                Int8Kernel::Portable | Int8Kernel::Reference => true,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            matches!(self, Int8Kernel::Portable | Int8Kernel::Reference)
        }
    }
}

/// `c[m][..b.n] = Σ_k a[m][k] · b[k][..]` for `m` rows of `a`, each [`depth`]`(b.k)` bytes
/// (zero beyond `k`); `c` has rows of `b.n`.
pub fn product(kernel: Int8Kernel, a: &[u8], b: &Packed, m: usize, c: &mut [i32]) {
    let stride = depth(b.k);
    assert!(a.len() >= m * stride && c.len() >= m * b.n, "operands hold {m} rows");
    match kernel {
        Int8Kernel::Reference => reference(a, b, m, c),
        // A kernel this CPU cannot run falls back to the portable one (the same sums).
        _ if !kernel.runs_here() => portable(a, b, m, c),
        Int8Kernel::Portable => portable(a, b, m, c),
        // SAFETY (each): the CPU has the kernel's features (checked just above).
        #[cfg(target_arch = "x86_64")]
        Int8Kernel::Avx512Vnni => unsafe { x86::avx512_vnni(a, b, m, c) },
        #[cfg(target_arch = "x86_64")]
        Int8Kernel::AvxVnni => unsafe { x86::avx_vnni(a, b, m, c) },
        #[cfg(target_arch = "x86_64")]
        Int8Kernel::Avx2 => unsafe { x86::avx2(a, b, m, c) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => portable(a, b, m, c),
    }
}

/// The textbook loops over the unpacked weights.
fn reference(a: &[u8], b: &Packed, m: usize, c: &mut [i32]) {
    let stride = depth(b.k);
    for i in 0..m {
        for j in 0..b.n {
            let mut sum = 0i32;
            for k in 0..b.k {
                sum += i32::from(a[i * stride + k]) * i32::from(b.plain[k * b.n + j]);
            }
            c[i * b.n + j] = sum;
        }
    }
}

/// Row by row over the plain weights: each nonzero activation adds its row of weights to the
/// row's sums (zeros, common after ReLU, are skipped), a contiguous loop the compiler
/// vectorises with whatever the target has.
fn portable(a: &[u8], b: &Packed, m: usize, c: &mut [i32]) {
    let stride = depth(b.k);
    for i in 0..m {
        let sums = &mut c[i * b.n..(i + 1) * b.n];
        sums.fill(0);
        for (k, &x) in a[i * stride..i * stride + b.k].iter().enumerate() {
            if x != 0 {
                let x = i32::from(x);
                let weights = &b.plain[k * b.n..(k + 1) * b.n];
                sums.iter_mut().zip(weights).for_each(|(s, &w)| *s += x * i32::from(w));
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! One register-tiled kernel, written once over [`Isa`]: what a vector of sums is on each
    //! instruction set, how a group of 4 weights per column loads, how 4 activation bytes are
    //! broadcast, one multiply-add, and how the sums come out.
    use super::{LANES, Packed, depth};
    use crate::nn::vector::groups;
    use std::arch::x86_64::*;

    /// An instruction set's vector of 32-bit sums.
    pub trait Isa {
        /// The accumulator (and operand) vector.
        type V: Copy;
        /// Columns whose sums one accumulator holds.
        const COLUMNS: usize;
        /// Register tiles, widest first: rows and vectors of columns.
        const ROWS: &'static [usize];
        /// Vectors per tile, widest first.
        const VECTORS: &'static [usize];
        /// All-zero sums.
        unsafe fn zero() -> Self::V;
        /// The weights of `COLUMNS` columns for one group of 4 `k`: `4 · COLUMNS` bytes from `w`.
        ///
        /// # Safety
        /// Those bytes must be readable.
        unsafe fn weights_at(w: *const i8) -> Self::V;
        /// 4 activation bytes (little-endian in `quad`) against every column.
        unsafe fn activations(quad: i32) -> Self::V;
        /// `acc + Σ_t a[t] · w[t]` per column (exact).
        unsafe fn multiply_add(acc: Self::V, a: Self::V, w: Self::V) -> Self::V;
        /// The `COLUMNS` sums, into `out`.
        unsafe fn sums(acc: Self::V, out: &mut [i32]);
    }

    /// AVX-512 VNNI: 16 columns, `vpdpbusd`.
    pub struct Avx512Vnni;
    impl Isa for Avx512Vnni {
        type V = __m512i;
        const COLUMNS: usize = 16;
        const ROWS: &'static [usize] = &[6, 4, 2, 1];
        const VECTORS: &'static [usize] = &[4, 2, 1];
        #[inline(always)]
        unsafe fn zero() -> __m512i {
            // SAFETY: the caller's CPU has the instruction set.
            unsafe { _mm512_setzero_si512() }
        }
        #[inline(always)]
        unsafe fn weights_at(w: *const i8) -> __m512i {
            // SAFETY: the caller's 64 bytes; the caller's CPU has AVX-512F.
            unsafe { _mm512_loadu_si512(w.cast()) }
        }
        #[inline(always)]
        unsafe fn activations(quad: i32) -> __m512i {
            // SAFETY: the caller's CPU has the instruction set.
            unsafe { _mm512_set1_epi32(quad) }
        }
        #[inline(always)]
        unsafe fn multiply_add(acc: __m512i, a: __m512i, w: __m512i) -> __m512i {
            // SAFETY: the caller's CPU has the instruction set.
            unsafe { _mm512_dpbusd_epi32(acc, a, w) }
        }
        #[inline(always)]
        unsafe fn sums(acc: __m512i, out: &mut [i32]) {
            let out = &mut out[..16];
            // SAFETY: `out` holds 16 values.
            unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), acc) }
        }
    }

    /// AVX-VNNI (VEX, 256 bits): 8 columns, `vpdpbusd`.
    pub struct AvxVnni;
    impl Isa for AvxVnni {
        type V = __m256i;
        const COLUMNS: usize = 8;
        const ROWS: &'static [usize] = &[4, 2, 1];
        const VECTORS: &'static [usize] = &[2, 1];
        #[inline(always)]
        unsafe fn zero() -> __m256i {
            // SAFETY: the caller's CPU has the instruction set.
            unsafe { _mm256_setzero_si256() }
        }
        #[inline(always)]
        unsafe fn weights_at(w: *const i8) -> __m256i {
            // SAFETY: the caller's 32 bytes; the caller's CPU has AVX2.
            unsafe { _mm256_loadu_si256(w.cast()) }
        }
        #[inline(always)]
        unsafe fn activations(quad: i32) -> __m256i {
            // SAFETY: the caller's CPU has the instruction set.
            unsafe { _mm256_set1_epi32(quad) }
        }
        #[inline(always)]
        unsafe fn multiply_add(acc: __m256i, a: __m256i, w: __m256i) -> __m256i {
            // SAFETY: the caller's CPU has the instruction set.
            unsafe { _mm256_dpbusd_avx_epi32(acc, a, w) }
        }
        #[inline(always)]
        unsafe fn sums(acc: __m256i, out: &mut [i32]) {
            let out = &mut out[..8];
            // SAFETY: `out` holds 8 values.
            unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), acc) }
        }
    }

    /// AVX2: 4 columns, weights and activations widened to 16 bits and `vpmaddwd` (exact, where
    /// the 8-bit `vpmaddubsw` would saturate), two partial sums per column added at the end.
    pub struct Avx2;
    impl Isa for Avx2 {
        type V = __m256i;
        const COLUMNS: usize = 4;
        const ROWS: &'static [usize] = &[4, 2, 1];
        const VECTORS: &'static [usize] = &[2, 1];
        #[inline(always)]
        unsafe fn zero() -> __m256i {
            // SAFETY: the caller's CPU has the instruction set.
            unsafe { _mm256_setzero_si256() }
        }
        #[inline(always)]
        unsafe fn weights_at(w: *const i8) -> __m256i {
            // SAFETY: the caller's 16 bytes; the caller's CPU has AVX2.
            unsafe { _mm256_cvtepi8_epi16(_mm_loadu_si128(w.cast())) }
        }
        #[inline(always)]
        unsafe fn activations(quad: i32) -> __m256i {
            let q = quad as u32 as u64;
            let spread = (q & 0xff) | ((q >> 8) & 0xff) << 16 | ((q >> 16) & 0xff) << 32 | (q >> 24) << 48;
            // SAFETY: the caller's CPU has the instruction set.
            unsafe { _mm256_set1_epi64x(spread as i64) }
        }
        #[inline(always)]
        unsafe fn multiply_add(acc: __m256i, a: __m256i, w: __m256i) -> __m256i {
            // SAFETY: the caller's CPU has the instruction set.
            unsafe { _mm256_add_epi32(acc, _mm256_madd_epi16(a, w)) }
        }
        #[inline(always)]
        unsafe fn sums(acc: __m256i, out: &mut [i32]) {
            // [c0 c0' c1 c1' | c2 c2' c3 c3'] → [c0 c1 c0 c1 | c2 c3 c2 c3] → c0 c1 c2 c3.
            // SAFETY: the caller's CPU has AVX2.
            let pairs = unsafe { _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc, acc), 0b11_01_10_00) };
            let out = &mut out[..4];
            // SAFETY: `out` holds 4 values.
            unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), _mm256_castsi256_si128(pairs)) }
        }
    }

    /// The product on AVX-512 VNNI.
    ///
    /// # Safety
    /// The CPU must have AVX-512F, BW and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn avx512_vnni(a: &[u8], b: &Packed, m: usize, c: &mut [i32]) {
        // SAFETY: this function's features are the kernel's.
        unsafe { product::<Avx512Vnni>(a, b, m, c) }
    }

    /// The product on AVX-VNNI.
    ///
    /// # Safety
    /// The CPU must have AVX2 and AVX-VNNI.
    #[target_feature(enable = "avx2,avxvnni")]
    pub unsafe fn avx_vnni(a: &[u8], b: &Packed, m: usize, c: &mut [i32]) {
        // SAFETY: as above.
        unsafe { product::<AvxVnni>(a, b, m, c) }
    }

    /// The product on AVX2.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn avx2(a: &[u8], b: &Packed, m: usize, c: &mut [i32]) {
        // SAFETY: as above.
        unsafe { product::<Avx2>(a, b, m, c) }
    }

    /// Tiles of rows × vectors of columns over the whole product.
    #[inline(always)]
    unsafe fn product<I: Isa>(a: &[u8], b: &Packed, m: usize, c: &mut [i32]) {
        for (col, vectors) in groups(b.cols, I::COLUMNS, I::VECTORS) {
            for (row, rows) in groups(m, 1, I::ROWS) {
                // SAFETY: the caller's CPU has the features of `I`.
                unsafe {
                    match (rows, vectors) {
                        (6, 4) => tile::<I, 6, 4>(a, b, row, col, c),
                        (4, 4) => tile::<I, 4, 4>(a, b, row, col, c),
                        (2, 4) => tile::<I, 2, 4>(a, b, row, col, c),
                        (1, 4) => tile::<I, 1, 4>(a, b, row, col, c),
                        (6, 2) => tile::<I, 6, 2>(a, b, row, col, c),
                        (4, 2) => tile::<I, 4, 2>(a, b, row, col, c),
                        (2, 2) => tile::<I, 2, 2>(a, b, row, col, c),
                        (1, 2) => tile::<I, 1, 2>(a, b, row, col, c),
                        (6, _) => tile::<I, 6, 1>(a, b, row, col, c),
                        (4, _) => tile::<I, 4, 1>(a, b, row, col, c),
                        (2, _) => tile::<I, 2, 1>(a, b, row, col, c),
                        _ => tile::<I, 1, 1>(a, b, row, col, c),
                    }
                }
            }
        }
    }

    /// `R` rows from `row`, `V` vectors of columns from `col`.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)]
    unsafe fn tile<I: Isa, const R: usize, const V: usize>(
        a: &[u8],
        b: &Packed,
        row: usize,
        col: usize,
        c: &mut [i32],
    ) {
        let stride = depth(b.k);
        let rows = &a[row * stride..(row + R) * stride];
        let groups = stride / 4;
        let width = I::COLUMNS * 4;
        // Every weight this tile reads: `groups` groups of `V · width` bytes, `b.cols · 4` apart.
        let first = col * 4;
        let last = ((groups.max(1) - 1) * b.cols + col + V * I::COLUMNS) * 4;
        assert!(last <= b.data.len() && rows.len() == R * stride, "the tile lies inside its operands");
        // SAFETY (every block below): the caller's CPU has the features of `I`; every pointer
        // read stays inside `rows` (R rows of `stride` = 4 · groups bytes) or inside `b.data`
        // (up to `last`, checked above).
        let mut acc = [[unsafe { I::zero() }; V]; R];
        let (a_ptr, w_ptr) = (rows.as_ptr(), unsafe { b.data.as_ptr().add(first) });
        for g in 0..groups {
            let mut w = [unsafe { I::zero() }; V];
            for v in 0..V {
                w[v] = unsafe { I::weights_at(w_ptr.add(g * b.cols * 4 + v * width)) };
            }
            for r in 0..R {
                let quad = unsafe { a_ptr.add(r * stride + g * 4).cast::<i32>().read_unaligned() };
                let x = unsafe { I::activations(quad) };
                for v in 0..V {
                    acc[r][v] = unsafe { I::multiply_add(acc[r][v], x, w[v]) };
                }
            }
        }
        // Whole vectors of sums go straight into `c`; the last, partial one through a buffer.
        let mut buffer = [0i32; LANES];
        for r in 0..R {
            let out = &mut c[(row + r) * b.n..(row + r + 1) * b.n];
            for v in 0..V {
                let start = col + v * I::COLUMNS;
                if start + I::COLUMNS <= b.n {
                    unsafe { I::sums(acc[r][v], &mut out[start..]) };
                } else if start < b.n {
                    unsafe { I::sums(acc[r][v], &mut buffer) };
                    out[start..].copy_from_slice(&buffer[..b.n - start]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel this CPU can run gives the textbook loops' sums, over shapes that reach
    /// every tile and a partial last vector, with extreme values (255 · −128 sums).
    #[test]
    fn every_kernel_gives_the_reference_sums() {
        // A kernel this CPU lacks the instructions for runs the portable one instead: the same
        // sums either way, never an illegal instruction.
        let kernels = Int8Kernel::ALL;
        eprintln!("native here: {:?}", kernels.iter().filter(|k| k.runs_here()).collect::<Vec<_>>());
        for (m, k, n) in [(1, 1, 1), (7, 25, 32), (13, 288, 64), (8, 1600, 128), (9, 128, 10), (3, 6, 80), (6, 4, 16)] {
            let a: Vec<u8> = (0..m * depth(k))
                .map(|i| {
                    if i % depth(k) >= k {
                        0
                    } else if i % 7 == 0 {
                        255
                    } else {
                        (i * 37 % 256) as u8
                    }
                })
                .collect();
            let plain: Vec<i8> = (0..k * n).map(|i| if i % 5 == 0 { -128 } else { (i * 53 % 255) as i8 }).collect();
            let b = Packed::new(plain, k, n);
            let mut expected = vec![0; m * n];
            product(Int8Kernel::Reference, &a, &b, m, &mut expected);
            let direct: i32 = (0..k).map(|t| i32::from(a[t]) * i32::from(b.plain[t * n])).sum();
            assert_eq!(expected[0], direct);
            for kernel in &kernels[..4] {
                let mut c = vec![7; m * n];
                product(*kernel, &a, &b, m, &mut c);
                assert_eq!(c, expected, "{kernel:?} on {m}×{k}×{n}");
            }
        }
    }
}
