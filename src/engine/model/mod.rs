//! The network: configuration, building blocks, the UNet, and weight loading.
pub mod blocks;
pub mod config;
pub mod default_model;
pub mod layers;
pub mod load;
pub mod pickle_guard;
pub mod spec;
pub mod unet;
