//! Closed outlines filled with their own colour, before sketch → image.
//!
//! The built-in models learnt from emoji: filled, shaded shapes. A sketch drawn as a person draws with a
//! mouse — a blue outline of a fish, a yellow star's five points — is mostly white paper, and SDEdit
//! at any strength that keeps the drawing hands back an outline. Filling each closed outline with the
//! colour it is drawn in turns it into the flat shape the model knows (issue 27's rough sketches).
//!
//! What stays as it is: the outside (whatever white area reaches the picture's border), strokes
//! themselves, anything already painted, areas enclosed by grey or black lines (a grey ghost or a black
//! clock face is meant to be white inside), and enclosed areas covering more than
//! `MAX_FILLED_SHARE` of the picture (a frame drawn around the whole canvas).

use crate::picture::Rgb8;

/// A pixel is ink when one channel is this far below white (0–255).
const INK_THRESHOLD: u8 = 60;
/// Gaps in an outline up to two pixels wide still close it (a dilation by one pixel, 4-connected).
const GAP_CLOSING: usize = 1;
/// An outline's colour counts as a colour (not grey or black) when its channels span this much.
const MIN_CHROMA: u8 = 40;
/// An enclosed area larger than this share of the picture is background inside a frame, not a shape.
const MAX_FILLED_SHARE: f64 = 0.6;

/// The picture with every closed, coloured outline filled (see the module notes). A picture without
/// one — a flat-colour sketch, a photo — comes back unchanged.
pub fn fill_closed_outlines(img: &Rgb8) -> Rgb8 {
    let (w, h) = (img.width, img.height);
    if w == 0 || h == 0 {
        return img.clone();
    }
    let pixel = |i: usize| &img.pixels[3 * i..3 * i + 3];
    let ink: Vec<bool> = (0..w * h)
        .map(|i| pixel(i).iter().any(|&c| 255 - c > INK_THRESHOLD))
        .collect();
    let closed = dilate(&ink, w, h, GAP_CLOSING);
    // outside: the paper reachable from the border past the (gap-closed) strokes, then grown back
    // over the pixels the closing took from it
    let paper: Vec<bool> = closed.iter().map(|&c| !c).collect();
    let (labels, _) = components(&paper, w, h);
    let mut on_border = vec![false; w * h + 1];
    for i in (0..w * h).filter(|&i| i < w || i >= w * (h - 1) || i % w == 0 || i % w == w - 1) {
        on_border[labels[i]] = true;
    }
    let reached: Vec<bool> = labels.iter().map(|&l| l != 0 && on_border[l]).collect();
    let grown = dilate(&reached, w, h, GAP_CLOSING);
    let enclosed: Vec<bool> = (0..w * h).map(|i| !ink[i] && !grown[i]).collect();
    // an area counts only where it holds paper that the closed strokes cut off (an open outline leaves
    // just slivers in its inner corners, which the outside's growth did not reach)
    let cut_off: Vec<bool> = (0..w * h).map(|i| paper[i] && !reached[i]).collect();

    let (areas, count) = components(&enclosed, w, h);
    let mut size = vec![0usize; count + 1];
    let mut is_shape = vec![false; count + 1];
    for i in (0..w * h).filter(|&i| areas[i] != 0) {
        size[areas[i]] += 1;
        is_shape[areas[i]] |= cut_off[i];
    }
    // the ink within two pixels of each area: its outline (and whatever is drawn inside it)
    let mut rims: Vec<Vec<&[u8]>> = vec![Vec::new(); count + 1];
    for i in (0..w * h).filter(|&i| ink[i]) {
        let (x, y) = ((i % w) as isize, (i / w) as isize);
        let mut near: Vec<usize> = (-2isize..=2)
            .flat_map(|dy| (-2isize..=2).map(move |dx| (dx, dy)))
            .filter(|(dx, dy)| dx.abs() + dy.abs() <= 2)
            .map(|(dx, dy)| (x + dx, y + dy))
            .filter(|&(nx, ny)| nx >= 0 && ny >= 0 && (nx as usize) < w && (ny as usize) < h)
            .map(|(nx, ny)| areas[ny as usize * w + nx as usize])
            .filter(|&a| a != 0)
            .collect();
        near.sort_unstable();
        near.dedup();
        for a in near {
            rims[a].push(pixel(i));
        }
    }
    let fill: Vec<Option<[u8; 3]>> = (0..=count)
        .map(|a| {
            let fits = size[a] as f64 <= MAX_FILLED_SHARE * (w * h) as f64;
            if a == 0 || !is_shape[a] || !fits {
                return None;
            }
            outline_colour(rims[a].iter().copied())
        })
        .collect();
    let mut out = img.clone();
    for i in 0..w * h {
        if let Some(colour) = fill[areas[i]] {
            out.pixels[3 * i..3 * i + 3].copy_from_slice(&colour);
        }
    }
    out
}

/// The colour an area is outlined in: the commonest colour (in 16-level bins) of the ink around it,
/// its median per channel. None when there is no ink or it is grey or black.
fn outline_colour<'a>(colours: impl Iterator<Item = &'a [u8]>) -> Option<[u8; 3]> {
    let mut bins: std::collections::HashMap<[u8; 3], Vec<[u8; 3]>> = Default::default();
    for c in colours {
        bins.entry([c[0] / 16, c[1] / 16, c[2] / 16])
            .or_default()
            .push([c[0], c[1], c[2]]);
    }
    // the largest bin; ties go to the lowest bin so the result never depends on hash order
    let (_, members) = bins
        .into_iter()
        .max_by(|(ka, a), (kb, b)| a.len().cmp(&b.len()).then(kb.cmp(ka)))?;
    let median = |ch: usize| {
        let mut v: Vec<u8> = members.iter().map(|c| c[ch]).collect();
        v.sort_unstable();
        v[v.len() / 2]
    };
    let colour = [median(0), median(1), median(2)];
    let chroma = colour.iter().max()? - colour.iter().min()?;
    (chroma >= MIN_CHROMA).then_some(colour)
}

