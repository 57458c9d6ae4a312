//! CAR (v1) export and import of a DAG, so authors can pin their weights on any IPFS service
//! (`ipfs dag import`, pinning services, web3.storage-like uploads).
//!
//! Export writes the root's blocks once each, parents before children. Import checks every
//! block against its CID before it is stored, and then that each root's DAG is complete.

use std::path::Path;

use cid::Cid;
use iroh_car::{CarHeader, CarReader, CarWriter};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};

use super::{cids, exporter, Store};
use crate::{Error, Result};

fn car_error(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Car {
        path: path.into(),
        reason: reason.to_string(),
    }
}

/// Writes the DAG under `root` to the CAR file `path` (atomically: a failed export leaves no
/// file behind). Returns the number of blocks written.
pub async fn export(store: &Store, root: &Cid, path: &Path) -> Result<u64> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let tmp = tempfile::NamedTempFile::new_in(&dir).map_err(|source| Error::ContentIo {
        path: dir.clone(),
        cause: source,
    })?;
    let file = tokio::fs::File::from_std(tmp.reopen().map_err(|source| Error::ContentIo {
        path: tmp.path().into(),
        cause: source,
    })?);
    let mut writer = CarWriter::new(CarHeader::new_v1(vec![*root]), BufWriter::new(file));
    let mut walk = exporter::Walk::new(*root);
    let mut blocks = 0u64;
    while let Some((cid, block)) = walk.next(store).await? {
        writer
            .write(cid, block)
            .await
            .map_err(|e| car_error(path, e))?;
        blocks += 1;
    }
    let mut inner = writer.finish().await.map_err(|e| car_error(path, e))?;
    inner.flush().await.map_err(|e| car_error(path, e))?;
    inner
        .into_inner()
        .sync_all()
        .await
        .map_err(|e| car_error(path, e))?;
    tmp.persist(path).map_err(|e| Error::ContentIo {
        path: path.into(),
        cause: e.error,
    })?;
    Ok(blocks)
}

/// Imports the CAR file `path` into `store`, pins its roots and returns them.
pub async fn import(store: &Store, path: &Path) -> Result<Vec<Cid>> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|source| Error::ContentIo {
            path: path.into(),
            cause: source,
        })?;
    let mut reader = CarReader::new(BufReader::new(file))
        .await
        .map_err(|e| car_error(path, format!("bad header: {e}")))?;
    let roots = reader.header().roots().to_vec();
    if roots.is_empty() {
        return Err(car_error(path, "the header names no root"));
    }
    let mut count = 0u64;
    while let Some((cid, block)) = reader
        .next_block()
        .await
        .map_err(|e| car_error(path, format!("block {}: {e}", count + 1)))?
    {
        cids::verify(&cid, &block).map_err(|e| car_error(path, e))?;
        store.put(&cid, block).await?;
        count += 1;
    }
    for root in &roots {
        let mut walk = exporter::Walk::new(*root);
        while walk
            .next(store)
            .await
            .map_err(|e| car_error(path, format!("the DAG of root {root} is incomplete: {e}")))?
            .is_some()
        {}
        store.pin(root).await?;
    }
    tracing::debug!(blocks = count, path = %path.display(), "imported car");
    Ok(roots)
}
