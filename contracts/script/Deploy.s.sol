// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ModelRegistry} from "../src/ModelRegistry.sol";
import {LicenseMarket} from "../src/LicenseMarket.sol";

interface BroadcastVm {
    function startBroadcast() external;
    function stopBroadcast() external;
}

/// @notice Deploys the registry and the market (accepting only the native currency) and binds them:
/// `forge script script/Deploy.s.sol --rpc-url URL --private-key KEY --broadcast`.
/// The `registry deploy` command does the same through the Rust bindings.
contract Deploy {
    BroadcastVm private constant VM = BroadcastVm(address(uint160(uint256(keccak256("hevm cheat code")))));

    function run() external returns (ModelRegistry registry, LicenseMarket market) {
        VM.startBroadcast();
        registry = new ModelRegistry();
        market = new LicenseMarket(registry, new address[](0));
        registry.bindMarket(market);
        VM.stopBroadcast();
    }
}
