//! 2×2 max pooling (stride 2) of one image that remembers which window position held each
//! maximum, and the way back: the gradient of the pooled image handed to those positions. A
//! convolution trained together with the pooling that follows it (`Conv2d::forward_pooled` in
//! training) pools each image while its convolution output is still in cache, and never keeps
//! that output for the batch: backward needs only the pooled values and these positions.

use crate::nn::layer::Shape;

/// The pooled shape of `input`: half its height and width (a trailing odd row or column is
/// dropped, as `MaxPool2d` does), the same channels.
pub fn pooled_shape(input: Shape) -> Shape {
    Shape::new(input.h / 2, input.w / 2, input.c)
}

/// Where, in an image of shape `input`, the channel run of position `k` (0..4, row-major) of
/// pooling window `window` (row-major over the pooled image) starts.
fn window_value(input: Shape, window: usize, k: usize) -> usize {
    let (row, wide) = (input.w * input.c, input.w / 2);
    (2 * (window / wide) + k / 2) * row + (2 * (window % wide) + k % 2) * input.c
}

/// `pooled[py][px][c]` = the maximum of `image`'s 2×2 window at `(2py, 2px)` in channel `c`, and
/// `position[py][px][c]` = where in the window (0..4, row-major) it first occurs, as an `f32`.
/// The first position wins a tie, as in `MaxPool2d`'s backward.
pub fn pool(image: &[f32], input: Shape, pooled: &mut [f32], position: &mut [f32]) {
    let (out, c) = (pooled_shape(input), input.c);
    assert!(image.len() == input.size(), "argmax pooling: image of the wrong size");
    assert!(pooled.len() == out.size() && position.len() == out.size(), "argmax pooling: outputs of the wrong size");
    let windows = pooled.chunks_exact_mut(c).zip(position.chunks_exact_mut(c)).enumerate();
    for (window, (max, at)) in windows {
        let values = |k: usize| &image[window_value(input, window, k)..][..c];
        max.copy_from_slice(values(0));
        for k in 1..4 {
            max.iter_mut().zip(values(k)).for_each(|(m, &v)| *m = if v > *m { v } else { *m });
        }
        // From the last position to the first, so that the first one equal to the maximum stays.
        at.fill(3.0);
        for k in (0..3).rev() {
            let here = k as f32;
            at.iter_mut().zip(values(k)).zip(&*max).for_each(|((a, &v), &m)| *a = if v == m { here } else { *a });
        }
    }
}

/// The gradient w.r.t. the pooled image's input: `dpooled` at each window's remembered
/// `position` ([`pool`]), zero everywhere else (including a dropped trailing row or column).
pub fn unpool(dpooled: &[f32], position: &[f32], input: Shape, dimage: &mut [f32]) {
    let (out, c) = (pooled_shape(input), input.c);
    assert!(dpooled.len() == out.size() && position.len() == out.size(), "argmax unpooling: inputs of the wrong size");
    assert!(dimage.len() == input.size(), "argmax unpooling: gradient of the wrong size");
    if !input.h.is_multiple_of(2) || !input.w.is_multiple_of(2) {
        dimage.fill(0.0);
    }
    let windows = dpooled.chunks_exact(c).zip(position.chunks_exact(c)).enumerate();
    for (window, (d, at)) in windows {
        for k in 0..4 {
            let target = &mut dimage[window_value(input, window, k)..][..c];
            let here = k as f32;
            for ((t, &d), &a) in target.iter_mut().zip(d).zip(at) {
                *t = if a == here { d } else { 0.0 };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_to_the_window_maxima_and_remembers_the_first_of_equal_ones() {
        let input = Shape::new(3, 4, 2);
        // Channel 0 counts up (the maximum is each window's lower right); channel 1 is 5 in the
        // first window's top row (a tie) and negative elsewhere.
        let image: Vec<f32> =
            (0..12).flat_map(|p| [p as f32, if p == 0 || p == 1 { 5.0 } else { -(p as f32) }]).collect();
        let out = pooled_shape(input);
        assert_eq!(out, Shape::new(1, 2, 2));
        let (mut pooled, mut position) = (vec![f32::NAN; out.size()], vec![f32::NAN; out.size()]);
        pool(&image, input, &mut pooled, &mut position);
        assert_eq!(pooled, [5.0, 5.0, 7.0, -2.0]);
        assert_eq!(position, [3.0, 0.0, 3.0, 0.0]);
    }

    #[test]
    fn unpooling_hands_each_gradient_to_its_position_and_zeroes_the_rest() {
        let input = Shape::new(3, 4, 2);
        let position = [3.0, 0.0, 1.0, 2.0];
        let mut dimage = vec![f32::NAN; input.size()];
        unpool(&[1.0, 2.0, 3.0, 4.0], &position, input, &mut dimage);
        let mut expected = vec![0.0; input.size()];
        let pixel = |y: usize, x: usize, ch: usize| (y * input.w + x) * input.c + ch;
        expected[pixel(1, 1, 0)] = 1.0;
        expected[pixel(0, 0, 1)] = 2.0;
        expected[pixel(0, 3, 0)] = 3.0;
        expected[pixel(1, 2, 1)] = 4.0;
        assert_eq!(dimage, expected);
    }

    #[test]
    fn buffers_of_the_wrong_size_are_refused() {
        let input = Shape::new(4, 4, 1);
        let result = std::panic::catch_unwind(|| pool(&[0.0; 15], input, &mut [0.0; 4], &mut [0.0; 4]));
        assert!(result.is_err());
        let result = std::panic::catch_unwind(|| unpool(&[0.0; 4], &[0.0; 3], input, &mut [0.0; 16]));
        assert!(result.is_err());
    }
}
