//! Which kernels this process may run (`Kernels`, set once by the caller), and what the
//! hand-vectorised kernels (`conv::direct`, `conv::conv_pool`, `conv::winograd`,
//! `conv::winograd_gradient`, the few-row product of `matmul`) share: the check that they may
//! run here, bounds-checked loads and stores of one AVX-512 vector of `f32`, and the transpose of
//! a small array of vectors.

use std::sync::atomic::{AtomicU8, Ordering};

/// Values in one vector.
pub const LANES: usize = 16;

/// Which kernels run: a machine without AVX-512 runs `Portable`; `Reference` is the textbook
/// loops every faster kernel is tested against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernels {
    /// The fastest this CPU has (hand-written AVX-512 where detected).
    #[default]
    Auto,
    /// What a CPU with AVX2 and FMA but no AVX-512 runs: the AVX2 kernels where they exist
    /// (int8 products), `gemm` and plain Rust elsewhere.
    Avx2,
    /// No hand-written AVX-512: `gemm` and plain Rust, what any other CPU runs.
    Portable,
    /// Textbook loops for convolutions and matrix products.
    Reference,
}

impl std::str::FromStr for Kernels {
    type Err = crate::error::Error;

    fn from_str(s: &str) -> crate::error::Result<Kernels> {
        match s {
            "auto" => Ok(Kernels::Auto),
            "avx2" => Ok(Kernels::Avx2),
            "portable" => Ok(Kernels::Portable),
            "reference" => Ok(Kernels::Reference),
            _ => Err(crate::error::Error::value("kernels", s, "expected auto, avx2, portable or reference")),
        }
    }
}

impl std::fmt::Display for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            Kernels::Auto => "auto",
            Kernels::Avx2 => "avx2",
            Kernels::Portable => "portable",
            Kernels::Reference => "reference",
        })
    }
}

static KERNELS: AtomicU8 = AtomicU8::new(0);

/// Chooses the kernels of this process; set it before building models (plans are made once).
pub fn set_kernels(kernels: Kernels) {
    KERNELS.store(kernels as u8, Ordering::Relaxed);
}

/// The kernels this process runs.
pub fn kernels() -> Kernels {
    match KERNELS.load(Ordering::Relaxed) {
        0 => Kernels::Auto,
        1 => Kernels::Avx2,
        2 => Kernels::Portable,
        _ => Kernels::Reference,
    }
}

/// Whether the hand-written AVX-512 kernels may run: this CPU has AVX-512F and the kernels are
/// `Auto`.
pub fn avx512f() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        kernels() == Kernels::Auto && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether `n` values (filters, channels) fill whole vectors on a CPU with AVX-512F.
pub fn whole_vectors(n: usize) -> bool {
    n.is_multiple_of(LANES) && avx512f()
}

/// `(start, count)` of consecutive groups covering `0..len` in steps of `unit` (filters in
/// vectors, rows one by one): each group takes the first of `counts` (widest first, ending in 1)
/// whose `count · unit` values still fit, so register-tiled kernels can pick their widest form.
pub fn groups(len: usize, unit: usize, counts: &'static [usize]) -> impl Iterator<Item = (usize, usize)> {
    let mut start = 0;
    std::iter::from_fn(move || {
        (start < len).then(|| {
            let count = counts.iter().copied().find(|&c| start + c * unit <= len).unwrap_or(1);
            let group = (start, count);
            start += count * unit;
            group
        })
    })
}

#[cfg(target_arch = "x86_64")]
pub use avx512::{load, store, transpose};

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::LANES;
    use std::arch::x86_64::*;

    /// 16 values from `s[at..]` (bounds-checked).
    ///
    /// # Safety
    /// The CPU must have AVX-512F (callers are `#[target_feature(enable = "avx512f")]` code
    /// reached only after checking it).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn load(s: &[f32], at: usize) -> __m512 {
        let v = &s[at..at + LANES];
        // SAFETY: `v` holds 16 floats.
        unsafe { _mm512_loadu_ps(v.as_ptr()) }
    }

    /// Stores 16 values into `s[at..]` (bounds-checked).
    ///
    /// # Safety
    /// As for [`load`].
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn store(s: &mut [f32], at: usize, v: __m512) {
        let out = &mut s[at..at + LANES];
        // SAFETY: `out` holds 16 floats.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), v) }
    }

    /// `a` with rows and columns swapped, by plain loops and indexing: closures passed to
    /// `array::map` and the like are not inlined into AVX-512 code, and would move every vector
    /// through memory.
    ///
    /// # Safety
    /// As for [`load`].
    #[inline]
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::needless_range_loop)]
    pub fn transpose<const R: usize, const C: usize>(a: [[__m512; C]; R]) -> [[__m512; R]; C] {
        let mut t = [[_mm512_setzero_ps(); R]; C];
        for i in 0..R {
            for j in 0..C {
                t[j][i] = a[i][j];
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_take_the_widest_count_that_fits() {
        let vectors: Vec<_> = groups(7 * LANES, LANES, &[4, 2, 1]).collect();
        assert_eq!(vectors, vec![(0, 4), (4 * LANES, 2), (6 * LANES, 1)]);
        let rows: Vec<_> = groups(3, 1, &[4, 2, 1]).collect();
        assert_eq!(rows, vec![(0, 2), (2, 1)]);
        assert_eq!(groups(0, LANES, &[4, 2, 1]).count(), 0);
    }
}
