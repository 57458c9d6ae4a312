//! Guards the generated files (foundry's `ensure_file_contents` habit): rebuild the artifacts
//! from the Solidity sources with forge, regenerate the bindings from the artifacts with
//! ethers' Abigen, and fail when a committed file differs. A stale file is rewritten in
//! place, so running the test once more (and committing) fixes the drift.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use ethers::contract::Abigen;
use proc_macro2::{Group, TokenStream, TokenTree};
use serde_json::{json, Value};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn forge() -> Result<PathBuf> {
    let forge = crate_dir().join("../node_modules/@foundry-rs/forge-linux-amd64/bin/forge");
    if !forge.exists() {
        bail!(
            "forge not found at {}: run `npm ci` at the repository root",
            forge.display()
        );
    }
    Ok(forge)
}

/// Writes `contents` to `path` if it differs and reports the file as stale.
fn ensure_file_contents(path: &Path, contents: &str, stale: &mut Vec<String>) -> Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    if normalize_newlines(&old) != normalize_newlines(contents) {
        std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
        stale.push(path.display().to_string());
    }
    Ok(())
}

fn normalize_newlines(s: &str) -> String {
    s.replace("\r\n", "\n")
}

/// The parts of a forge artifact that the bindings and deployments need.
fn reduce_artifact(forge_artifact: &Value) -> Result<Value> {
    let field = |name: &str| -> Result<Value> {
        forge_artifact
            .get(name)
            .cloned()
            .with_context(|| format!("forge artifact has no `{name}`"))
    };
    Ok(json!({
        "abi": field("abi")?,
        "bytecode": field("bytecode")?.get("object").cloned().context("no bytecode.object")?,
        "deployedBytecode": field("deployedBytecode")?
            .get("object")
            .cloned()
            .context("no deployedBytecode.object")?,
    }))
}

/// Replaces every `::core::include_bytes!("<path>")` in `tokens` with `pinned`.
fn replace_include(
    tokens: TokenStream,
    path: &str,
    pinned: &TokenStream,
    found: &mut bool,
) -> TokenStream {
    let literal = format!("{path:?}");
    let mut out: Vec<TokenTree> = Vec::new();
    for tree in tokens {
        match tree {
            TokenTree::Group(group) => {
                let inner = group.stream();
                let is_include = inner.clone().into_iter().count() == 1
                    && inner.to_string() == literal
                    && out.len() >= 7
                    && TokenStream::from_iter(out[out.len() - 7..].iter().cloned()).to_string()
                        == ":: core :: include_bytes !";
                if is_include {
                    out.truncate(out.len() - 7);
                    out.extend(pinned.clone());
                    *found = true;
                } else {
                    let mut replaced = Group::new(
                        group.delimiter(),
                        replace_include(inner, path, pinned, found),
                    );
                    replaced.set_span(group.span());
                    out.push(TokenTree::Group(replaced));
                }
            }
            other => out.push(other),
        }
    }
    out.into_iter().collect()
}

#[test]
fn generated_files_are_fresh() -> Result<()> {
    let dir = crate_dir();
    let build = tempfile::tempdir()?;
    let out = build.path().join("out");
    let status = Command::new(forge()?)
        .current_dir(&dir)
        .args(["build", "src", "--out"])
        .arg(&out)
        .arg("--cache-path")
        .arg(build.path().join("cache"))
        .status()
        .context("running forge build")?;
    assert!(status.success(), "forge build failed: {status}");

    let mut stale = Vec::new();
    for (contract, module) in contracts::CONTRACTS {
        let forge_artifact = out.join(format!("{contract}.sol/{contract}.json"));
        let forge_artifact: Value = serde_json::from_slice(&std::fs::read(&forge_artifact)?)?;
        let artifact = serde_json::to_string_pretty(&reduce_artifact(&forge_artifact)?)? + "\n";
        let artifact_path = dir.join(format!("artifacts/{contract}.json"));
        ensure_file_contents(&artifact_path, &artifact, &mut stale)?;

        let path = artifact_path
            .to_str()
            .context("artifact path is not UTF-8")?;
        // Abigen reports with eyre, which anyhow cannot wrap as a source: keep the message.
        let mut bindings = Abigen::new(contract, path)
            .and_then(Abigen::generate)
            .map_err(|e| anyhow::anyhow!("generating bindings of {contract} from {path}: {e:#}"))?;
        // Abigen pins the artifact by absolute path (for rebuilds). Point it at the crate
        // instead, in the token stream before formatting, so neither the path nor the line
        // breaking it causes depends on where the repository is checked out.
        let pinned = format!("::core::include_bytes!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/artifacts/{contract}.json\"))");
        let pinned: TokenStream = pinned.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut found = false;
        let tokens = std::mem::take(&mut bindings.tokens);
        bindings.tokens = replace_include(tokens, path, &pinned, &mut found);
        assert!(
            found,
            "Abigen output of {contract} has no include_bytes!(\"{path}\")"
        );
        let mut code = format!(
            "// @generated by contracts/tests/it/generated.rs from artifacts/{contract}.json. Do not edit.\n"
        )
        .into_bytes();
        bindings
            .write(&mut code)
            .map_err(|e| anyhow::anyhow!("writing bindings of {contract}: {e:#}"))?;
        let code = String::from_utf8(code)?;
        ensure_file_contents(
            &dir.join(format!("rust/bindings/{module}.rs")),
            &code,
            &mut stale,
        )?;
    }
    assert!(
        stale.is_empty(),
        "generated files were stale and have been rewritten; rebuild and commit them: {stale:#?}"
    );
    Ok(())
}
