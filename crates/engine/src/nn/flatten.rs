//! Flatten: NHWC samples become vectors. With a channels-last layout this is a plain copy, and the
//! element order matches Keras' Flatten.

use crate::nn::layer::{Backward, Forward, Layer, Shape};

/// Reshapes each sample to a vector.
pub struct Flatten {
    input: Shape,
}

impl Flatten {
    /// Flattens samples of `input`.
    pub fn new(input: Shape) -> Flatten {
        Flatten { input }
    }
}

impl Layer for Flatten {
    fn kind(&self) -> &'static str {
        "Flatten"
    }

    fn input_shape(&self) -> Shape {
        self.input
    }

    fn output_shape(&self) -> Shape {
        Shape::vector(self.input.size())
    }

    fn forward(&self, f: Forward) {
        let len = f.n * self.input.size();
        f.y[..len].copy_from_slice(&f.x[..len]);
    }

    fn backward(&self, b: Backward) {
        if let Some(dx) = b.dx {
            let len = b.n * self.input.size();
            dx[..len].copy_from_slice(&b.dy[..len]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::check_layer;

    #[test]
    fn keeps_values_in_order() {
        let flat = Flatten::new(Shape::new(2, 1, 2));
        assert_eq!(flat.output_shape(), Shape::vector(4));
        let mut y = vec![0.0; 4];
        flat.forward(Forward {
            n: 1,
            params: &[],
            x: &[1.0, 2.0, 3.0, 4.0],
            y: &mut y,
            scratch: &mut [],
            train: false,
            seed: 0,
        });
        assert_eq!(y, vec![1.0, 2.0, 3.0, 4.0]);
        check_layer(&flat, 2);
    }
}
