//! Single-threaded f32 matrix multiply on row-major buffers, via the `gemm` crate (or, for a
//! few rows, in registers without packing). Transposed operands are expressed through strides,
//! so no transpose is ever materialised.

use crate::nn::vector::{Kernels, LANES, groups, kernels, whole_vectors};

/// A row-major matrix operand: `data` holds `rows × cols` values, read transposed when `t`.
#[derive(Clone, Copy)]
pub struct Operand<'a> {
    /// The stored values.
    pub data: &'a [f32],
    /// Read the stored matrix transposed.
    pub t: bool,
}

/// Plain operand.
pub fn n(data: &[f32]) -> Operand<'_> {
    Operand { data, t: false }
}

/// Transposed operand.
pub fn t(data: &[f32]) -> Operand<'_> {
    Operand { data, t: true }
}

/// A matrix read in place through strides: element `(i, j)` is `data[i·row_stride + j·col_stride]`.
/// Rows may overlap (an implicit-GEMM convolution reads its input this way).
#[derive(Clone, Copy)]
pub struct View<'a> {
    /// The values the strides reach into.
    pub data: &'a [f32],
    /// Distance between consecutive rows.
    pub row_stride: usize,
    /// Distance between consecutive columns.
    pub col_stride: usize,
}

impl<'a> View<'a> {
    /// A row-major matrix with rows of `cols` values.
    pub fn rows(data: &'a [f32], cols: usize) -> View<'a> {
        View { data, row_stride: cols, col_stride: 1 }
    }

    /// The transpose, read in place.
    pub fn transposed(self) -> View<'a> {
        View { data: self.data, row_stride: self.col_stride, col_stride: self.row_stride }
    }

    /// Whether every element of a `rows × cols` matrix lies inside `data`.
    fn reaches(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.row_stride + (cols - 1) * self.col_stride < self.data.len()
    }

