//! `registry content …`: files and folders in the content store (add, get) and CAR files
//! (export, import).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use content::{self, car, cids, Version};
use registry::progress::Progress as _;

use crate::progress::Bars;
use crate::settings::Settings;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Add a file, or a folder and everything in it; prints its CID (the one `ipfs add`, or
    /// `ipfs add -r` for a folder, prints for the same parameters).
    Add {
        path: PathBuf,
        /// In a folder, also add entries whose names start with `.` (as `ipfs add -r --hidden`).
        #[arg(long)]
        hidden: bool,
        /// 1: raw leaves, like `ipfs add --cid-version=1`; 0: like a plain `ipfs add`.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
        cid_version: u8,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Write a file's bytes to --out (or stdout), or a folder's tree to --out, every block
    /// checked against its CID.
    Get {
        cid: String,
        /// Where to write (atomically; a new folder for a directory); stdout when absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write the DAG of a CID to a CAR file (for `ipfs dag import` or a pinning service).
    ExportCar { cid: String, file: PathBuf },
    /// Import a CAR file's blocks, each checked, and pin its roots; prints the roots.
    ImportCar {
        file: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

impl Command {
    pub(crate) async fn run(self, settings: &Settings) -> Result<ExitCode> {
        let store = settings.store().await?;
        match self {
            Command::Add {
                path,
                hidden,
                cid_version,
                json,
            } => {
                let version = if cid_version == 0 {
                    Version::V0
                } else {
                    Version::V1
                };
                if path.is_dir() {
                    return add_dir(&store, &path, version, hidden, json).await;
                }
                if !path.is_file() {
                    anyhow::bail!("{} is not a file or folder", path.display());
                }
                let bars = Bars::new();
                let size = std::fs::metadata(&path).map(|m| m.len()).ok();
                bars.stage("adding", size);
                let added = store
                    .store_file(&path, version, &|done| bars.set(done))
                    .await
                    .with_context(|| format!("adding {}", path.display()))?;
                bars.done();
                if json {
                    let value = serde_json::json!({
                        "cid": added.cid.to_string(),
                        "size": added.size,
                        "blocks": added.blocks,
                        "dag_size": added.dag_size,
                        "store": store.to_string(),
                    });
                    println!("{value}");
                } else {
                    println!("{}", added.cid);
                }
            }
            Command::Get { cid, out } => {
                let cid = cids::parse(&cid)?;
                if content::is_dir(&store, &cid).await? {
                    let out = out.with_context(|| {
                        format!("{cid} is a folder: pass --out DIR (a new folder) to write it")
                    })?;
                    let bars = Bars::new();
                    bars.stage("fetching", None);
                    let written = content::get_dir(&store, &cid, &out, &|done| bars.set(done))
                        .await
                        .with_context(|| format!("writing {cid} to {}", out.display()))?;
                    bars.done();
                    eprintln!(
                        "wrote {} files ({} bytes) to {}",
                        written.files.len(),
                        written.bytes,
                        out.display()
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                let size = content::file_size(&store, &cid).await?;
                let bars = Bars::new();
                bars.stage("fetching", Some(size));
                match out {
                    Some(out) => {
                        let dir = match out.parent() {
                            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                            _ => PathBuf::from("."),
                        };
                        let tmp = tempfile::NamedTempFile::new_in(&dir)
                            .with_context(|| format!("creating a file in {}", dir.display()))?;
                        let file = tokio::fs::File::from_std(tmp.reopen()?);
                        content::cat(&store, &cid, tokio::io::BufWriter::new(file), &|done| {
                            bars.set(done)
                        })
                        .await?;
                        tmp.persist(&out)
                            .with_context(|| format!("writing {}", out.display()))?;
                    }
                    None => {
                        content::cat(&store, &cid, tokio::io::stdout(), &|done| bars.set(done))
                            .await?;
                    }
                }
                bars.done();
            }
            Command::ExportCar { cid, file } => {
                let cid = cids::parse(&cid)?;
                let blocks = car::export(&store, &cid, &file).await?;
                eprintln!("wrote {blocks} blocks of {cid} to {}", file.display());
            }
            Command::ImportCar { file, json } => {
                let roots = car::import(&store, &file).await?;
                if json {
                    let roots: Vec<String> = roots.iter().map(ToString::to_string).collect();
                    println!("{}", serde_json::json!({ "roots": roots }));
                } else {
                    for root in roots {
                        println!("{root}");
                    }
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `content add DIR`: the folder as `ipfs add -r` stores it.
async fn add_dir(
    store: &content::Store,
    path: &std::path::Path,
    version: Version,
    hidden: bool,
    json: bool,
) -> Result<ExitCode> {
    let bars = Bars::new();
    bars.stage("adding", folder_size(path, hidden));
    let added = store
        .store_dir(path, version, hidden, &|done| bars.set(done))
        .await
        .with_context(|| format!("adding {}", path.display()))?;
    bars.done();
    if json {
        let files: Vec<serde_json::Value> = added
            .files
            .iter()
            .map(|(name, file)| serde_json::json!({ "path": name, "cid": file.cid.to_string(), "size": file.size }))
            .collect();
        let value = serde_json::json!({
            "cid": added.cid.to_string(),
            "size": added.size,
            "dirs": added.dirs,
            "dag_size": added.dag_size,
            "files": files,
            "store": store.to_string(),
        });
        println!("{value}");
    } else {
        println!("{}", added.cid);
        eprintln!(
            "added {} files and {} folders ({} bytes)",
            added.files.len(),
            added.dirs,
            added.size
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Bytes of the files under `path` that `content add` takes (for the progress bar).
fn folder_size(path: &std::path::Path, hidden: bool) -> Option<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(path).ok()? {
        let entry = entry.ok()?;
        if !hidden && entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type().ok()?;
        if kind.is_dir() {
            total += folder_size(&entry.path(), hidden)?;
        } else if kind.is_file() {
            total += entry.metadata().ok()?.len();
        }
    }
    Some(total)
}
