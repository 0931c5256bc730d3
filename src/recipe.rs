//! A recipe: everything needed to make one image again — model, operation, seed, class, time indices,
//! and for edits the picture and mask it started from. The app exports it inside the PNG (an iTXt
//! chunk, keyword [`RECIPE_KEYWORD`]) and *Open recipe* reads it back and re-runs it; the worker runs
//! recipes, so a re-run takes the same path as the first run.

use crate::picture::Rgb8;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

pub const RECIPE_KEYWORD: &str = "cmpaint-recipe";
/// The keyword of a grid's recipes ([`GridRecipe`]), written by the CLI.
pub const GRID_KEYWORD: &str = "cmpaint-grid";
/// Bumped when a field changes meaning; older recipes are refused with a message, never misread.
pub const RECIPE_VERSION: u32 = 1;
/// A recipe is a few hundred bytes plus its embedded pictures; refuse anything absurd before parsing.
const MAX_RECIPE_BYTES: usize = 64 << 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    pub version: u32,
    pub model: ModelRef,
    pub operation: Operation,
    /// Seed of the noise (ChaCha20, see engine::cm::noise).
    pub seed: u64,
    /// Class label of a class-conditional model.
    pub class: Option<u32>,
    /// Style of a model with styles (the built-in emoji sets), as its index in the model's list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<u32>,
    /// N: the Karras grid the time indices refer to.
    pub steps: usize,
    /// Time indices on the grid; None = one step from σ_max.
    pub ts: Option<Vec<usize>>,
    /// An EDM teacher's solver and churn, where not deterministic Heun (the CLI's `--sampler`, `--s-*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampler: Option<Sampler>,
    /// A latent model's prompt and guidance (then `steps` is the number of LCM steps and `ts` None).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<Prompt>,
    /// The picture an edit started from.
    pub input: Option<EmbeddedImage>,
    /// The inpainting mask (white = regenerate), as a grey picture.
    pub mask: Option<EmbeddedImage>,
    /// Files the run read that the recipe names rather than holds: a replayed noise file (`--noise`),
    /// a tensor image an edit started from. A re-run finds each at its path and checks its hash.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileRef>,
}

/// An EDM teacher's sampler: Heun or Euler, and Karras et al.'s churn (S_churn 0: deterministic).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampler {
    pub euler: bool,
    pub s_churn: f64,
    pub s_tmin: f64,
    /// None: no upper bound (∞, which JSON cannot hold).
    pub s_tmax: Option<f64>,
    pub s_noise: f64,
}

impl Default for Sampler {
    /// Deterministic Heun, and the reference's churn settings when churn is turned on.
    fn default() -> Self {
        Self {
            euler: false,
            s_churn: 0.0,
            s_tmin: 0.0,
            s_tmax: None,
            s_noise: 1.0,
        }
    }
}

impl Sampler {
    pub fn is_euler(&self) -> bool {
        self.euler
    }

    /// Whether it draws noise at every step.
    pub fn churns(&self) -> bool {
        self.s_churn > 0.0
    }
}

/// What a latent model is asked for: the prompt, the negative prompt (read where the model runs
/// classifier-free guidance) and the guidance scale (the pipeline's `guidance_scale`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    pub text: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub negative: String,
    pub guidance: f64,
}

/// A file a recipe names: what it was for, where it was, and the SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    pub role: FileRole,
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileRole {
    /// Replayed noise draws.
    Noise,
    /// The picture an edit started from, as a tensor image.
    Image,
    /// A LoRA merged into the model's UNet (an LCM-LoRA on a Stable Diffusion folder).
    Lora,
}

impl Recipe {
    /// Every setting in one line, as History's tooltip shows it: operation, seed, its setting,
    /// class, time indices on the grid, model.
    pub fn describe(&self) -> String {
        let mut parts = vec![
            self.operation.label().to_string(),
            format!("seed {}", self.seed),
        ];
        parts.extend(self.operation.setting());
        parts.extend(self.class.map(|c| format!("class {c}")));
        parts.extend(self.style.map(|s| format!("style {s}")));
        if let Some(p) = &self.prompt {
            parts.push(format!("“{}”", p.text));
            if !p.negative.is_empty() {
                parts.push(format!("not “{}”", p.negative));
            }
            parts.push(format!("guidance {}", p.guidance));
            parts.push(format!("{} steps", self.steps));
            parts.push(self.model.name.clone());
            return parts.join(" · ");
        }
        parts.push(match &self.ts {
            Some(ts) => {
                let ts: Vec<String> = ts.iter().map(usize::to_string).collect();
                format!("ts {} of N = {}", ts.join(","), self.steps)
            }
            None => format!("N = {}", self.steps),
        });
        parts.push(self.model.name.clone());
        parts.join(" · ")
    }
}

