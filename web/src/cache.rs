//! The response cache: answers to GraphQL queries over HTTP, kept while the indexed data stays
//! as it was. A marketplace's pages ask the same few queries again and again between two
//! blocks; the cache answers a repeat with the bytes of the first answer after one primary-key
//! read ([`DataVersion`]: the indexer's state row and the change counter every writer raises).
//!
//! - The key is the request exactly as sent (a POST body, a GET query string); only answers
//!   without errors are kept, so a refusal or a timeout is never repeated from the cache.
//! - All entries belong to one version: a request that reads another version empties the
//!   cache first, and an answer is stored only under the version read before it was
//!   computed (its data is that version's or newer, never older).
//! - Bounded in bytes (keys, answers and a fixed cost per entry, least recently used out
//!   first; both are copied into buffers of their exact size); an answer larger than an
//!   eighth of the bound is not kept.

use std::sync::Mutex;

use actix_web::web::Bytes;
use lru::LruCache;
use sea_orm::DatabaseConnection;
use store::DataVersion;

/// What a request asked, exactly as it came.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Post(Bytes),
    Get(String),
}

/// What an entry costs beside its key and answer: the map's and the list's bookkeeping.
const ENTRY_OVERHEAD: usize = 128;

impl Key {
    fn len(&self) -> usize {
        match self {
            Key::Post(b) => b.len(),
            Key::Get(s) => s.len(),
        }
    }

    /// The same key in a buffer of its exact size (a request body's buffer may be larger).
    fn compact(&self) -> Key {
        match self {
            Key::Post(b) => Key::Post(Bytes::copy_from_slice(b)),
            Key::Get(s) => Key::Get(s.as_str().into()),
        }
    }
}

/// Bytes an entry is counted for.
fn cost(key: &Key, answer: &Bytes) -> usize {
    key.len() + answer.len() + ENTRY_OVERHEAD
}

/// A lookup's outcome: the cached answer, or the version to store a fresh answer under.
#[derive(Debug)]
pub(crate) enum Lookup {
    Hit(Bytes),
    Miss(Option<DataVersion>),
}

#[derive(Debug)]
struct Entries {
    version: Option<DataVersion>,
    answers: LruCache<Key, Bytes>,
    bytes: usize,
}

/// The cache (see the module docs).
#[derive(Debug)]
pub(crate) struct ResponseCache {
    capacity: usize,
    entries: Mutex<Entries>,
}

impl ResponseCache {
    /// A cache of at most `capacity` bytes; 0 keeps nothing.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(Entries {
                version: None,
                answers: LruCache::unbounded(),
                bytes: 0,
            }),
        }
    }

    /// Looks `key` up under the data's current version. `Miss(None)`: do not store the
    /// answer (no cache, or the version could not be read).
    pub(crate) async fn lookup(&self, db: &DatabaseConnection, key: &Key) -> Lookup {
        if self.capacity == 0 {
            return Lookup::Miss(None);
        }
        let version = match DataVersion::read(db).await {
            Ok(version) => version,
            Err(e) => {
                tracing::warn!("response cache bypassed: reading the data version failed: {e}");
                return Lookup::Miss(None);
            }
        };
        let mut entries = self.entries.lock().expect("cache lock");
        if entries.version != Some(version) {
            entries.answers.clear();
            entries.bytes = 0;
            entries.version = Some(version);
            return Lookup::Miss(Some(version));
        }
        match entries.answers.get(key) {
            Some(answer) => Lookup::Hit(answer.clone()),
            None => Lookup::Miss(Some(version)),
        }
    }

    /// Keeps `answer` to `key`, computed after `version` was read, unless the data moved on
    /// since (the cache then holds a later version's answers).
    pub(crate) fn store(&self, version: DataVersion, key: Key, answer: Bytes) {
        let size = cost(&key, &answer);
        if size > self.capacity / 8 {
            return;
        }
        let (key, answer) = (key.compact(), Bytes::copy_from_slice(&answer));
        let mut entries = self.entries.lock().expect("cache lock");
        if entries.version != Some(version) {
            return;
        }
        if let Some(old) = entries.answers.put(key.clone(), answer) {
            entries.bytes -= cost(&key, &old);
        }
        entries.bytes += size;
        while entries.bytes > self.capacity {
            match entries.answers.pop_lru() {
                Some((k, v)) => entries.bytes -= cost(&k, &v),
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Key {
        Key::Get(s.to_string())
    }

    fn version(changes: i64) -> DataVersion {
        DataVersion::from_values([1, 2, 3, 4, 5, changes])
    }

    fn entries(cache: &ResponseCache) -> (usize, usize) {
        let e = cache.entries.lock().unwrap();
        (e.answers.len(), e.bytes)
    }

    #[test]
    fn bounded_in_bytes_least_recently_used_out_first() {
        let cache = ResponseCache::new(1_600);
        cache.entries.lock().unwrap().version = Some(version(1));
        // Entries of 200 bytes each: a one-byte key, the answer and the overhead.
        let answer = 200 - 1 - ENTRY_OVERHEAD;
        for (i, name) in ["a", "b", "c", "d", "e", "f", "g", "h", "i"]
            .iter()
            .enumerate()
        {
            cache.store(version(1), key(name), Bytes::from(vec![i as u8; answer]));
        }
        // 9 × 200 bytes over a 1,600-byte bound: the first one stored is gone.
        let (count, bytes) = entries(&cache);
        assert_eq!((count, bytes), (8, 1_600));
        let e = cache.entries.lock().unwrap();
        assert!(!e.answers.contains(&key("a")));
        assert!(e.answers.contains(&key("i")));
    }

    #[test]
    fn an_answer_is_kept_only_under_the_version_it_was_computed_at() {
        let cache = ResponseCache::new(1 << 20);
        cache.entries.lock().unwrap().version = Some(version(2));
        // Computed before the data moved to version 2: not kept.
        cache.store(version(1), key("q"), Bytes::from_static(b"old"));
        assert_eq!(entries(&cache).0, 0);
        cache.store(version(2), key("q"), Bytes::from_static(b"new"));
        assert_eq!(entries(&cache), (1, 4 + ENTRY_OVERHEAD));
        // Replacing an answer counts its bytes once.
        cache.store(version(2), key("q"), Bytes::from_static(b"newer"));
        assert_eq!(entries(&cache), (1, 6 + ENTRY_OVERHEAD));
        // Larger than an eighth of the bound: not kept.
        let small = ResponseCache::new(8 * (ENTRY_OVERHEAD + 9));
        small.entries.lock().unwrap().version = Some(version(2));
        small.store(version(2), key("q"), Bytes::from(vec![0; 9]));
        assert_eq!(entries(&small).0, 0);
    }
}
