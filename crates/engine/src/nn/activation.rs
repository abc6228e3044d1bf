//! ReLU, as a standalone layer and as helpers that conv and dense layers fuse with their bias.

use crate::nn::layer::{Backward, Forward, Layer, Shape};
use serde::{Deserialize, Serialize};

/// Activation applied after a layer's affine map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// No activation (logits).
    #[default]
    Linear,
    /// max(0, x).
    Relu,
}

impl Activation {
    /// The gradient w.r.t. the activation's input, from `dy` w.r.t. its output `y`: ReLU passes
    /// it where `y > 0` and blocks it elsewhere.
    pub fn gradient(self, dy: f32, y: f32) -> f32 {
        if self == Activation::Linear || y > 0.0 { dy } else { 0.0 }
    }
}

/// Adds `bias` to every row of `y` (rows of `bias.len()` values) and applies `act`.
pub fn add_bias_activate(y: &mut [f32], bias: &[f32], act: Activation) {
    for row in y.chunks_exact_mut(bias.len()) {
        match act {
            Activation::Linear => row.iter_mut().zip(bias).for_each(|(v, b)| *v += b),
            Activation::Relu => row.iter_mut().zip(bias).for_each(|(v, b)| {
                let t = *v + b;
                *v = if t > 0.0 { t } else { 0.0 };
            }),
        }
    }
}

/// The backward of [`add_bias_activate`] in one sweep: turns `dy` (rows of `dbias.len()` values,
/// the gradient w.r.t. the activation's output `y`) into the gradient w.r.t. its input, in place,
/// and accumulates its column sums into `dbias`.
pub fn bias_activation_backward(dy: &mut [f32], y: &[f32], act: Activation, dbias: &mut [f32]) {
    for (row, y) in dy.chunks_exact_mut(dbias.len()).zip(y.chunks_exact(dbias.len())) {
        for ((d, &v), g) in row.iter_mut().zip(y).zip(dbias.iter_mut()) {
            *d = act.gradient(*d, v);
            *g += *d;
        }
    }
}

/// A standalone ReLU layer.
pub struct Relu {
    shape: Shape,
}

impl Relu {
    /// ReLU over samples of `shape`.
    pub fn new(shape: Shape) -> Relu {
        Relu { shape }
    }
}

impl Layer for Relu {
    fn kind(&self) -> &'static str {
        "ReLU"
    }

    fn input_shape(&self) -> Shape {
        self.shape
    }

    fn output_shape(&self) -> Shape {
        self.shape
    }

    fn forward(&self, f: Forward) {
        let len = f.n * self.shape.size();
        f.y[..len].iter_mut().zip(&f.x[..len]).for_each(|(y, &x)| *y = x.max(0.0));
    }

    fn backward(&self, b: Backward) {
        let len = b.n * self.shape.size();
        if let Some(dx) = b.dx {
            dx[..len]
                .iter_mut()
                .zip(&b.dy[..len])
                .zip(&b.x[..len])
                .for_each(|((dx, &d), &x)| *dx = if x > 0.0 { d } else { 0.0 });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::check_layer;

    #[test]
    fn bias_and_relu_by_hand() {
        let mut y = vec![1.0, -3.0, 0.5, 2.0];
        add_bias_activate(&mut y, &[1.0, 1.0], Activation::Relu);
        assert_eq!(y, vec![2.0, 0.0, 1.5, 3.0]);
        let (mut dy, mut db) = (vec![1.0, 2.0, 3.0, 4.0], vec![0.5; 2]);
        bias_activation_backward(&mut dy, &y, Activation::Relu, &mut db);
        assert_eq!((dy, db), (vec![1.0, 0.0, 3.0, 4.0], vec![4.5, 4.5]));
        let (mut dy, mut db) = (vec![1.0, 2.0, 3.0, 4.0], vec![0.0; 2]);
        bias_activation_backward(&mut dy, &y, Activation::Linear, &mut db);
        assert_eq!((dy, db), (vec![1.0, 2.0, 3.0, 4.0], vec![4.0, 6.0]));
    }

    #[test]
    fn relu_layer_gradient() {
        check_layer(&Relu::new(Shape::new(2, 3, 2)), 3);
    }
}