/// Which model made the image: its name, file (None = the built-in model) and SHA-256 of the weights.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    pub name: String,
    pub file: Option<String>,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Operation {
    /// From noise: one step, or multistep over `ts`.
    Generate,
    /// One step from slerp(noise(seed), noise(seed_b), alpha).
    Interpolate {
        seed_b: u64,
        alpha: f64,
    },
    /// Stroke → image at a strength in [0, 1] (`ts` holds the resolved indices); with
    /// `fill_outlines`, closed coloured outlines are filled first (`outline_fill`).
    SdEdit {
        strength: f64,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        fill_outlines: bool,
    },
    Inpaint,
    Colorize,
    SuperRes {
        factor: usize,
    },
    /// The picture grown past a border (`side`: left, right, up or down) by `pixels`, frame by frame
    /// (frames of `frame`², each keeping `overlap` of its side over the picture), each frame an
    /// inpaint from the next seed. A whole run of the CLI's `edit outpaint`.
    Outpaint {
        side: String,
        pixels: usize,
        overlap: f64,
        frame: usize,
    },
    /// The picture made `factor` times larger, tile by tile (each a super-resolution from the next
    /// seed). A whole run of the CLI's `edit superres --enlarge`.
    Enlarge {
        factor: usize,
    },
}

impl Operation {
    pub fn label(&self) -> &'static str {
        match self {
            Operation::Generate => "generate",
            Operation::Interpolate { .. } => "interpolate",
            Operation::SdEdit { .. } => "sketch to image",
            Operation::Inpaint => "inpaint",
            Operation::Colorize => "colorize",
            Operation::SuperRes { .. } => "super-resolve",
            Operation::Outpaint { .. } => "outpaint",
            Operation::Enlarge { .. } => "enlarge",
        }
    }

    /// The setting that tells two results of the operation apart ("strength 0.30", "×4",
    /// "α 0.50 to seed 1"), where it has one.
    pub fn setting(&self) -> Option<String> {
        match self {
            Operation::Generate | Operation::Inpaint | Operation::Colorize => None,
            Operation::Interpolate { seed_b, alpha } => {
                Some(format!("α {alpha:.2} to seed {seed_b}"))
            }
            Operation::SdEdit {
                strength,
                fill_outlines,
            } => Some(format!(
                "strength {strength:.2}{}",
                if *fill_outlines {
                    ", outlines filled"
                } else {
                    ""
                }
            )),
            Operation::SuperRes { factor } | Operation::Enlarge { factor } => {
                Some(format!("×{factor}"))
            }
            Operation::Outpaint {
                side,
                pixels,
                overlap,
                frame,
            } => Some(format!(
                "{side} {pixels} px, frames {frame}², overlap {overlap:.2}"
            )),
        }
    }

    /// Whether the operation starts from the picture (and so embeds it in the recipe).
    pub fn needs_input(&self) -> bool {
        !matches!(self, Operation::Generate | Operation::Interpolate { .. })
    }

    /// Whether it is a run of many frames (each a recipe of its own kind, seeds counting up) rather
    /// than one network run.
    pub fn is_frame_run(&self) -> bool {
        matches!(self, Operation::Outpaint { .. } | Operation::Enlarge { .. })
    }
}

/// A picture stored in the recipe as a base64 PNG, with its SHA-256 (of the raw pixels) for
/// comparing pictures without decoding them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddedImage {
    pub sha256: String,
    pub png_base64: String,
}

impl EmbeddedImage {
    pub fn from_rgb(img: &Rgb8) -> Result<Self, RecipeError> {
        Self::encode(img.width, img.height, &img.pixels, png::ColorType::Rgb)
    }

    /// Straight-alpha RGBA8 (the sketch layer of a project).
    pub fn from_rgba(width: usize, height: usize, rgba: &[u8]) -> Result<Self, RecipeError> {
        Self::encode(width, height, rgba, png::ColorType::Rgba)
    }

    pub fn to_rgba(&self) -> Result<(usize, usize, Vec<u8>), RecipeError> {
        self.decode(png::ColorType::Rgba)
    }

    /// 8-bit grey, as stored (the mask layer of a project).
    pub fn from_grey(width: usize, height: usize, grey: &[u8]) -> Result<Self, RecipeError> {
        Self::encode(width, height, grey, png::ColorType::Grayscale)
    }

