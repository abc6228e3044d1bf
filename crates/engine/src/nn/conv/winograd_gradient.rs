//! The gradients of a valid 3×3 convolution by Winograd's F(2×2, 3×3) or F(4×4, 3×3), for
//! training.
//!
//! The forward pass of each output tile is `Y = Aᵀ [Σ_c (G g Gᵀ) ⊙ (Bᵀ d B)] A` (see
//! [`Winograd`]); its tiles cover the output exactly. Going back, the tile's transformed output
//! gradient is `∂M = A ∂Y Aᵀ`, computed once per tile and used twice:
//!
//! **Kernel gradient.** `∂V = ∂M ⊙ (Bᵀ d B)` and `∂g = Gᵀ ∂V G`, so the kernel gradient is
//! `Gᵀ [Σ_tiles (Bᵀ d B) ⊙ ∂M] G`: per position a `[C × tiles] · [tiles × F]` product summed over
//! the batch, then one small transform per channel and filter — `(t+2)²` multiply-adds per
//! `t×t` tile, channel and filter instead of `9t²`.
//!
//! **Input gradient.** `∂U = Σ_f ∂M ⊙ (G g Gᵀ)` — per position a `[tiles × F] · [F × C]`
//! product with the transformed kernel, channels and filters swapped — and each tile's input
//! patch receives `B ∂U Bᵀ`, added where neighbouring patches overlap. That is `(t+2)²`
//! multiply-adds per tile, filter and channel over the forward pass's own tiles, where convolving the
//! zero-padded output gradient with the flipped kernel would take more tiles (its output is the
//! whole input) and a transform of its own.
//!
//! **Same padding.** The patches read zeros where they cover the padding, and the parts of
//! `B ∂U Bᵀ` that fall on the padding are dropped.

use crate::nn::conv::winograd_tiles::{Output, Winograd, by_tile, covering_problem};
use crate::nn::conv::{BackwardAlgorithm, ConvBackward, ConvProblem};
use crate::nn::vector::LANES;

/// Both gradients of one valid 3×3 convolution by Winograd.
#[derive(Debug, Clone, Copy)]
pub struct Gradients {
    /// The forward convolution, whose tiles cover its whole output.
    conv: Winograd,
    /// The same tiles with channels and filters swapped: multiplies transformed output gradients
    /// by the transposed transformed kernel.
    swapped: Winograd,
}

/// Input channels per register block of the kernel gradient's products.
const CHANNEL_BLOCK: usize = 4;

impl Gradients {
    /// The gradients of `conv`, a `covering` Winograd convolution, where its channels come in
    /// whole blocks.
    pub fn new(conv: Winograd) -> Option<Gradients> {
        let input = conv.input();
        let swapped = conv.with_channels(conv.filters(), input.c)?;
        input.c.is_multiple_of(CHANNEL_BLOCK).then_some(Gradients { conv, swapped })
    }

    /// Lengths of one transformed input, one transformed output gradient (laid out as the
    /// swapped convolution's transformed input, which its products read), the summed kernel
    /// products, the kernel with channels and filters swapped, its transform and one image's
    /// input-gradient products, in that order.
    fn parts(&self) -> [usize; 6] {
        let (c, f) = (self.conv.input().c, self.conv.filters());
        [
            self.conv.transformed_input_len(),
            self.swapped.transformed_input_len(),
            self.conv.positions() * c * f,
            9 * c * f,
            self.swapped.kernel_len(),
            self.swapped.products_len(),
        ]
    }

    /// Scratch values `backward` needs.
    pub fn scratch_len(&self) -> usize {
        self.parts().iter().sum()
    }

