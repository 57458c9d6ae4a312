//! `registry fingerprint PATH`: the fingerprint commitment and content root of a model.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use fingerprint::{hex, BackendKind, Fingerprint, Model, TensorSketch};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A safetensors file, a directory of shards, or a *.safetensors.index.json (a directory's
    /// tokenizer.json or vocab.txt keys the residual anchors by token string).
    path: PathBuf,
    /// The vocabulary (tokenizer.json or vocab.txt) of a single-file model.
    #[arg(long, value_name = "FILE")]
    tokenizer: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Write the canonical encoding of the fingerprint to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

impl Args {
    pub(crate) async fn run(self, settings: &crate::settings::Settings) -> Result<ExitCode> {
        let backend: BackendKind = settings.backend;
        let started = Instant::now();
        let (model, fp) = compute(&self.path, self.tokenizer.as_deref(), backend)?;
        let seconds = started.elapsed().as_secs_f64();
        if let Some(out) = &self.out {
            std::fs::write(out, fp.encode())
                .with_context(|| format!("writing {}", out.display()))?;
        }
        let sketched: Vec<&[fingerprint::sketch::UnitSide]> = fp
            .tensors
            .iter()
            .filter_map(|t| match &t.sketch {
                TensorSketch::Units(sides) => Some(&sides[..]),
                _ => None,
            })
            .collect();
        let matrices = sketched.len();
        let units: usize = sketched
            .iter()
            .flat_map(|s| s.iter())
            .map(|s| s.signatures.len())
            .sum();
        let anchors = match &fp.anchors {
            Some(a) => format!(
                "width {} from {} keyed by {}",
                a.width,
                a.sources.join(", "),
                match a.keying {
                    fingerprint::anchor::Keying::Ids => "row id".to_string(),
                    fingerprint::anchor::Keying::Tokens(h) => format!("token ({})", &hex(&h)[..10]),
                }
            ),
            None => "none (no vocabulary table: every axis hashed)".into(),
        };
        if self.json {
            let value = serde_json::json!({
                "fingerprint": hex(&fp.hash()),
                "content_root": hex(&fp.content_root),
                "tensors": fp.tensors.len(),
                "matrices": matrices,
                "units": units,
                "anchors": fp.anchors.as_ref().map(|a| serde_json::json!({
                    "width": a.width,
                    "sources": a.sources,
                    "keyed_by": match a.keying {
                        fingerprint::anchor::Keying::Ids => "id".to_string(),
                        fingerprint::anchor::Keying::Tokens(h) => format!("tokens {}", hex(&h)),
                    },
                })),
                "format": fp.version,
                "parameters": fp.parameters(),
                "bytes": model.data_bytes(),
                "backend": backend.as_str(),
                "seconds": seconds,
                "encoding_bytes": fp.encode().len(),
            });
            println!("{value}");
        } else {
            println!("fingerprint   {}", hex(&fp.hash()));
            println!("content root  {}", hex(&fp.content_root));
            println!(
                "tensors       {} ({matrices} sketched, {units} units)",
                fp.tensors.len()
            );
            println!("anchors       {anchors}");
            println!("parameters    {}", fp.parameters());
        }
        eprintln!(
            "fingerprinted {:.1} MB on {backend} in {seconds:.2} s ({:.0} MB/s)",
            model.data_bytes() as f64 / 1e6,
            model.data_bytes() as f64 / 1e6 / seconds.max(1e-9)
        );
        Ok(ExitCode::SUCCESS)
    }
}

/// Opens and fingerprints a model, with a progress bar on stderr.
pub(crate) fn compute(
    path: &std::path::Path,
    tokenizer: Option<&std::path::Path>,
    backend: BackendKind,
) -> Result<(Model, Fingerprint)> {
    let mut model = Model::open(path)?;
    if let Some(tokenizer) = tokenizer {
        model = model.with_tokens(Some(fingerprint::Tokens::open(tokenizer)?));
    }
    let backend = fingerprint::backend::create(backend)?;
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(model.data_bytes()),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} fingerprinting [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    let fp = fingerprint::fingerprint(&model, backend.as_ref(), |done| bar.set_position(done))?;
    bar.finish_and_clear();
    Ok((model, fp))
}
