//! `/graphiql`: the GraphiQL IDE, served from this server alone. Its scripts and stylesheet
//! (graphiql 3, React 18, pinned in the repository's `package-lock.json`) are compiled into
//! the binary from `node_modules` (`npm ci` at the repository root, as the README's set-up
//! does): a browser of an API user fetches nothing from a CDN, so the page works offline and
//! no third party can change the code that runs beside the API. The page's
//! `Content-Security-Policy` allows scripts and styles from this origin only.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

/// Scripts and styles from this origin only (GraphiQL sets inline style attributes, and its
/// icons and fonts are data URLs); requests to this origin's API only (`'self'` covers its
/// WebSocket too, in browsers of CSP level 3).
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The assets are fixed for a build: browsers may keep them a day.
const ASSET_CACHE: &str = "public, max-age=86400";

macro_rules! npm {
    ($path:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../node_modules/",
            $path
        ))
    };
}

/// The files under `/graphiql/assets/`: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "graphiql.min.css",
        "text/css; charset=utf-8",
        npm!("graphiql/graphiql.min.css"),
    ),
    (
        "graphiql.min.js",
        "text/javascript; charset=utf-8",
        npm!("graphiql/graphiql.min.js"),
    ),
    (
        "react.production.min.js",
        "text/javascript; charset=utf-8",
        npm!("react/umd/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8",
        npm!("react-dom/umd/react-dom.production.min.js"),
    ),
    (
        "start.js",
        "text/javascript; charset=utf-8",
        include_bytes!("start.js"),
    ),
];

/// `GET /graphiql`.
pub(crate) async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(include_str!("index.html"))
}

/// `GET /graphiql/assets/{name}`.
pub(crate) async fn asset(name: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|(n, _, _)| *n == name.as_str()) {
        Some((_, content_type, bytes)) => HttpResponse::Ok()
            .content_type(*content_type)
            .insert_header((header::CACHE_CONTROL, ASSET_CACHE))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .body(*bytes),
        None => HttpResponse::NotFound().json(serde_json::json!({
            "error": format!("no GraphiQL asset {:?}", name.as_str())
        })),
    }
}
