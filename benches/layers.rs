//! Forward and backward of each seed-CNN layer at its real shapes (a 32-image sub-batch, one
//! thread's share of a batch of 64), so regressions show per layer; and, for a convolution
//! followed by 2×2 max pooling, the two as one inference pass and, for the first layer, as one
//! training pass (forward and backward).

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use wardrobe::nn::layer::{Backward, Forward, Layer, param_count};
use wardrobe::nn::model::Model;
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
    let model = Model::new(ModelSpec::seed(), 10).unwrap();
    for (i, layer) in model.layers().iter().enumerate() {
        let layer = layer.as_ref();
        let mut b = buffers(layer);
        let name = format!("{i}_{}", layer.kind());
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
        if let Some(pool) = model.layers().get(i + 1).filter(|next| next.max_pool_window() == Some(2)) {
            let mut pooled = vec![0.0; N * pool.output_shape().size()];
            c.bench_function(&format!("{name}+{}/inference", pool.kind()), |bench| {
                bench.iter(|| {
                    let fused = layer.forward_pooled(Forward {
                        n: N,
                        params: &b.params,
                        x: &b.x,
                        y: &mut pooled,
                        scratch: &mut b.scratch,
                        train: false,
                        seed: 1,
                    });
                    black_box((fused, &pooled));
                })
            });
            if i == 0 && layer.trains_pooled() {
                let dpooled: Vec<f32> = (0..pooled.len()).map(|j| ((j as f32) * 0.05).sin()).collect();
                c.bench_function(&format!("{name}+{}/training", pool.kind()), |bench| {
                    bench.iter(|| {
                        let forward = Forward {
                            n: N,
                            params: &b.params,
                            x: &b.x,
                            y: &mut pooled,
                            scratch: &mut b.scratch,
                            train: true,
                            seed: 1,
                        };
                        assert!(layer.forward_pooled(forward));
                        let mut dy = dpooled.clone();
                        layer.backward_pooled(Backward {
                            n: N,
                            params: &b.params,
                            x: &b.x,
                            y: &pooled,
                            dy: &mut dy,
                            dx: None,
                            dparams: &mut b.dparams,
                            scratch: &mut b.scratch,
                        });
                        black_box(&b.dparams);
                    })
                });
            }
        }
        c.bench_function(&format!("{name}/backward"), |bench| {
            bench.iter(|| {
                let mut dy = b.dy.clone();
                layer.backward(Backward {
                    n: N,
                    params: &b.params,
                    x: &b.x,
                    y: &b.y,
                    dy: &mut dy,
                    dx: (i > 0).then_some(&mut b.dx[..]),
                    dparams: &mut b.dparams,
                    scratch: &mut b.scratch,
                });
                black_box(&b.dx);
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(300)).measurement_time(std::time::Duration::from_secs(1));
    targets = bench_layers
}
criterion_main!(benches);
