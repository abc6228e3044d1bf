//! The input gradient of a valid 3×3 convolution by Winograd's F(2×2, 3×3).
//!
//! `dx[iy][ix][c] = Σ dy[iy − ky][ix − kx][f] · kernel[ky][kx][c][f]` over the taps and filters
//! (terms outside `dy` are zero) is itself a valid 3×3 convolution: of `dy` zero-padded by 2 on
//! every side, with the kernel turned half a turn and its channels and filters swapped,
//! `flipped[2 − ky][2 − kx][f][c] = kernel[ky][kx][c][f]`. Its output has the input's size, so
//! where that is even and channels and filters fill whole vectors it runs as a [`Winograd`]
//! convolution writing its whole output — about half the multiply-adds of the matrix products.

use crate::nn::implicit_conv::embed;
use crate::nn::layer::Shape;
use crate::nn::winograd::{Output, Winograd};

/// Border of zeros around each output gradient (kernel side − 1).
const BORDER: usize = 2;

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
        self.conv.prepare(flipped, conv_scratch);
        let (in_size, out_size) = (self.input.size(), self.output.size());
        assert!(dy.len() >= n * out_size && dx.len() >= n * in_size, "input-gradient buffers too small");
        for (dy, dx) in dy.chunks_exact(out_size).zip(dx.chunks_exact_mut(in_size)).take(n) {
            embed(dy, self.output, padded, self.padded(), BORDER);
            self.conv.apply(padded, zero_bias, false, Output::Full, dx, conv_scratch);
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
