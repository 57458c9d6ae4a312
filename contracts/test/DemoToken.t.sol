// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {TestBase} from "./utils/Cheats.sol";
import {DemoToken} from "../src/DemoToken.sol";

contract DemoTokenTest is TestBase {
    function test_mintsTheWholeSupplyToTheHoldersOnce() public {
        address[] memory holders = new address[](2);
        holders[0] = address(0xA11CE);
        holders[1] = address(0xB0B);
        uint256[] memory amounts = new uint256[](2);
        amounts[0] = 1_000e6;
        amounts[1] = 5e6;
        DemoToken token = new DemoToken(holders, amounts);
        vm.assertEq(token.decimals(), 6, "decimals");
        vm.assertEq(token.symbol(), "DUSD", "symbol");
        vm.assertEq(token.balanceOf(holders[0]), 1_000e6, "first holder");
        vm.assertEq(token.balanceOf(holders[1]), 5e6, "second holder");
        vm.assertEq(token.totalSupply(), 1_005e6, "supply");
    }

    function test_refusesMismatchedLists() public {
        address[] memory holders = new address[](2);
        uint256[] memory amounts = new uint256[](1);
        vm.expectRevert(abi.encodeWithSelector(DemoToken.LengthMismatch.selector, 2, 1));
        new DemoToken(holders, amounts);
    }
}
