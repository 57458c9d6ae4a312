//! Integration tests of the fingerprint crate on generated models.

mod backends;
mod derived;
mod input;
mod real_model;
mod synth;
