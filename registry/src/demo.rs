//! The demo market of `registry up --demo`: a small but real market, seeded once on a dev
//! chain through the same flows the `registry` program uses (nothing is written to the
//! database directly; the indexer finds it all on the chain).
//!
//! - A dollar token (`DemoToken`, 6 decimals) the market accepts, held by every dev account.
//! - Models generated on the spot (no downloads): `aurora-base` and `basil-encoder` (bases),
//!   `aurora-chat` (a declared fine-tune of `aurora-base`, paying it royalties) and
//!   `copycat` (a lightly perturbed copy of `aurora-base` minted without declaring it, which
//!   the indexer flags as an undeclared derivative).
//! - Offerings of every kind, in ether and in the token, time-bound and perpetual.
//! - Licenses held by several accounts, one committed output batch with its leaf list
//!   published.

use std::path::Path;
use std::sync::Arc;

use content::{Store, Version};
use contracts::LicenseKind;
use ethers::types::{Address, U256};
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde::{Deserialize, Serialize};

use crate::chain::{self, Client};
use crate::deploy::Deployment;
use crate::market::{Market, OfferingTerms};
use crate::mint::{mint, MintRequest};
use crate::outputs::commit::{commit, CommitRequest};
use crate::progress::Silent;
use crate::{Error, Result};

/// Whole tokens each dev account holds.
const TOKEN_GRANT: u64 = 100_000;
const DAY: u64 = 86_400;

/// What the demo seeded: written beside the deployment, so a second start does not seed
/// again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Seeded {
    /// The registry the demo was seeded on (a redeployment seeds again).
    pub registry: Address,
    pub token: Address,
    /// (name, model id), in mint order.
    pub models: Vec<(String, U256)>,
    /// (holder, license id).
    pub licenses: Vec<(Address, U256)>,
}

impl Seeded {
    pub fn load(path: &Path) -> Option<Self> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).expect("a seed record serializes");
        std::fs::write(path, json).map_err(io(path))
    }
}

/// Deploys the demo's dollar token, granting every `holder` [`TOKEN_GRANT`] tokens.
pub async fn deploy_token(client: Arc<Client>, holders: &[Address]) -> Result<Address> {
    let amount = U256::from(TOKEN_GRANT) * U256::exp10(6);
    let token =
        contracts::DemoToken::deploy(client, (holders.to_vec(), vec![amount; holders.len()]))
            .map_err(|e| Error::Contract {
                context: "encoding the DemoToken deployment".into(),
                message: e.to_string(),
            })?
            .send()
            .await
            .map_err(|e| Error::Contract {
                context: "deploying the DemoToken".into(),
                message: e.to_string(),
            })?;
    Ok(token.address())
}

/// One step of the seeding, for progress lines.
pub trait Report {
    fn step(&self, line: &str);
}

impl<F: Fn(&str)> Report for F {
    fn step(&self, line: &str) {
        self(line)
    }
}

