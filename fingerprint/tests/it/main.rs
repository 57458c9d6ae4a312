//! Integration tests of the fingerprint crate on generated models.

mod adversarial;
mod backends;
mod bert;
mod derived;
mod gguf;
mod input;
mod llama;
mod negatives;
mod packed;
mod real_model;
mod synth;
