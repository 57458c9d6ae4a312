//! The contracts v2 rules as a user meets them through the `registry` program, against a real
//! anvil: each loophole of the audit tried the way a freeloader would, with the decoded error
//! (and hint) the program prints. Each of these succeeded on the first contracts.

use crate::market::{id, path_str, Env, ACCOUNT, DAY};
use crate::models::write_model;

/// A derivative royalty floor: fine-tune offerings below it are refused, and a derivative its
/// owner makes without any license (the path a transient owner would take) owes it too.
#[test]
fn the_derivative_royalty_floor_binds_offerings_and_the_owner_path() {
    let env = Env::start(false);
    let base = env.path("base.safetensors");
    write_model(&base, 11, 0.0);
    let minted = env.ok(
        0,
        &[
            "mint",
            path_str(&base),
            "--name",
            "base",
            "--derivative-royalty-bps",
            "1500",
            "--json",
        ],
    );
    let model = id(&minted, "model");
    let shown = env.ok(0, &["show", &model, "--json"]);
    assert_eq!(shown["derivative_royalty_bps"], 1500);

    // Asking less than the floor for fine-tuning is refused by the market.
    let below = env.fails(
        0,
        &[
            "offer",
            &model,
            "--kind",
            "fine-tune",
            "--price",
            "1",
            "--royalty-bps",
            "500",
        ],
        2,
    );
    assert!(below.contains("RoyaltyBelowFloor"), "{below}");
    assert!(below.contains("hint: "), "{below}");
    // Without --royalty-bps a fine-tune offering asks the floor.
    let offered = env.ok(
        0,
        &[
            "offer",
            &model,
            "--kind",
            "fine-tune",
            "--price",
            "0",
            "--json",
        ],
    );
    assert_eq!(offered["royalty_bps"], 1500);

    // The owner's own derivative owes the floor as well.
    let tuned = env.path("tuned.safetensors");
    write_model(&tuned, 11, 0.03);
    let derived = env.ok(
        0,
        &[
            "mint",
            path_str(&tuned),
            "--name",
            "tuned",
            "--parent",
            &model,
            "--license",
            "0",
            "--json",
        ],
    );
    let child = id(&derived, "model");
    let shown = env.ok(0, &["show", &child, "--json"]);
    assert_eq!(shown["parents"][0]["license"], "0");
    assert_eq!(shown["parents"][0]["royalty_bps"], 1500);
}

/// One fine-tune license, one derivative: the mint consumes it.
#[test]
fn a_fine_tune_license_admits_one_derivative() {
    let env = Env::start(false);
    let base = env.path("base.safetensors");
    write_model(&base, 12, 0.0);
    env.ok(0, &["mint", path_str(&base), "--name", "base"]);
    let offering = env.ok(
        0,
        &[
            "offer",
            "1",
            "--kind",
            "fine-tune",
            "--price",
            "0.1",
            "--royalty-bps",
            "1000",
            "--supply",
            "1",
            "--duration",
            "1d",
            "--json",
        ],
    );
    let bought = env.ok(1, &["buy", &id(&offering, "offering"), "--json"]);
    let license = id(&bought, "license");
    let first = env.path("first.safetensors");
    write_model(&first, 12, 0.02);
    env.ok(
        1,
        &[
            "mint",
            path_str(&first),
            "--name",
            "first",
            "--parent",
            "1",
            "--license",
            &license,
        ],
    );
    // The license is gone: no right is left to find, and naming it is the contract's error.
    let second = env.path("second.safetensors");
    write_model(&second, 12, 0.04);
    let auto = env.fails(
        1,
        &[
            "mint",
            path_str(&second),
            "--name",
            "second",
            "--parent",
            "1",
        ],
        2,
    );
    assert!(
        auto.contains("buy a fine-tune license of model 1"),
        "{auto}"
    );
    let reused = env.fails(
        1,
        &[
            "mint",
            path_str(&second),
            "--name",
            "second",
            "--parent",
            "1",
            "--license",
            &license,
        ],
        2,
    );
    assert!(reused.contains("LicenseAlreadyUsed"), "{reused}");
    assert!(reused.contains("admits one derivative"), "hint: {reused}");
    env.fails(0, &["rights", ACCOUNT[1], "1", "--kind", "fine-tune"], 1);
}

/// The same weights cannot be registered twice, whoever tries and whatever the flags.
#[test]
fn exact_copies_cannot_be_registered() {
    let env = Env::start(false);
    let base = env.path("base.safetensors");
    write_model(&base, 13, 0.0);
    env.ok(0, &["mint", path_str(&base), "--name", "base"]);
    let copy = env.fails(
        1,
        &["mint", path_str(&base), "--name", "mine now", "--force"],
        2,
    );
    assert!(copy.contains("already registered as model 1"), "{copy}");
    assert!(copy.contains("hint: "), "{copy}");
}

/// Renewals: only the holder renews, never after a lapse, and a paid past stays paid. Closing
/// an offering leaves its licenses renewable for its renewal period.
#[test]
fn renewals_keep_history_and_survive_closing_for_the_renewal_period() {
    let env = Env::start(false);
    let base = env.path("base.safetensors");
    write_model(&base, 14, 0.0);
    env.ok(0, &["mint", path_str(&base), "--name", "base"]);
    env.ok(
        0,
        &[
            "offer",
            "1",
            "--kind",
            "output",
            "--price",
            "0.1",
            "--duration",
            "1d",
            "--renewal-period",
            "3d",
        ],
    );
    let bought = env.ok(1, &["buy", "1", "--json"]);
    let license = id(&bought, "license");
    let start = bought["start"].as_u64().unwrap();

    // Someone else cannot renew (or restart) the holder's license.
    let stranger = env.fails(2, &["renew", &license], 2);
    assert!(stranger.contains("NotLicenseHolder"), "{stranger}");

    // Closed, the offering still renews its licenses for three days.
    env.ok(0, &["close-offer", "1"]);
    let renewed = env.ok(1, &["renew", &license, "--json"]);
    assert_eq!(renewed["start"].as_u64().unwrap(), start);
    assert_eq!(renewed["expiry"].as_u64().unwrap(), start + 2 * DAY);

    // Lapsed (while the renewal period still runs): not renewable, and the paid window stays
    // true.
    env.advance(2 * DAY + DAY / 2);
    let lapsed = env.fails(1, &["renew", &license], 2);
    assert!(lapsed.contains("LicenseLapsed"), "{lapsed}");
    assert!(lapsed.contains("buy a new one"), "hint: {lapsed}");
    let then = (start + DAY + 60).to_string();
    let past = env.ok(
        0,
        &[
            "rights", ACCOUNT[1], "1", "--kind", "output", "--at", &then, "--json",
        ],
    );
    assert_eq!(past["allowed"], true);
    assert_eq!(past["license"], license);
}
