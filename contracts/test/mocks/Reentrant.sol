// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {LicenseMarket} from "../../src/LicenseMarket.sol";
import {ModelRegistry} from "../../src/ModelRegistry.sol";
import {MintParams} from "../../src/Types.sol";

/// @notice A model owner whose `receive` tries to withdraw again (and to buy) while the market is
/// paying it out. It records the revert data of each attempt and accepts the ether, so the outer
/// withdrawal succeeds and the test can inspect what the reentrant calls got.
contract ReentrantReceiver {
    LicenseMarket public immutable market;
    uint256 public reentryOffering;
    uint256 public attempts;
    bytes public withdrawRevert;
    bytes public buyRevert;
    uint256 public received;

    constructor(LicenseMarket market_) {
        market = market_;
    }

    function mintModel(ModelRegistry registry, MintParams calldata p) external returns (uint256) {
        return registry.mint(p);
    }

    function setReentryOffering(uint256 offeringId) external {
        reentryOffering = offeringId;
    }

    function withdrawNative() external returns (uint256) {
        return market.withdraw(address(0), address(this));
    }

    receive() external payable {
        received += msg.value;
        if (attempts > 0) return;
        ++attempts;
        try market.withdraw(address(0), address(this)) {}
        catch (bytes memory reason) {
            withdrawRevert = reason;
        }
        if (reentryOffering != 0) {
            try market.buy{value: 0}(reentryOffering, address(this), 0, bytes32(0)) {}
            catch (bytes memory reason) {
                buyRevert = reason;
            }
        }
    }
}

/// @notice An ERC-20 that calls back into the market from `transferFrom` (during a purchase) and
/// from `transfer` (during a withdrawal), recording the revert data of each attempt.
contract ReentrantERC20 is ERC20 {
    LicenseMarket public market;
    uint256 public offeringId;
    uint256 public licenseId;
    bool public armed;
    bytes public buyRevert;
    bytes public renewRevert;
    bytes public withdrawRevert;

    constructor() ERC20("Reentrant", "RE") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function arm(LicenseMarket market_, uint256 offeringId_, uint256 licenseId_) external {
        market = market_;
        offeringId = offeringId_;
        licenseId = licenseId_;
        armed = true;
    }

    function transferFrom(address from, address to, uint256 value) public override returns (bool) {
        _reenter();
        return super.transferFrom(from, to, value);
    }

    function transfer(address to, uint256 value) public override returns (bool) {
        _reenter();
        return super.transfer(to, value);
    }

    function _reenter() private {
        if (!armed) return;
        armed = false;
        try market.buy(offeringId, address(this), type(uint256).max, bytes32(0)) {}
        catch (bytes memory reason) {
            buyRevert = reason;
        }
        if (licenseId != 0) {
            try market.renew(licenseId, type(uint256).max) {}
            catch (bytes memory reason) {
                renewRevert = reason;
            }
        }
        try market.withdraw(address(this), address(this)) {}
        catch (bytes memory reason) {
            withdrawRevert = reason;
        }
    }
}
