//! A valid 3×3 convolution by Winograd's minimal filtering F(2×2, 3×3) (Lavin & Gray, 2015),
//! with AVX-512: either followed by 2×2 max pooling (inference) or writing its whole output.
//! A same-padded 3×3 convolution is the valid one of each image copied into a [`Border`] of
//! zeros one pixel wide.
//!
//! Each 2×2 output tile — when pooling, exactly one pooling window — comes from its 4×4 input
//! patch `d` and each 3×3 kernel slice `g`, transformed (`Bᵀ d B`, `G g Gᵀ`), multiplied
//! element-wise and summed over input channels at 16 positions, and transformed back (`Aᵀ m A`)
//! into the tile's four convolution outputs: all of them, or only their maximum. The element-wise
//! products — a `[tiles × C] · [C × F]` matrix product per position — take 16 multiply-adds per
//! tile, channel and filter where the direct convolution takes 36.
//!
//! Layouts (per image): transformed input `u[position][window][channel]`, transformed kernel
//! `v[position][channel][filter]`, products `m[window][position][filter]`.

use crate::nn::activation::Activation;
use crate::nn::conv::{ConvForward, ConvProblem, ForwardAlgorithm};
use crate::nn::layer::Shape;
use crate::nn::vector::{LANES, avx512f};

/// Positions of a transformed 4×4 tile.
pub const POSITIONS: usize = 16;

/// What a Winograd convolution writes for each 2×2 output tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The tile's maximum (2×2 max pooling), plus bias, through the activation.
    Pooled,
    /// All four outputs, plus bias, through the activation (the output height and width must be
    /// even).
    Full,
}

/// Where a Winograd convolution reads and writes.
#[derive(Debug, Clone, Copy)]
pub struct Winograd {
    /// One input image (channels a multiple of 16).
    input: Shape,
    /// Filters (a multiple of 16).
    filters: usize,
}

impl Winograd {
    /// The Winograd form of a valid 3×3 convolution of `input` with `filters` filters, where
    /// this CPU has AVX-512F: for whole vectors of channels and filters, and at least one tile.
    pub fn new(input: Shape, filters: usize) -> Option<Winograd> {
        let whole = input.c.is_multiple_of(LANES) && filters.is_multiple_of(LANES);
        (whole && input.h >= 4 && input.w >= 4 && avx512f()).then_some(Winograd { input, filters })
    }

    /// The Winograd form of a valid 3×3 convolution whose output tiles cover its whole output
    /// (even output height and width), for `Output::Full`.
    pub fn covering(input: Shape, filters: usize) -> Option<Winograd> {
        let even = input.h.is_multiple_of(2) && input.w.is_multiple_of(2);
        Winograd::new(input, filters).filter(|_| even)
    }

    /// The pooled output shape.
    pub fn pooled(&self) -> Shape {
        Shape::new((self.input.h - 2) / 2, (self.input.w - 2) / 2, self.filters)
    }

    /// One input image.
    pub fn input(&self) -> Shape {
        self.input
    }

    /// Filters.
    pub fn filters(&self) -> usize {
        self.filters
    }

    /// Output tiles (pooling windows) per image.
    pub fn windows(&self) -> usize {
        let pooled = self.pooled();
        pooled.h * pooled.w
    }

    /// Lengths of the transformed kernel, transformed input and products, in that order.
    fn parts(&self) -> [usize; 3] {
        let (c, f, w) = (self.input.c, self.filters, self.windows());
        [POSITIONS * c * f, POSITIONS * w * c, w * POSITIONS * f]
    }

    /// Values of a transformed kernel.
    pub fn kernel_len(&self) -> usize {
        self.parts()[0]
    }

    /// Values of one image's transformed input.
    pub fn transformed_input_len(&self) -> usize {
        self.parts()[1]
    }

    /// Values of one image's products ([`Winograd::multiply`]).
    pub fn products_len(&self) -> usize {
        self.parts()[2]
    }

    /// Working values [`Winograd::apply`] needs (transformed input and products).
    pub fn work_len(&self) -> usize {
        self.parts()[1] + self.parts()[2]
    }

    /// Scratch values `forward` needs: a transformed kernel and the working values.
    pub fn scratch_len(&self) -> usize {
        self.kernel_len() + self.work_len()
    }

    /// Values [`Winograd::forward_kept`] keeps between calls: a copy of the kernel and its
    /// transform.
    pub fn kept_len(&self) -> usize {
        9 * self.input.c * self.filters + self.kernel_len()
    }

