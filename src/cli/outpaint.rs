//! `cmpaint edit outpaint`: grows a picture past one of its borders, frame by frame, as the app's
//! Outpaint button does — extend the canvas, move the frame over the empty part overlapping the
//! picture, inpaint what is empty (Algorithm 4), paste back — until the new area is filled.

use super::edit::EditArgs;
use super::frames::{FrameEditor, FrameTask};
use super::{check_memory, load, report_cost, write_output};
use crate::job::io::picture_to_tensor;
use crate::paint::document::{Document, Side};
use crate::paint::frame::{Frame, band_starts};
use crate::picture::{decode, to_rgb8};
use crate::recipe::Operation;
use anyhow::{Context, Result, bail};

/// `--extend SIDE:N`: which border grows, by how many pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extend {
    pub side: Side,
    pub pixels: usize,
}

impl std::str::FromStr for Extend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (side, n) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}`: expected SIDE:PIXELS, e.g. left:64"))?;
        let pixels = n
            .parse()
            .map_err(|_| format!("`{n}`: the pixels to add must be a whole number"))?;
        Ok(Extend {
            side: side.parse()?,
            pixels,
        })
    }
}

pub fn run(args: &EditArgs) -> Result<()> {
    let extend = args
        .extend
        .context("outpaint needs --extend SIDE:PIXELS (left, right, up or down), e.g. left:64")?;
    if args.run.noise.is_some() {
        bail!(
            "outpaint draws fresh noise for every frame (seeds --seed, --seed + 1, …): drop --noise"
        );
    }
    let m = load(&args.model, &args.run)?;
    let size = m.info().image_size;
    let original = to_rgb8(&decode(&args.image)?);
    let mut doc = Document::from_picture(&original);
    doc.extend(extend.side, extend.pixels)
        .map_err(anyhow::Error::msg)?;
    let (w, h) = (doc.width, doc.height);
    let across = match extend.side {
        Side::Left | Side::Right => h,
        Side::Up | Side::Down => w,
    };
    let (smallest, largest) = (size.min(w.min(h)), w.min(h));
    let frame_size = match args.frame {
        Some(f) if !(smallest..=largest).contains(&f) => bail!(
            "--frame {f}: the frame's side runs from {smallest} (the model's size) to {largest} (the extended picture's shorter side)"
        ),
        Some(f) => f,
        None => across.clamp(smallest, largest),
    };
    if let Ok(pixel) = m.pixel("outpaint") {
        check_memory(&pixel.config, 1, size)?;
    }
    let overlap = args.overlap.unwrap_or(0.5);
    if !(0.0..1.0).contains(&overlap) {
        bail!("--overlap {overlap}: the part of the frame kept over the picture is in [0, 1)");
    }
    let mut editor = FrameEditor::new(&m, args)?;
    let started = std::time::Instant::now();
    for start in band_starts(across, frame_size) {
        let mut frame = match extend.side {
            Side::Left | Side::Right => Frame {
                x: 0,
                y: start,
                size: frame_size,
            },
            Side::Up | Side::Down => Frame {
                x: start,
                y: 0,
                size: frame_size,
            },
        };
        while let Some(next) = frame.outpaint(&doc, extend.side, overlap) {
            editor.run(&mut doc, next, FrameTask::Inpaint, 0)?;
            frame = next;
        }
    }
    let frames = editor.frames;
    eprintln!(
        "outpainted {} px {} in {frames} frame{} of {frame_size}² ({})",
        extend.pixels,
        format!("{:?}", extend.side).to_lowercase(),
        if frames == 1 { "" } else { "s" },
        if frame_size == size {
            "native".to_string()
        } else {
            format!("scaled to {size}²")
        }
    );
    report_cost(frames * editor.calls_per_frame, started);
    let recipe = editor.whole_run(
        Operation::Outpaint {
            side: format!("{:?}", extend.side).to_lowercase(),
            pixels: extend.pixels,
            overlap,
            frame: frame_size,
        },
        &original,
    )?;
    let picture = picture_to_tensor(&doc.composite(), &m.device)?;
    write_output(&args.run, &picture, false, &[recipe])
}
