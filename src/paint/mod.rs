//! What the user paints, as plain data with no UI: the document (layers, undo, Extend canvas), brush
//! strokes, the generation frame a job works in, and the project file that saves it. The app shows
//! and edits these; tests and fuzzers use them directly.
pub mod brush;
pub mod document;
pub mod frame;
pub mod project;