    /// `y = pool(act(conv(x) + bias))` (`Output::Pooled`) or `y = act(conv(x) + bias)`
    /// (`Output::Full`, only for a `covering` convolution) for `n` images; `kernel` is
    /// `[3, 3, C, filters]`.
    pub fn forward(
        &self,
        x: &[f32],
        n: usize,
        kernel: &[f32],
        (bias, relu, output): (&[f32], bool, Output),
        y: &mut [f32],
        scratch: &mut [f32],
    ) {
        let (v, work) = scratch[..self.scratch_len()].split_at_mut(self.kernel_len());
        self.prepare(kernel, v);
        self.apply_all(x, n, v, (bias, relu, output), y, work);
    }

    /// `forward` for a kernel that seldom changes (inference): the transformed kernel is kept in
    /// `kept` ([`Winograd::kept_len`] values) beside a copy of the kernel it came from, and made
    /// again only when `kernel` differs from that copy, bit for bit. `kept` must hold nothing
    /// else; `work` needs [`Winograd::work_len`] values.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_kept(
        &self,
        x: &[f32],
        n: usize,
        kernel: &[f32],
        (bias, relu, output): (&[f32], bool, Output),
        y: &mut [f32],
        work: &mut [f32],
        kept: &mut [f32],
    ) {
        assert!(kept.len() == self.kept_len(), "Winograd kept values of the wrong size");
        let (copy, v) = kept.split_at_mut(kernel.len());
        if bytes(copy) != bytes(kernel) {
            self.prepare(kernel, v);
            copy.copy_from_slice(kernel);
        }
        self.apply_all(x, n, v, (bias, relu, output), y, work);
    }

    /// `n` images of `x` through the convolution whose transformed kernel is `v`, into `y`.
    fn apply_all(
        &self,
        x: &[f32],
        n: usize,
        v: &[f32],
        (bias, relu, output): (&[f32], bool, Output),
        y: &mut [f32],
        work: &mut [f32],
    ) {
        let (in_size, out_size) = (self.input.size(), self.output_size(output));
        assert!(x.len() >= n * in_size && y.len() >= n * out_size, "Winograd buffers too small");
        for (image, out) in x.chunks_exact(in_size).zip(y.chunks_exact_mut(out_size)).take(n) {
            self.apply(image, v, (bias, relu, output), out, work);
        }
    }

    /// Values of one image's output.
    fn output_size(&self, output: Output) -> usize {
        match output {
            Output::Pooled => self.pooled().size(),
            Output::Full => 4 * self.pooled().size(),
        }
    }

    /// Transforms `kernel` (`[3, 3, C, filters]`) into `v` ([`Winograd::kernel_len`] values),
    /// for [`Winograd::apply`].
    pub fn prepare(&self, kernel: &[f32], v: &mut [f32]) {
        assert!(kernel.len() == 9 * self.input.c * self.filters, "Winograd kernel of the wrong size");
        assert!(v.len() == self.kernel_len(), "Winograd transformed kernel of the wrong size");
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512F is present (`new`); the lengths were just checked.
        unsafe {
            avx512::transform_kernel(self, kernel, v)
        };
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("the Winograd convolution is only chosen where AVX-512F is present: {}", v.len());
    }

    /// One image's transformed input, `u[position][window][channel]` (`POSITIONS × windows × C`
    /// values).
    pub fn transform_input(&self, image: &[f32], u: &mut [f32]) {
        assert!(image.len() == self.input.size() && u.len() == self.parts()[1], "Winograd input sizes");
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512F is present (`new`); the lengths were just checked.
        unsafe {
            avx512::transform_input(self, image, u)
        };
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("the Winograd convolution is only chosen where AVX-512F is present: {}", u.len());
    }

    /// `m[window][position][f] = Σ_c u[position][window][c] · v[position][c][f]`: one image's
    /// transformed input `u` ([`Winograd::transform_input`]) times the transformed kernel `v`
    /// ([`Winograd::prepare`]) at every position, summed over channels.
    pub fn multiply(&self, u: &[f32], v: &[f32], m: &mut [f32]) {
        let [v_len, u_len, m_len] = self.parts();
        assert!(u.len() == u_len && v.len() == v_len && m.len() == m_len, "Winograd product sizes");
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512F is present (`new`); the lengths were just checked.
        unsafe {
            avx512::multiply(self, u, v, m)
        };
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("the Winograd convolution is only chosen where AVX-512F is present: {}", m.len());
    }

    /// One `image` through the convolution whose transformed kernel ([`Winograd::prepare`]) is
    /// `v`, into `out`, as `forward` describes; `work` needs [`Winograd::work_len`] values.
    pub fn apply(
        &self,
        image: &[f32],
        v: &[f32],
        (bias, relu, output): (&[f32], bool, Output),
        out: &mut [f32],
        work: &mut [f32],
    ) {
        assert!(image.len() == self.input.size() && out.len() == self.output_size(output), "Winograd image sizes");
        assert!(bias.len() == self.filters && v.len() == self.kernel_len(), "Winograd parameters of the wrong size");
        let (u, m) = work[..self.work_len()].split_at_mut(self.parts()[1]);
        self.transform_input(image, u);
        self.multiply(u, v, m);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512F is present (`new`); the buffers have the lengths of `parts()`.
        unsafe {
            avx512::transform_output(self, m, bias, relu, output, out)
        };
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("the Winograd convolution is only chosen where AVX-512F is present: {}", u.len() + m.len());
    }
}

