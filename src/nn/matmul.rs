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

/// `(column stride, row stride)` of an `m × k` view of `op`.
fn strides(op: Operand, m: usize, k: usize) -> (isize, isize) {
    if op.t { (m as isize, 1) } else { (1, k as isize) }
}

/// `c[m×n] (+)= op(a)[m×k] · op(b)[k×n]`; accumulates into `c` when `accumulate`, else overwrites.
pub fn matmul(m: usize, n: usize, k: usize, a: Operand, b: Operand, c: &mut [f32], accumulate: bool) {
    assert!(a.data.len() >= m * k && b.data.len() >= k * n && c.len() >= m * n, "matmul operand too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    let (a_cs, a_rs) = strides(a, m, k);
    let (b_cs, b_rs) = strides(b, k, n);
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
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
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
}