/// `mask` grown by `steps` pixels, 4-connected.
fn dilate(mask: &[bool], w: usize, h: usize, steps: usize) -> Vec<bool> {
    let mut m = mask.to_vec();
    for _ in 0..steps {
        let prev = m.clone();
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                m[i] = prev[i]
                    || (x > 0 && prev[i - 1])
                    || (x + 1 < w && prev[i + 1])
                    || (y > 0 && prev[i - w])
                    || (y + 1 < h && prev[i + w]);
            }
        }
    }
    m
}

/// 4-connected components of `mask`: a label per pixel (0 = not in the mask, else 1…count) and count.
fn components(mask: &[bool], w: usize, h: usize) -> (Vec<usize>, usize) {
    let mut labels = vec![0; w * h];
    let mut count = 0;
    let mut stack = Vec::new();
    for start in 0..w * h {
        if !mask[start] || labels[start] != 0 {
            continue;
        }
        count += 1;
        labels[start] = count;
        stack.push(start);
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            let neighbours = [
                (x > 0).then(|| i - 1),
                (x + 1 < w).then(|| i + 1),
                (y > 0).then(|| i - w),
                (y + 1 < h).then(|| i + w),
            ];
            for j in neighbours.into_iter().flatten() {
                if mask[j] && labels[j] == 0 {
                    labels[j] = count;
                    stack.push(j);
                }
            }
        }
    }
    (labels, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHITE: [u8; 3] = [255, 255, 255];
    const BLUE: [u8; 3] = [40, 120, 230];

    /// A `size`² white picture with a one-pixel square outline from `lo` to `hi` (inclusive), less the
    /// pixels in `gaps`.
    fn square_outline(
        size: usize,
        lo: usize,
        hi: usize,
        colour: [u8; 3],
        gaps: &[(usize, usize)],
    ) -> Rgb8 {
        let mut img = Rgb8 {
            width: size,
            height: size,
            pixels: WHITE.repeat(size * size),
        };
        for y in lo..=hi {
            for x in lo..=hi {
                let edge = x == lo || x == hi || y == lo || y == hi;
                if edge && !gaps.contains(&(x, y)) {
                    img.pixels[3 * (y * size + x)..][..3].copy_from_slice(&colour);
                }
            }
        }
        img
    }

    fn at(img: &Rgb8, x: usize, y: usize) -> [u8; 3] {
        img.pixels[3 * (y * img.width + x)..][..3]
            .try_into()
            .unwrap()
    }

    #[test]
    fn a_closed_coloured_outline_is_filled_with_its_colour_and_the_outside_stays_white() {
        let img = square_outline(16, 4, 11, BLUE, &[]);
        let out = fill_closed_outlines(&img);
        for y in 5..=10 {
            for x in 5..=10 {
                assert_eq!(at(&out, x, y), BLUE, "inside ({x}, {y})");
            }
        }
        for (x, y) in [(0, 0), (3, 8), (12, 8), (8, 3), (8, 12), (15, 15)] {
            assert_eq!(at(&out, x, y), WHITE, "outside ({x}, {y})");
        }
    }

    #[test]
    fn a_gap_of_two_pixels_still_closes_the_outline_but_a_wider_one_does_not() {
        let two = square_outline(16, 4, 11, BLUE, &[(4, 7), (4, 8)]);
        let out = fill_closed_outlines(&two);
        assert_eq!(at(&out, 8, 8), BLUE);
        // the gap's own pixels are paper the closing bridged, not the outline: they stay white
        assert_eq!(at(&out, 4, 7), WHITE);
        let three = square_outline(16, 4, 11, BLUE, &[(4, 7), (4, 8), (4, 9)]);
        assert_eq!(fill_closed_outlines(&three), three);
    }

    #[test]
    fn grey_and_black_outlines_and_flat_shapes_are_left_alone() {
        for colour in [[0, 0, 0], [120, 120, 140]] {
            let img = square_outline(16, 4, 11, colour, &[]);
            assert_eq!(fill_closed_outlines(&img), img, "outline {colour:?}");
        }
        // a filled square has nothing enclosed
        let mut flat = square_outline(16, 4, 11, BLUE, &[]);
        for y in 4..=11 {
            for x in 4..=11 {
                flat.pixels[3 * (y * 16 + x)..][..3].copy_from_slice(&BLUE);
            }
        }
        assert_eq!(fill_closed_outlines(&flat), flat);
    }

    #[test]
    fn ink_inside_an_outline_is_kept_and_the_outline_colour_wins_over_it() {
        let mut img = square_outline(16, 2, 13, BLUE, &[]);
        img.pixels[3 * (7 * 16 + 7)..][..3].copy_from_slice(&[0, 0, 0]); // an eye
        let out = fill_closed_outlines(&img);
        assert_eq!(at(&out, 7, 7), [0, 0, 0]);
        assert_eq!(at(&out, 8, 7), BLUE);
    }

    #[test]
    fn a_frame_around_the_whole_picture_is_not_filled() {
        let img = square_outline(16, 0, 15, BLUE, &[]);
        assert_eq!(fill_closed_outlines(&img), img);
    }
}
