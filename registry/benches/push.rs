//! Pushing a file to a Kubo RPC node: a 64 MiB file (256 chunks) imported into a real IPFS
//! daemon (js-ipfs, as the content-store tests use) with `block/put` calls one at a time and
//! pipelined, each run on a fresh daemon. Prints MB/s for each.
//!
//! `cargo bench -p registry --bench push [-- MIB]`

use std::time::Instant;

use content::{importer, Kubo, Store, Version};
use test_support::jsipfs::JsIpfs;

#[tokio::main]
async fn main() {
    let mib: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .map(|a| a.parse().expect("MIB is a number"))
        .unwrap_or(64);
    // Bytes that do not repeat (every chunk a distinct block).
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<u8> = (0..mib << 20)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 56) as u8
        })
        .collect();
    println!("push of {mib} MiB to js-ipfs over the Kubo RPC API (block/put per block)");
    let mut root = None;
    for puts in [1, 4, 16, 32] {
        let daemon = JsIpfs::start();
        let store = Store::Kubo(Box::new(Kubo::connect(daemon.api()).await.unwrap()));
        let started = Instant::now();
        let added = importer::add_with(&store, data.as_slice(), Version::V1, &|_| {}, puts)
            .await
            .unwrap();
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(*root.get_or_insert(added.cid), added.cid, "the same root");
        println!(
            "  {puts:>2} in flight: {seconds:6.2} s, {:7.1} MB/s ({} blocks)",
            data.len() as f64 / seconds / 1e6,
            added.blocks
        );
    }
}
