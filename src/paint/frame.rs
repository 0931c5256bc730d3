//! The generation frame: the square of a larger document that a job works on. A job crops the frame,
//! brings it to the model's size, runs, and its result is brought back and pasted where it was made —
//! exactly at native size, feathered into the surroundings for Generate and sketch → image, and only
//! where the mask (or the empty area) says for inpainting and outpainting.

use super::document::{Document, Rect, Side};
use crate::picture::{Rgb8, resize};
use serde::{Deserialize, Serialize};

/// A square of the document, in pixels: top-left corner and side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    pub x: usize,
    pub y: usize,
    pub size: usize,
}

impl Frame {
    /// The model's size (or the document's shorter side, if smaller), centred.
    pub fn centred(doc_w: usize, doc_h: usize, model: usize) -> Frame {
        let size = model.min(doc_w).min(doc_h);
        Frame {
            x: (doc_w - size) / 2,
            y: (doc_h - size) / 2,
            size,
        }
        .clamped(doc_w, doc_h, model)
    }

    /// The nearest frame that fits: side between the model's size ("native") and the document's
    /// shorter side, and wholly inside the document.
    pub fn clamped(self, doc_w: usize, doc_h: usize, model: usize) -> Frame {
        let largest = doc_w.min(doc_h);
        let size = self.size.clamp(model.min(largest), largest);
        Frame {
            x: self.x.min(doc_w - size),
            y: self.y.min(doc_h - size),
            size,
        }
    }

    pub fn rect(&self) -> Rect {
        Rect {
            x0: self.x,
            y0: self.y,
            x1: self.x + self.size,
            y1: self.y + self.size,
        }
    }

    pub fn is_native(&self, model: usize) -> bool {
        self.size == model
    }

    /// Whether the frame is the whole document.
    pub fn covers(&self, doc_w: usize, doc_h: usize) -> bool {
        (self.x, self.y, self.size, self.size) == (0, 0, doc_w, doc_h)
    }

    /// Moved in the document's coordinates; a position kept from an earlier `origin` (see
    /// `Document::origin`) comes back where it was on the picture.
    pub fn moved_by(self, dx: i64, dy: i64) -> Option<Frame> {
        let at = |v: usize, d: i64| usize::try_from(i64::try_from(v).ok()?.checked_add(d)?).ok();
        Some(Frame {
            x: at(self.x, dx)?,
            y: at(self.y, dy)?,
            size: self.size,
        })
    }

    /// The frames after an outpaint frame `self` along the edge toward `side` (the same column for
    /// Left/Right, the same row for Up/Down), every `size` pixels with the last flush with the
    /// canvas's border, nearest first: the path by which one Outpaint click fills the whole new edge.
    pub fn along_edge(self, doc: &Document, side: Side) -> Vec<Frame> {
        let (across, at) = match side {
            Side::Left | Side::Right => (doc.height, self.y),
            Side::Up | Side::Down => (doc.width, self.x),
        };
        let mut starts = band_starts(across, self.size);
        starts.sort_by_key(|&s| s.abs_diff(at));
        starts
            .into_iter()
            .filter(|&s| s != at)
            .map(|s| match side {
                Side::Left | Side::Right => Frame { y: s, ..self },
                Side::Up | Side::Down => Frame { x: s, ..self },
            })
            .collect()
    }

