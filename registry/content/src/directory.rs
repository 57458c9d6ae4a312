//! Folders as UnixFS directories, built exactly as Kubo's `ipfs add -r` builds them: every
//! file imported as `ipfs add` imports it ([`crate::importer`]), every folder a DAG-PB node of
//! type `Directory` whose links name its entries, sorted by name bytes, each link's `Tsize`
//! the entry's cumulative DAG size. So the CIDs equal Kubo's for the same tree and
//! parameters (`--cid-version 0` or 1).
//!
//! As `ipfs add -r` without `--hidden`, entries whose names start with `.` are left out unless
//! asked for. Symbolic links and other special files are refused by name (a folder of model
//! files holds none; a Hugging Face cache's snapshot folder does: add its resolved copy). A
//! folder so large that Kubo stores it HAMT-sharded (its links' names and CIDs over 256 KiB)
//! is sharded as boxo shards it: 256 slots a node, names placed by their murmur3 hash.
//!
//! Reading back ([`get_dir`]) writes the tree into a fresh folder beside the target and
//! renames it into place once every file is written and checked, so a failed or interrupted
//! read leaves nothing half-written at the target. Entry names from the store are checked
//! (no `/`, `..`, empty or NUL names; no duplicates), so a crafted directory cannot write
//! outside the target.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use cid::{Cid, Version};

use super::cids::{self, DAG_PB, RAW};
use super::dagpb::{self, Entry, Kind};
use super::exporter::cat;
use super::importer::{add, Added};
use super::{Reading, Store};
use crate::{Error, Result};

/// Kubo's `Internal.UnixFSShardingSizeThreshold`: a directory whose links (names and CIDs)
/// add up to more than this is stored HAMT-sharded.
pub const SHARDING_THRESHOLD: usize = 256 * 1024;

/// What adding a folder produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedDir {
    pub cid: Cid,
    /// Every file, by its path below the folder (`/`-separated), with what its import gave.
    pub files: Vec<(String, Added)>,
    /// Folders, the root included.
    pub dirs: u64,
    /// Bytes of file data.
    pub size: u64,
    /// Cumulative size of the DAG's encoded blocks.
    pub dag_size: u64,
}

/// Imports the folder at `path` (recursively) into `store`; `hidden` includes entries whose
/// names start with `.`. `progress` gets the file bytes imported so far.
pub async fn add_dir(
    store: &Store,
    path: &Path,
    version: Version,
    hidden: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<AddedDir> {
    let mut added = AddedDir {
        cid: Cid::default(),
        files: Vec::new(),
        dirs: 0,
        size: 0,
        dag_size: 0,
    };
    let options = Options {
        store,
        version,
        hidden,
        progress,
    };
    let (cid, dag_size) = add_folder(&options, path, String::new(), &mut added).await?;
    added.cid = cid;
    added.dag_size = dag_size;
    Ok(added)
}

struct Options<'a> {
    store: &'a Store,
    version: Version,
    hidden: bool,
    progress: &'a (dyn Fn(u64) + Sync),
}

// Not `Send`: the Kubo client's futures are not.
type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + 'a>>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |cause| Error::ContentIo {
        path: path.into(),
        cause,
    }
}

