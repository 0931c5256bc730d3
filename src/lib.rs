//! cmpaint: an image editor built around Consistency Models (Song, Dhariwal, Chen, Sutskever 2023).
//!
//! Layers: `app` (egui; feature `app`, on by default) → `paint` (document, strokes, project files) and
//! `worker` (thread, owns the model) → `job` (a recipe planned and run) → `engine` (tensors in,
//! tensors out); `cli` → `job` (and `engine` for `info` and `convert`). `recipe` is the plain-data
//! description of one result; `outline_fill` (pixels in, pixels out) fills a sketch's closed outlines
//! for `job`;
//! `picture` (pixels: decode, resize, PNG/GIF), `file_io` (bounded reads of a user's files, atomic
//! writes) and `labels` (class names) are leaves every layer may use. `tests/layering.rs` holds the
//! arrows allowed.
#[cfg(feature = "app")]
pub mod app;
pub mod cli;
pub mod engine;
pub mod file_io;
pub mod job;
pub mod labels;
pub mod outline_fill;
pub mod paint;
pub mod picture;
pub mod recipe;
pub mod worker;