    /// Where Outpaint toward `side` puts the frame: beyond the last painted column (or row) of the
    /// frame's band on that side, keeping `overlap` (0…1) of its side over the painted part. None
    /// when that frame would have nothing empty to fill (extend the canvas first) or the band has
    /// nothing painted to continue from.
    pub fn outpaint(self, doc: &Document, side: Side, overlap: f64) -> Option<Frame> {
        let s = self.size;
        let keep = ((s as f64 * overlap.clamp(0.0, 1.0)).round() as usize).min(s - 1);
        let (w, h) = (doc.width, doc.height);
        let opaque = |x: usize, y: usize| doc.picture[(y * w + x) * 4 + 3] == 255;
        let column_painted = |x: &usize| (self.y..self.y + s).any(|y| opaque(*x, y));
        let row_painted = |y: &usize| (self.x..self.x + s).any(|x| opaque(x, *y));
        let frame = match side {
            Side::Left => {
                let edge = (0..w).find(column_painted)?;
                Frame {
                    x: (edge + keep).saturating_sub(s).min(w - s),
                    ..self
                }
            }
            Side::Right => {
                let edge = (0..w).rev().find(column_painted)? + 1;
                Frame {
                    x: edge.saturating_sub(keep).min(w - s),
                    ..self
                }
            }
            Side::Up => {
                let edge = (0..h).find(row_painted)?;
                Frame {
                    y: (edge + keep).saturating_sub(s).min(h - s),
                    ..self
                }
            }
            Side::Down => {
                let edge = (0..h).rev().find(row_painted)? + 1;
                Frame {
                    y: edge.saturating_sub(keep).min(h - s),
                    ..self
                }
            }
        };
        doc.has_empty_in(frame).then_some(frame)
    }
}

/// How a result goes back into the document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Paste {
    /// Every pixel of the frame becomes the result's.
    Whole,
    /// The result fades into what was there over this many pixels from each frame edge that lies
    /// inside the document (edges on the document's border need none).
    Feather(usize),
    /// Per pixel of the frame, how much of the result to take (255 = all, 0 = keep): the
    /// document-resolution mask of an inpainting done at a scaled size, so unmasked pixels stay exact.
    Masked(#[serde(with = "base64_bytes")] Vec<u8>),
}

/// Where a result was made, so that History's Apply puts it back there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    pub frame: Frame,
    /// The document's `origin` when it was made: Extend canvas since then moves it with the picture.
    pub origin: (i64, i64),
    pub paste: Paste,
}

impl Placement {
    /// The frame in today's document, if it still lies inside it.
    pub fn frame_in(&self, doc: &Document) -> Option<Frame> {
        let dx = doc.origin.0.checked_sub(self.origin.0)?;
        let dy = doc.origin.1.checked_sub(self.origin.1)?;
        let f = self.frame.moved_by(dx, dy)?;
        let fits = f.x.checked_add(f.size)? <= doc.width && f.y.checked_add(f.size)? <= doc.height;
        (fits && self.is_consistent()).then_some(f)
    }

    /// A non-empty frame whose mask (if any) has one weight per pixel: what a damaged project
    /// file may not deliver.
    pub fn is_consistent(&self) -> bool {
        let s = self.frame.size;
        s > 0
            && match &self.paste {
                Paste::Masked(m) => s.checked_mul(s) == Some(m.len()),
                _ => true,
            }
    }
}

/// Masks in project files: base64, not a JSON array of numbers.
mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// What a job in the frame is given, and how its result goes back.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameInput {
    /// The frame's composite at the model's size.
    pub image: Rgb8,
    /// For inpainting: 255 = regenerate, at the model's size (the mask layer and the empty area).
    pub mask: Option<Vec<u8>>,
    pub paste: Paste,
}

impl Document {
    pub fn has_sketch_in(&self, f: Frame) -> bool {
        self.any_in(f, |d, i| d.sketch[i * 4 + 3] != 0)
    }

    pub fn has_mask_in(&self, f: Frame) -> bool {
        self.any_in(f, |d, i| d.mask[i] != 0)
    }

    fn any_in(&self, f: Frame, test: impl Fn(&Document, usize) -> bool) -> bool {
        (f.y..f.y + f.size).any(|y| (f.x..f.x + f.size).any(|x| test(self, y * self.width + x)))
    }

    /// Whether the frame has any empty (transparent) pixel.
    pub fn has_empty_in(&self, f: Frame) -> bool {
        self.any_in(f, |d, i| d.picture[i * 4 + 3] < 255)
    }

