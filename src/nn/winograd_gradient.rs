//! The gradients of a valid 3×3 convolution by Winograd's F(2×2, 3×3), for training.
//!
//! **Input gradient.** `dx[iy][ix][c] = Σ dy[iy − ky][ix − kx][f] · kernel[ky][kx][c][f]` over
//! the taps and filters (terms outside `dy` are zero) is itself a valid 3×3 convolution: of `dy`
//! zero-padded by 2 on every side, with the kernel turned half a turn and its channels and
//! filters swapped, `flipped[2 − ky][2 − kx][f][c] = kernel[ky][kx][c][f]`. Its output has the
//! input's size, so where that is even and channels and filters fill whole vectors it runs as a
//! [`Winograd`] convolution writing its whole output — about half the multiply-adds of the
//! matrix products.
//!
//! **Kernel gradient.** The forward pass of each output tile is `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`,
//! summed over channels. Going back, `∂M = A ∂Y Aᵀ`, `∂V = ∂M ⊙ (Bᵀ d B)` and `∂g = Gᵀ ∂V G`; the
//! tiles cover the output exactly, so the kernel gradient is `Gᵀ [Σ_tiles (Bᵀ d B) ⊙ (A ∂Y Aᵀ)] G`:
//! per position a `[C × tiles] · [tiles × F]` product summed over the batch, then one small
//! transform per channel and filter — 16 multiply-adds per tile, channel and filter instead of 36.

use crate::nn::implicit_conv::embed;
use crate::nn::layer::Shape;
use crate::nn::vector::LANES;
use crate::nn::winograd::{Output, POSITIONS, Winograd};

/// Border of zeros around each output gradient (kernel side − 1).
const BORDER: usize = 2;

/// Both gradients of one valid 3×3 convolution by Winograd.
#[derive(Debug, Clone, Copy)]
pub struct Gradients {
    kernel: KernelGradient,
    input: InputGradient,
}

impl Gradients {
    /// The gradients of `conv`, a `covering` Winograd convolution, where both apply.
    pub fn new(conv: Winograd) -> Option<Gradients> {
        let (input, pooled) = (conv.input(), conv.pooled());
        let output = Shape::new(2 * pooled.h, 2 * pooled.w, conv.filters());
        Some(Gradients { kernel: KernelGradient::new(conv)?, input: InputGradient::new(input, output)? })
    }

    /// Scratch values `backward` needs.
    pub fn scratch_len(&self) -> usize {
        self.kernel.scratch_len().max(self.input.scratch_len())
    }

    /// For `n` images `x` and their output gradients `dy` (after the activation): adds the kernel
    /// gradient to `dkernel` and, when `dx` is given, writes the input gradients there.
    pub fn backward(
        &self,
        (x, dy, n): (&[f32], &[f32], usize),
        kernel: &[f32],
        dkernel: &mut [f32],
        dx: Option<&mut [f32]>,
        scratch: &mut [f32],
    ) {
        self.kernel.kernel_gradient(x, dy, n, dkernel, scratch);
        if let Some(dx) = dx {
            self.input.input_gradient(dy, n, kernel, dx, scratch);
        }
    }
}

/// Where the input gradient of one valid 3×3 convolution reads and writes.
#[derive(Debug, Clone, Copy)]
pub struct InputGradient {
    /// One input image of the forward convolution (the gradient's shape).
    input: Shape,
    /// One output image of the forward convolution (the incoming gradient's shape).
    output: Shape,
    /// The backward convolution over the padded output gradient.
    conv: Winograd,
}

impl InputGradient {
    /// The Winograd form of the input gradient of a valid 3×3 convolution from `input` to
    /// `output`, where it applies.
    pub fn new(input: Shape, output: Shape) -> Option<InputGradient> {
        let padded = Shape::new(output.h + 2 * BORDER, output.w + 2 * BORDER, output.c);
        let consistent = input.h == output.h + 2 && input.w == output.w + 2;
        Winograd::covering(padded, input.c).filter(|_| consistent).map(|conv| InputGradient { input, output, conv })
    }

    /// One zero-padded output gradient.
    fn padded(&self) -> Shape {
        Shape::new(self.output.h + 2 * BORDER, self.output.w + 2 * BORDER, self.output.c)
    }

    /// Lengths of the Winograd scratch, the flipped kernel, one padded gradient and the zero
    /// bias, in that order.
    fn parts(&self) -> [usize; 4] {
        let (c, f) = (self.input.c, self.output.c);
        [self.conv.scratch_len(), 9 * c * f, self.padded().size(), c]
    }

    /// Scratch values `input_gradient` needs.
    pub fn scratch_len(&self) -> usize {
        self.parts().iter().sum()
    }

