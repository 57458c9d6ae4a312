//! `registry fingerprint` and `registry compare` on generated safetensors files.

use std::path::Path;

use crate::models::write_model;
use crate::registry;

fn json(args: &[&std::ffi::OsStr]) -> serde_json::Value {
    let output = registry().args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is one JSON object")
}

#[test]
fn fingerprint_and_compare() {
    let dir = tempfile::tempdir().unwrap();
    let (base, tuned, other, saved) = (
        dir.path().join("base.safetensors"),
        dir.path().join("tuned.safetensors"),
        dir.path().join("other.safetensors"),
        dir.path().join("base.fp"),
    );
    write_model(&base, 1, 0.0);
    write_model(&tuned, 1, 0.05);
    write_model(&other, 2, 0.0);

    let fp = json(&[
        "fingerprint".as_ref(),
        base.as_os_str(),
        "--json".as_ref(),
        "--out".as_ref(),
        saved.as_os_str(),
    ]);
    let hash = fp["fingerprint"].as_str().unwrap();
    assert!(hash.starts_with("0x") && hash.len() == 66, "{fp}");
    assert_eq!(fp["content_root"].as_str().unwrap().len(), 66);
    assert_eq!(fp["tensors"], 3);
    assert_eq!(fp["parameters"], 64 * 32 + 16 * 64 + 64);
    assert_eq!(fp["backend"], "cpu");
    let encoding = std::fs::read(&saved).unwrap();
    assert!(
        encoding.starts_with(b"MRFP"),
        "--out writes the canonical encoding"
    );

    // The wgpu kernels give the same fingerprint.
    let gpu = json(&[
        "fingerprint".as_ref(),
        base.as_os_str(),
        "--json".as_ref(),
        "--backend".as_ref(),
        "wgpu".as_ref(),
    ]);
    assert_eq!(gpu["fingerprint"], fp["fingerprint"]);
    assert_eq!(gpu["backend"], "wgpu");

    let compare = |a: &Path, b: &Path| {
        json(&[
            "compare".as_ref(),
            a.as_os_str(),
            b.as_os_str(),
            "--json".as_ref(),
        ])
    };
    let same = compare(&saved, &base);
    assert_eq!(same["verdict"], "identical", "{same}");
    assert_eq!(same["tensors_matched"], 2);
    let derived = compare(&base, &tuned);
    assert_eq!(derived["verdict"], "derived", "{derived}");
    assert!(derived["false_positive_probability"].as_f64().unwrap() < 1e-6);
    assert!(derived["similarity"].as_f64().unwrap() > 0.5);
    let unrelated = compare(&saved, &other);
    assert_eq!(unrelated["verdict"], "unrelated", "{unrelated}");

    // Human output names the verdict.
    let output = registry()
        .arg("compare")
        .arg(&base)
        .arg(&tuned)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).contains("verdict                     derived"));
}

#[test]
fn bad_models_get_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.safetensors");
    let output = registry()
        .arg("fingerprint")
        .arg(&missing)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("missing.safetensors"),
        "{stderr}"
    );

    let truncated = dir.path().join("truncated.safetensors");
    write_model(&truncated, 1, 0.0);
    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() - 10]).unwrap();
    let output = registry()
        .arg("compare")
        .arg(&truncated)
        .arg(&truncated)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("truncated.safetensors") && stderr.contains("truncated file"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());

    let garbage = dir.path().join("garbage.fp");
    std::fs::write(&garbage, b"MRFP\x09\x00").unwrap();
    let output = registry()
        .arg("compare")
        .arg(&garbage)
        .arg(&truncated)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unsupported version 9"));
}
