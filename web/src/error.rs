//! GraphQL errors with machine codes in `extensions.code`. Internal failures are logged here,
//! once, and never described to clients.

use async_graphql::{Error, ErrorExtensions};

/// A client error: what was wrong with the request, and its code.
pub(crate) fn client(code: &'static str, message: impl Into<String>) -> Error {
    Error::new(message.into()).extend_with(|_, e| e.set("code", code))
}

/// An internal failure: logged with its details, answered generically.
pub(crate) fn internal(err: impl std::fmt::Display) -> Error {
    tracing::error!("graphql resolver failed: {err}");
    client("INTERNAL", "internal error")
}

/// `?` on database results inside resolvers.
pub(crate) trait OrInternal<T> {
    fn or_internal(self) -> Result<T, Error>;
}

impl<T, E: std::fmt::Display> OrInternal<T> for Result<T, E> {
    fn or_internal(self) -> Result<T, Error> {
        self.map_err(internal)
    }
}