    /// Writes the input gradients of `n` images into `dx` from their output gradients `dy`;
    /// `kernel` is the forward kernel `[3, 3, C, F]`.
    pub fn input_gradient(&self, dy: &[f32], n: usize, kernel: &[f32], dx: &mut [f32], scratch: &mut [f32]) {
        let [conv_len, flipped_len, padded_len, bias_len] = self.parts();
        let (conv_scratch, rest) = scratch[..self.scratch_len()].split_at_mut(conv_len);
        let (flipped, rest) = rest.split_at_mut(flipped_len);
        let (padded, zero_bias) = rest.split_at_mut(padded_len);
        zero_bias[..bias_len].fill(0.0);
        flip(kernel, self.input.c, self.output.c, flipped);
        let (v, work) = conv_scratch.split_at_mut(self.conv.kernel_len());
        self.conv.prepare(flipped, v);
        let (in_size, out_size) = (self.input.size(), self.output.size());
        assert!(dy.len() >= n * out_size && dx.len() >= n * in_size, "input-gradient buffers too small");
        for (dy, dx) in dy.chunks_exact(out_size).zip(dx.chunks_exact_mut(in_size)).take(n) {
            embed(dy, self.output, padded, self.padded(), BORDER);
            self.conv.apply(padded, v, (zero_bias, false, Output::Full), dx, work);
        }
    }
}

/// Where the kernel gradient of one valid 3×3 convolution reads and writes: the forward
/// convolution's own Winograd geometry, which covers its whole output.
#[derive(Debug, Clone, Copy)]
pub struct KernelGradient {
    conv: Winograd,
}

/// Input channels per register block of [`KernelGradient`]'s products.
const CHANNEL_BLOCK: usize = 4;

impl KernelGradient {
    /// The kernel gradient of the convolution `conv` computes (a `covering` one), where its
    /// channels come in whole blocks.
    pub fn new(conv: Winograd) -> Option<KernelGradient> {
        conv.input().c.is_multiple_of(CHANNEL_BLOCK).then_some(KernelGradient { conv })
    }

    /// Lengths of one transformed input, one transformed output gradient and the summed
    /// products, in that order.
    fn parts(&self) -> [usize; 3] {
        let (c, f, w) = (self.conv.input().c, self.conv.filters(), self.conv.windows());
        [POSITIONS * w * c, POSITIONS * w * f, POSITIONS * c * f]
    }

    /// Scratch values `kernel_gradient` needs.
    pub fn scratch_len(&self) -> usize {
        self.parts().iter().sum()
    }

    /// Adds to `dkernel` (`[3, 3, C, F]`) the kernel gradient of `n` images `x` whose output
    /// gradients (after the activation) are `dy`.
    pub fn kernel_gradient(&self, x: &[f32], dy: &[f32], n: usize, dkernel: &mut [f32], scratch: &mut [f32]) {
        let (input, f) = (self.conv.input(), self.conv.filters());
        let (in_size, out_size) = (input.size(), 4 * self.conv.pooled().size());
        assert!(x.len() >= n * in_size && dy.len() >= n * out_size, "kernel-gradient buffers too small");
        assert!(dkernel.len() == 9 * input.c * f, "kernel gradient of the wrong size");
        let [u_len, e_len, sum_len] = self.parts();
        let (u, rest) = scratch[..u_len + e_len + sum_len].split_at_mut(u_len);
        let (e, sum) = rest.split_at_mut(e_len);
        sum.fill(0.0);
        for (image, dy) in x.chunks_exact(in_size).zip(dy.chunks_exact(out_size)).take(n) {
            self.conv.transform_input(image, u);
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the convolution exists, so AVX-512F is present; the buffers have the
            // lengths of `parts()`.
            unsafe {
                avx512::transform_gradient(&self.conv, dy, e);
                avx512::accumulate(&self.conv, u, e, sum);
            }
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        unsafe {
            avx512::transform_back(&self.conv, sum, dkernel)
        };
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{CHANNEL_BLOCK, LANES, POSITIONS, Winograd};
    use crate::nn::vector::{groups, load, store, transpose};
    use std::arch::x86_64::*;

    /// `A · (v₀, v₁)` for `A = [1 0; 1 1; 1 −1; 0 −1]`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn spread([v0, v1]: [__m512; 2]) -> [__m512; 4] {
        [v0, _mm512_add_ps(v0, v1), _mm512_sub_ps(v0, v1), _mm512_sub_ps(_mm512_setzero_ps(), v1)]
    }

    /// `Gᵀ · v` for `Gᵀ = [1 ½ ½ 0; 0 ½ −½ 0; 0 ½ ½ 1]`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn gather([v0, v1, v2, v3]: [__m512; 4]) -> [__m512; 3] {
        let half = _mm512_set1_ps(0.5);
        let (sum, difference) =
            (_mm512_mul_ps(half, _mm512_add_ps(v1, v2)), _mm512_mul_ps(half, _mm512_sub_ps(v1, v2)));
        [_mm512_add_ps(v0, sum), difference, _mm512_add_ps(sum, v3)]
    }

