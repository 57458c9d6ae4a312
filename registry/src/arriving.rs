//! A file read while it is being written: the writer moves a mark forward as its bytes reach
//! the file, and a reader waits behind the mark. A download writes the weights and
//! fingerprints them at the same time, so checking them costs no second pass after the last
//! byte.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll};

use crate::{Error, Result};

/// How far a file has been written.
#[derive(Debug, Default)]
pub struct Arrival {
    mark: Mutex<Mark>,
    moved: Condvar,
}

#[derive(Debug, Default, Clone, Copy)]
struct Mark {
    written: u64,
    /// No more bytes will come: the writer finished or failed.
    closed: bool,
    /// The writer offered more bytes than the file was declared to hold.
    overflowed: bool,
}

impl Arrival {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn update(&self, f: impl FnOnce(&mut Mark)) {
        let mut mark = self.mark.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut mark);
        self.moved.notify_all();
    }

    fn mark(&self) -> Mark {
        *self.mark.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Blocks until the bytes `..end` are written (true), or the writer has stopped short of
    /// them (false).
    pub fn wait_for(&self, end: u64) -> bool {
        let mut mark = self.mark.lock().unwrap_or_else(|e| e.into_inner());
        while mark.written < end && !mark.closed {
            mark = self.moved.wait(mark).unwrap_or_else(|e| e.into_inner());
        }
        mark.written >= end
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.mark().written
    }

    /// Whether the writer offered more bytes than the file was declared to hold.
    pub fn overflowed(&self) -> bool {
        self.mark().overflowed
    }

    /// No more bytes will come (called when the writer is dropped, so a failing writer
    /// releases its readers too).
    pub fn close(&self) {
        self.update(|m| m.closed = true);
    }
}

/// The writing end: a file allocated at its declared length up front (so a reader can map all
/// of it at once), written in order, and never past that length.
#[derive(Debug)]
pub struct ArrivingFile {
    file: std::fs::File,
    path: PathBuf,
    len: u64,
    written: u64,
    arrival: Arc<Arrival>,
}

impl ArrivingFile {
    /// Opens `path` for writing `len` bytes.
    pub fn create(path: &Path, len: u64, arrival: Arc<Arrival>) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.into(),
            cause: source,
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        file.set_len(len).map_err(io)?;
        Ok(Self {
            file,
            path: path.into(),
            len,
            written: 0,
            arrival,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Write for ArrivingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written + buf.len() as u64 > self.len {
            self.arrival.update(|m| m.overflowed = true);
            return Err(std::io::Error::other(format!(
                "more bytes than the {} declared",
                self.len
            )));
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        let written = self.written;
        self.arrival.update(|m| m.written = written);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// For [`content::cat`]: each write goes straight to the file, blocking, as the
/// embedded store's reads of the blocks themselves do (page-cache writes of one block).
impl tokio::io::AsyncWrite for ArrivingFile {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.get_mut().write(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(self.get_mut().flush())
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Drop for ArrivingFile {
    fn drop(&mut self) {
        self.arrival.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_wait_behind_the_writer_and_are_released_when_it_stops() {
        let dir = tempfile::tempdir().unwrap();
        let arrival = Arrival::new();
        let mut file = ArrivingFile::create(&dir.path().join("f"), 10, arrival.clone()).unwrap();
        assert_eq!(std::fs::metadata(dir.path().join("f")).unwrap().len(), 10);
        let reader = {
            let arrival = arrival.clone();
            std::thread::spawn(move || arrival.wait_for(6))
        };
        file.write_all(b"abcd").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            !reader.is_finished(),
            "4 of 6 bytes: the reader still waits"
        );
        file.write_all(b"ef").unwrap();
        assert!(reader.join().unwrap());
        // Past the declared length: refused, and remembered.
        let err = file.write_all(b"ghijk").unwrap_err();
        assert!(
            err.to_string().contains("more bytes than the 10 declared"),
            "{err}"
        );
        assert!(arrival.overflowed());
        let short = {
            let arrival = arrival.clone();
            std::thread::spawn(move || arrival.wait_for(10))
        };
        drop(file);
        assert!(!short.join().unwrap(), "the writer stopped at 6 bytes");
        assert_eq!(arrival.written(), 6);
    }
}
