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
    /// The vocabulary of A when A is a single weights file (tokenizer.json or vocab.txt).
    #[arg(long, value_name = "FILE")]
    tokenizer_a: Option<PathBuf>,
    /// The vocabulary of B when B is a single weights file.
    #[arg(long, value_name = "FILE")]
    tokenizer_b: Option<PathBuf>,
    /// Print one JSON object (with the per-tensor matches and the explanation).
    #[arg(long)]
    json: bool,
    /// Tensors to list in the human output (the most significant first).
    #[arg(long, default_value_t = 12)]
    top: usize,
}

impl Args {
    pub(crate) async fn run(self, settings: &crate::settings::Settings) -> Result<ExitCode> {
        let backend: BackendKind = settings.backend;
        let (a, b) = (
            load(&self.a, self.tokenizer_a.as_deref(), backend)?,
            load(&self.b, self.tokenizer_b.as_deref(), backend)?,
        );
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
            if c.format == 2 {
                println!("shared tensors (same bytes) {}", c.tensors_shared);
            }
            for line in &c.explanation {
                println!("  {line}");
            }
            let mut shown: Vec<&fingerprint::compare::TensorMatch> = c.tensors.iter().collect();
            shown.sort_by(|x, y| x.log10_false_positive.total_cmp(&y.log10_false_positive));
            for t in shown.iter().take(self.top) {
                println!(
                    "  {} ~ {}: {}/{} units, log10 fp {:.0}{}{}",
                    t.a,
                    t.b,
                    t.units_matched,
                    t.units_queried,
                    t.log10_false_positive,
                    if t.significant { " (significant)" } else { "" },
                    if t.transforms.is_empty() {
                        String::new()
                    } else {
                        format!("; {}", t.transforms.join(", "))
                    }
                );
            }
            if shown.len() > self.top {
                println!("  … {} more (--top N, or --json)", shown.len() - self.top);
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// A saved fingerprint, or the fingerprint of weights.
fn load(path: &Path, tokenizer: Option<&Path>, backend: BackendKind) -> Result<Fingerprint> {
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
    Ok(super::fingerprint::compute(path, tokenizer, backend)?.1)
}
