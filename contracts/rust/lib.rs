//! Typed bindings of the model registry's contracts (`ModelRegistry`, `LicenseMarket`, and the
//! demo market's `DemoToken`) for ethers, with their deploy bytecode.
//!
//! The Solidity sources live beside this crate in `src/` (a Foundry project). `forge build`
//! output is reduced to `artifacts/<Contract>.json` (ABI and bytecode) and the bindings in
//! `rust/bindings/` are generated from those by ethers' `Abigen`. All of these files are
//! committed; the `generated_files_are_fresh` test rebuilds them from the sources and fails
//! (rewriting them) when they drift.

mod bindings;

pub use bindings::demo_token::{self, DemoToken};
pub use bindings::license_market::{self, LicenseMarket, LicenseMarketErrors, LicenseMarketEvents};
pub use bindings::model_registry::{self, ModelRegistry, ModelRegistryErrors, ModelRegistryEvents};

/// The contracts whose artifacts and bindings this crate carries, as (contract name, module).
pub const CONTRACTS: [(&str, &str); 3] = [
    ("ModelRegistry", "model_registry"),
    ("LicenseMarket", "license_market"),
    // The demo market's ERC-20 (`registry up --demo`).
    ("DemoToken", "demo_token"),
];

/// The kinds of license, with the numbering of the Solidity `LicenseKind` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum LicenseKind {
    /// Use and download the weights.
    Access = 0,
    /// Make derivative models, which owe royalties to this model.
    FineTune = 1,
    /// Commercial use of what the model generates.
    Output = 2,
}

impl LicenseKind {
    /// All kinds, in enum order.
    pub const ALL: [LicenseKind; 3] = [
        LicenseKind::Access,
        LicenseKind::FineTune,
        LicenseKind::Output,
    ];

    /// The kind with the given Solidity enum value.
    pub fn from_u8(value: u8) -> Option<Self> {
        Self::ALL.get(usize::from(value)).copied()
    }

    /// Name used on the command line and in APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            LicenseKind::Access => "access",
            LicenseKind::FineTune => "fine-tune",
            LicenseKind::Output => "output",
        }
    }
}

impl From<LicenseKind> for u8 {
    fn from(kind: LicenseKind) -> u8 {
        kind as u8
    }
}
