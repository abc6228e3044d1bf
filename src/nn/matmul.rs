//! Single-threaded f32 matrix multiply on row-major buffers, via the `gemm` crate. Transposed
//! operands are expressed through strides, so no transpose is ever materialised.

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