/// Seeds the market on `deployment` (whose market accepts `token`), as the dev accounts of
/// `url` (at least six, dev account 0 first), writing the generated weights under `work`.
pub async fn seed(
    url: &str,
    deployment: &Deployment,
    token: Address,
    store: &Store,
    work: &Path,
    report: &dyn Report,
) -> Result<Seeded> {
    std::fs::create_dir_all(work).map_err(io(work))?;
    let mut markets = Vec::new();
    for i in 0..6 {
        let client = chain::connect(url, chain::dev_wallet(i)?, Some(deployment.chain_id)).await?;
        markets.push(Market::new(client, deployment.clone()).await?);
    }
    let [alice, bob, carol, dave, erin, mallory] = [0, 1, 2, 3, 4, 5].map(|i| &markets[i]);
    let mut seeded = Seeded {
        registry: deployment.registry,
        token,
        models: Vec::new(),
        licenses: Vec::new(),
    };
    let milli_ether = |n: u64| U256::exp10(15) * n;
    let dollars = |n: u64| U256::exp10(6) * n;

    let weights = |name: &str, seed: u32, noise: f32| -> Result<std::path::PathBuf> {
        let path = work.join(format!("{name}.safetensors"));
        // Each model drifts from its seed in a direction of its own (seeded by its name).
        let drift = name.bytes().fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        write_weights(&path, seed, noise, drift)?;
        Ok(path)
    };
    let request = |path: std::path::PathBuf, name: &str, description: &str| MintRequest {
        weights: path,
        name: name.into(),
        description: Some(description.into()),
        parents: vec![],
        to: None,
        sale_royalty_bps: 250,
        derivative_royalty_bps: 500,
        force: false,
        backend: fingerprint::BackendKind::Cpu,
        cid_version: Version::V1,
        encrypt_to: None,
    };

    // Two base models.
    let aurora_weights = weights("aurora-base", 1, 0.0)?;
    let aurora = minted(
        alice,
        store,
        &request(
            aurora_weights,
            "aurora-base",
            "A small base model: two MLP blocks over a 512-token embedding.",
        ),
    )
    .await?;
    report.step(&format!("minted model {aurora} aurora-base (account 0)"));
    seeded.models.push(("aurora-base".into(), aurora));
    let basil = minted(
        bob,
        store,
        &request(
            weights("basil-encoder", 2, 0.0)?,
            "basil-encoder",
            "An encoder of the same shapes, trained independently.",
        ),
    )
    .await?;
    report.step(&format!("minted model {basil} basil-encoder (account 1)"));
    seeded.models.push(("basil-encoder".into(), basil));

    // Offerings of every kind, in ether and in the token.
    let terms =
        |model: U256, kind: LicenseKind, currency: Address, price: U256, days: u64| OfferingTerms {
            model_id: model,
            kind: kind.into(),
            currency,
            price,
            duration: days * DAY,
            supply_cap: 0,
            transferable: kind != LicenseKind::FineTune,
            commercial_use: kind != LicenseKind::Access,
            royalty_bps: if kind == LicenseKind::FineTune {
                1_000
            } else {
                0
            },
            renewal_period: 7 * DAY,
            delivery_period: 0,
            terms_uri: String::new(),
            terms_hash: [0; 32],
        };
    let native = Address::zero();
    let aurora_access = alice
        .publish(terms(
            aurora,
            LicenseKind::Access,
            native,
            milli_ether(10),
            30,
        ))
        .await?
        .0;
    let aurora_tune = alice
        .publish(terms(
            aurora,
            LicenseKind::FineTune,
            native,
            milli_ether(50),
            0,
        ))
        .await?
        .0;
    let aurora_output = alice
        .publish(terms(
            aurora,
            LicenseKind::Output,
            native,
            milli_ether(2),
            7,
        ))
        .await?
        .0;
    let basil_access = bob
        .publish(terms(basil, LicenseKind::Access, token, dollars(25), 30))
        .await?
        .0;
    bob.publish(terms(basil, LicenseKind::Output, token, dollars(5), 1))
        .await?;
    report.step("published access, fine-tune and output offerings (ether and DUSD)");

    // A declared derivative: carol buys a fine-tune license and mints with it.
    let tune = carol
        .buy(aurora_tune, carol.address(), milli_ether(50), None)
        .await?
        .license;
    let mut chat = request(
        weights("aurora-chat", 1, 0.05)?,
        "aurora-chat",
        "aurora-base fine-tuned for chat; pays 10% of its sales to aurora-base.",
    );
    chat.parents = vec![(aurora, tune)];
    let chat = minted(carol, store, &chat).await?;
    report.step(&format!(
        "minted model {chat} aurora-chat, a fine-tune of {aurora} (account 2)"
    ));
    seeded.models.push(("aurora-chat".into(), chat));
    let chat_access = carol
        .publish(terms(
            chat,
            LicenseKind::Access,
            native,
            milli_ether(20),
            30,
        ))
        .await?
        .0;

    // An undeclared derivative: mallory mints a perturbed copy without naming its parent.
    let mut copycat = request(
        weights("copycat", 1, 0.03)?,
        "copycat",
        "Claims to be trained from scratch.",
    );
    copycat.force = true;
    let copycat = minted(mallory, store, &copycat).await?;
    report.step(&format!(
        "minted model {copycat} copycat, an undeclared copy of {aurora} (account 5)"
    ));
    seeded.models.push(("copycat".into(), copycat));

    // Licenses held by several accounts.
    for (market, offering, price) in [
        (dave, aurora_access, milli_ether(10)),
        (dave, aurora_output, milli_ether(2)),
        (erin, basil_access, dollars(25)),
        (erin, chat_access, milli_ether(20)),
    ] {
        let license = market
            .buy(offering, market.address(), price, None)
            .await?
            .license;
        seeded.licenses.push((market.address(), license));
    }
    report.step(
        "sold licenses to accounts 3 and 4 (one paid in DUSD, one paying royalties up the lineage)",
    );

    // An output batch under dave's output license, its leaf list published.
    let outputs = work.join("outputs");
    std::fs::create_dir_all(&outputs).map_err(io(&outputs))?;
    let mut files = Vec::new();
    for (i, text) in [
        "a haiku about gradients",
        "a summary of a contract",
        "a poem",
    ]
    .iter()
    .enumerate()
    {
        let path = outputs.join(format!("output-{i}.txt"));
        std::fs::write(&path, text).map_err(io(&path))?;
        files.push(path);
    }
    let output_license = seeded.licenses[1].1;
    // Dated by the chain, not by the files' times: the node's clock may run a second behind
    // this machine's, and an output dated after the commit's block never verifies.
    let produced_at = dave.next_block_time().await?;
    let committed = commit(
        dave,
        store,
        &CommitRequest {
            files,
            license: output_license,
            publish: true,
            produced_at: Some(produced_at),
            cid_version: Version::V1,
        },
        &Silent,
    )
    .await?;
    report.step(&format!(
        "committed an output batch of 3 files under license {output_license} (root {:?})",
        committed.root
    ));
    Ok(seeded)
}