/// The bytes of `values`, to compare them bit for bit in one `memcmp`.
fn bytes(values: &[f32]) -> &[u8] {
    // SAFETY: any four bytes are a valid `u8` each; the length covers exactly the same memory,
    // which stays borrowed for the result's lifetime.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values)) }
}

/// A zero border one pixel wide around each image of a same-padded 3×3 convolution.
#[derive(Debug, Clone, Copy)]
pub struct Border {
    /// One image without its border.
    image: Shape,
}

impl Border {
    /// One image without its border.
    pub fn image(&self) -> Shape {
        self.image
    }

    /// The image with its border.
    pub fn bordered(&self) -> Shape {
        Shape::new(self.image.h + 2, self.image.w + 2, self.image.c)
    }

    /// Copies `image` into the middle of `out` ([`Border::bordered`]) and zeroes the rest.
    pub fn add(&self, image: &[f32], out: &mut [f32]) {
        let (row, c) = (self.image.w * self.image.c, self.image.c);
        let out_row = row + 2 * c;
        out[..out_row + c].fill(0.0);
        for (src, dst) in image.chunks_exact(row).zip(out[out_row + c..].chunks_exact_mut(out_row)) {
            dst[..row].copy_from_slice(src);
            dst[row..].fill(0.0);
        }
        out[(self.image.h + 1) * out_row + c..].fill(0.0);
    }

    /// The middle of `bordered` into `image`.
    pub fn remove(&self, bordered: &[f32], image: &mut [f32]) {
        let (row, c) = (self.image.w * self.image.c, self.image.c);
        for (src, dst) in bordered[row + 3 * c..].chunks(row + 2 * c).zip(image.chunks_exact_mut(row)) {
            dst.copy_from_slice(&src[..row]);
        }
    }
}

/// The valid Winograd convolution of a problem, unpooled 3×3, whose output tiles cover the
/// output (channels and filters whole vectors, even output sides), where this CPU runs it; for
/// a same-padded problem, that of its bordered images, with the [`Border`].
pub fn covering_problem(p: &ConvProblem) -> Option<(Winograd, Option<Border>)> {
    let border = (p.pad == 1).then_some(Border { image: p.input });
    let input = border.map_or(p.input, |b| b.bordered());
    (!p.pool && p.pad <= 1 && p.kernel == 3)
        .then(|| Winograd::covering(input, p.filters))
        .flatten()
        .map(|w| (w, border))
}

/// The forward pass of an unpooled 3×3 problem, valid or same-padded, whose output tiles cover
/// the output (channels and filters whole vectors, even output sides), where this CPU runs it.
pub fn forward_for(p: &ConvProblem) -> Option<Box<dyn ForwardAlgorithm>> {
    covering_problem(p).map(|(winograd, border)| {
        Box::new(Full { winograd, border, relu: p.activation == Activation::Relu }) as Box<dyn ForwardAlgorithm>
    })
}

/// Winograd writing the whole output.
struct Full {
    winograd: Winograd,
    border: Option<Border>,
    relu: bool,
}