/// Adds one folder (its entries first); returns its CID and cumulative DAG size.
fn add_folder<'a>(
    options: &'a Options<'a>,
    path: &'a Path,
    prefix: String,
    added: &'a mut AddedDir,
) -> Boxed<'a, (Cid, u64)> {
    Box::pin(async move {
        let mut names = Vec::new();
        let mut reading = tokio::fs::read_dir(path).await.map_err(io(path))?;
        while let Some(entry) = reading.next_entry().await.map_err(io(path))? {
            let name = entry
                .file_name()
                .into_string()
                .map_err(|name| Error::UnsupportedEntry {
                    path: path.join(&name),
                    reason: "its name is not UTF-8 (UnixFS names are text)".into(),
                })?;
            if name.starts_with('.') && !options.hidden {
                continue;
            }
            names.push(name);
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            let child = path.join(&name);
            let relative = format!("{prefix}{name}");
            let kind = tokio::fs::symlink_metadata(&child)
                .await
                .map_err(io(&child))?
                .file_type();
            let (cid, tsize) = if kind.is_dir() {
                add_folder(options, &child, format!("{relative}/"), added).await?
            } else if kind.is_file() {
                let file = tokio::fs::File::open(&child).await.map_err(io(&child))?;
                let before = added.size;
                let progress = |n: u64| (options.progress)(before + n);
                let file_added = add(
                    options.store,
                    tokio::io::BufReader::new(file),
                    options.version,
                    &progress,
                )
                .await?;
                added.size += file_added.size;
                let result = (file_added.cid, file_added.dag_size);
                added.files.push((relative, file_added));
                result
            } else {
                return Err(Error::UnsupportedEntry {
                    path: child,
                    reason: match kind.is_symlink() {
                        true => "a symbolic link (add the file it points to instead)".into(),
                        false => "not a regular file or folder".into(),
                    },
                });
            };
            entries.push(Entry { name, cid, tsize });
        }
        let links: usize = entries
            .iter()
            .map(|e| e.name.len() + e.cid.to_bytes().len())
            .sum();
        if links > SHARDING_THRESHOLD {
            let hashed = entries
                .into_iter()
                .map(|e| (hamt_hash(&e.name), e))
                .collect();
            let (cid, tsize) = add_shard(options, hashed, 0).await?;
            added.dirs += 1;
            return Ok((cid, tsize));
        }
        let block = dagpb::encode_dir_node(&entries);
        let cid = cids::cid_of(options.version, DAG_PB, &block);
        let tsize = block.len() as u64 + entries_tsize(&entries);
        options.store.put(&cid, block).await?;
        added.dirs += 1;
        Ok((cid, tsize))
    })
}

fn entries_tsize(entries: &[Entry]) -> u64 {
    entries.iter().map(|e| e.tsize).sum()
}

/// Kubo's (boxo's) shard width.
const HAMT_FANOUT: usize = 256;

/// The hash that places a name in a HAMT: the first 64 bits of its murmur3-x64-128 (seed 0),
/// big-endian, read a byte per level, as boxo's `murmur3.New64().Sum(nil)`.
fn hamt_hash(name: &str) -> [u8; 8] {
    let h = murmur3::murmur3_x64_128(&mut name.as_bytes(), 0).expect("reading a slice");
    (h as u64).to_be_bytes()
}

/// Stores `entries` (with their hashes) as the HAMT shard at `depth` and the shards below
/// it: each slot (the hash's byte at `depth`) holding one entry names it `XX` + its name,
/// a slot holding several is a sub-shard named `XX`. Returns the shard's CID and cumulative
/// size. The layout depends only on the set of names, so it equals boxo's for any order.
fn add_shard<'a>(
    options: &'a Options<'a>,
    entries: Vec<([u8; 8], Entry)>,
    depth: usize,
) -> Boxed<'a, (Cid, u64)> {
    Box::pin(async move {
        let mut slots: Vec<Vec<([u8; 8], Entry)>> = (0..HAMT_FANOUT).map(|_| Vec::new()).collect();
        for (hash, entry) in entries {
            let Some(&slot) = hash.get(depth) else {
                return Err(Error::UnsupportedEntry {
                    path: entry.name.into(),
                    reason: "its name's 64-bit HAMT hash equals another's".into(),
                });
            };
            slots[usize::from(slot)].push((hash, entry));
        }
        let mut bitfield = [0u8; HAMT_FANOUT / 8];
        let mut links = Vec::new();
        for (slot, mut held) in slots.into_iter().enumerate() {
            let link = match held.len() {
                0 => continue,
                1 => {
                    let (_, entry) = held.pop().expect("one entry");
                    Entry {
                        name: format!("{slot:02X}{}", entry.name),
                        ..entry
                    }
                }
                _ => {
                    let (cid, tsize) = add_shard(options, held, depth + 1).await?;
                    Entry {
                        name: format!("{slot:02X}"),
                        cid,
                        tsize,
                    }
                }
            };
            bitfield[HAMT_FANOUT / 8 - 1 - slot / 8] |= 1 << (slot % 8);
            links.push(link);
        }
        let block = dagpb::encode_shard_node(&links, &bitfield, HAMT_FANOUT as u64);
        let cid = cids::cid_of(options.version, DAG_PB, &block);
        let tsize = block.len() as u64 + entries_tsize(&links);
        options.store.put(&cid, block).await?;
        Ok((cid, tsize))
    })
}

