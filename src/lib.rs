//! cmpaint: an image editor built around Consistency Models (Song, Dhariwal, Chen, Sutskever 2023).
//!
//! Layers: `cli` → `engine`. The engine takes tensors and returns tensors; it knows nothing of the CLI
//! or a UI.
pub mod cli;
pub mod engine;
