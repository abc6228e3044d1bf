//! The tiles of a 3×3 convolution by Winograd's minimal filtering, shared by the forward
//! algorithm (`winograd`), the fused convolution + pooling (`conv_pool`) and the gradients
//! (`winograd_gradient`): a valid 3×3 convolution by Winograd's minimal filtering (Lavin & Gray, 2015), F(2×2, 3×3) or
//! F(4×4, 3×3), with AVX-512: either followed by 2×2 max pooling (inference, F(2×2, 3×3)) or
//! writing its whole output. A same-padded 3×3 convolution reads zeros for the pixels of its
//! tiles' patches that fall in the one-pixel padding around each image.
//!
//! Each `t×t` output tile (`t` = 2 or 4) comes from its `(t+2)×(t+2)` input patch `d` and each
//! 3×3 kernel slice `g`, transformed (`Bᵀ d B`, `G g Gᵀ`), multiplied element-wise and summed
//! over input channels at `(t+2)²` positions, and transformed back (`Aᵀ m A`) into the tile's
//! outputs: all of them, or (`t` = 2, one pooling window per tile) only their maximum. The
//! element-wise products — a `[tiles × C] · [C × F]` matrix product per position — take 4
//! multiply-adds per output, channel and filter for `t` = 2 and 2.25 for `t` = 4, where the
//! direct convolution takes 9; the larger tile's transforms use larger constants and round a
//! little more (still within the differential test's tolerance). Output sides that are
//! multiples of 4 take `t` = 4, other even ones `t` = 2.
//!
//! Layouts (per image): transformed input `u[position][tile][channel]`, transformed kernel
//! `v[position][channel][filter]`, products `m[tile][position][filter]`.

use crate::nn::conv::ConvProblem;
use crate::nn::layer::Shape;
use crate::nn::vector::{LANES, avx512f};

/// Calls `avx512::$function::<2>` or `::<4>` by the output tile side of `$g` (a [`Winograd`]).
macro_rules! by_tile {
    ($g:expr, $function:ident($($argument:expr),*)) => {
        match $g.tile() {
            2 => avx512::$function::<2>($($argument),*),
            _ => avx512::$function::<4>($($argument),*),
        }
    };
}
pub(crate) use by_tile;

/// What a Winograd convolution writes for each output tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The maximum of each 2×2 tile (2×2 max pooling), plus bias, through the activation.
    Pooled,
    /// All outputs, plus bias, through the activation (the tiles must cover the output).
    Full,
}

/// Where a Winograd convolution reads and writes.
#[derive(Debug, Clone, Copy)]
pub struct Winograd {
    /// One input image (channels a multiple of 16).
    input: Shape,
    /// Zero padding on each side: 0 (valid) or 1 (same).
    pad: usize,
    /// Filters (a multiple of 16).
    filters: usize,
    /// Side of an output tile: 2 or 4.
    tile: usize,
}

impl Winograd {
    /// The F(2×2, 3×3) form of a valid 3×3 convolution of `input` with `filters` filters, where
    /// this CPU has AVX-512F: for whole vectors of channels and filters, and at least one tile.
    pub fn new(input: Shape, filters: usize) -> Option<Winograd> {
        Winograd::with_tile(input, 0, filters, 2)
    }

    /// `new` with padding `pad` and output tiles of side `tile` (2 or 4).
    fn with_tile(input: Shape, pad: usize, filters: usize, tile: usize) -> Option<Winograd> {
        Winograd::geometry(input, pad, filters, tile).filter(|_| avx512f())
    }

    /// The tiles of `with_tile` whatever this CPU runs: whole vectors of channels and filters,
    /// padding 0 or 1, room for one patch.
    fn geometry(input: Shape, pad: usize, filters: usize, tile: usize) -> Option<Winograd> {
        let whole = input.c.is_multiple_of(LANES) && filters.is_multiple_of(LANES);
        let fits = pad <= 1 && input.h + 2 * pad >= tile + 2 && input.w + 2 * pad >= tile + 2;
        whole.then_some(Winograd { input, pad, filters, tile }).filter(|_| fits)
    }