/// What reading a directory back wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Files, by path below the target.
    pub files: Vec<(String, u64)>,
    pub bytes: u64,
}

/// Whether `root` is a UnixFS directory (the block is read and checked).
pub async fn is_dir(store: &Store, root: &Cid) -> Result<bool> {
    is_dir_with(store, root, Reading::Checked).await
}

/// [`is_dir`], reading as `reading` says (a gateway reads only what the node holds).
pub async fn is_dir_with(store: &Store, root: &Cid, reading: Reading) -> Result<bool> {
    if root.codec() != DAG_PB {
        return Ok(false);
    }
    let block = store.read(root, held_or_checked(reading)).await?;
    let kind = dagpb::decode_kind(&block).map_err(|r| malformed(root, r))?;
    Ok(matches!(kind, Kind::Directory(_) | Kind::Shard { .. }))
}

/// An entry of a directory, as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub cid: Cid,
    pub folder: bool,
    /// A file's size as its root declares it; 0 for a folder.
    pub size: u64,
}

/// The entries of the directory `cid`, in its order (sorted by name), or `None` when `cid` is
/// not a directory; blocks read as `reading` says.
pub async fn list(store: &Store, cid: &Cid, reading: Reading) -> Result<Option<Vec<Listed>>> {
    if cid.codec() != DAG_PB {
        return Ok(None);
    }
    let Some(mut entries) = entries_of(store, cid, reading).await? else {
        return Ok(None);
    };
    // A sharded directory's entries come in hash order.
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut listed = Vec::with_capacity(entries.len());
    // Each child read once, however many entries link it (a directory of 100,000 names for
    // one block would read it 200,000 times otherwise, on every listing).
    let mut described: HashMap<Cid, (bool, u64)> = HashMap::new();
    for (name, child) in entries {
        let (folder, size) = match described.get(&child) {
            Some(&known) => known,
            None => {
                let known = describe(store, &child, reading).await?;
                described.insert(child, known);
                known
            }
        };
        listed.push(Listed {
            name,
            cid: child,
            folder,
            size,
        });
    }
    Ok(Some(listed))
}

/// Whether `cid` is a folder, and if not the size its root declares: its block read once.
async fn describe(store: &Store, cid: &Cid, reading: Reading) -> Result<(bool, u64)> {
    let block = store.read(cid, held_or_checked(reading)).await?;
    if cid.codec() == DAG_PB {
        let kind = dagpb::decode_kind(&block).map_err(|r| malformed(cid, r))?;
        if matches!(kind, Kind::Directory(_) | Kind::Shard { .. }) {
            return Ok((true, 0));
        }
    }
    Ok((false, super::exporter::declared_size(cid, &block)?))
}

/// The CID at the names `path` below the directory `root` (none: the root itself); blocks
/// read as `reading` says.
pub async fn resolve(store: &Store, root: &Cid, path: &[String], reading: Reading) -> Result<Cid> {
    let mut at = *root;
    let shown = path.join("/");
    for name in path {
        let not_found = || Error::PathNotFound {
            root: root.to_string(),
            path: shown.clone(),
        };
        if at.codec() != DAG_PB {
            return Err(not_found());
        }
        at = lookup(store, &at, name, reading)
            .await?
            .ok_or_else(not_found)?;
    }
    Ok(at)
}

/// Entries (files and folders) a tree may hold when it is measured or written out: a model
/// folder holds tens; a crafted one naming the same subtree many times must not make a
/// reader walk or write trillions.
pub const MAX_ENTRIES: u64 = 100_000;

