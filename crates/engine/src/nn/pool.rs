//! Max pooling with a square window and stride equal to the window ("valid": a trailing partial
//! window is dropped, as in Keras). Backward hands each output's gradient to the first window
//! position equal to the maximum. Both passes are branch-free selects over channel runs, so they
//! vectorise and do not depend on branch prediction over real activations.

use crate::nn::layer::{Backward, Forward, Layer, Shape};
use std::ops::Range;

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

    /// Calls `visit(x rows, y row)` for every output row of a batch of `n`: `x rows` are the
    /// input rows its windows cover, one after another.
    fn for_each_row(&self, n: usize, mut visit: impl FnMut(Range<usize>, Range<usize>)) {
        let (in_row, out_row) = (self.input.w * self.input.c, self.output.w * self.output.c);
        for image in 0..n {
            for oy in 0..self.output.h {
                let x_at = image * self.input.size() + oy * self.size * in_row;
                let y_at = image * self.output.size() + oy * out_row;
                visit(x_at..x_at + self.size * in_row, y_at..y_at + out_row);
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

    /// The gradients of one output row still to be handed out while backward walks its windows.
    fn scratch_len(&self, _n: usize) -> usize {
        self.output.w * self.output.c
    }

    /// Row by row: each output row starts as the first input pixel of its windows and takes the
    /// larger value from the rest, one channel run at a time (contiguous, so it vectorises).
    fn forward(&self, f: Forward) {
        let (s, c, in_row) = (self.size, self.input.c, self.input.w * self.input.c);
        self.for_each_row(f.n, |x_rows, y_row| {
            let (x_rows, y_row) = (&f.x[x_rows], &mut f.y[y_row]);
            for (wy, x_row) in x_rows.chunks_exact(in_row).enumerate() {
                for (ox, y) in y_row.chunks_exact_mut(c).enumerate() {
                    for wx in 0..s {
                        let x = &x_row[(ox * s + wx) * c..][..c];
                        if wy == 0 && wx == 0 {
                            y.copy_from_slice(x);
                        } else {
                            y.iter_mut().zip(x).for_each(|(y, &x)| *y = if x > *y { x } else { *y });
                        }
                    }
                }
            }
        });
    }

    /// Row by row, window positions in row-major order, so the first position holding the
    /// maximum receives the gradient.
    fn backward(&self, b: Backward) {
        let Some(dx_all) = b.dx else { return };
        let (s, c, in_row) = (self.size, self.input.c, self.input.w * self.input.c);
        if !self.input.h.is_multiple_of(s) || !self.input.w.is_multiple_of(s) {
            dx_all[..b.n * self.input.size()].fill(0.0);
        }
        let pending = &mut b.scratch[..self.output.w * c];
        self.for_each_row(b.n, |x_rows, y_row| {
            pending.copy_from_slice(&b.dy[y_row.clone()]);
            let y_row = &b.y[y_row];
            let dx_rows = &mut dx_all[x_rows.clone()];
            for (x_row, dx_row) in b.x[x_rows].chunks_exact(in_row).zip(dx_rows.chunks_exact_mut(in_row)) {
                for (ox, (max, pending)) in y_row.chunks_exact(c).zip(pending.chunks_exact_mut(c)).enumerate() {
                    for wx in 0..s {
                        let at = (ox * s + wx) * c;
                        hand_out(&x_row[at..][..c], max, pending, &mut dx_row[at..][..c]);
                    }
                }
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

    /// The window maxima, one value at a time.
    fn reference(x: &[f32], input: Shape, size: usize) -> Vec<f32> {
        let (oh, ow, c) = (input.h / size, input.w / size, input.c);
        let at = |y: usize, x_: usize, ch: usize| x[(y * input.w + x_) * c + ch];
        let mut out = Vec::new();
        for oy in 0..oh {
            for ox in 0..ow {
                for ch in 0..c {
                    let window = (0..size).flat_map(|wy| (0..size).map(move |wx| (oy * size + wy, ox * size + wx)));
                    out.push(window.map(|(y, x_)| at(y, x_, ch)).fold(f32::NEG_INFINITY, f32::max));
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_textbook_maxima_for_any_channel_count_and_window() {
        for (input, size) in [(Shape::new(5, 7, 37), 2), (Shape::new(6, 6, 16), 3), (Shape::new(4, 4, 1), 2)] {
            let pool = MaxPool2d::new(input, size);
            let x: Vec<f32> = (0..input.size()).map(|i| ((i * 7919) % 1013) as f32 - 500.0).collect();
            let mut y = vec![f32::NAN; pool.output_shape().size()];
            pool.forward(Forward {
                n: 1,
                params: &[],
                x: &x,
                y: &mut y,
                scratch: &mut vec![0.0; pool.scratch_len(1)],
                train: false,
                seed: 0,
            });
            assert_eq!(y, reference(&x, input, size), "{input:?}");
        }
    }

    #[test]
    fn gradient_goes_to_the_maximum_only() {
        check_layer(&MaxPool2d::new(Shape::new(5, 4, 3), 2), 2);
        check_layer(&MaxPool2d::new(Shape::new(4, 6, 2), 2), 2);
        check_layer(&MaxPool2d::new(Shape::new(4, 5, 18), 2), 2);
    }
}