impl ForwardAlgorithm for Full {
    fn name(&self) -> &'static str {
        "winograd"
    }

    fn scratch_len(&self, _n: usize) -> usize {
        self.winograd.scratch_len() + self.border.map_or(0, |b| b.bordered().size())
    }

    fn forward(&self, f: ConvForward) {
        let settings = (f.bias, self.relu, Output::Full);
        let Some(border) = self.border else {
            return self.winograd.forward(f.x, f.n, f.kernel, settings, f.y, f.scratch);
        };
        let (v, rest) = f.scratch.split_at_mut(self.winograd.kernel_len());
        let (work, bordered) = rest.split_at_mut(self.winograd.work_len());
        let bordered = &mut bordered[..border.bordered().size()];
        self.winograd.prepare(f.kernel, v);
        let out_size = 4 * self.winograd.pooled().size();
        for (image, out) in f.x.chunks_exact(border.image.size()).zip(f.y.chunks_exact_mut(out_size)).take(f.n) {
            border.add(image, bordered);
            self.winograd.apply(bordered, v, settings, out, work);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Output, POSITIONS, Winograd};
    use crate::nn::vector::{LANES, groups, load, store, transpose};
    use std::arch::x86_64::*;

    /// `Bᵀ · d` for four vectors (rows or columns of a tile): `Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn input_rows([d0, d1, d2, d3]: [__m512; 4]) -> [__m512; 4] {
        [_mm512_sub_ps(d0, d2), _mm512_add_ps(d1, d2), _mm512_sub_ps(d2, d1), _mm512_sub_ps(d1, d3)]
    }

    /// `G · g` for three vectors (taps of a kernel column or row): `G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn kernel_rows([a, b, c]: [__m512; 3]) -> [__m512; 4] {
        let (half, outer) = (_mm512_set1_ps(0.5), _mm512_add_ps(a, c));
        [a, _mm512_mul_ps(half, _mm512_add_ps(outer, b)), _mm512_mul_ps(half, _mm512_sub_ps(outer, b)), c]
    }

    /// `Aᵀ · m` for four vectors: `Aᵀ = [1 1 1 0; 0 1 −1 −1]`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn output_rows([m0, m1, m2, m3]: [__m512; 4]) -> [__m512; 2] {
        [_mm512_add_ps(_mm512_add_ps(m0, m1), m2), _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3)]
    }

    /// `v[position][c][f] = (G g Gᵀ)[position]` for every kernel slice `g = kernel[.., .., c, f]`,
    /// 16 filters at a time.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transform_kernel(g: &Winograd, kernel: &[f32], v: &mut [f32]) {
        let (c, f) = (g.input.c, g.filters);
        for channel in 0..c {
            for first in (0..f).step_by(LANES) {
                let mut rows = [[_mm512_setzero_ps(); 4]; 3];
                for (ky, row) in rows.iter_mut().enumerate() {
                    let tap = |kx: usize| load(kernel, ((ky * 3 + kx) * c + channel) * f + first);
                    *row = kernel_rows([tap(0), tap(1), tap(2)]);
                }
                for (j, column) in transpose(rows).into_iter().enumerate() {
                    for (i, value) in kernel_rows(column).into_iter().enumerate() {
                        store(v, ((4 * i + j) * c + channel) * f + first, value);
                    }
                }
            }
        }
    }

    /// `u[position][window][c] = (Bᵀ d B)[position]`, `d` the window's 4×4 input patch.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transform_input(g: &Winograd, image: &[f32], u: &mut [f32]) {
        let (c, windows, pooled) = (g.input.c, g.windows(), g.pooled());
        let row = g.input.w * c;
        for window in 0..windows {
            let corner = 2 * (window / pooled.w) * row + 2 * (window % pooled.w) * c;
            for channel in (0..c).step_by(LANES) {
                let mut columns = [[_mm512_setzero_ps(); 4]; 4];
                for (j, column) in columns.iter_mut().enumerate() {
                    let d = |i: usize| load(image, corner + i * row + j * c + channel);
                    *column = input_rows([d(0), d(1), d(2), d(3)]);
                }
                for (i, tile_row) in transpose(columns).into_iter().enumerate() {
                    for (j, value) in input_rows(tile_row).into_iter().enumerate() {
                        store(u, ((4 * i + j) * windows + window) * c + channel, value);
                    }
                }
            }
        }
    }

    /// Calls `products::<V, N>` for a run of `N` (`1..=6`) windows, `N` a constant.
    macro_rules! with_windows {
        ($n:expr, $v:literal, $args:expr) => {
            match $n {
                1 => products::<$v, 1>($args),
                2 => products::<$v, 2>($args),
                3 => products::<$v, 3>($args),
                4 => products::<$v, 4>($args),
                5 => products::<$v, 5>($args),
                _ => products::<$v, 6>($args),
            }
        };
    }

    /// A run of windows and a group of filters at one position.
    struct Run<'a> {
        g: &'a Winograd,
        u: &'a [f32],
        v: &'a [f32],
        position: usize,
        window: usize,
        first: usize,
    }

    /// `m[window][position][f] = Σ_c u[position][window][c] · v[position][c][f]`: per position,
    /// runs of up to 6 windows (as equal as possible) against groups of 4, 2 or 1 vectors of
    /// filters.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn multiply(g: &Winograd, u: &[f32], v: &[f32], m: &mut [f32]) {
        let windows = g.windows();
        let run_length = windows.div_ceil(windows.div_ceil(6));
        for position in 0..POSITIONS {
            for (first, vectors) in groups(g.filters, LANES, &[4, 2, 1]) {
                for window in (0..windows).step_by(run_length) {
                    let run = Run { g, u, v, position, window, first };
                    let (count, args) = ((windows - window).min(run_length), (&run, &mut *m));
                    match vectors {
                        4 => with_windows!(count, 4, args),
                        2 => with_windows!(count, 2, args),
                        _ => with_windows!(count, 1, args),
                    }
                }
            }
        }
    }

    /// `N × V` accumulators: for each channel, `V` vectors of transformed weights meet `N`
    /// broadcast transformed inputs.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn products<const V: usize, const N: usize>((r, m): (&Run, &mut [f32])) {
        let (c, f, windows) = (r.g.input.c, r.g.filters, r.g.windows());
        let inputs = (r.position * windows + r.window) * c;
        let weights = r.position * c * f + r.first;
        assert!(inputs + N * c <= r.u.len() && weights + (c - 1) * f + V * LANES <= r.v.len());
        let mut acc = [[_mm512_setzero_ps(); V]; N];
        // SAFETY: the reads stay inside the ranges just checked: windows `< N` of `c` inputs
        // each, and channels `< c` of `V` vectors each.
        unsafe {
            let (u, v) = (r.u.as_ptr().add(inputs), r.v.as_ptr().add(weights));
            for channel in 0..c {
                let w: [__m512; V] = std::array::from_fn(|k| _mm512_loadu_ps(v.add(channel * f + k * LANES)));
                for (n, acc) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(*u.add(n * c + channel));
                    for (a, w) in acc.iter_mut().zip(&w) {
                        *a = _mm512_fmadd_ps(x, *w, *a);
                    }
                }
            }
        }
        for (n, acc) in acc.iter().enumerate() {
            for (k, a) in acc.iter().enumerate() {
                store(m, ((r.window + n) * POSITIONS + r.position) * f + r.first + k * LANES, *a);
            }
        }
    }

    /// For every window: its four outputs `Aᵀ m A` plus bias, through ReLU when asked; either
    /// their maximum or all four into `y`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transform_output(
        g: &Winograd,
        m: &[f32],
        bias: &[f32],
        relu: bool,
        output: Output,
        y: &mut [f32],
    ) {
        let (f, tiles_wide) = (g.filters, g.pooled().w);
        for window in 0..g.windows() {
            for first in (0..f).step_by(LANES) {
                let mut columns = [[_mm512_setzero_ps(); 2]; 4];
                for (j, column) in columns.iter_mut().enumerate() {
                    let at = |i: usize| load(m, (window * POSITIONS + 4 * i + j) * f + first);
                    *column = output_rows([at(0), at(1), at(2), at(3)]);
                }
                let [upper, lower] = transpose(columns);
                let (top, bottom) = (output_rows(upper), output_rows(lower));
                let b = load(bias, first);
                match output {
                    Output::Pooled => {
                        let max = _mm512_max_ps(_mm512_max_ps(top[0], top[1]), _mm512_max_ps(bottom[0], bottom[1]));
                        store(y, window * f + first, finish(max, b, relu));
                    }
                    Output::Full => {
                        let (ty, tx) = (window / tiles_wide, window % tiles_wide);
                        for (dy, row) in [top, bottom].into_iter().enumerate() {
                            for (dx, value) in row.into_iter().enumerate() {
                                let pixel = (2 * ty + dy) * 2 * tiles_wide + 2 * tx + dx;
                                store(y, pixel * f + first, finish(value, b, relu));
                            }
                        }
                    }
                }
            }
        }
    }

    /// `v + b`, through ReLU when asked.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn finish(v: __m512, b: __m512, relu: bool) -> __m512 {
        let v = _mm512_add_ps(v, b);
        if relu { _mm512_max_ps(v, _mm512_setzero_ps()) } else { v }
    }
}