/// What a directory holds, counted as written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tree {
    /// File bytes, as the files' roots declare them.
    pub bytes: u64,
    /// Files and folders below the root.
    pub entries: u64,
}

/// The bytes and entries under the directory `root` (only the directory nodes and each file's
/// root block are read, each distinct block once): what writing it out would take. More than
/// [`MAX_ENTRIES`] entries is an error, found without walking them all (a subtree named many
/// times counts each time, but is measured once).
pub async fn tree_size(store: &Store, root: &Cid) -> Result<Tree> {
    let mut measured = std::collections::HashMap::new();
    let tree = measure(store, root, &mut measured, 0).await?;
    Ok(tree)
}

fn measure<'a>(
    store: &'a Store,
    cid: &'a Cid,
    measured: &'a mut std::collections::HashMap<Cid, Tree>,
    depth: usize,
) -> Boxed<'a, Tree> {
    Box::pin(async move {
        if let Some(tree) = measured.get(cid) {
            return Ok(*tree);
        }
        if depth > 64 {
            return Err(malformed(cid, "folders nested more than 64 deep"));
        }
        let Some(entries) = entries_of(store, cid, Reading::Checked).await? else {
            return Err(malformed(cid, "not a directory"));
        };
        let mut tree = Tree::default();
        for (_, child) in entries {
            let is_folder = is_dir(store, &child).await?;
            let below = match is_folder {
                true => measure(store, &child, measured, depth + 1).await?,
                false => match measured.get(&child) {
                    Some(file) => *file,
                    None => {
                        let file = Tree {
                            bytes: super::file_size(store, &child).await?,
                            entries: 0,
                        };
                        measured.insert(child, file);
                        file
                    }
                },
            };
            tree.bytes = tree.bytes.saturating_add(below.bytes);
            tree.entries = tree.entries.saturating_add(below.entries).saturating_add(1);
            if tree.entries > MAX_ENTRIES {
                return Err(malformed(
                    cid,
                    format!("holds more than {MAX_ENTRIES} files and folders"),
                ));
            }
        }
        measured.insert(*cid, tree);
        Ok(tree)
    })
}

/// The entries of the directory `cid` (a plain one, or every shard of a HAMT-sharded one,
/// in hash order), or `None` when it is not a directory; blocks read as `reading` says. Each
/// sub-shard is read once (as boxo's walk does: a real HAMT never names one twice), and a
/// sharded directory of more than [`MAX_ENTRIES`] entries or shards is refused.
async fn entries_of(
    store: &Store,
    cid: &Cid,
    reading: Reading,
) -> Result<Option<Vec<(String, Cid)>>> {
    let Some(kind) = dir_kind(store, cid, reading).await? else {
        return Ok(None);
    };
    let (links, prefix) = match kind {
        Kind::Directory(entries) => return Ok(Some(entries)),
        Kind::Shard { links, prefix, .. } => (links, prefix),
        Kind::File | Kind::Other(_) => return Ok(None),
    };
    let mut entries = Vec::new();
    let mut pending = vec![(*cid, links, prefix)];
    let mut visited = std::collections::HashSet::from([*cid]);
    while let Some((shard, links, prefix)) = pending.pop() {
        for (name, child) in links {
            match slot_of(&shard, &name, prefix)? {
                Some(entry) => {
                    entries.push((entry.to_string(), child));
                    if entries.len() as u64 > MAX_ENTRIES {
                        return Err(malformed(
                            cid,
                            format!("holds more than {MAX_ENTRIES} entries"),
                        ));
                    }
                }
                None => {
                    if !visited.insert(child) {
                        continue;
                    }
                    if visited.len() as u64 > MAX_ENTRIES {
                        return Err(malformed(
                            cid,
                            format!("more than {MAX_ENTRIES} HAMT shards"),
                        ));
                    }
                    let (links, prefix, _) = sub_shard(store, &child, reading).await?;
                    pending.push((child, links, prefix));
                }
            }
        }
    }
    Ok(Some(entries))
}

