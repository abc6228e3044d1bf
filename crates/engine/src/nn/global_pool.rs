//! Global average pooling: each channel's mean over the image, giving a 1×1×C vector.

use crate::nn::layer::{Backward, Forward, Layer, Shape};

/// Averages every channel over height and width.
pub struct GlobalAvgPool {
    input: Shape,
}

impl GlobalAvgPool {
    /// Pools samples of `input`.
    pub fn new(input: Shape) -> GlobalAvgPool {
        GlobalAvgPool { input }
    }
}

impl Layer for GlobalAvgPool {
    fn kind(&self) -> &'static str {
        "GlobalAveragePooling2D"
    }

    fn input_shape(&self) -> Shape {
        self.input
    }

    fn output_shape(&self) -> Shape {
        Shape::vector(self.input.c)
    }

    fn forward(&self, f: Forward) {
        let (c, size, area) = (self.input.c, self.input.size(), (self.input.h * self.input.w) as f32);
        for (x, y) in f.x[..f.n * size].chunks_exact(size).zip(f.y.chunks_exact_mut(c)) {
            y.fill(0.0);
            x.chunks_exact(c).for_each(|px| y.iter_mut().zip(px).for_each(|(s, &v)| *s += v));
            y.iter_mut().for_each(|s| *s /= area);
        }
    }

    fn backward(&self, b: Backward) {
        let Some(dx) = b.dx else { return };
        let (c, size, area) = (self.input.c, self.input.size(), (self.input.h * self.input.w) as f32);
        for (dx, dy) in dx[..b.n * size].chunks_exact_mut(size).zip(b.dy.chunks_exact(c)) {
            dx.chunks_exact_mut(c).for_each(|px| px.iter_mut().zip(dy).for_each(|(d, &g)| *d = g / area));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::check_layer;

    #[test]
    fn averages_each_channel() {
        let pool = GlobalAvgPool::new(Shape::new(2, 1, 2));
        let mut y = vec![0.0; 2];
        pool.forward(Forward {
            n: 1,
            params: &[],
            x: &[1.0, 10.0, 3.0, 30.0],
            y: &mut y,
            scratch: &mut [],
            train: false,
            seed: 0,
        });
        assert_eq!(y, vec![2.0, 20.0]);
        check_layer(&pool, 2);
    }
}