    /// The `rows × cols` view of `op` (stored `cols × rows` when transposed).
    fn of(op: Operand<'a>, rows: usize, cols: usize) -> View<'a> {
        if op.t { View::rows(op.data, rows).transposed() } else { View::rows(op.data, cols) }
    }
}

/// `c[m×n] (+)= op(a)[m×k] · op(b)[k×n]`; accumulates into `c` when `accumulate`, else overwrites.
pub fn matmul(m: usize, n: usize, k: usize, a: Operand, b: Operand, c: &mut [f32], accumulate: bool) {
    matmul_views(m, n, k, View::of(a, m, k), View::of(b, k, n), c, accumulate);
}

/// `c[m×n] (+)= a[m×k] · b[k×n]` over strided views; `c` is row-major.
pub fn matmul_views(m: usize, n: usize, k: usize, a: View, b: View, c: &mut [f32], accumulate: bool) {
    assert!(a.reaches(m, k) && b.reaches(k, n) && c.len() >= m * n, "matmul operand too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    if kernels() == Kernels::Reference {
        return textbook(m, n, k, a, b, c, accumulate);
    }
    if m <= FEW_ROWS && b.col_stride == 1 && whole_vectors(n) {
        return few_rows(m, n, k, a, b, c, accumulate);
    }
    // SAFETY: the assert above guarantees every index the strides reach lies inside the slices,
    // and `c` is borrowed mutably so it cannot alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `c (+)= a · b` by the textbook triple loop (`Kernels::Reference`).
fn textbook(m: usize, n: usize, k: usize, a: View, b: View, c: &mut [f32], accumulate: bool) {
    for i in 0..m {
        for j in 0..n {
            let dot: f32 = (0..k)
                .map(|p| a.data[i * a.row_stride + p * a.col_stride] * b.data[p * b.row_stride + j * b.col_stride])
                .sum();
            let out = &mut c[i * n + j];
            *out = if accumulate { *out + dot } else { dot };
        }
    }
}

/// Most rows of `a` multiplied without `gemm`, whose packing of `b` costs more than the product
/// itself for a few rows (a single image through a dense layer). With more rows, packing pays:
/// `b` is then read once, in cache-sized panels.
const FEW_ROWS: usize = 4;

/// `c (+)= a · b` for a row-major `b` whose rows are whole vectors (AVX-512F present), in blocks
/// of 4, 2 or 1 rows of `a`: each block of output accumulates `a[i][p] · b[p]` over `p` in
/// registers, so `b` is read once per block and never copied.
fn few_rows(m: usize, n: usize, k: usize, a: View, b: View, c: &mut [f32], accumulate: bool) {
    for (row, rows) in groups(m, 1, &[4, 2, 1]) {
        let widths: &'static [usize] = if rows == 4 { &[4, 2, 1] } else { &[8, 4, 2, 1] };
        for (first, vectors) in groups(n, LANES, widths) {
            let block = Block { k, a, row, b, first, accumulate };
            let out = &mut c[row * n..(row + rows) * n];
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `whole_vectors(n)` held, so AVX-512F is present; the views reach every
            // element (asserted by the caller).
            unsafe {
                match (rows, vectors) {
                    (4, 4) => avx512::block::<4, 4>(&block, n, out),
                    (4, 2) => avx512::block::<4, 2>(&block, n, out),
                    (4, _) => avx512::block::<4, 1>(&block, n, out),
                    (2, 8) => avx512::block::<2, 8>(&block, n, out),
                    (2, 4) => avx512::block::<2, 4>(&block, n, out),
                    (2, 2) => avx512::block::<2, 2>(&block, n, out),
                    (2, _) => avx512::block::<2, 1>(&block, n, out),
                    (_, 8) => avx512::block::<1, 8>(&block, n, out),
                    (_, 4) => avx512::block::<1, 4>(&block, n, out),
                    (_, 2) => avx512::block::<1, 2>(&block, n, out),
                    _ => avx512::block::<1, 1>(&block, n, out),
                }
            }
        }
    }
}

/// Rows `row..` of the output, columns `first..`.
struct Block<'a> {
    k: usize,
    a: View<'a>,
    row: usize,
    b: View<'a>,
    first: usize,
    accumulate: bool,
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::Block;
    use crate::nn::vector::{LANES, load, store};
    use std::arch::x86_64::*;

    /// `R` output rows (`out`, rows of `n`) × `V` vectors from column `first`:
    /// `Σ_p a[row + r][p] · b[p][first..]`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn block<const R: usize, const V: usize>(t: &Block, n: usize, out: &mut [f32]) {
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        if t.accumulate {
            for (r, acc) in acc.iter_mut().enumerate() {
                for (v, acc) in acc.iter_mut().enumerate() {
                    *acc = load(out, r * n + t.first + v * LANES);
                }
            }
        }
        for p in 0..t.k {
            let at = p * t.b.row_stride + t.first;
            let mut w = [_mm512_setzero_ps(); V];
            for (v, w) in w.iter_mut().enumerate() {
                *w = load(t.b.data, at + v * LANES);
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(t.a.data[(t.row + r) * t.a.row_stride + p * t.a.col_stride]);
                for (acc, w) in acc.iter_mut().zip(&w) {
                    *acc = _mm512_fmadd_ps(x, *w, *acc);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (v, acc) in acc.iter().enumerate() {
                store(out, r * n + t.first + v * LANES, *acc);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, nn: usize, k: usize, a: &[f32], at: bool, b: &[f32], bt: bool) -> Vec<f32> {
        let mut c = vec![0.0; m * nn];
        for i in 0..m {
            for j in 0..nn {
                for l in 0..k {
                    let av = if at { a[l * m + i] } else { a[i * k + l] };
                    let bv = if bt { b[j * k + l] } else { b[l * nn + j] };
                    c[i * nn + j] += av * bv;
                }
            }
        }
        c
    }

    #[test]
    fn all_transpose_combinations_match_naive() {
        let (m, nn, k) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * nn).map(|i| (i as f32 * 0.11).cos()).collect();
        for (at, bt) in [(false, false), (true, false), (false, true), (true, true)] {
            let mut c = vec![1.0; m * nn];
            let op = |d, tr| Operand { data: d, t: tr };
            matmul(m, nn, k, op(&a, at), op(&b, bt), &mut c, true);
            let want = naive(m, nn, k, &a, at, &b, bt);
            for (got, w) in c.iter().zip(&want) {
                assert!((got - (w + 1.0)).abs() < 1e-5, "{at} {bt}: {got} vs {w}+1");
            }
            matmul(m, nn, k, op(&a, at), op(&b, bt), &mut c, false);
            for (got, w) in c.iter().zip(&want) {
                assert!((got - w).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn a_few_rows_match_naive() {
        for (m, nn, k) in [(1, 128, 37), (2, 48, 5), (4, 16, 1600), (3, 144, 9), (4, 80, 7)] {
            let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..k * nn).map(|i| (i as f32 * 0.11).cos()).collect();
            for at in [false, true] {
                let a = if at { (0..m * k).map(|i| a[(i % m) * k + i / m]).collect() } else { a.clone() };
                let want = naive(m, nn, k, &a, at, &b, false);
                let mut c = vec![1.0; m * nn];
                matmul(m, nn, k, Operand { data: &a, t: at }, n(&b), &mut c, true);
                let close = |got: f32, w: f32| (got - w).abs() <= 1e-4 * w.abs().max(1.0);
                assert!(c.iter().zip(&want).all(|(&got, &w)| close(got, w + 1.0)), "{m}×{nn}×{k} accumulate");
                matmul(m, nn, k, Operand { data: &a, t: at }, n(&b), &mut c, false);
                assert!(c.iter().zip(&want).all(|(&got, &w)| close(got, w)), "{m}×{nn}×{k}");
            }
        }
    }

    #[test]
    fn overlapping_strided_rows_read_in_place() {
        // Rows start one value apart: row i is data[i..i + 3].
        let data: Vec<f32> = (0..6).map(|v| v as f32).collect();
        let a = View { data: &data, row_stride: 1, col_stride: 1 };
        let ones = [1.0; 3];
        let mut c = vec![0.0; 4];
        matmul_views(4, 1, 3, a, View::rows(&ones, 1), &mut c, false);
        assert_eq!(c, vec![3.0, 6.0, 9.0, 12.0]);
        let mut ct = vec![0.0; 3];
        matmul_views(3, 1, 4, a.transposed(), View::rows(&[1.0; 4], 1), &mut ct, false);
        assert_eq!(ct, vec![6.0, 10.0, 14.0]);
    }
}
