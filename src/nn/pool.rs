//! Max pooling with a square window and stride equal to the window ("valid": a trailing partial
//! window is dropped, as in Keras). Backward hands each output's gradient to the first window
//! position equal to the maximum. Both passes are branch-free selects over channel runs, so they
//! vectorise and do not depend on branch prediction over real activations.

use crate::nn::layer::{Backward, Forward, Layer, Shape};

/// A `size × size` max-pooling layer.
pub struct MaxPool2d {
    input: Shape,
    output: Shape,
    size: usize,
}

impl MaxPool2d {
    /// Pools samples of `input` with a `size × size` window.
    pub fn new(input: Shape, size: usize) -> MaxPool2d {
        MaxPool2d { input, output: Shape::new(input.h / size, input.w / size, input.c), size }
    }

    /// Offset (within one sample, channel 0) of window position `(wy, wx)` of output `(oy, ox)`.
    fn window_start(&self, oy: usize, ox: usize, wy: usize, wx: usize) -> usize {
        ((oy * self.size + wy) * self.input.w + ox * self.size + wx) * self.input.c
    }

    /// Calls `visit(sample, output offset, window offsets)` for every output pixel, window
    /// positions in row-major order.
    fn for_each_window(&self, n: usize, mut visit: impl FnMut(usize, usize, &[usize])) {
        let c = self.input.c;
        let mut starts = vec![0; self.size * self.size];
        for b in 0..n {
            for oy in 0..self.output.h {
                for ox in 0..self.output.w {
                    let out = b * self.output.size() + (oy * self.output.w + ox) * c;
                    for (i, start) in starts.iter_mut().enumerate() {
                        *start = self.window_start(oy, ox, i / self.size, i % self.size);
                    }
                    visit(b, out, &starts);
                }
            }
        }
    }
}

/// For one window position: where the input equals the maximum, pass on the gradient still
/// pending for that channel (and clear it); elsewhere the input gradient is zero. Mask arithmetic
/// on the bit patterns keeps it branch-free.
fn hand_out(x: &[f32], max: &[f32], pending: &mut [f32], dx: &mut [f32]) {
    let c = x.len();
    let (max, pending, dx) = (&max[..c], &mut pending[..c], &mut dx[..c]);
    for i in 0..c {
        let hit = u32::from(x[i] == max[i]).wrapping_neg();
        let p = pending[i].to_bits();
        dx[i] = f32::from_bits(p & hit);
        pending[i] = f32::from_bits(p & !hit);
    }
}

impl Layer for MaxPool2d {
    fn kind(&self) -> &'static str {
        "MaxPooling2D"
    }

    fn input_shape(&self) -> Shape {
        self.input
    }

    fn output_shape(&self) -> Shape {
        self.output
    }

    /// The output gradients still to be handed out while backward walks a window.
    fn scratch_len(&self, n: usize) -> usize {
        n * self.output.size()
    }

    fn forward(&self, f: Forward) {
        let (c, in_size) = (self.input.c, self.input.size());
        self.for_each_window(f.n, |b, out, starts| {
            let x = &f.x[b * in_size..(b + 1) * in_size];
            let y = &mut f.y[out..out + c];
            y.fill(f32::NEG_INFINITY);
            for &start in starts {
                for (y, &v) in y.iter_mut().zip(&x[start..start + c]) {
                    *y = y.max(v);
                }
            }
        });
    }

    fn backward(&self, b: Backward) {
        let Some(dx_all) = b.dx else { return };
        let (c, in_size) = (self.input.c, self.input.size());
        if !self.input.h.is_multiple_of(self.size) || !self.input.w.is_multiple_of(self.size) {
            dx_all[..b.n * in_size].fill(0.0);
        }
        let pending_all = &mut b.scratch[..b.n * self.output.size()];
        pending_all.copy_from_slice(&b.dy[..b.n * self.output.size()]);
        self.for_each_window(b.n, |s, out, starts| {
            let x = &b.x[s * in_size..(s + 1) * in_size];
            let dx = &mut dx_all[s * in_size..(s + 1) * in_size];
            let (y, pending) = (&b.y[out..out + c], &mut pending_all[out..out + c]);
            for &start in starts {
                hand_out(&x[start..start + c], y, pending, &mut dx[start..start + c]);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::check_layer;

    #[test]
    fn picks_window_maxima_per_channel_and_drops_partial_windows() {
        let pool = MaxPool2d::new(Shape::new(3, 3, 1), 2);
        assert_eq!(pool.output_shape(), Shape::new(1, 1, 1));
        let pool = MaxPool2d::new(Shape::new(2, 4, 2), 2);
        // channel 0: 1..8, channel 1: negatives.
        let x: Vec<f32> = (1..=8).flat_map(|v| [v as f32, -(v as f32)]).collect();
        let mut y = vec![0.0; 4];
        let mut scratch = vec![0.0; pool.scratch_len(1)];
        pool.forward(Forward { n: 1, params: &[], x: &x, y: &mut y, scratch: &mut scratch, train: false, seed: 0 });
        assert_eq!(y, vec![6.0, -1.0, 8.0, -3.0]);
    }

    #[test]
    fn gradient_goes_to_the_maximum_only() {
        check_layer(&MaxPool2d::new(Shape::new(5, 4, 3), 2), 2);
        check_layer(&MaxPool2d::new(Shape::new(4, 6, 2), 2), 2);
    }
}