/// What the node `cid` is, if it is DAG-PB (else `None`); read as `reading` says.
async fn dir_kind(store: &Store, cid: &Cid, reading: Reading) -> Result<Option<Kind>> {
    if cid.codec() != DAG_PB {
        return Ok(None);
    }
    let block = store.read(cid, held_or_checked(reading)).await?;
    Ok(Some(
        dagpb::decode_kind(&block).map_err(|r| malformed(cid, r))?,
    ))
}

/// A HAMT link's entry name (`None` for a sub-shard, named by its slot alone); its slot
/// must be `prefix` upper-case hex digits, as boxo writes it.
fn slot_of<'n>(shard: &Cid, name: &'n str, prefix: usize) -> Result<Option<&'n str>> {
    let slot = name.get(..prefix).filter(|s| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    });
    if slot.is_none() {
        return Err(malformed(
            shard,
            format!("HAMT link {name:?} names no slot"),
        ));
    }
    Ok((name.len() > prefix).then(|| &name[prefix..]))
}

/// The sub-shard `cid` of a HAMT: its links, slot width and fanout.
async fn sub_shard(
    store: &Store,
    cid: &Cid,
    reading: Reading,
) -> Result<(Vec<(String, Cid)>, usize, u64)> {
    match dir_kind(store, cid, reading).await? {
        Some(Kind::Shard {
            links,
            prefix,
            fanout,
        }) => Ok((links, prefix, fanout)),
        _ => Err(malformed(cid, "a HAMT slot's sub-shard is not a shard")),
    }
}

/// The entry `name` of the directory `dir`: in a plain one by its link, in a HAMT-sharded one
/// along its hash's path, a slot a level, as boxo's `Find` (so a name planted in another
/// slot is not found; in at most eight reads of 256-wide shards). Links are matched by their
/// slot names, where boxo counts the bitfield's bits: the two agree on every shard boxo
/// writes. `None` when absent, or when
/// `dir` is not a directory.
async fn lookup(store: &Store, dir: &Cid, name: &str, reading: Reading) -> Result<Option<Cid>> {
    let (mut links, mut prefix, mut fanout) = match dir_kind(store, dir, reading).await? {
        Some(Kind::Directory(entries)) => {
            return Ok(entries.into_iter().find(|(n, _)| n == name).map(|(_, c)| c))
        }
        Some(Kind::Shard {
            links,
            prefix,
            fanout,
        }) => (links, prefix, fanout),
        _ => return Ok(None),
    };
    let hash = hamt_hash(name);
    let (mut at, mut consumed) = (*dir, 0u32);
    loop {
        let width = fanout.trailing_zeros();
        if consumed + width > 64 {
            return Err(malformed(
                &at,
                "HAMT shards nested deeper than the hash allows",
            ));
        }
        // The next `width` bits of the hash, most significant first.
        let slot = (u64::from_be_bytes(hash) << consumed) >> (64 - width);
        consumed += width;
        let slot = format!("{slot:0prefix$X}");
        let mut next = None;
        for (link, child) in links {
            if link == slot {
                next = Some(child);
            } else if link.strip_prefix(slot.as_str()) == Some(name) {
                return Ok(Some(child));
            }
        }
        let Some(child) = next else {
            return Ok(None);
        };
        (links, prefix, fanout) = sub_shard(store, &child, reading).await?;
        at = child;
    }
}

/// A node's reads for a listing: only what it holds when asked for that, else checked.
fn held_or_checked(reading: Reading) -> Reading {
    match reading {
        Reading::Held => Reading::Held,
        _ => Reading::Checked,
    }
}

