//! The textbook convolution: every output is the sum over the kernel taps inside the image,
//! written as loops over images, output pixels, filters, taps and channels, with no layout
//! tricks. Slow and obviously right: every other algorithm is tested against it, and
//! `--kernels reference` runs it. Any unpooled problem.

use crate::nn::activation::add_bias_activate;
use crate::nn::conv::{BackwardAlgorithm, ConvBackward, ConvForward, ConvProblem, ForwardAlgorithm};

/// The textbook loops for an unpooled problem.
pub struct Reference {
    p: ConvProblem,
}

/// The forward pass of any unpooled problem.
pub fn forward_for(p: &ConvProblem) -> Option<Box<dyn ForwardAlgorithm>> {
    (!p.pool).then(|| Box::new(Reference { p: *p }) as Box<dyn ForwardAlgorithm>)
}

/// The backward pass of any unpooled problem.
pub fn backward_for(p: &ConvProblem) -> Option<Box<dyn BackwardAlgorithm>> {
    (!p.pool).then(|| Box::new(Reference { p: *p }) as Box<dyn BackwardAlgorithm>)
}

impl Reference {
    /// Calls `visit(x index, kernel index, y index)` for every multiply-add of `n` images:
    /// `y[b][oy][ox][f] += x[b][oy + ky − pad][ox + kx − pad][c] · kernel[ky][kx][c][f]`.
    fn each_tap(&self, n: usize, mut visit: impl FnMut(usize, usize, usize)) {
        let (p, out) = (&self.p, self.p.output());
        let (c, f) = (p.input.c, p.filters);
        for b in 0..n {
            for oy in 0..out.h {
                for ox in 0..out.w {
                    let yi = ((b * out.h + oy) * out.w + ox) * f;
                    for ky in 0..p.kernel {
                        for kx in 0..p.kernel {
                            let (iy, ix) = ((oy + ky).wrapping_sub(p.pad), (ox + kx).wrapping_sub(p.pad));
                            if iy >= p.input.h || ix >= p.input.w {
                                continue;
                            }
                            let xi = ((b * p.input.h + iy) * p.input.w + ix) * c;
                            for ch in 0..c {
                                for fi in 0..f {
                                    visit(xi + ch, ((ky * p.kernel + kx) * c + ch) * f + fi, yi + fi);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

impl ForwardAlgorithm for Reference {
    fn name(&self) -> &'static str {
        "reference"
    }

    fn scratch_len(&self, _n: usize) -> usize {
        0
    }

    fn forward(&self, f: ConvForward) {
        let y = &mut f.y[..f.n * self.p.output().size()];
        y.fill(0.0);
        self.each_tap(f.n, |xi, ki, yi| y[yi] += f.x[xi] * f.kernel[ki]);
        add_bias_activate(y, f.bias, self.p.activation);
    }
}

impl BackwardAlgorithm for Reference {
    fn name(&self) -> &'static str {
        "reference"
    }

    fn scratch_len(&self, _n: usize) -> usize {
        0
    }

    fn backward(&self, mut b: ConvBackward) {
        if let Some(dx) = b.dx.as_deref_mut() {
            dx[..b.n * self.p.input.size()].fill(0.0);
        }
        let (x, dy, kernel) = (b.x, &*b.dy, b.kernel);
        self.each_tap(b.n, |xi, ki, yi| {
            b.dkernel[ki] += x[xi] * dy[yi];
            if let Some(dx) = b.dx.as_deref_mut() {
                dx[xi] += kernel[ki] * dy[yi];
            }
        });
    }
}
