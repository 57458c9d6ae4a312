//! `registry compare A B`: are two models identical, derived or unrelated?

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use fingerprint::{BackendKind, Fingerprint};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Weights (file, directory or index) or a fingerprint saved with `fingerprint --out`.
    a: PathBuf,
    /// The other model, likewise.
    b: PathBuf,
    /// Print one JSON object (with the per-tensor matches).
    #[arg(long)]
    json: bool,
}

impl Args {
    pub(crate) async fn run(self, settings: &crate::settings::Settings) -> Result<ExitCode> {
        let backend: BackendKind = settings.backend;
        let (a, b) = (load(&self.a, backend)?, load(&self.b, backend)?);
        let c = fingerprint::compare(&a, &b);
        if self.json {
            println!("{}", serde_json::to_string(&c)?);
        } else {
            println!("verdict                     {}", c.verdict.as_str());
            println!("similarity                  {:.4}", c.similarity);
            println!(
                "false-positive probability  {:.3e} (log10 {:.1})",
                c.false_positive_probability, c.log10_false_positive_probability
            );
            println!(
                "tensors matched             {} of {}/{} ({} significant)",
                c.tensors_matched, c.matrices_a, c.matrices_b, c.tensors_significant
            );
            println!("coverage                    {:.3}", c.coverage);
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// A saved fingerprint, or the fingerprint of weights.
fn load(path: &Path, backend: BackendKind) -> Result<Fingerprint> {
    if path.is_file() {
        let mut head = [0u8; 4];
        let n = std::io::Read::read(
            &mut std::fs::File::open(path).with_context(|| path.display().to_string())?,
            &mut head,
        )?;
        if fingerprint::encoding::is_encoding(&head[..n]) {
            let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
            return Fingerprint::decode(&bytes)
                .with_context(|| format!("reading the fingerprint {}", path.display()));
        }
    }
    Ok(super::fingerprint::compute(path, backend)?.1)
}