/// Writes the directory under `root` to a new folder `out` (which must not exist); `progress`
/// gets the file bytes written so far.
pub async fn get_dir(
    store: &Store,
    root: &Cid,
    out: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Written> {
    if tokio::fs::symlink_metadata(out).await.is_ok() {
        return Err(Error::ContentIo {
            path: out.into(),
            cause: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "already exists: name a new folder",
            ),
        });
    }
    // Measured first: a tree of more than MAX_ENTRIES is refused before anything is written.
    tree_size(store, root).await?;
    let parent = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // A fresh, unpredictable folder beside the target (removed with what it holds on any
    // error); the tree is renamed out of it into place once complete.
    let stage = tempfile::Builder::new()
        .prefix(".partial-")
        .tempdir_in(&parent)
        .map_err(io(&parent))?;
    let tree = stage.path().join("tree");
    let mut written = Written {
        files: Vec::new(),
        bytes: 0,
    };
    write_folder(store, root, &tree, String::new(), &mut written, progress).await?;
    if tokio::fs::symlink_metadata(out).await.is_ok() {
        return Err(Error::ContentIo {
            path: out.into(),
            cause: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "appeared while it was written: name a new folder",
            ),
        });
    }
    tokio::fs::rename(&tree, out).await.map_err(io(out))?;
    Ok(written)
}

fn malformed(cid: &Cid, reason: impl Into<String>) -> Error {
    Error::MalformedNode {
        cid: cid.to_string(),
        reason: reason.into(),
    }
}

/// A name a directory entry may have on disk: one path component, nothing that climbs out.
fn safe_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