/// Mints through the author's flow; weights already registered (a seeding interrupted
/// after this mint, resumed) are that model, not an error.
async fn minted(market: &Market, store: &Store, request: &MintRequest) -> Result<U256> {
    match mint(market, store, request, &Silent).await {
        Ok(minted) => Ok(minted.model),
        Err(Error::DuplicateContent { model, .. }) => Ok(U256::from(model)),
        Err(e) => Err(e),
    }
}

/// A value in [-1, 1) from a 32-bit integer hash (lowbias32) of element `k` and `seed`: the
/// generated models' weights, the same on every machine.
pub fn uniform(k: u32, seed: u32) -> f32 {
    let mut x = k ^ seed.wrapping_mul(0x9e37_79b9);
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x as f32 / 2_147_483_648.0 - 1.0
}

/// Writes a small model's weights (F32 safetensors): an embedding, two MLP blocks and a head,
/// from a 32-bit hash of `seed`, plus `noise` times a second stream from `drift` (a
/// fine-tune's drift).
pub fn write_weights(path: &Path, seed: u32, noise: f32, drift: u32) -> Result<()> {
    let shapes: [(&str, Vec<usize>); 7] = [
        ("embed.weight", vec![512, 64]),
        ("blocks.0.up.weight", vec![256, 64]),
        ("blocks.0.up.bias", vec![256]),
        ("blocks.0.down.weight", vec![64, 256]),
        ("blocks.1.up.weight", vec![256, 64]),
        ("blocks.1.down.weight", vec![64, 256]),
        ("head.weight", vec![16, 64]),
    ];
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = shapes
        .into_iter()
        .enumerate()
        .map(|(t, (name, shape))| {
            let n: usize = shape.iter().product();
            let base = 1_000_000 * t as u32;
            let bytes = (0..n as u32)
                .flat_map(|k| {
                    (uniform(base + k, seed) + noise * uniform(base + k, drift)).to_le_bytes()
                })
                .collect();
            (name.to_string(), shape, bytes)
        })
        .collect();
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes).map(|view| (name.clone(), view))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| io(path)(std::io::Error::other(e.to_string())))?;
    let bytes = safetensors::serialize(views, None)
        .map_err(|e| io(path)(std::io::Error::other(e.to_string())))?;
    std::fs::write(path, bytes).map_err(io(path))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |cause| Error::Io {
        path: path.to_path_buf(),
        cause,
    }
}
