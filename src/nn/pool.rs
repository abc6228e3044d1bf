//! Max pooling with a square window and stride equal to the window ("valid": a trailing partial
//! window is dropped, as in Keras). The forward pass records, per output value, which window
//! position held the (first) maximum; backward routes each gradient there.

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

    /// Offset (within one sample, channel 0) of window position `k` of output pixel `(oy, ox)`.
    fn window_start(&self, oy: usize, ox: usize, k: usize) -> usize {
        let s = self.size;
        ((oy * s + k / s) * self.input.w + ox * s + k % s) * self.input.c
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

    /// One value per output: the window position (0..size²) of its maximum, stored as f32.
    fn scratch_len(&self, n: usize) -> usize {
        n * self.output.size()
    }

    fn forward(&self, f: Forward) {
        let (c, in_size, out_size) = (self.input.c, self.input.size(), self.output.size());
        for b in 0..f.n {
            let x = &f.x[b * in_size..(b + 1) * in_size];
            for oy in 0..self.output.h {
                for ox in 0..self.output.w {
                    let o = b * out_size + (oy * self.output.w + ox) * c;
                    let (y, arg) = (&mut f.y[o..o + c], &mut f.scratch[o..o + c]);
                    y.copy_from_slice(&x[self.window_start(oy, ox, 0)..][..c]);
                    arg.fill(0.0);
                    for k in 1..self.size * self.size {
                        let start = self.window_start(oy, ox, k);
                        for ((y, a), &v) in y.iter_mut().zip(arg.iter_mut()).zip(&x[start..start + c]) {
                            if v > *y {
                                *y = v;
                                *a = k as f32;
                            }
                        }
                    }
                }
            }
        }
    }

    fn backward(&self, b: Backward) {
        let Some(dx_all) = b.dx else { return };
        let (c, in_size, out_size) = (self.input.c, self.input.size(), self.output.size());
        dx_all[..b.n * in_size].fill(0.0);
        for s in 0..b.n {
            let dx = &mut dx_all[s * in_size..(s + 1) * in_size];
            for oy in 0..self.output.h {
                for ox in 0..self.output.w {
                    let o = s * out_size + (oy * self.output.w + ox) * c;
                    for (ch, (&d, &arg)) in b.dy[o..o + c].iter().zip(&b.scratch[o..o + c]).enumerate() {
                        dx[self.window_start(oy, ox, arg as usize) + ch] += d;
                    }
                }
            }
        }
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
    }
}