    pub fn to_grey(&self) -> Result<(usize, usize, Vec<u8>), RecipeError> {
        self.decode(png::ColorType::Grayscale)
    }

    /// A mask in [0, 1] per pixel, stored as 8-bit grey.
    pub fn from_mask(width: usize, height: usize, mask: &[f32]) -> Result<Self, RecipeError> {
        let grey: Vec<u8> = mask
            .iter()
            .map(|m| (m.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect();
        Self::from_grey(width, height, &grey)
    }

    fn encode(
        width: usize,
        height: usize,
        pixels: &[u8],
        color: png::ColorType,
    ) -> Result<Self, RecipeError> {
        let mut bytes = Vec::new();
        let mut enc = png::Encoder::new(&mut bytes, width as u32, height as u32);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(RecipeError::png)?;
        w.write_image_data(pixels).map_err(RecipeError::png)?;
        w.finish().map_err(RecipeError::png)?;
        Ok(Self {
            sha256: sha256_hex(pixels),
            png_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
        })
    }

    pub fn to_rgb(&self) -> Result<Rgb8, RecipeError> {
        let (w, h, px) = self.decode(png::ColorType::Rgb)?;
        Ok(Rgb8 {
            width: w,
            height: h,
            pixels: px,
        })
    }

    pub fn to_mask(&self) -> Result<(usize, usize, Vec<f32>), RecipeError> {
        let (w, h, px) = self.to_grey()?;
        Ok((w, h, px.iter().map(|&v| v as f32 / 255.0).collect()))
    }

    /// The embedded PNG's bytes and size, from its header alone (no pixel is decoded): what a
    /// restore needs to weigh a picture before decoding it. Must be 8-bit RGB, as results are.
    pub fn rgb_png(&self) -> Result<(Vec<u8>, usize, usize), RecipeError> {
        let bytes = self.png_bytes()?;
        let reader = png::Decoder::new(std::io::Cursor::new(&bytes[..]))
            .read_info()
            .map_err(RecipeError::png)?;
        let info = reader.info();
        if (info.color_type, info.bit_depth) != (png::ColorType::Rgb, png::BitDepth::Eight) {
            return Err(RecipeError::Invalid(format!(
                "embedded picture is {:?} {:?}, expected 8-bit Rgb",
                info.color_type, info.bit_depth
            )));
        }
        let (w, h) = (info.width as usize, info.height as usize);
        drop(reader);
        Ok((bytes, w, h))
    }

    fn png_bytes(&self) -> Result<Vec<u8>, RecipeError> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.png_base64)
            .map_err(|e| RecipeError::Invalid(format!("embedded picture: {e}")))
    }

    fn decode(&self, want: png::ColorType) -> Result<(usize, usize, Vec<u8>), RecipeError> {
        let bytes = self.png_bytes()?;
        let (w, h, color, px) = decode_png8(&bytes)?;
        if color != want {
            return Err(RecipeError::Invalid(format!(
                "embedded picture is {color:?}, expected {want:?}"
            )));
        }
        let channels = match want {
            png::ColorType::Rgba => 4,
            png::ColorType::Rgb => 3,
            _ => 1,
        };
        if px.len() != w * h * channels {
            return Err(RecipeError::Invalid(
                "embedded picture has the wrong size".into(),
            ));
        }
        if sha256_hex(&px) != self.sha256 {
            return Err(RecipeError::Invalid(
                "embedded picture does not match its hash".into(),
            ));
        }
        Ok((w, h, px))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a PNG cmpaint can read: {0}")]
    Png(String),
    #[error(
        "this PNG has no cmpaint recipe: it was not exported by cmpaint, or was exported while the canvas was not exactly one result (painted, outpainted or extended since)"
    )]
    Missing,
    #[error("the recipe is unreadable: {0}")]
    Invalid(String),
}

