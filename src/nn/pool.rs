//! Max pooling with a square window and stride equal to the window ("valid": a trailing partial
//! window is dropped, as in Keras). Backward routes each gradient to the first maximal input of
//! its window, found again from the cached input and output rather than stored indices.

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

    /// Offsets (within one sample) of the inputs of output pixel `(oy, ox)`, channel 0.
    fn window(&self, oy: usize, ox: usize) -> impl Iterator<Item = usize> + '_ {
        let (s, w, c) = (self.size, self.input.w, self.input.c);
        (0..s).flat_map(move |dy| (0..s).map(move |dx| ((oy * s + dy) * w + ox * s + dx) * c))
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

    fn forward(&self, f: Forward) {
        let (c, in_size, out_size) = (self.input.c, self.input.size(), self.output.size());
        for b in 0..f.n {
            let x = &f.x[b * in_size..(b + 1) * in_size];
            let y = &mut f.y[b * out_size..(b + 1) * out_size];
            for oy in 0..self.output.h {
                for ox in 0..self.output.w {
                    let out = &mut y[(oy * self.output.w + ox) * c..][..c];
                    out.fill(f32::NEG_INFINITY);
                    for start in self.window(oy, ox) {
                        out.iter_mut().zip(&x[start..start + c]).for_each(|(o, &v)| *o = o.max(v));
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
            let x = &b.x[s * in_size..(s + 1) * in_size];
            let dx = &mut dx_all[s * in_size..(s + 1) * in_size];
            for oy in 0..self.output.h {
                for ox in 0..self.output.w {
                    let o = s * out_size + (oy * self.output.w + ox) * c;
                    for ch in 0..c {
                        let max = b.y[o + ch];
                        if let Some(start) = self.window(oy, ox).find(|&st| x[st + ch] == max) {
                            dx[start + ch] += b.dy[o + ch];
                        }
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
        pool.forward(Forward { n: 1, params: &[], x: &x, y: &mut y, scratch: &mut [], train: false, seed: 0 });
        assert_eq!(y, vec![6.0, -1.0, 8.0, -3.0]);
    }

    #[test]
    fn gradient_goes_to_the_maximum_only() {
        check_layer(&MaxPool2d::new(Shape::new(5, 4, 3), 2), 2);
    }
}
