//! Fully connected layer `y = x·W + b` with fused activation. Parameters: `kernel [in, units]`,
//! then `bias [units]` (Keras layout).

use crate::nn::activation::{Activation, add_bias_activate, bias_activation_backward};
use crate::nn::init::Init;
use crate::nn::layer::{Backward, Forward, Layer, ParamSpec, Shape};
use crate::nn::matmul::{matmul, n as plain, t as transposed};
use rand_chacha::ChaCha8Rng;

/// A dense layer over flat inputs.
pub struct Dense {
    inputs: usize,
    units: usize,
    activation: Activation,
    init: Init,
}

impl Dense {
    /// `units` outputs from vectors of `inputs` values.
    pub fn new(inputs: usize, units: usize, activation: Activation, init: Init) -> Dense {
        Dense { inputs, units, activation, init }
    }
}

impl Layer for Dense {
    fn kind(&self) -> &'static str {
        "Dense"
    }

    fn input_shape(&self) -> Shape {
        Shape::vector(self.inputs)
    }

    fn output_shape(&self) -> Shape {
        Shape::vector(self.units)
    }

    fn param_specs(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec { name: "kernel", trainable: true, dims: vec![self.inputs, self.units] },
            ParamSpec { name: "bias", trainable: true, dims: vec![self.units] },
        ]
    }

    fn init_params(&self, params: &mut [f32], rng: &mut ChaCha8Rng) {
        let (kernel, bias) = params.split_at_mut(self.inputs * self.units);
        self.init.fill(kernel, self.inputs, self.units, rng);
        bias.fill(0.0);
    }

    fn macs(&self) -> usize {
        self.inputs * self.units
    }

    fn forward(&self, f: Forward) {
        let (kernel, bias) = f.params.split_at(self.inputs * self.units);
        let y = &mut f.y[..f.n * self.units];
        matmul(f.n, self.units, self.inputs, plain(f.x), plain(kernel), y, false);
        add_bias_activate(y, bias, self.activation);
    }

    fn backward(&self, b: Backward) {
        let dy = &mut b.dy[..b.n * self.units];
        let (dkernel, dbias) = b.dparams.split_at_mut(self.inputs * self.units);
        bias_activation_backward(dy, &b.y[..b.n * self.units], self.activation, dbias);
        matmul(self.inputs, self.units, b.n, transposed(b.x), plain(dy), dkernel, true);
        if let Some(dx) = b.dx {
            let kernel = &b.params[..self.inputs * self.units];
            matmul(b.n, self.inputs, self.units, plain(dy), transposed(kernel), dx, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::check_layer;

    #[test]
    fn affine_map_by_hand() {
        let dense = Dense::new(2, 3, Activation::Linear, Init::GlorotUniform);
        let params = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.5, 0.5, -100.0];
        let mut y = vec![0.0; 3];
        dense.forward(Forward {
            n: 1,
            params: &params,
            x: &[1.0, -1.0],
            y: &mut y,
            scratch: &mut [],
            train: false,
            seed: 0,
        });
        assert_eq!(y, vec![-2.5, -2.5, -103.0]);
    }

    #[test]
    fn gradients_relu() {
        check_layer(&Dense::new(7, 5, Activation::Relu, Init::HeNormal), 3);
    }

    #[test]
    fn gradients_linear() {
        check_layer(&Dense::new(4, 6, Activation::Linear, Init::GlorotUniform), 2);
    }
}
