//! `core2::io` as `std::io`: all that the crates needing core2 0.4 use of it with `std` on.
pub mod io {
    pub use std::io::*;
}
