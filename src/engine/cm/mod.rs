//! The consistency-model maths: parameterization, noise grid, noise sources and samplers. It reads
//! nothing of `model` but the `Network` it calls (its trait is here, in `param`).
pub mod edit;
pub mod noise;
pub mod param;
pub mod pf_ode;
pub mod sample;
pub mod sampling;
pub mod schedule;
