//! `/ipfs/<cid>`: files of the content store, read-only.
//!
//! - **Never an open proxy.** Only blocks the store already holds are read: from a Kubo node
//!   with its `offline` option, so a client cannot make the node fetch arbitrary content from
//!   the IPFS network through this server. Every block read is checked against its CID.
//! - **Ranges.** A single `Range: bytes=…` is answered `206` with that part (subtrees before
//!   it are skipped by their declared sizes, not read); one past the end `416`; several ranges
//!   the whole file (allowed by RFC 9110).
//! - **Bounded.** At most [`Limits::gateway_streams`] downloads at once (then `503`); a
//!   download whose client stops reading waits on a small buffer, and gives its place back
//!   when the client goes or has read nothing for [`Limits::gateway_stall`] (a few clients
//!   that open downloads and never read would hold every place otherwise).
//! - **Inert.** Files are uploaded by anyone and served from the web app's origin: every
//!   answer says `nosniff` and a sandboxing `Content-Security-Policy`, so a stored script or
//!   page cannot be run as the app's own (`script-src 'self'`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use content::{cids, Reading, Store};
use tokio::sync::Semaphore;

use crate::limits::Limits;

/// Downloads at once, bounded.
#[derive(Debug, Clone)]
pub(crate) struct Downloads(Arc<Semaphore>);

impl Downloads {
    pub(crate) fn new(limit: usize) -> Self {
        Self(Arc::new(Semaphore::new(limit)))
    }
}

/// What a `Range` header asks of a file of `size` bytes: `Ok(None)` for the whole file (no
/// header, several ranges or one this server does not read), `Ok(Some((start, end)))` for
/// bytes `start..end`, `Err(())` when it starts past the end.
pub(crate) fn range(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (first, last) = (first.trim(), last.trim());
    // Digits only (Rust's parse would take `+5`, which RFC 9110 does not).
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (number(first), number(last)) {
        // bytes=-n: the last n bytes (none of an empty file).
        (None, Some(n)) if first.is_empty() => match n {
            0 => Err(()),
            _ if size == 0 => Err(()),
            n => Ok(Some((size.saturating_sub(n), size))),
        },
        (Some(start), _) if start >= size => Err(()),
        (Some(start), None) if last.is_empty() => Ok(Some((start, size))),
        // `end` may be any u64, u64::MAX too.
        (Some(start), Some(end)) if end >= start => {
            Ok(Some((start, end.saturating_add(1).min(size))))
        }
        _ => Ok(None),
    }
}

/// A writer that fails once its reader has taken nothing for `idle`: a download is written
/// into a small pipe that the client's connection drains, and a client that never reads
/// would otherwise hold its place among [`Limits::gateway_streams`] for good.
struct Stalling<W> {
    inner: W,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<W> Stalling<W> {
    fn new(inner: W, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    /// `pending` unless the deadline has passed; then the error that ends the download.
    fn stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the client read nothing for {:?}", self.idle),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Stalling<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    let next = tokio::time::Instant::now() + this.idle;
                    this.deadline.as_mut().reset(next);
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.stalled(cx),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.stalled(cx),
            ready => ready,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn plain(mut builder: actix_web::HttpResponseBuilder, text: String) -> HttpResponse {
    builder
        .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
        .body(text)
}

/// Serves `/ipfs/<cid>[/<path>]` from `store`: a file's bytes, or a directory's listing.
pub(crate) async fn serve(
    store: Option<Arc<Store>>,
    downloads: &Downloads,
    limits: &Limits,
    req: &HttpRequest,
    cid: &str,
    path: &[String],
) -> HttpResponse {
    let Some(store) = store else {
        return plain(
            HttpResponse::NotFound(),
            "no content store is configured\n".into(),
        );
    };
    let root = match cids::parse(cid) {
        Ok(cid) => cid,
        Err(e) => return plain(HttpResponse::BadRequest(), format!("{e}\n")),
    };
    let Ok(permit) = downloads.0.clone().try_acquire_owned() else {
        return plain(
            HttpResponse::ServiceUnavailable(),
            format!(
                "{} downloads are running, the most at once; try again later\n",
                limits.gateway_streams
            ),
        );
    };
    // A path below a directory (a model folder's config, one shard); a directory itself is
    // answered with its listing. Only blocks the store holds are read: never fetched from
    // the network for a visitor.
    let cid = match content::resolve(&store, &root, path, Reading::Held).await {
        Ok(cid) => cid,
        Err(e) => return refused(&root, e),
    };
    match content::list(&store, &cid, Reading::Held).await {
        Ok(Some(entries)) => return listing(&root, path, &entries),
        Ok(None) => {}
        Err(e) => return refused(&root, e),
    }
    let size = match content::file_size_with(&store, &cid, Reading::Held).await {
        Ok(size) => size,
        Err(e) => return refused(&cid, e),
    };
    let asked = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok());
    let part = match range(asked, size) {
        Ok(part) => part,
        Err(()) => {
            return HttpResponse::RangeNotSatisfiable()
                .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
                .finish()
        }
    };
    // HEAD: the headers a GET would have (its Content-Length too, which actix keeps for a
    // HEAD answer), and nothing read.
    let head = req.method() == actix_web::http::Method::HEAD;
    let (writer, reader) = tokio::io::duplex(if head { 1 } else { 256 * 1024 });
    let writer = Stalling::new(writer, limits.gateway_stall);
    let download = async move {
        // Held until the download ends (or its client goes and the writes fail).
        let _permit = permit;
        let written = match part {
            None => content::cat_with(&store, &cid, writer, &|_| {}, Reading::Held).await,
            Some((start, end)) => {
                content::cat_range(&store, &cid, Reading::Held, start, end, writer).await
            }
        };
        if let Err(e) = written {
            // The client sees a truncated body; the length header tells it so.
            tracing::warn!("gateway {cid}: {e}");
        }
    };
    if head {
        drop(download);
    } else {
        actix_web::rt::spawn(download);
    }
    let mut response = match part {
        None => HttpResponse::Ok(),
        Some(_) => HttpResponse::PartialContent(),
    };
    response
        .insert_header((header::CONTENT_TYPE, "application/octet-stream"))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::ETAG, format!("\"{cid}\"")))
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "sandbox; default-src 'none'",
        ));
    let length = match part {
        None => size,
        Some((start, end)) => {
            response.insert_header((
                header::CONTENT_RANGE,
                format!("bytes {start}-{}/{size}", end - 1),
            ));
            end - start
        }
    };
    if head {
        let nothing = futures::stream::empty::<std::io::Result<actix_web::web::Bytes>>();
        return response.no_chunking(length).streaming(nothing);
    }
    response
        .no_chunking(length)
        .streaming(tokio_util::io::ReaderStream::new(reader))
}