impl RecipeError {
    fn png(e: impl std::fmt::Display) -> Self {
        RecipeError::Png(e.to_string())
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// SHA-256 of a file, read in chunks (checkpoints can be gigabytes).
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let (mut file, _) = crate::file_io::open(path).map_err(std::io::Error::other)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(format!("{:x}", hasher.finalize()))
}

/// An RGB picture as PNG bytes, with its recipe when it has one.
pub fn encode_png(img: &Rgb8, recipe: Option<&Recipe>) -> Result<Vec<u8>, RecipeError> {
    let chunks = match recipe {
        Some(r) => vec![(RECIPE_KEYWORD, json(r)?)],
        None => Vec::new(),
    };
    encode_with_chunks(img, &chunks)
}

/// An RGB picture as PNG bytes with the recipes of its cells: a single result as a plain recipe
/// (what the app's *Open recipe* reads), a grid or an enlarged picture also as a [`GridRecipe`].
pub fn encode_png_grid(img: &Rgb8, grid: Option<&GridRecipe>) -> Result<Vec<u8>, RecipeError> {
    let Some(g) = grid else {
        return encode_png(img, None);
    };
    let mut chunks = Vec::new();
    if g.cells.len() == 1 {
        chunks.push((RECIPE_KEYWORD, json(&g.recipes()[0])?));
    }
    if g.cells.len() > 1 || g.scale > 1 {
        chunks.push((GRID_KEYWORD, json(g)?));
    }
    encode_with_chunks(img, &chunks)
}

fn json(value: &impl Serialize) -> Result<String, RecipeError> {
    serde_json::to_string(value).map_err(|e| RecipeError::Invalid(e.to_string()))
}

fn encode_with_chunks(img: &Rgb8, chunks: &[(&str, String)]) -> Result<Vec<u8>, RecipeError> {
    let mut bytes = Vec::new();
    let mut enc = png::Encoder::new(&mut bytes, img.width as u32, img.height as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    for (keyword, text) in chunks {
        enc.add_itxt_chunk(keyword.to_string(), text.clone())
            .map_err(RecipeError::png)?;
    }
    let mut w = enc.write_header().map_err(RecipeError::png)?;
    w.write_image_data(&img.pixels).map_err(RecipeError::png)?;
    w.finish().map_err(RecipeError::png)?;
    Ok(bytes)
}

/// The recipe inside PNG bytes.
pub fn read_recipe(png_bytes: &[u8]) -> Result<Recipe, RecipeError> {
    let text = text_chunk(png_bytes, RECIPE_KEYWORD)?.ok_or(RecipeError::Missing)?;
    parse_versioned(&text, |v| v.get("version"))
}

/// The recipes inside PNG bytes: a grid's, or a single result's as a grid of one cell.
pub fn read_grid(png_bytes: &[u8]) -> Result<GridRecipe, RecipeError> {
    match text_chunk(png_bytes, GRID_KEYWORD)? {
        Some(text) => parse_versioned(&text, |v| v.get("recipe")?.get("version")),
        None => Ok(GridRecipe::new(&[read_recipe(png_bytes)?], 1)),
    }
}

/// The text of the iTXt chunk `keyword`, if the PNG has one.
fn text_chunk(png_bytes: &[u8], keyword: &str) -> Result<Option<String>, RecipeError> {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let reader = decoder.read_info().map_err(RecipeError::png)?;
    let Some(chunk) = reader
        .info()
        .utf8_text
        .iter()
        .find(|c| c.keyword == keyword)
    else {
        return Ok(None);
    };
    let mut chunk = chunk.clone();
    chunk
        .decompress_text_with_limit(MAX_RECIPE_BYTES)
        .map_err(RecipeError::png)?;
    Ok(Some(chunk.get_text().map_err(RecipeError::png)?))
}

/// JSON whose recipe version (found by `version`) is this cmpaint's: an older or newer one is
/// refused with a message, never misread.
fn parse_versioned<T: serde::de::DeserializeOwned>(
    text: &str,
    version: impl Fn(&serde_json::Value) -> Option<&serde_json::Value>,
) -> Result<T, RecipeError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| RecipeError::Invalid(e.to_string()))?;
    match version(&value).and_then(|v| v.as_u64()) {
        Some(v) if v == RECIPE_VERSION as u64 => {}
        Some(v) => {
            return Err(RecipeError::Invalid(format!(
                "recipe version {v}; this cmpaint reads version {RECIPE_VERSION}"
            )));
        }
        None => return Err(RecipeError::Invalid("no version field".into())),
    }
    serde_json::from_value(value).map_err(|e| RecipeError::Invalid(e.to_string()))
}

/// The recipes of a picture the CLI wrote: a grid of cells (one image: a grid of one), row-major as
/// `picture::grid` lays them out, each enlarged `scale` times. The cells of one run differ only in
/// their seed, class and style (see `job::per_image`), so the first cell's recipe and each cell's
/// seed, class and style say them all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridRecipe {
    pub recipe: Recipe,
    pub cells: Vec<Cell>,
    pub scale: usize,
    /// An animation (`interpolate --frames`): the grid again at every α, at a frame rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip: Option<Strip>,
}

/// The frames of an interpolation strip: the α of each, and frames per second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Strip {
    pub alphas: Vec<f64>,
    pub fps: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    pub seed: u64,
    pub class: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<u32>,
}

