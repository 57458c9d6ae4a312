//! Pushing a file to a Kubo RPC node: a 64 MiB file (256 chunks) imported into a real IPFS
//! daemon (js-ipfs, as the content-store tests use) with `block/put` calls one at a time and
//! pipelined, each run on a fresh daemon: on loopback, and through a TCP proxy that holds every
//! answer `BENCH_RTT_MS` (default 20) back, as a node a round trip away. Prints MB/s for each.
//!
//! `cargo bench -p registry --bench push [-- MIB]`

use std::time::{Duration, Instant};

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
    let rtt: u64 = std::env::var("BENCH_RTT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    println!("push of {mib} MiB to js-ipfs over the Kubo RPC API (block/put per block)");
    let mut root = None;
    for delay in [None, Some(Duration::from_millis(rtt))] {
        match delay {
            None => println!("on loopback:"),
            Some(d) => println!("through a proxy holding each answer {} ms:", d.as_millis()),
        }
        for puts in [1, 4, 16, 32] {
            let daemon = JsIpfs::start();
            let api = match delay {
                None => daemon.api().to_string(),
                Some(delay) => delaying_proxy(daemon.api(), delay).await,
            };
            let store = Store::Kubo(Box::new(Kubo::connect(&api).await.unwrap()));
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
}

/// A TCP proxy in front of `upstream` (`http://HOST:PORT`) that holds each piece of every
/// answer `delay` before passing it on: each request waits about one round trip more.
async fn delaying_proxy(upstream: &str, delay: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = upstream.trim_start_matches("http://").to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                let _ = server_write.shutdown().await;
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = server_read.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    tokio::time::sleep(delay).await;
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = client_write.shutdown().await;
            });
        }
    });
    url
}
