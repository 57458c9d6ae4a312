//! GraphiQL is served from this server alone: every script and stylesheet the page names is
//! a path here, answered with the pinned npm package's bytes, and the page's
//! Content-Security-Policy lets the browser load nothing from elsewhere.

use std::path::Path;

use crate::api::Api;
use crate::dbs::{Kind, TestDb};

/// The values of `attribute="…"` in `html`.
fn attributes<'a>(html: &'a str, attribute: &str) -> Vec<&'a str> {
    let open = format!("{attribute}=\"");
    html.match_indices(&open)
        .map(|(at, _)| {
            let rest = &html[at + open.len()..];
            &rest[..rest.find('"').expect("attribute closed")]
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_loads_nothing_from_another_origin() {
    let db = TestDb::new(Kind::Sqlite).await;
    let store = tempfile::tempdir().unwrap();
    let api = Api::start(
        db.open().await,
        content::Store::embedded(store.path()).unwrap(),
    );

    let page = api
        .http
        .get(format!("{}/graphiql", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let policy = page
        .headers()
        .get("content-security-policy")
        .expect("the page sets a Content-Security-Policy")
        .to_str()
        .unwrap()
        .to_string();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
    ] {
        assert!(policy.contains(directive), "{directive} missing: {policy}");
    }
    let html = page.text().await.unwrap();
    let scripts = attributes(&html, "src");
    let styles = attributes(&html, "href");
    assert!(scripts.len() >= 4, "{html}");
    assert!(!styles.is_empty(), "{html}");
    assert!(
        !html.contains("<script>"),
        "an inline script needs 'unsafe-inline'"
    );

    let modules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../node_modules");
    let packaged = [
        ("graphiql.min.js", "graphiql/graphiql.min.js"),
        ("graphiql.min.css", "graphiql/graphiql.min.css"),
        (
            "react.production.min.js",
            "react/umd/react.production.min.js",
        ),
        (
            "react-dom.production.min.js",
            "react-dom/umd/react-dom.production.min.js",
        ),
    ];
    for url in scripts.iter().chain(&styles) {
        // A path on this server: not another origin, not a protocol-relative `//host`.
        assert!(url.starts_with('/') && !url.starts_with("//"), "{url}");
        let response = api
            .http
            .get(format!("{}{url}", api.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let kind = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        let expected = if url.ends_with(".css") {
            "text/css"
        } else {
            "text/javascript"
        };
        assert!(kind.starts_with(expected), "{url}: {kind}");
        let body = response.bytes().await.unwrap();
        let name = url.rsplit('/').next().unwrap();
        match packaged.iter().find(|(n, _)| *n == name) {
            Some((_, file)) => assert!(
                body == std::fs::read(modules.join(file)).unwrap(),
                "{url} is not the pinned {file}"
            ),
            None => assert!(!body.is_empty(), "{url} is empty"),
        }
    }
    // Every packaged file is used by the page.
    for (name, _) in packaged {
        assert!(
            scripts.iter().chain(&styles).any(|u| u.ends_with(name)),
            "{name} not on the page"
        );
    }

    let missing = api
        .http
        .get(format!("{}/graphiql/assets/../../Cargo.toml", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let unknown = api
        .http
        .get(format!("{}/graphiql/assets/evil.js", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

/// Headless Chromium (`REGISTRY_CHROMIUM`, else `chromium` on the PATH; the test script
/// installs it with apt-get).
fn chromium() -> std::path::PathBuf {
    if let Ok(path) = std::env::var("REGISTRY_CHROMIUM") {
        return path.into();
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|n| dir.join(n)))
        .find(|p| p.is_file())
        .expect("chromium is missing: apt-get install chromium (or set REGISTRY_CHROMIUM)")
}

/// In a real browser the page renders GraphiQL under its policy: no refused script, style or
/// connection, and the schema is fetched from this server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_renders_in_a_browser_under_its_policy() {
    let db = TestDb::new(Kind::Sqlite).await;
    let store = tempfile::tempdir().unwrap();
    let api = Api::start(
        db.open().await,
        content::Store::embedded(store.path()).unwrap(),
    );
    let profile = tempfile::tempdir().unwrap();
    let url = format!("{}/graphiql", api.url);
    let browser = chromium();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(browser)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--enable-logging=stderr",
                "--virtual-time-budget=10000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(["--dump-dom", &url])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    for rendered in [
        "graphiql-container",
        "graphiql-execute-button",
        "graphiql-editor",
    ] {
        assert!(
            dom.contains(rendered),
            "{rendered} not rendered: {dom}\n{log}"
        );
    }
    for refusal in ["Content Security Policy", "Refused to"] {
        assert!(!log.contains(refusal), "{refusal}: {log}");
    }
    // The page asked the API for its schema (introspection, a POST to /graphql).
    let metrics = api.text("/metrics").await;
    let posts: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("registry_http_request_duration_seconds_count{")
                && l.contains("route=\"/graphql\"")
                && l.contains("method=\"POST\"")
                && l.contains("status=\"200\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        posts >= 1.0,
        "no introspection request reached the API: {metrics}"
    );
}