impl GridRecipe {
    /// `recipes`: one per cell, non-empty, as a batch run gives them.
    pub fn new(recipes: &[Recipe], scale: usize) -> Self {
        Self {
            recipe: recipes[0].clone(),
            cells: recipes
                .iter()
                .map(|r| Cell {
                    seed: r.seed,
                    class: r.class,
                    style: r.style,
                })
                .collect(),
            scale,
            strip: None,
        }
    }

    /// As JSON, for a PNG's text chunk under [`GRID_KEYWORD`].
    pub fn to_json(&self) -> Result<String, RecipeError> {
        json(self)
    }

    /// Every cell's own recipe (an interpolation's second seed moves with the first).
    pub fn recipes(&self) -> Vec<Recipe> {
        self.cells
            .iter()
            .map(|c| {
                let mut r = self.recipe.clone();
                let shift = c.seed.wrapping_sub(r.seed);
                r.seed = c.seed;
                r.class = c.class;
                r.style = c.style;
                if let Operation::Interpolate { seed_b, alpha } = r.operation {
                    r.operation = Operation::Interpolate {
                        seed_b: seed_b.wrapping_add(shift),
                        alpha,
                    };
                }
                r
            })
            .collect()
    }
}

/// Decodes an 8-bit PNG to (width, height, colour type, pixels), refusing huge images before
/// allocating them.
fn decode_png8(bytes: &[u8]) -> Result<(usize, usize, png::ColorType, Vec<u8>), RecipeError> {
    const MAX_SIDE: u32 = 8192;
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().map_err(RecipeError::png)?;
    let (w, h) = (reader.info().width, reader.info().height);
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(RecipeError::Invalid(format!(
            "embedded picture of {w}×{h} is larger than {MAX_SIDE}×{MAX_SIDE}"
        )));
    }
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| RecipeError::Png("image too large".into()))?;
    let mut px = vec![0; size];
    let frame = reader.next_frame(&mut px).map_err(RecipeError::png)?;
    if frame.bit_depth != png::BitDepth::Eight {
        return Err(RecipeError::Invalid("embedded picture is not 8-bit".into()));
    }
    px.truncate(frame.buffer_size());
    Ok((w as usize, h as usize, frame.color_type, px))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe() -> Recipe {
        let img = Rgb8 {
            width: 2,
            height: 1,
            pixels: vec![1, 2, 3, 250, 251, 252],
        };
        Recipe {
            version: RECIPE_VERSION,
            model: ModelRef {
                name: "emoji32".into(),
                file: None,
                sha256: "ab".into(),
            },
            operation: Operation::SuperRes { factor: 2 },
            seed: 7,
            class: Some(3),
            style: None,
            steps: 40,
            ts: Some(vec![0, 39]),
            sampler: None,
            prompt: None,
            input: Some(EmbeddedImage::from_rgb(&img).unwrap()),
            mask: Some(EmbeddedImage::from_mask(2, 1, &[0.0, 1.0]).unwrap()),
            files: Vec::new(),
        }
    }

    #[test]
    fn recipe_round_trips_through_png_bytes() {
        let r = recipe();
        let img = r.input.as_ref().unwrap().to_rgb().unwrap();
        let png = encode_png(&img, Some(&r)).unwrap();
        assert_eq!(read_recipe(&png).unwrap(), r);
        assert_eq!(img.pixels, vec![1, 2, 3, 250, 251, 252]);
        assert_eq!(r.mask.unwrap().to_mask().unwrap().2, vec![0.0, 1.0]);
    }

    #[test]
    fn other_versions_and_plain_pngs_are_refused() {
        let mut r = recipe();
        let img = r.input.as_ref().unwrap().to_rgb().unwrap();
        r.version = 99;
        let png = encode_png(&img, Some(&r)).unwrap();
        let err = read_recipe(&png).unwrap_err().to_string();
        assert!(err.contains("version 99"), "{err}");
        let plain = EmbeddedImage::from_rgb(&img).unwrap().png_base64;
        let plain = base64::engine::general_purpose::STANDARD
            .decode(plain)
            .unwrap();
        assert!(matches!(read_recipe(&plain), Err(RecipeError::Missing)));
        assert!(matches!(
            read_recipe(b"not a png"),
            Err(RecipeError::Png(_))
        ));
    }

    #[test]
    fn tampered_embedded_picture_is_detected() {
        let mut r = recipe();
        r.input.as_mut().unwrap().sha256 = "00".into();
        assert!(r.input.unwrap().to_rgb().is_err());
    }
}
