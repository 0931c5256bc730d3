//! The consistency-model maths: parameterization, noise grid, noise sources and samplers.
pub mod edit;
pub mod noise;
pub mod param;
pub mod pf_ode;
pub mod sample;
pub mod schedule;