    /// The Winograd form of a 3×3 convolution with padding `pad` (0 or 1) whose output tiles
    /// cover its whole output (even output height and width), for `Output::Full`: tiles of
    /// side 4 where both output sides are multiples of 4, else of side 2.
    pub fn covering(input: Shape, pad: usize, filters: usize) -> Option<Winograd> {
        let (h, w) = ((input.h + 2 * pad).saturating_sub(2), (input.w + 2 * pad).saturating_sub(2));
        let tile = if h.is_multiple_of(4) && w.is_multiple_of(4) { 4 } else { 2 };
        let covered = h.is_multiple_of(tile) && w.is_multiple_of(tile);
        Winograd::with_tile(input, pad, filters, tile).filter(|_| covered)
    }

    /// The same tiles over `channels` input channels and `filters` filters (the input gradient's
    /// products swap them).
    pub fn with_channels(&self, channels: usize, filters: usize) -> Option<Winograd> {
        Winograd::with_tile(Shape::new(self.input.h, self.input.w, channels), self.pad, filters, self.tile)
    }

    /// Height and width of the output.
    fn output_sides(&self) -> (usize, usize) {
        (self.input.h + 2 * self.pad - 2, self.input.w + 2 * self.pad - 2)
    }

    /// The pooled output shape (2×2 tiles, one pooling window each).
    pub fn pooled(&self) -> Shape {
        let (h, w) = self.output_sides();
        Shape::new(h / 2, w / 2, self.filters)
    }

    /// One input image.
    pub fn input(&self) -> Shape {
        self.input
    }

    /// Zero padding on each side: 0 (valid) or 1 (same).
    pub fn pad(&self) -> usize {
        self.pad
    }

    /// Filters.
    pub fn filters(&self) -> usize {
        self.filters
    }

    /// Side of an output tile: 2 or 4.
    pub fn tile(&self) -> usize {
        self.tile
    }

    /// Positions of a transformed tile: `(tile + 2)²`.
    pub fn positions(&self) -> usize {
        (self.tile + 2) * (self.tile + 2)
    }

    /// Output tiles across one image.
    pub fn tiles_wide(&self) -> usize {
        self.output_sides().1 / self.tile
    }

    /// Output tiles per image.
    pub fn tiles(&self) -> usize {
        self.output_sides().0 / self.tile * self.tiles_wide()
    }

