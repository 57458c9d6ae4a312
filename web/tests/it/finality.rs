//! `final` is about a row as it is shown: a license bought long ago but transferred in a block
//! that is not final yet is not final.

use contracts::LicenseKind;
use ethers::types::U256;
use registry::chain;
use registry::indexer::Options;
use serde_json::Value;

use crate::api::{addr, Api};
use crate::dbs::{Kind, TestDb};
use crate::world::{options, terms, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recent_change_is_not_final() {
    let world = World::start().await;
    let (model, _) = world.output_offering(76).await;
    let transferable = terms(model, LicenseKind::Output, U256::zero(), 0, 0, true);
    let offering = world.offer(0, transferable).await;
    let license = world.buy(1, offering, U256::zero()).await;
    let provider = chain::provider(world.url()).unwrap();
    for _ in 0..6 {
        let _: String = provider.request("evm_mine", ()).await.unwrap();
    }
    let (_, market) = world
        .deployment()
        .contracts(world.markets[1].client().clone());
    chain::send(
        chain::Target::Market,
        "transfer",
        market.transfer_from(world.address(1), world.address(2), license),
    )
    .await
    .unwrap();
    let db = TestDb::new(Kind::Sqlite).await;
    let confirmations = Options {
        confirmations: 3,
        ..options()
    };
    world
        .indexer(&db, confirmations)
        .await
        .sync()
        .await
        .unwrap();
    let api = Api::start(db.open().await, world.store());
    let query = format!(
        r#"{{ licenses(where: {{ holder: "{}" }}) {{ edges {{ node {{ id final }} }} }}
             model(id: "{model}") {{ final }} }}"#,
        addr(world.address(2))
    );
    let data = api.data(&query, Value::Null).await;
    let node = &data["licenses"]["edges"][0]["node"];
    assert_eq!(node["id"], license.to_string());
    assert_eq!(node["final"], false, "transferred in a block not final yet");
    assert_eq!(
        data["model"]["final"], true,
        "minted long ago, unchanged since"
    );
}