    /// The frame's regenerate weights at document resolution: the mask layer, and every pixel that
    /// is empty (an extended canvas's new area).
    pub fn frame_mask(&self, f: Frame) -> Vec<u8> {
        let mut out = Vec::with_capacity(f.size * f.size);
        for y in f.y..f.y + f.size {
            for x in f.x..f.x + f.size {
                let i = y * self.width + x;
                out.push(self.mask[i].max(255 - self.picture[i * 4 + 3]));
            }
        }
        out
    }

    /// The input of a job in `frame` for a model of side `model`. `inpaint`: the job regenerates
    /// the mask (and empty pixels); `feather`: Generate and sketch → image fade in over that width.
    pub fn frame_input(&self, f: Frame, model: usize, inpaint: bool, feather: usize) -> FrameInput {
        let image = resize(&self.composite_rect(f.rect()), model, model);
        let native = f.is_native(model);
        if !inpaint {
            return FrameInput {
                image,
                mask: None,
                paste: if feather == 0 {
                    Paste::Whole
                } else {
                    Paste::Feather(feather)
                },
            };
        }
        let weights = self.frame_mask(f);
        if native {
            // Algorithm 4 keeps every unmasked pixel exactly: the result is pasted whole
            return FrameInput {
                image,
                mask: Some(weights),
                paste: Paste::Whole,
            };
        }
        FrameInput {
            image,
            mask: Some(shrink_mask(&weights, f.size, model)),
            paste: Paste::Masked(weights),
        }
    }

    /// Pastes a result (at the model's size or the frame's) into `frame` as `paste` says, clears
    /// the sketch there (it was the job's input) and fills the empty pixels: one undo step. The
    /// document keeps its recipe only when the frame is the whole document.
    pub fn paste(
        &mut self,
        f: Frame,
        result: &Rgb8,
        paste: &Paste,
        recipe: Option<crate::recipe::Recipe>,
    ) {
        let result = resize(result, f.size, f.size);
        let (w, h) = (self.width, self.height);
        self.begin();
        self.touch_rect(f.rect());
        for j in 0..f.size {
            for i in 0..f.size {
                let weight = match paste {
                    Paste::Whole => 255,
                    Paste::Masked(m) => m[j * f.size + i] as u32,
                    Paste::Feather(width) => feather_weight(f, i, j, *width, w, h),
                };
                let at = (f.y + j) * w + f.x + i;
                let p = &mut self.picture[at * 4..at * 4 + 4];
                // an empty pixel takes the result whatever the weight: there is nothing to keep
                let weight = weight.max(255 - p[3] as u32);
                let r = &result.pixels[(j * f.size + i) * 3..][..3];
                for c in 0..3 {
                    p[c] =
                        ((r[c] as u32 * weight + p[c] as u32 * (255 - weight) + 127) / 255) as u8;
                }
                p[3] = 255;
                self.sketch[at * 4..at * 4 + 4].fill(0);
            }
        }
        self.recipe = recipe.filter(|_| f.covers(w, h));
        self.commit();
    }
}

/// The tiles an Upscale ×`factor` runs over a canvas of `width`×`height` (already enlarged): frames
/// of the model's `size`, each a quarter over the last (the last flush with the border), all at
/// multiples of `factor`, so each keeps exactly the patch means it covers. Row by row.
pub fn upscale_tiles(width: usize, height: usize, size: usize, factor: usize) -> Vec<Frame> {
    let stride = (size * 3 / 4 / factor * factor).max(factor);
    let starts = |across: usize| {
        let mut v: Vec<usize> = (0..across.saturating_sub(size)).step_by(stride).collect();
        v.push(across.saturating_sub(size));
        v
    };
    (starts(height).into_iter())
        .flat_map(|y| starts(width).into_iter().map(move |x| Frame { x, y, size }))
        .collect()
}

/// Where frames of `size` start to cover `across` pixels: every `size` pixels, the last flush with the
/// far border (`size` ≤ `across`).
pub fn band_starts(across: usize, size: usize) -> Vec<usize> {
    let mut starts: Vec<usize> = (0..across.saturating_sub(size))
        .step_by(size.max(1))
        .collect();
    starts.push(across.saturating_sub(size));
    starts
}