    /// `e[position][window][f] = (A ∂Y Aᵀ)[position]`, `∂Y` the window's 2×2 output gradient.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transform_gradient(g: &Winograd, dy: &[f32], e: &mut [f32]) {
        let (f, windows, tiles_wide) = (g.filters(), g.windows(), g.pooled().w);
        let row = 2 * tiles_wide * f;
        for window in 0..windows {
            let corner = 2 * (window / tiles_wide) * row + 2 * (window % tiles_wide) * f;
            for first in (0..f).step_by(LANES) {
                let at = |r: usize, s: usize| load(dy, corner + r * row + s * f + first);
                let rows = [spread([at(0, 0), at(0, 1)]), spread([at(1, 0), at(1, 1)])];
                for (j, column) in transpose(rows).into_iter().enumerate() {
                    for (i, value) in spread(column).into_iter().enumerate() {
                        store(e, ((4 * i + j) * windows + window) * f + first, value);
                    }
                }
            }
        }
    }

    /// `sum[position][c][f] += Σ_window u[position][window][c] · e[position][window][f]`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn accumulate(g: &Winograd, u: &[f32], e: &[f32], sum: &mut [f32]) {
        let (c, f) = (g.input().c, g.filters());
        for position in 0..POSITIONS {
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

    /// `CHANNEL_BLOCK × V` accumulators over every window: `V` vectors of transformed output
    /// gradient meet `CHANNEL_BLOCK` broadcast transformed inputs.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn block_products<const V: usize>(b: &Block, sum: &mut [f32]) {
        let (c, f, windows) = (b.g.input().c, b.g.filters(), b.g.windows());
        let inputs = b.position * windows * c + b.channel;
        let gradients = b.position * windows * f + b.first;
        let last = windows - 1;
        assert!(inputs + last * c + CHANNEL_BLOCK <= b.u.len() && gradients + last * f + V * LANES <= b.e.len());
        let mut acc = [[_mm512_setzero_ps(); V]; CHANNEL_BLOCK];
        // SAFETY: the reads stay inside the ranges just checked: windows `< windows`, channels
        // `< CHANNEL_BLOCK` past `b.channel` and `V` vectors past `b.first`.
        unsafe {
            let (u, e) = (b.u.as_ptr().add(inputs), b.e.as_ptr().add(gradients));
            for window in 0..windows {
                let mut d = [_mm512_setzero_ps(); V];
                for (k, d) in d.iter_mut().enumerate() {
                    *d = _mm512_loadu_ps(e.add(window * f + k * LANES));
                }
                for (channel, acc) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(*u.add(window * c + channel));
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
    /// filter `f` at the 16 positions.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transform_back(g: &Winograd, sum: &[f32], dkernel: &mut [f32]) {
        let (c, f) = (g.input().c, g.filters());
        for channel in 0..c {
            for first in (0..f).step_by(LANES) {
                let mut columns = [[_mm512_setzero_ps(); 3]; 4];
                for (j, column) in columns.iter_mut().enumerate() {
                    let s = |i: usize| load(sum, ((4 * i + j) * c + channel) * f + first);
                    *column = gather([s(0), s(1), s(2), s(3)]);
                }
                for (ky, row) in transpose(columns).into_iter().enumerate() {
                    for (kx, value) in gather(row).into_iter().enumerate() {
                        let at = ((ky * 3 + kx) * c + channel) * f + first;
                        store(dkernel, at, _mm512_add_ps(load(dkernel, at), value));
                    }
                }
            }
        }
    }
}

/// `flipped[2 − ky][2 − kx][f][c] = kernel[ky][kx][c][f]` for a `[3, 3, c, f]` kernel.
fn flip(kernel: &[f32], c: usize, f: usize, flipped: &mut [f32]) {
    for (tap, slice) in kernel.chunks_exact(c * f).enumerate() {
        let turned = &mut flipped[(8 - tap) * c * f..][..c * f];
        for (channel, row) in slice.chunks_exact(f).enumerate() {
            for (filter, &value) in row.iter().enumerate() {
                turned[filter * c + channel] = value;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook input gradient of a valid 3×3 convolution.
    fn textbook(input: Shape, output: Shape, dy: &[f32], kernel: &[f32]) -> Vec<f32> {
        let (c, f) = (input.c, output.c);
        let mut dx = vec![0.0; dy.len() / output.size() * input.size()];
        for (dy, dx) in dy.chunks_exact(output.size()).zip(dx.chunks_exact_mut(input.size())) {
            for (oy, ox, ky, kx) in
                (0..output.h).flat_map(|a| (0..output.w).flat_map(move |b| (0..9).map(move |t| (a, b, t / 3, t % 3))))
            {
                for (channel, filter) in (0..c).flat_map(|a| (0..f).map(move |b| (a, b))) {
                    dx[((oy + ky) * input.w + ox + kx) * c + channel] +=
                        dy[(oy * output.w + ox) * f + filter] * kernel[((ky * 3 + kx) * c + channel) * f + filter];
                }
            }
        }
        dx
    }

    /// The textbook kernel gradient of a valid 3×3 convolution.
    fn textbook_kernel_gradient(input: Shape, output: Shape, x: &[f32], dy: &[f32]) -> Vec<f32> {
        let (c, f) = (input.c, output.c);
        let mut dkernel = vec![0.0; 9 * c * f];
        for (x, dy) in x.chunks_exact(input.size()).zip(dy.chunks_exact(output.size())) {
            for (oy, ox, ky, kx) in
                (0..output.h).flat_map(|a| (0..output.w).flat_map(move |b| (0..9).map(move |t| (a, b, t / 3, t % 3))))
            {
                for (channel, filter) in (0..c).flat_map(|a| (0..f).map(move |b| (a, b))) {
                    dkernel[((ky * 3 + kx) * c + channel) * f + filter] +=
                        x[((oy + ky) * input.w + ox + kx) * c + channel] * dy[(oy * output.w + ox) * f + filter];
                }
            }
        }
        dkernel
    }

    #[test]
    fn kernel_gradient_matches_the_textbook_one_and_adds_to_it() {
        for (input, filters) in [(Shape::new(12, 12, 32), 64), (Shape::new(6, 8, 16), 48)] {
            let output = Shape::new(input.h - 2, input.w - 2, filters);
            let Some(g) = Winograd::covering(input, filters).and_then(KernelGradient::new) else {
                eprintln!("SKIPPED: this CPU has no AVX-512F, so the Winograd kernel gradient is never used");
                return;
            };
            let n = 3;
            let x: Vec<f32> = (0..n * input.size()).map(|i| ((i * 37) % 23) as f32 / 23.0 - 0.4).collect();
            let dy: Vec<f32> = (0..n * output.size()).map(|i| ((i * 11) % 13) as f32 / 13.0 - 0.5).collect();
            let expected = textbook_kernel_gradient(input, output, &x, &dy);
            let mut dkernel = vec![1.0; expected.len()];
            g.kernel_gradient(&x, &dy, n, &mut dkernel, &mut vec![f32::NAN; g.scratch_len()]);
            let close = |a: f32, b: f32| (a - b).abs() <= 1e-4 * b.abs().max(1.0);
            assert!(dkernel.iter().zip(&expected).all(|(&a, &b)| close(a, b + 1.0)), "{input:?} → {filters} filters");
        }
    }

    #[test]
    fn matches_the_textbook_input_gradient() {
        for (input, filters) in [(Shape::new(12, 12, 32), 64), (Shape::new(6, 8, 16), 48)] {
            let output = Shape::new(input.h - 2, input.w - 2, filters);
            let Some(g) = InputGradient::new(input, output) else {
                eprintln!("SKIPPED: this CPU has no AVX-512F, so the Winograd input gradient is never used");
                return;
            };
            let n = 2;
            let dy: Vec<f32> = (0..n * output.size()).map(|i| ((i * 37) % 23) as f32 / 23.0 - 0.4).collect();
            let kernel: Vec<f32> = (0..9 * input.c * filters).map(|i| ((i * 11) % 7) as f32 / 7.0 - 0.5).collect();
            let expected = textbook(input, output, &dy, &kernel);
            let mut dx = vec![f32::NAN; expected.len()];
            g.input_gradient(&dy, n, &kernel, &mut dx, &mut vec![f32::NAN; g.scratch_len()]);
            let close = |a: f32, b: f32| (a - b).abs() <= 1e-4 * b.abs().max(1.0);
            assert!(dx.iter().zip(&expected).all(|(&a, &b)| close(a, b)), "{input:?} → {filters} filters");
        }
        let odd = Shape::new(9, 8, 32);
        assert!(InputGradient::new(odd, Shape::new(7, 6, 64)).is_none(), "an odd input height is not covered");
    }
}