    /// Lengths of the transformed kernel, transformed input and products, in that order.
    fn parts(&self) -> [usize; 3] {
        let (c, f, t, p) = (self.input.c, self.filters, self.tiles(), self.positions());
        [p * c * f, p * t * c, t * p * f]
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
    pub fn output_size(&self, output: Output) -> usize {
        match output {
            Output::Pooled => self.pooled().size(),
            Output::Full => self.tiles() * self.tile * self.tile * self.filters,
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
            by_tile!(self, transform_kernel(self, kernel, v))
        };
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("the Winograd convolution is only chosen where AVX-512F is present: {}", v.len());
    }

    /// One image's transformed input, `u[position][tile][channel]` (`positions × tiles × C`
    /// values).
    pub fn transform_input(&self, image: &[f32], u: &mut [f32]) {
        assert!(image.len() == self.input.size() && u.len() == self.parts()[1], "Winograd input sizes");
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512F is present (`new`); the lengths were just checked.
        unsafe {
            by_tile!(self, transform_input(self, image, u))
        };
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("the Winograd convolution is only chosen where AVX-512F is present: {}", u.len());
    }

    /// `m[tile][position][f] = Σ_c u[position][tile][c] · v[position][c][f]`: one image's
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
        assert!(output == Output::Full || self.tile == 2, "Winograd pooling takes 2×2 tiles");
        let (u, m) = work[..self.work_len()].split_at_mut(self.parts()[1]);
        self.transform_input(image, u);
        self.multiply(u, v, m);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512F is present (`new`); the buffers have the lengths of `parts()`.
        unsafe {
            by_tile!(self, transform_output(self, m, (bias, relu, output), out))
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

/// The Winograd convolution of an unpooled 3×3 problem, valid or same-padded, whose output
/// tiles cover the output (channels and filters whole vectors, even output sides), where this
/// CPU runs it.
pub fn covering_problem(p: &ConvProblem) -> Option<Winograd> {
    (!p.pool && p.kernel == 3).then(|| Winograd::covering(p.input, p.pad, p.filters)).flatten()
}

#[cfg(target_arch = "x86_64")]
pub(super) mod avx512 {
    use super::{Output, Winograd};
    use crate::nn::vector::{LANES, groups, load, store, transpose};
    use std::arch::x86_64::*;
    use std::ops::Range;

    /// Up to six vectors: one row or column of a transformed tile, of which `T + 2` are used for
    /// output tiles of side `T`.
    pub type Line = [__m512; 6];

    /// The vectors of `values` at offsets `at(i)` for `i` in `range`, zeros elsewhere.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn line(values: &[f32], range: Range<usize>, at: impl Fn(usize) -> usize) -> Line {
        let mut line = [_mm512_setzero_ps(); 6];
        for (i, vector) in line.iter_mut().enumerate() {
            if range.contains(&i) {
                *vector = load(values, at(i));
            }
        }
        line
    }

    /// The rows (or columns) `i < T + 2` of the patch that starts at `start` on padded
    /// coordinates which fall inside an image `side` long, padded by `pad`.
    #[inline]
    pub fn inside<const T: usize>(start: usize, pad: usize, side: usize) -> Range<usize> {
        pad.saturating_sub(start)..(T + 2).min(side + pad - start)
    }

    /// `a · s + b` for a constant `s`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn scaled_add(a: __m512, s: f32, b: __m512) -> __m512 {
        _mm512_fmadd_ps(a, _mm512_set1_ps(s), b)
    }

    /// `Bᵀ · d` for `T + 2` vectors (rows or columns of a tile). F(2×2, 3×3):
    /// `Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]`; F(4×4, 3×3): `Bᵀ = [4 0 −5 0 1 0;
    /// 0 −4 −4 1 1 0; 0 4 −4 −1 1 0; 0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1]`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn input_rows<const T: usize>(d: Line) -> Line {
        let zero = _mm512_setzero_ps();
        if T == 2 {
            return [
                _mm512_sub_ps(d[0], d[2]),
                _mm512_add_ps(d[1], d[2]),
                _mm512_sub_ps(d[2], d[1]),
                _mm512_sub_ps(d[1], d[3]),
                zero,
                zero,
            ];
        }
        let (a, b) = (scaled_add(d[2], -4.0, d[4]), scaled_add(d[1], -4.0, d[3]));
        let (c, e) = (_mm512_sub_ps(d[4], d[2]), _mm512_mul_ps(_mm512_set1_ps(2.0), _mm512_sub_ps(d[3], d[1])));
        [
            scaled_add(d[0], 4.0, scaled_add(d[2], -5.0, d[4])),
            _mm512_add_ps(a, b),
            _mm512_sub_ps(a, b),
            _mm512_add_ps(c, e),
            _mm512_sub_ps(c, e),
            scaled_add(d[1], 4.0, scaled_add(d[3], -5.0, d[5])),
        ]
    }