/// The canvas as it would look with `result` in frame `f` (for Compare and step previews; the
/// document is not changed).
pub fn preview_over(doc: &Document, f: Frame, result: &Rgb8) -> Rgb8 {
    let mut out = doc.composite();
    let result = resize(result, f.size, f.size);
    for j in 0..f.size {
        let at = ((f.y + j) * doc.width + f.x) * 3;
        out.pixels[at..at + f.size * 3]
            .copy_from_slice(&result.pixels[j * f.size * 3..][..f.size * 3]);
    }
    out
}

/// Feather weight (0…255) of pixel (i, j) of the frame: rises linearly over `width` pixels from
/// each edge that lies inside the document.
fn feather_weight(f: Frame, i: usize, j: usize, width: usize, doc_w: usize, doc_h: usize) -> u32 {
    let last = f.size - 1;
    let mut d = usize::MAX;
    if f.x > 0 {
        d = d.min(i);
    }
    if f.y > 0 {
        d = d.min(j);
    }
    if f.x + f.size < doc_w {
        d = d.min(last - i);
    }
    if f.y + f.size < doc_h {
        d = d.min(last - j);
    }
    if d >= width {
        255
    } else {
        ((d as u32 + 1) * 255 / (width as u32 + 1)).min(255)
    }
}