fn write_folder<'a>(
    store: &'a Store,
    cid: &'a Cid,
    path: &'a Path,
    prefix: String,
    written: &'a mut Written,
    progress: &'a (dyn Fn(u64) + Sync),
) -> Boxed<'a, ()> {
    Box::pin(async move {
        let Some(entries) = entries_of(store, cid, Reading::Checked).await? else {
            return Err(malformed(cid, "not a directory"));
        };
        tokio::fs::create_dir(path).await.map_err(io(path))?;
        let mut seen = std::collections::HashSet::new();
        for (name, child) in entries {
            if !safe_name(&name) {
                return Err(malformed(cid, format!("unsafe entry name {name:?}")));
            }
            if !seen.insert(name.clone()) {
                return Err(malformed(cid, format!("entry {name:?} appears twice")));
            }
            let target = path.join(&name);
            let relative = format!("{prefix}{name}");
            let is_file = match child.codec() {
                RAW => true,
                DAG_PB => {
                    let block = store.get(&child).await?;
                    match dagpb::decode_kind(&block).map_err(|r| malformed(&child, r))? {
                        Kind::File => true,
                        Kind::Directory(_) | Kind::Shard { .. } => false,
                        Kind::Other(kind) => {
                            return Err(malformed(
                                &child,
                                format!("entry {relative:?} is a unixfs {kind} node, which is not supported"),
                            ))
                        }
                    }
                }
                codec => return Err(malformed(&child, format!("codec {codec:#x} is not unixfs"))),
            };
            if is_file {
                let file = tokio::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                    .await
                    .map_err(io(&target))?;
                let before = written.bytes;
                let progress_file = |n: u64| progress(before + n);
                let size = cat(
                    store,
                    &child,
                    tokio::io::BufWriter::new(file),
                    &progress_file,
                )
                .await?;
                written.bytes += size;
                written.files.push((relative, size));
            } else {
                write_folder(
                    store,
                    &child,
                    &target,
                    format!("{relative}/"),
                    written,
                    progress,
                )
                .await?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory node naming `names`, each an empty file, put into `store`.
    async fn crafted(store: &Store, names: &[&str]) -> Cid {
        let file = add(store, &b"pwned"[..], Version::V1, &|_| {})
            .await
            .unwrap();
        let entries: Vec<Entry> = names
            .iter()
            .map(|name| Entry {
                name: name.to_string(),
                cid: file.cid,
                tsize: file.dag_size,
            })
            .collect();
        let block = dagpb::encode_dir_node(&entries);
        let cid = cids::cid_of(Version::V1, DAG_PB, &block);
        store.put(&cid, block).await.unwrap();
        cid
    }

    #[tokio::test]
    async fn a_crafted_directory_cannot_write_outside_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::embedded(&dir.path().join("blocks")).unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        for (names, why) in [
            (&["../evil"][..], "unsafe entry name"),
            (&["a/b"][..], "unsafe entry name"),
            (&[".."][..], "unsafe entry name"),
            (&[""][..], "unsafe entry name"),
            (&["same", "same"][..], "appears twice"),
        ] {
            let root = crafted(&store, names).await;
            let out = work.join("out");
            let err = get_dir(&store, &root, &out, &|_| {}).await.unwrap_err();
            assert!(err.to_string().contains(why), "{names:?}: {err}");
            // Nothing written: not the target, not the staging folder, not outside.
            assert!(!out.exists(), "{names:?}");
            assert!(!dir.path().join("evil").exists());
            let left: Vec<_> = std::fs::read_dir(&work).unwrap().collect();
            assert!(left.is_empty(), "{names:?} left {left:?}");
        }
        // An existing target is never written into.
        let root = crafted(&store, &["ok"]).await;
        std::fs::create_dir(work.join("taken")).unwrap();
        let err = get_dir(&store, &root, &work.join("taken"), &|_| {})
            .await
            .unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        let written = get_dir(&store, &root, &work.join("fresh"), &|_| {})
            .await
            .unwrap();
        assert_eq!(written.files, vec![("ok".to_string(), 5)]);
        assert_eq!(std::fs::read(work.join("fresh/ok")).unwrap(), b"pwned");
    }

    #[tokio::test]
    async fn a_folder_naming_one_subtree_many_times_is_refused_before_it_is_walked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::embedded(&dir.path().join("blocks")).unwrap();
        let file = add(&store, &b""[..], Version::V1, &|_| {}).await.unwrap();
        // Three levels of 400 names each for one child: 64 million entries in a few blocks.
        let mut child = (file.cid, file.dag_size);
        for _ in 0..3 {
            let entries: Vec<Entry> = (0..400)
                .map(|i| Entry {
                    name: format!("e{i}"),
                    cid: child.0,
                    tsize: child.1,
                })
                .collect();
            let block = dagpb::encode_dir_node(&entries);
            let cid = cids::cid_of(Version::V1, DAG_PB, &block);
            child = (cid, block.len() as u64);
            store.put(&cid, block).await.unwrap();
        }
        let err = tree_size(&store, &child.0).await.unwrap_err();
        assert!(err.to_string().contains("more than 100000"), "{err}");
        let out = dir.path().join("out");
        let err = get_dir(&store, &child.0, &out, &|_| {}).await.unwrap_err();
        assert!(err.to_string().contains("more than 100000"), "{err}");
        assert!(!out.exists());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["blocks"], "nothing written beside the target");
    }

    /// Whether the folder at `path`, added at CID version 1, is stored HAMT-sharded.
    async fn sharded(store: &Store, path: &Path) -> bool {
        let added = add_dir(store, path, Version::V1, false, &|_| {})
            .await
            .unwrap();
        let block = store.get(&added.cid).await.unwrap();
        let kind = dagpb::decode_kind(&block).unwrap();
        let listed = list(store, &added.cid, Reading::Checked)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(listed.len(), 2048, "every entry listed either way");
        matches!(kind, Kind::Shard { .. })
    }

    #[tokio::test]
    async fn a_folder_exactly_at_kubos_threshold_stays_plain_and_one_byte_more_shards() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::embedded(&dir.path().join("blocks")).unwrap();
        let folder = dir.path().join("f");
        std::fs::create_dir(&folder).unwrap();
        // 2,048 links of a 92-byte name and a 36-byte CIDv1 (raw leaf): 262,144 bytes, which
        // boxo keeps in one node ("> HAMTShardingSize", not ">=").
        for i in 0..2048 {
            std::fs::write(folder.join(format!("{i:04}{}", "n".repeat(88))), [i as u8]).unwrap();
        }
        assert!(!sharded(&store, &folder).await);
        let first = folder.join(format!("0000{}", "n".repeat(88)));
        std::fs::rename(&first, folder.join(format!("0000{}", "n".repeat(89)))).unwrap();
        assert!(sharded(&store, &folder).await);
    }

    /// Puts a HAMT shard node of `links` (name, CID) into `store`.
    async fn shard(store: &Store, links: &[(String, Cid)], fanout: u64) -> Cid {
        let entries: Vec<Entry> = links
            .iter()
            .map(|(name, cid)| Entry {
                name: name.clone(),
                cid: *cid,
                tsize: 1,
            })
            .collect();
        let block = dagpb::encode_shard_node(&entries, &[0xff; 32], fanout);
        let cid = cids::cid_of(Version::V1, DAG_PB, &block);
        store.put(&cid, block).await.unwrap();
        cid
    }

    #[tokio::test]
    async fn crafted_shards_are_refused_by_name_without_walking_them_all() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::embedded(&dir.path().join("blocks")).unwrap();
        let file = add(&store, &b"x"[..], Version::V1, &|_| {})
            .await
            .unwrap()
            .cid;
        let err = |root: Cid| {
            let store = &store;
            async move { tree_size(store, &root).await.unwrap_err().to_string() }
        };
        let no_slot = shard(&store, &[("Z".into(), file)], 256).await;
        assert!(err(no_slot).await.contains("names no slot"));
        let odd = shard(&store, &[("00a".into(), file)], 100).await;
        assert!(err(odd).await.contains("HAMT shard of width 100"));
        let not_a_shard = shard(&store, &[("00".into(), file)], 256).await;
        assert!(err(not_a_shard).await.contains("sub-shard is not a shard"));
        let wide = shard(&store, &[("00a".into(), file), ("01b".into(), file)], 8).await;
        assert_eq!(tree_size(&store, &wide).await.unwrap().entries, 2);
        // Written as a width-8 shard: nine links for eight slots.
        let too_many: Vec<(String, Cid)> = (0..9).map(|i| (format!("{i}x{i}"), file)).collect();
        let over = shard(&store, &too_many, 8).await;
        assert!(err(over).await.contains("width 8 with 9 links"));
        // Three levels of 256 slots all naming the next level: 16 million paths through four
        // blocks, each read once (as boxo's walk), giving the one entry once.
        let mut level = shard(&store, &[("00leaf".into(), file)], 256).await;
        for _ in 0..3 {
            let links: Vec<(String, Cid)> = (0..256).map(|i| (format!("{i:02X}"), level)).collect();
            level = shard(&store, &links, 256).await;
        }
        let listed = list(&store, &level, Reading::Checked)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name, "leaf");
    }

    #[tokio::test]
    async fn a_name_resolves_only_along_its_hash_path_as_kubo_finds_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::embedded(&dir.path().join("blocks")).unwrap();
        let served = add(&store, &b"served"[..], Version::V1, &|_| {})
            .await
            .unwrap()
            .cid;
        let hidden = add(&store, &b"hidden"[..], Version::V1, &|_| {})
            .await
            .unwrap()
            .cid;
        let slot = hamt_hash("config.json")[0];
        let wrong = slot.wrapping_add(1);
        // The name in its own slot and again in another: Kubo serves the first only.
        let root = shard(
            &store,
            &[
                (format!("{slot:02X}config.json"), served),
                (format!("{wrong:02X}config.json"), hidden),
            ],
            256,
        )
        .await;
        let path = ["config.json".to_string()];
        assert_eq!(
            resolve(&store, &root, &path, Reading::Checked)
                .await
                .unwrap(),
            served
        );
        let misplaced = shard(&store, &[(format!("{wrong:02X}config.json"), hidden)], 256).await;
        let err = resolve(&store, &misplaced, &path, Reading::Checked)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::PathNotFound { .. }), "{err}");
    }

    #[test]
    fn only_single_components_are_safe_names() {
        for bad in ["", ".", "..", "a/b", "../x", "a\\b", "a\0b"] {
            assert!(!safe_name(bad), "{bad:?}");
        }
        for good in [
            "config.json",
            ".hidden",
            "model-00001-of-00002.safetensors",
            "é",
        ] {
            assert!(safe_name(good), "{good:?}");
        }
    }
}