    /// For `n` images `x` and their output gradients `dy` (after the activation): adds the kernel
    /// gradient to `dkernel` (`[3, 3, C, F]`) and, when `dx` is given, writes the input gradients
    /// there; `kernel` is the forward kernel.
    pub fn backward(
        &self,
        (x, dy, n): (&[f32], &[f32], usize),
        kernel: &[f32],
        dkernel: &mut [f32],
        mut dx: Option<&mut [f32]>,
        scratch: &mut [f32],
    ) {
        let (input, f) = (self.conv.input(), self.conv.filters());
        let in_size = input.size();
        let out_size = self.conv.output_size(Output::Full);
        assert!(x.len() >= n * in_size && dy.len() >= n * out_size, "Winograd gradient buffers too small");
        assert!(dx.as_ref().is_none_or(|dx| dx.len() >= n * in_size), "Winograd input gradient too small");
        assert!(kernel.len() == 9 * input.c * f && dkernel.len() == kernel.len(), "kernel gradient of the wrong size");
        let [u, e, sum, swapped, vt, products] = split(&mut scratch[..self.scratch_len()], self.parts());
        sum.fill(0.0);
        if dx.is_some() {
            swap(kernel, input.c, f, swapped);
            self.swapped.prepare(swapped, vt);
        }
        for (i, (image, dy)) in x.chunks_exact(in_size).zip(dy.chunks_exact(out_size)).take(n).enumerate() {
            self.conv.transform_input(image, u);
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the convolution exists, so AVX-512F is present; the buffers have the
            // lengths of `parts()`.
            unsafe {
                by_tile!(self.conv, transform_gradient(&self.conv, dy, e));
                avx512::accumulate(&self.conv, u, e, sum);
            }
            if let Some(dx) = dx.as_deref_mut() {
                self.swapped.multiply(e, vt, products);
                let dx = &mut dx[i * in_size..][..in_size];
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above; `dx` holds one input image.
                unsafe {
                    by_tile!(self.conv, add_input_patches(&self.conv, products, dx))
                };
            }
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        unsafe {
            by_tile!(self.conv, transform_back(&self.conv, sum, dkernel))
        };
    }
}

/// `scratch` cut into consecutive parts of the given lengths.
fn split<const N: usize>(mut scratch: &mut [f32], lengths: [usize; N]) -> [&mut [f32]; N] {
    lengths.map(|len| {
        let (part, rest) = std::mem::take(&mut scratch).split_at_mut(len);
        scratch = rest;
        part
    })
}

/// The backward pass of an unpooled 3×3 problem (valid or same-padded) that `winograd` computes
/// forward, where its channels come in whole blocks.
pub fn backward_for(p: &ConvProblem) -> Option<Box<dyn BackwardAlgorithm>> {
    Gradients::new(covering_problem(p)?).map(|g| Box::new(g) as Box<dyn BackwardAlgorithm>)
}

impl BackwardAlgorithm for Gradients {
    fn name(&self) -> &'static str {
        "winograd-gradient"
    }

    fn scratch_len(&self, _n: usize) -> usize {
        Gradients::scratch_len(self)
    }

    fn backward(&self, b: ConvBackward) {
        Gradients::backward(self, (b.x, b.dy, b.n), b.kernel, b.dkernel, b.dx, b.scratch);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{CHANNEL_BLOCK, LANES, Winograd};
    use crate::nn::conv::winograd_tiles::avx512::{Line, inside, line, scaled_add};
    use crate::nn::vector::{groups, load, store, transpose};
    use std::arch::x86_64::*;

    /// `A · v` for the first `T` vectors of `v` (`A` the transpose of the forward pass's output
    /// transform `Aᵀ`).
    /// F(2×2, 3×3): `A = [1 0; 1 1; 1 −1; 0 −1]`; F(4×4, 3×3): `A = [1 0 0 0; 1 1 1 1;
    /// 1 −1 1 −1; 1 2 4 8; 1 −2 4 −8; 0 0 0 1]`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn spread<const T: usize>(v: Line) -> Line {
        let zero = _mm512_setzero_ps();
        if T == 2 {
            return [v[0], _mm512_add_ps(v[0], v[1]), _mm512_sub_ps(v[0], v[1]), _mm512_sub_ps(zero, v[1]), zero, zero];
        }
        let (even, odd) = (_mm512_add_ps(v[0], v[2]), _mm512_add_ps(v[1], v[3]));
        let far_even = scaled_add(v[2], 4.0, v[0]);
        let far_odd = _mm512_mul_ps(_mm512_set1_ps(2.0), scaled_add(v[3], 4.0, v[1]));
        [
            v[0],
            _mm512_add_ps(even, odd),
            _mm512_sub_ps(even, odd),
            _mm512_add_ps(far_even, far_odd),
            _mm512_sub_ps(far_even, far_odd),
            v[3],
        ]
    }