/// A document-resolution mask brought to the model's size: a model pixel regenerates when any
/// document pixel under it does, so nothing masked is kept by rounding.
fn shrink_mask(mask: &[u8], size: usize, model: usize) -> Vec<u8> {
    let mut out = vec![0u8; model * model];
    for y in 0..size {
        for x in 0..size {
            let m = mask[y * size + x];
            if m > 0 {
                let o = &mut out[(y * model / size) * model + x * model / size];
                *o = 255;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document whose every pixel differs: (x, y, x ^ y).
    fn photo(w: usize, h: usize) -> Document {
        let pixels = (0..w * h)
            .flat_map(|i| [(i % w) as u8, (i / w) as u8, ((i % w) ^ (i / w)) as u8])
            .collect();
        Document::from_picture(&Rgb8 {
            width: w,
            height: h,
            pixels,
        })
    }

    fn solid(size: usize, v: u8) -> Rgb8 {
        Rgb8 {
            width: size,
            height: size,
            pixels: vec![v; size * size * 3],
        }
    }

    #[test]
    fn extend_keeps_every_pixel_and_undo_restores_the_size() {
        let mut d = photo(6, 4);
        let before = d.picture.clone();
        d.extend(Side::Left, 3).unwrap();
        assert_eq!((d.width, d.height, d.origin), (9, 4, (3, 0)));
        for y in 0..4 {
            assert_eq!(
                d.picture[(y * 9 + 3) * 4..(y * 9 + 9) * 4],
                before[y * 24..(y + 1) * 24]
            );
            assert!(
                d.picture[y * 36..y * 36 + 12].iter().all(|&v| v == 0),
                "new area is empty"
            );
        }
        assert!(d.has_empty());
        d.extend(Side::Down, 2).unwrap();
        assert_eq!((d.width, d.height), (9, 6));
        assert!(d.undo() && d.undo());
        assert_eq!((d.width, d.height, d.origin), (6, 4, (0, 0)));
        assert_eq!(d.picture, before);
        assert!(d.redo());
        assert_eq!((d.width, d.height, d.origin), (9, 4, (3, 0)));
        assert!(d.extend(Side::Right, 5000).is_err());
    }

    #[test]
    fn a_native_inpaint_regenerates_the_mask_and_the_empty_area() {
        let mut d = photo(8, 4);
        d.extend(Side::Right, 4).unwrap();
        d.mask[0] = 200;
        let f = Frame {
            x: 0,
            y: 0,
            size: 4,
        };
        let input = d.frame_input(f, 4, true, 0);
        let mask = input.mask.unwrap();
        assert_eq!((mask[0], mask[1]), (200, 0));
        assert_eq!(input.paste, Paste::Whole);
        let right = Frame {
            x: 8,
            y: 0,
            size: 4,
        };
        let input = d.frame_input(right, 4, true, 0);
        assert!(input.mask.unwrap().iter().all(|&m| m == 255));
        // empty pixels are white in the model's input
        assert!(input.image.pixels.iter().all(|&v| v == 255));
    }

    #[test]
    fn a_scaled_inpaint_changes_only_masked_pixels() {
        let mut d = photo(16, 16);
        for y in 4..8 {
            for x in 4..8 {
                d.mask[y * 16 + x] = 255;
            }
        }
        let before = d.picture.clone();
        let f = Frame {
            x: 0,
            y: 0,
            size: 16,
        };
        let input = d.frame_input(f, 8, true, 0);
        let small = input.mask.clone().unwrap();
        assert_eq!(
            small.iter().filter(|&&m| m == 255).count(),
            4,
            "4×4 masked → 2×2"
        );
        d.paste(f, &solid(8, 7), &input.paste, None);
        for i in 0..256 {
            let masked = d.mask[i] == 255;
            let px = &d.picture[i * 4..i * 4 + 3];
            if masked {
                assert_eq!(px, [7, 7, 7]);
            } else {
                assert_eq!(px, &before[i * 4..i * 4 + 3], "pixel {i} changed");
            }
        }
        assert!(d.undo());
        assert_eq!(d.picture, before);
    }

    #[test]
    fn a_feathered_paste_fades_only_toward_edges_inside_the_document() {
        let mut d = Document::from_picture(&solid(12, 0));
        // frame against the left border: no fade there, a 2-pixel fade on the right
        let f = Frame {
            x: 0,
            y: 0,
            size: 6,
        };
        d.paste(f, &solid(6, 255), &Paste::Feather(2), None);
        let at = |d: &Document, x: usize, y: usize| d.picture[(y * 12 + x) * 4];
        assert_eq!(at(&d, 0, 0), 255, "the document's border needs no fade");
        assert_eq!(at(&d, 3, 3), 255);
        assert_eq!(at(&d, 4, 3), 170);
        assert_eq!(at(&d, 5, 3), 85);
        assert_eq!(at(&d, 2, 5), 85, "fades toward the bottom edge too");
        assert_eq!(at(&d, 6, 3), 0, "outside the frame nothing changes");
    }

    #[test]
    fn outpaint_moves_the_frame_over_the_empty_side_with_the_overlap() {
        let mut d = photo(8, 8);
        let f = Frame {
            x: 0,
            y: 0,
            size: 8,
        };
        assert_eq!(f.outpaint(&d, Side::Left, 0.5), None, "nothing empty yet");
        d.extend(Side::Left, 4).unwrap();
        assert_eq!(
            f.outpaint(&d, Side::Left, 0.5),
            Some(Frame {
                x: 0,
                y: 0,
                size: 8
            })
        );
        d.extend(Side::Right, 6).unwrap();
        // painted columns 4..12 of 18: keep 4 of them, cover 12..16
        assert_eq!(
            f.outpaint(&d, Side::Right, 0.5),
            Some(Frame {
                x: 8,
                y: 0,
                size: 8
            })
        );
    }

    #[test]
    fn frames_fit_the_document() {
        assert_eq!(
            Frame::centred(100, 60, 32),
            Frame {
                x: 34,
                y: 14,
                size: 32
            }
        );
        assert_eq!(
            Frame::centred(20, 60, 32),
            Frame {
                x: 0,
                y: 20,
                size: 20
            }
        );
        let big = Frame {
            x: 90,
            y: 50,
            size: 500,
        };
        assert_eq!(
            big.clamped(100, 60, 32),
            Frame {
                x: 40,
                y: 0,
                size: 60
            }
        );
        assert!(
            Frame {
                x: 0,
                y: 0,
                size: 60
            }
            .covers(60, 60)
        );
    }
}
