//! Forward and backward of each layer of the seed CNN and of the default preset at its real
//! shapes (a 32-image micro-batch), so regressions show per layer; and each fused
//! convolution-and-pooling step of the seed CNN's plans: its inference pass, and its training
//! pass (forward and backward).

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use wardrobe::nn::conv::{ConvBackward, ConvForward};
use wardrobe::nn::layer::{Backward, Forward, Layer, param_count};
use wardrobe::nn::model::Model;
use wardrobe::nn::plan::Step;
use wardrobe::nn::spec::ModelSpec;

const N: usize = 32;

struct Buffers {
    params: Vec<f32>,
    x: Vec<f32>,
    y: Vec<f32>,
    dy: Vec<f32>,
    dx: Vec<f32>,
    dparams: Vec<f32>,
    scratch: Vec<f32>,
}

fn buffers(layer: &dyn Layer) -> Buffers {
    let (inp, out) = (N * layer.input_shape().size(), N * layer.output_shape().size());
    let wave = |len: usize, k: f32| (0..len).map(|i| ((i as f32) * k).sin()).collect::<Vec<f32>>();
    Buffers {
        params: wave(param_count(layer), 0.37),
        x: wave(inp, 0.11),
        y: vec![0.0; out],
        dy: wave(out, 0.07),
        dx: vec![0.0; inp],
        dparams: vec![0.0; param_count(layer)],
        scratch: vec![0.0; layer.scratch_len(N)],
    }
}

fn bench_layers(c: &mut Criterion) {
    for preset in ["seed", "default"] {
        let model = Model::new(ModelSpec::preset(preset).unwrap(), 10).unwrap();
        for (i, layer) in model.layers().iter().enumerate() {
            bench_layer(c, &format!("{preset}/{i}_{}", layer.kind()), layer.as_ref(), i > 0);
        }
    }
}

/// Forward and backward of one layer; `dx` says whether backward computes the input gradient.
fn bench_layer(c: &mut Criterion, name: &str, layer: &dyn Layer, dx: bool) {
    let mut b = buffers(layer);
    c.bench_function(&format!("{name}/forward"), |bench| {
        bench.iter(|| {
            layer.forward(Forward {
                n: N,
                params: &b.params,
                x: &b.x,
                y: &mut b.y,
                scratch: &mut b.scratch,
                train: true,
                seed: 1,
            });
            black_box(&b.y);
        })
    });
    c.bench_function(&format!("{name}/backward"), |bench| {
        bench.iter(|| {
            let mut dy = b.dy.clone();
            layer.backward(Backward {
                n: N,
                params: &b.params,
                x: &b.x,
                y: &b.y,
                dy: &mut dy,
                dx: dx.then_some(&mut b.dx[..]),
                dparams: &mut b.dparams,
                scratch: &mut b.scratch,
            });
            black_box(&b.dx);
        })
    });
}

fn bench_fused_steps(c: &mut Criterion) {
    let model = Model::new(ModelSpec::seed(), 10).unwrap();
    for train in [false, true] {
        for step in model.plan(train).steps() {
            let Step::ConvPool { conv, problem, forward, backward } = step else { continue };
            let mut b = buffers(model.layers()[*conv].as_ref());
            let (kernel, bias) = b.params.split_at(problem.kernel_len());
            let mut pooled = vec![0.0; N * problem.step_output().size()];
            let dpooled: Vec<f32> = (0..pooled.len()).map(|j| ((j as f32) * 0.05).sin()).collect();
            let mut scratch = vec![0.0; forward.scratch_len(N).max(backward.as_ref().map_or(0, |b| b.scratch_len(N)))];
            let mut kept = vec![0.0; forward.kept_len()];
            let mode = if train { "training" } else { "inference" };
            c.bench_function(&format!("{conv}_{}+pool/{mode}", forward.name()), |bench| {
                bench.iter(|| {
                    let (x, y) = (&b.x, &mut pooled);
                    forward.forward(ConvForward { n: N, x, kernel, bias, y, scratch: &mut scratch, kept: &mut kept });
                    if let Some(backward) = backward {
                        let (dkernel, dbias) = b.dparams.split_at_mut(problem.kernel_len());
                        backward.backward(ConvBackward {
                            n: N,
                            x: &b.x,
                            y: &pooled,
                            dy: &mut dpooled.clone(),
                            kernel,
                            dkernel,
                            dbias,
                            dx: None,
                            scratch: &mut scratch,
                        });
                    }
                    black_box(&pooled);
                })
            });
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(300)).measurement_time(std::time::Duration::from_secs(1));
    targets = bench_layers, bench_fused_steps
}
criterion_main!(benches);