    /// `B · p` for `T + 2` vectors (`B` the transpose of the forward pass's input transform
    /// `Bᵀ`). F(2×2, 3×3): `B = [1 0 0 0; 0 1 −1 1; −1 1 1 0; 0 0 0 −1]`; F(4×4, 3×3):
    /// `B = [4 0 0 0 0 0; 0 −4 4 −2 2 4; −5 −4 −4 −1 −1 0; 0 1 −1 2 −2 −5; 1 1 1 1 1 0;
    /// 0 0 0 0 0 1]`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn patch_rows<const T: usize>(p: Line) -> Line {
        let zero = _mm512_setzero_ps();
        if T == 2 {
            let difference = _mm512_sub_ps(p[1], p[2]);
            return [
                p[0],
                _mm512_add_ps(difference, p[3]),
                _mm512_sub_ps(_mm512_add_ps(p[1], p[2]), p[0]),
                _mm512_sub_ps(zero, p[3]),
                zero,
                zero,
            ];
        }
        let (inner, outer) = (_mm512_add_ps(p[1], p[2]), _mm512_add_ps(p[3], p[4]));
        let (inner_difference, outer_difference) = (_mm512_sub_ps(p[1], p[2]), _mm512_sub_ps(p[3], p[4]));
        [
            _mm512_mul_ps(_mm512_set1_ps(4.0), p[0]),
            scaled_add(
                outer_difference,
                -2.0,
                _mm512_mul_ps(_mm512_set1_ps(4.0), _mm512_sub_ps(p[5], inner_difference)),
            ),
            _mm512_sub_ps(zero, scaled_add(p[0], 5.0, scaled_add(inner, 4.0, outer))),
            scaled_add(p[5], -5.0, scaled_add(outer_difference, 2.0, inner_difference)),
            _mm512_add_ps(_mm512_add_ps(p[0], inner), outer),
            p[5],
        ]
    }

    /// `dx = Σ_tiles B ∂U Bᵀ` over one image, each tile's `(T+2)×(T+2)` patch added at its place
    /// in the input (neighbouring patches overlap by two pixels; what falls on the padding is
    /// dropped); `products` is `∂U[tile][position][c]`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn add_input_patches<const T: usize>(g: &Winograd, products: &[f32], dx: &mut [f32]) {
        let (c, tiles_wide, positions, side, pad) = (g.input().c, g.tiles_wide(), g.positions(), T + 2, g.pad());
        let (h, w) = (g.input().h, g.input().w);
        dx.fill(0.0);
        for tile in 0..g.tiles() {
            let (top, left) = (T * (tile / tiles_wide), T * (tile % tiles_wide));
            let (rows, columns_inside) = (inside::<T>(top, pad, h), inside::<T>(left, pad, w));
            for first in (0..c).step_by(LANES) {
                let mut columns = [[_mm512_setzero_ps(); 6]; 6];
                for (j, column) in columns.iter_mut().enumerate().take(side) {
                    *column =
                        patch_rows::<T>(line(products, 0..side, |i| (tile * positions + side * i + j) * c + first));
                }
                for (i, patch_row) in transpose(columns).into_iter().enumerate().take(side) {
                    for (j, value) in patch_rows::<T>(patch_row).into_iter().enumerate().take(side) {
                        if rows.contains(&i) && columns_inside.contains(&j) {
                            let at = ((top + i - pad) * w + left + j - pad) * c + first;
                            store(dx, at, _mm512_add_ps(load(dx, at), value));
                        }
                    }
                }
            }
        }
    }

    /// `Gᵀ · v` for `T + 2` vectors. F(2×2, 3×3): `Gᵀ = [1 ½ ½ 0; 0 ½ −½ 0; 0 ½ ½ 1]`;
    /// F(4×4, 3×3): `Gᵀ = [¼ −⅙ −⅙ 1⁄24 1⁄24 0; 0 −⅙ ⅙ 1⁄12 −1⁄12 0; 0 −⅙ −⅙ ⅙ ⅙ 1]`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn gather<const T: usize>(v: Line) -> [__m512; 3] {
        if T == 2 {
            let half = _mm512_set1_ps(0.5);
            let (sum, difference) =
                (_mm512_mul_ps(half, _mm512_add_ps(v[1], v[2])), _mm512_mul_ps(half, _mm512_sub_ps(v[1], v[2])));
            return [_mm512_add_ps(v[0], sum), difference, _mm512_add_ps(sum, v[3])];
        }
        let (inner, outer) = (_mm512_add_ps(v[1], v[2]), _mm512_add_ps(v[3], v[4]));
        let (inner_difference, outer_difference) = (_mm512_sub_ps(v[1], v[2]), _mm512_sub_ps(v[3], v[4]));
        [
            scaled_add(v[0], 0.25, scaled_add(inner, -1.0 / 6.0, _mm512_mul_ps(_mm512_set1_ps(1.0 / 24.0), outer))),
            scaled_add(inner_difference, -1.0 / 6.0, _mm512_mul_ps(_mm512_set1_ps(1.0 / 12.0), outer_difference)),
            scaled_add(_mm512_sub_ps(outer, inner), 1.0 / 6.0, v[5]),
        ]
    }

    /// `e[position][tile][f] = (A ∂Y Aᵀ)[position]`, `∂Y` the tile's `T×T` output gradient.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transform_gradient<const T: usize>(g: &Winograd, dy: &[f32], e: &mut [f32]) {
        let (f, tiles, tiles_wide, side) = (g.filters(), g.tiles(), g.tiles_wide(), T + 2);
        let row = T * tiles_wide * f;
        for tile in 0..tiles {
            let corner = T * (tile / tiles_wide) * row + T * (tile % tiles_wide) * f;
            for first in (0..f).step_by(LANES) {
                let mut rows = [[_mm512_setzero_ps(); 6]; 6];
                for (r, spread_row) in rows.iter_mut().enumerate().take(T) {
                    *spread_row = spread::<T>(line(dy, 0..T, |s| corner + r * row + s * f + first));
                }
                for (j, column) in transpose(rows).into_iter().enumerate().take(side) {
                    for (i, value) in spread::<T>(column).into_iter().enumerate().take(side) {
                        store(e, ((side * i + j) * tiles + tile) * f + first, value);
                    }
                }
            }
        }
    }

    /// `sum[position][c][f] += Σ_tile u[position][tile][c] · e[position][tile][f]`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn accumulate(g: &Winograd, u: &[f32], e: &[f32], sum: &mut [f32]) {
        let (c, f) = (g.input().c, g.filters());
        for position in 0..g.positions() {
            for channel in (0..c).step_by(CHANNEL_BLOCK) {
                for (first, vectors) in groups(f, LANES, &[4, 2, 1]) {
                    let block = Block { g, u, e, position, channel, first };
                    match vectors {
                        4 => block_products::<4>(&block, sum),
                        2 => block_products::<2>(&block, sum),
                        _ => block_products::<1>(&block, sum),
                    }
                }
            }
        }
    }

    /// A block of channels and a group of filters at one position.
    struct Block<'a> {
        g: &'a Winograd,
        u: &'a [f32],
        e: &'a [f32],
        position: usize,
        channel: usize,
        first: usize,
    }

    /// `CHANNEL_BLOCK × V` accumulators over every tile: `V` vectors of transformed output
    /// gradient meet `CHANNEL_BLOCK` broadcast transformed inputs.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn block_products<const V: usize>(b: &Block, sum: &mut [f32]) {
        let (c, f, tiles) = (b.g.input().c, b.g.filters(), b.g.tiles());
        let inputs = b.position * tiles * c + b.channel;
        let gradients = b.position * tiles * f + b.first;
        let last = tiles - 1;
        assert!(inputs + last * c + CHANNEL_BLOCK <= b.u.len() && gradients + last * f + V * LANES <= b.e.len());
        let mut acc = [[_mm512_setzero_ps(); V]; CHANNEL_BLOCK];
        // SAFETY: the reads stay inside the ranges just checked: tiles `< tiles`, channels
        // `< CHANNEL_BLOCK` past `b.channel` and `V` vectors past `b.first`.
        unsafe {
            let (u, e) = (b.u.as_ptr().add(inputs), b.e.as_ptr().add(gradients));
            for tile in 0..tiles {
                let mut d = [_mm512_setzero_ps(); V];
                for (k, d) in d.iter_mut().enumerate() {
                    *d = _mm512_loadu_ps(e.add(tile * f + k * LANES));
                }
                for (channel, acc) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(*u.add(tile * c + channel));
                    for (a, d) in acc.iter_mut().zip(&d) {
                        *a = _mm512_fmadd_ps(x, *d, *a);
                    }
                }
            }
        }
        for (channel, acc) in acc.iter().enumerate() {
            for (k, a) in acc.iter().enumerate() {
                let at = (b.position * c + b.channel + channel) * f + b.first + k * LANES;
                store(sum, at, _mm512_add_ps(load(sum, at), *a));
            }
        }
    }

    /// `dkernel[ky][kx][c][f] += (Gᵀ S G)[ky][kx]`, `S` the summed products of channel `c` and
    /// filter `f` at the `(T+2)²` positions.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transform_back<const T: usize>(g: &Winograd, sum: &[f32], dkernel: &mut [f32]) {
        let (c, f, side) = (g.input().c, g.filters(), T + 2);
        for channel in 0..c {
            for first in (0..f).step_by(LANES) {
                let mut columns = [[_mm512_setzero_ps(); 3]; 6];
                for (j, column) in columns.iter_mut().enumerate().take(side) {
                    *column = gather::<T>(line(sum, 0..side, |i| ((side * i + j) * c + channel) * f + first));
                }
                for (ky, row) in transpose(columns).into_iter().enumerate() {
                    for (kx, value) in gather::<T>(row).into_iter().enumerate() {
                        let at = ((ky * 3 + kx) * c + channel) * f + first;
                        store(dkernel, at, _mm512_add_ps(load(dkernel, at), value));
                    }
                }
            }
        }
    }
}

/// `swapped[ky][kx][f][c] = kernel[ky][kx][c][f]` for a `[3, 3, c, f]` kernel.
fn swap(kernel: &[f32], c: usize, f: usize, swapped: &mut [f32]) {
    for (tap, slice) in kernel.chunks_exact(c * f).enumerate() {
        let turned = &mut swapped[tap * c * f..][..c * f];
        for (channel, row) in slice.chunks_exact(f).enumerate() {
            for (filter, &value) in row.iter().enumerate() {
                turned[filter * c + channel] = value;
            }
        }
    }
}
