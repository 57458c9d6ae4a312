//! Integration tests of the fingerprint crate on generated models.

mod derived;
mod input;
mod synth;