/// The answer to a content error: 404 for what the store lacks, 422 for what is not UnixFS.
fn refused(cid: &content::Cid, e: content::Error) -> HttpResponse {
    match e {
        content::Error::BlockNotFound { .. } => plain(
            HttpResponse::NotFound(),
            format!("{cid} is not in the content store\n"),
        ),
        e @ content::Error::PathNotFound { .. } => {
            plain(HttpResponse::NotFound(), format!("{e}\n"))
        }
        e @ (content::Error::MalformedNode { .. } | content::Error::UnsupportedHash { .. }) => {
            plain(HttpResponse::UnprocessableEntity(), format!("{e}\n"))
        }
        e => {
            tracing::error!("gateway {cid}: {e}");
            plain(
                HttpResponse::InternalServerError(),
                "the content could not be read\n".into(),
            )
        }
    }
}

/// A name as one URL path segment: everything but unreserved characters percent-encoded (a
/// `?`, `#` or space in a file name stays part of the name).
fn segment(name: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(name, SEGMENT).to_string()
}

/// A directory's listing: each entry linked below the root, with its size and CID.
fn listing(root: &content::Cid, path: &[String], entries: &[content::Listed]) -> HttpResponse {
    // Every segment encoded again, so a folder named `a#b` links its children right.
    let base: String = std::iter::once(format!("/ipfs/{root}"))
        .chain(path.iter().map(|name| segment(name)))
        .collect::<Vec<_>>()
        .join("/");
    let page = maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Index of " (base) }
            }
            body {
                h1 { "Index of " code { (base) } }
                table {
                    thead { tr { th { "Name" } th { "Size" } th { "CID" } } }
                    tbody {
                        @for entry in entries {
                            tr {
                                td { a href={ (base) "/" (segment(&entry.name)) } { (entry.name) @if entry.folder { "/" } } }
                                td { @if !entry.folder { (entry.size) } }
                                td { code { (entry.cid) } }
                            }
                        }
                    }
                }
            }
        }
    };
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header(("Content-Security-Policy", "default-src 'none'"))
        .insert_header((header::ETAG, format!("\"{base}\"")))
        .body(page.into_string())
}

#[cfg(test)]
mod tests {
    use super::range;

    #[test]
    fn ranges_read_as_rfc_9110_says() {
        assert_eq!(range(None, 100), Ok(None));
        assert_eq!(range(Some("bytes=0-9"), 100), Ok(Some((0, 10))));
        assert_eq!(range(Some("bytes=90-200"), 100), Ok(Some((90, 100))));
        assert_eq!(range(Some("bytes=50-"), 100), Ok(Some((50, 100))));
        assert_eq!(range(Some("bytes=-30"), 100), Ok(Some((70, 100))));
        assert_eq!(range(Some("bytes=-300"), 100), Ok(Some((0, 100))));
        assert_eq!(range(Some("bytes=100-"), 100), Err(()));
        assert_eq!(range(Some("bytes=-0"), 100), Err(()));
        assert_eq!(range(Some("bytes=0-1,5-6"), 100), Ok(None));
        assert_eq!(range(Some("bytes=9-1"), 100), Ok(None));
        assert_eq!(range(Some("items=0-1"), 100), Ok(None));
        assert_eq!(range(Some("bytes=0-0"), 0), Err(()));
        // Numbers a client may send: the largest end, a suffix of an empty file, signs.
        assert_eq!(
            range(Some("bytes=0-18446744073709551615"), 100),
            Ok(Some((0, 100)))
        );
        assert_eq!(range(Some("bytes=-5"), 0), Err(()));
        assert_eq!(range(Some("bytes=+5-9"), 100), Ok(None));
        assert_eq!(range(Some("bytes=5-+9"), 100), Ok(None));
    }
}