    /// `G · g` for three vectors (taps of a kernel column or row). F(2×2, 3×3):
    /// `G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]`; F(4×4, 3×3): `G = [¼ 0 0; −⅙ −⅙ −⅙; −⅙ ⅙ −⅙;
    /// 1⁄24 1⁄12 ⅙; 1⁄24 −1⁄12 ⅙; 0 0 1]`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn kernel_rows<const T: usize>([a, b, c]: [__m512; 3]) -> Line {
        let outer = _mm512_add_ps(a, c);
        if T == 2 {
            let half = _mm512_set1_ps(0.5);
            let zero = _mm512_setzero_ps();
            return [
                a,
                _mm512_mul_ps(half, _mm512_add_ps(outer, b)),
                _mm512_mul_ps(half, _mm512_sub_ps(outer, b)),
                c,
                zero,
                zero,
            ];
        }
        let sixth = _mm512_set1_ps(-1.0 / 6.0);
        let even = scaled_add(a, 1.0 / 24.0, _mm512_mul_ps(_mm512_set1_ps(1.0 / 6.0), c));
        let odd = _mm512_mul_ps(_mm512_set1_ps(1.0 / 12.0), b);
        [
            _mm512_mul_ps(_mm512_set1_ps(0.25), a),
            _mm512_mul_ps(sixth, _mm512_add_ps(outer, b)),
            _mm512_mul_ps(sixth, _mm512_sub_ps(outer, b)),
            _mm512_add_ps(even, odd),
            _mm512_sub_ps(even, odd),
            c,
        ]
    }

    /// `Aᵀ · m` for `T + 2` vectors, `T` of the four results used. F(2×2, 3×3):
    /// `Aᵀ = [1 1 1 0; 0 1 −1 −1]`; F(4×4, 3×3): `Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0;
    /// 0 1 1 4 4 0; 0 1 −1 8 −8 1]`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn output_rows<const T: usize>(m: Line) -> [__m512; 4] {
        if T == 2 {
            let zero = _mm512_setzero_ps();
            return [
                _mm512_add_ps(_mm512_add_ps(m[0], m[1]), m[2]),
                _mm512_sub_ps(_mm512_sub_ps(m[1], m[2]), m[3]),
                zero,
                zero,
            ];
        }
        let (sum12, difference12) = (_mm512_add_ps(m[1], m[2]), _mm512_sub_ps(m[1], m[2]));
        let (sum34, difference34) = (_mm512_add_ps(m[3], m[4]), _mm512_sub_ps(m[3], m[4]));
        [
            _mm512_add_ps(_mm512_add_ps(m[0], sum12), sum34),
            scaled_add(difference34, 2.0, difference12),
            scaled_add(sum34, 4.0, sum12),
            _mm512_add_ps(scaled_add(difference34, 8.0, difference12), m[5]),
        ]
    }

    /// `v[position][c][f] = (G g Gᵀ)[position]` for every kernel slice `g = kernel[.., .., c, f]`,
    /// 16 filters at a time.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transform_kernel<const T: usize>(g: &Winograd, kernel: &[f32], v: &mut [f32]) {
        let (c, f, side) = (g.input.c, g.filters, T + 2);
        for channel in 0..c {
            for first in (0..f).step_by(LANES) {
                let mut rows = [[_mm512_setzero_ps(); 6]; 3];
                for (ky, row) in rows.iter_mut().enumerate() {
                    let tap = |kx: usize| load(kernel, ((ky * 3 + kx) * c + channel) * f + first);
                    *row = kernel_rows::<T>([tap(0), tap(1), tap(2)]);
                }
                for (j, column) in transpose(rows).into_iter().enumerate().take(side) {
                    for (i, value) in kernel_rows::<T>(column).into_iter().enumerate().take(side) {
                        store(v, ((side * i + j) * c + channel) * f + first, value);
                    }
                }
            }
        }
    }

    /// `u[position][tile][c] = (Bᵀ d B)[position]`, `d` the tile's `(T+2)×(T+2)` input patch
    /// (zeros where it covers the padding).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transform_input<const T: usize>(g: &Winograd, image: &[f32], u: &mut [f32]) {
        let (c, tiles, tiles_wide, side, pad) = (g.input.c, g.tiles(), g.tiles_wide(), T + 2, g.pad);
        let (h, w) = (g.input.h, g.input.w);
        for tile in 0..tiles {
            let (top, left) = (T * (tile / tiles_wide), T * (tile % tiles_wide));
            let (rows, columns_inside) = (inside::<T>(top, pad, h), inside::<T>(left, pad, w));
            for channel in (0..c).step_by(LANES) {
                let mut columns = [[_mm512_setzero_ps(); 6]; 6];
                for (j, column) in columns.iter_mut().enumerate().take(side) {
                    if columns_inside.contains(&j) {
                        let at = |i: usize| ((top + i - pad) * w + left + j - pad) * c + channel;
                        *column = input_rows::<T>(line(image, rows.clone(), at));
                    }
                }
                for (i, tile_row) in transpose(columns).into_iter().enumerate().take(side) {
                    for (j, value) in input_rows::<T>(tile_row).into_iter().enumerate().take(side) {
                        store(u, ((side * i + j) * tiles + tile) * c + channel, value);
                    }
                }
            }
        }
    }

    /// Calls `products::<V, N>` for a run of `N` (`1..=6`) tiles, `N` a constant.
    macro_rules! with_tiles {
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

    /// A run of tiles and a group of filters at one position.
    struct Run<'a> {
        g: &'a Winograd,
        u: &'a [f32],
        v: &'a [f32],
        position: usize,
        tile: usize,
        first: usize,
    }

    /// `m[tile][position][f] = Σ_c u[position][tile][c] · v[position][c][f]`: per position,
    /// runs of up to 6 tiles (as equal as possible) against groups of 4, 2 or 1 vectors of
    /// filters.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn multiply(g: &Winograd, u: &[f32], v: &[f32], m: &mut [f32]) {
        let tiles = g.tiles();
        let run_length = tiles.div_ceil(tiles.div_ceil(6));
        for position in 0..g.positions() {
            for (first, vectors) in groups(g.filters, LANES, &[4, 2, 1]) {
                for tile in (0..tiles).step_by(run_length) {
                    let run = Run { g, u, v, position, tile, first };
                    let (count, args) = ((tiles - tile).min(run_length), (&run, &mut *m));
                    match vectors {
                        4 => with_tiles!(count, 4, args),
                        2 => with_tiles!(count, 2, args),
                        _ => with_tiles!(count, 1, args),
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
        let (c, f, tiles, positions) = (r.g.input.c, r.g.filters, r.g.tiles(), r.g.positions());
        let inputs = (r.position * tiles + r.tile) * c;
        let weights = r.position * c * f + r.first;
        assert!(inputs + N * c <= r.u.len() && weights + (c - 1) * f + V * LANES <= r.v.len());
        let mut acc = [[_mm512_setzero_ps(); V]; N];
        // SAFETY: the reads stay inside the ranges just checked: tiles `< N` of `c` inputs
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
                store(m, ((r.tile + n) * positions + r.position) * f + r.first + k * LANES, *a);
            }
        }
    }

    /// For every tile: its `T × T` outputs `Aᵀ m A` plus bias, through ReLU when asked; either
    /// their maximum (`T` = 2) or all of them into `y`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transform_output<const T: usize>(
        g: &Winograd,
        m: &[f32],
        (bias, relu, output): (&[f32], bool, Output),
        y: &mut [f32],
    ) {
        let (f, tiles_wide, positions, side) = (g.filters, g.tiles_wide(), g.positions(), T + 2);
        for tile in 0..g.tiles() {
            for first in (0..f).step_by(LANES) {
                let mut columns = [[_mm512_setzero_ps(); 4]; 6];
                for (j, column) in columns.iter_mut().enumerate().take(side) {
                    *column = output_rows::<T>(line(m, 0..side, |i| (tile * positions + side * i + j) * f + first));
                }
                let rows = transpose(columns);
                let b = load(bias, first);
                match output {
                    Output::Pooled => {
                        let (top, bottom) = (output_rows::<T>(rows[0]), output_rows::<T>(rows[1]));
                        let max = _mm512_max_ps(_mm512_max_ps(top[0], top[1]), _mm512_max_ps(bottom[0], bottom[1]));
                        store(y, tile * f + first, finish(max, b, relu));
                    }
                    Output::Full => {
                        let (ty, tx) = (tile / tiles_wide, tile % tiles_wide);
                        for (dy, row) in rows.into_iter().enumerate().take(T) {
                            for (dx, value) in output_rows::<T>(row).into_iter().enumerate().take(T) {
                                let pixel = (T * ty + dy) * T * tiles_wide + T * tx + dx;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_the_output_and_size_their_buffers() {
        // 28×28×16 same-padded: a 28×28 output, tiles of 4 (both sides multiples of 4), 7×7
        // tiles, 6×6 transformed positions.
        let w = Winograd::geometry(Shape::new(28, 28, 16), 1, 32, 4).unwrap();
        assert_eq!((w.tile(), w.tiles_wide(), w.tiles(), w.positions()), (4, 7, 49, 36));
        assert_eq!(
            (w.kernel_len(), w.transformed_input_len(), w.products_len()),
            (36 * 16 * 32, 36 * 49 * 16, 49 * 36 * 32)
        );
        // Valid 3×3 on 14×14: a 12×12 output, pooled to 6×6 with tiles of 2.
        let w = Winograd::geometry(Shape::new(14, 14, 16), 0, 16, 2).unwrap();
        assert_eq!((w.tiles(), w.positions(), w.pooled()), (36, 16, Shape::new(6, 6, 16)));
        // Channels that are not whole vectors, padding 2 or no room for a patch: no tiles.
        assert!(Winograd::geometry(Shape::new(28, 28, 15), 1, 32, 4).is_none());
        assert!(Winograd::geometry(Shape::new(28, 28, 16), 2, 32, 4).is_none());
        assert!(Winograd::geometry(Shape::new(3, 3, 16), 0, 16, 2).is_none());
    }
}
