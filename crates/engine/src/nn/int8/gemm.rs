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
            Kernels::Auto if avx512_vnni() => Int8Kernel::Avx512Vnni,
            Kernels::Auto => Int8Kernel::Portable,
        }
    }

    /// Its name, as `bench` reports it.
    pub fn name(self) -> &'static str {
        match self {
            Int8Kernel::Avx512Vnni => "avx512-vnni",
            Int8Kernel::Portable => "portable",
            Int8Kernel::Reference => "reference",
        }
    }
}

/// Whether this CPU has AVX-512 VNNI (with the byte and word instructions the kernel uses).
pub fn avx512_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `c[m][..b.n] = Σ_k a[m][k] · b[k][..]` for `m` rows of `a`, each [`depth`]`(b.k)` bytes
/// (zero beyond `k`); `c` has rows of `b.n`.
pub fn product(kernel: Int8Kernel, a: &[u8], b: &Packed, m: usize, c: &mut [i32]) {
    let stride = depth(b.k);
    assert!(a.len() >= m * stride && c.len() >= m * b.n, "operands hold {m} rows");
    match kernel {
        Int8Kernel::Reference => reference(a, b, m, c),
        Int8Kernel::Portable => portable(a, b, m, c),
        #[cfg(target_arch = "x86_64")]
        Int8Kernel::Avx512Vnni if avx512_vnni() => {
            // SAFETY: the CPU has the features the function enables (checked just above).
            unsafe { avx512::product(a, b, m, c) }
        }
        Int8Kernel::Avx512Vnni => portable(a, b, m, c),
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

/// Row by row over the packed layout: 16 sums per group of 4 `k`, which the compiler
/// vectorises with whatever the target has.
fn portable(a: &[u8], b: &Packed, m: usize, c: &mut [i32]) {
    let stride = depth(b.k);
    let mut sums = vec![0i32; b.cols];
    for i in 0..m {
        sums.fill(0);
        let row = &a[i * stride..(i + 1) * stride];
        for (g, quad) in row.chunks_exact(4).enumerate() {
            let weights = &b.data[g * b.cols * 4..(g + 1) * b.cols * 4];
            for (sum, w) in sums.iter_mut().zip(weights.chunks_exact(4)) {
                *sum += (0..4).map(|t| i32::from(quad[t]) * i32::from(w[t])).sum::<i32>();
            }
        }
        c[i * b.n..(i + 1) * b.n].copy_from_slice(&sums[..b.n]);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{LANES, Packed, depth};
    use crate::nn::vector::groups;
    use std::arch::x86_64::*;

    /// Tiles of up to 6 rows × 4 vectors of 16 columns, `vpdpbusd` per group of 4 `k`.
    ///
    /// # Safety
    /// The CPU must have AVX-512F, BW and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn product(a: &[u8], b: &Packed, m: usize, c: &mut [i32]) {
        for (col, vectors) in groups(b.cols, LANES, &[4, 2, 1]) {
            for (row, rows) in groups(m, 1, &[6, 4, 2, 1]) {
                match (rows, vectors) {
                    (6, 4) => tile::<6, 4>(a, b, row, col, c),
                    (4, 4) => tile::<4, 4>(a, b, row, col, c),
                    (2, 4) => tile::<2, 4>(a, b, row, col, c),
                    (1, 4) => tile::<1, 4>(a, b, row, col, c),
                    (6, 2) => tile::<6, 2>(a, b, row, col, c),
                    (4, 2) => tile::<4, 2>(a, b, row, col, c),
                    (2, 2) => tile::<2, 2>(a, b, row, col, c),
                    (1, 2) => tile::<1, 2>(a, b, row, col, c),
                    (6, _) => tile::<6, 1>(a, b, row, col, c),
                    (4, _) => tile::<4, 1>(a, b, row, col, c),
                    (2, _) => tile::<2, 1>(a, b, row, col, c),
                    _ => tile::<1, 1>(a, b, row, col, c),
                }
            }
        }
    }

    /// `R` rows from `row`, `V` vectors of columns from `col`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[allow(clippy::needless_range_loop)]
    fn tile<const R: usize, const V: usize>(a: &[u8], b: &Packed, row: usize, col: usize, c: &mut [i32]) {
        let stride = depth(b.k);
        let rows = &a[row * stride..(row + R) * stride];
        let mut acc = [[_mm512_setzero_si512(); V]; R];
        for g in 0..stride / 4 {
            let weights = &b.data[(g * b.cols + col) * 4..(g * b.cols + col + V * LANES) * 4];
            let mut w = [_mm512_setzero_si512(); V];
            for v in 0..V {
                // SAFETY: `weights` holds V vectors of 64 bytes.
                w[v] = unsafe { _mm512_loadu_si512(weights[v * 64..].as_ptr().cast()) };
            }
            for r in 0..R {
                let at = r * stride + g * 4;
                let quad = i32::from_le_bytes(rows[at..at + 4].try_into().expect("four bytes"));
                let x = _mm512_set1_epi32(quad);
                for v in 0..V {
                    acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], x, w[v]);
                }
            }
        }
        // Full vectors store straight into `c`; the last, partial one through a buffer.
        for r in 0..R {
            let out = &mut c[(row + r) * b.n..(row + r + 1) * b.n];
            for v in 0..V {
                let start = col + v * LANES;
                if start + LANES <= b.n {
                    // SAFETY: `out[start..]` holds 16 values.
                    unsafe { _mm512_storeu_si512(out[start..start + LANES].as_mut_ptr().cast(), acc[r][v]) };
                } else if start < b.n {
                    let mut buffer = [0i32; LANES];
                    // SAFETY: `buffer` holds 16 values.
                    unsafe { _mm512_storeu_si512(buffer.as_mut_ptr().cast(), acc[r][v]) };
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
        let mut kernels = vec![Int8Kernel::Portable];
        if avx512_vnni() {
            kernels.push(Int8Kernel::Avx512Vnni);
        }
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
            for kernel in &kernels {
                let mut c = vec![7; m * n];
                product(*kernel, &a, &b, m, &mut c);
                assert_eq!(c, expected, "{kernel:?} on {m}×{k}×{n}");
            }
        }
    }
}
