// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Fixture} from "./utils/Fixture.sol";
import {EtherAcceptor, EtherRejecter} from "./mocks/Receivers.sol";
import {ReentrantERC20, ReentrantReceiver} from "./mocks/Reentrant.sol";
import {LicenseMarket} from "../src/LicenseMarket.sol";
import {LicenseKind, Terms} from "../src/Types.sol";

/// @notice Pull payments: withdrawals of either currency, their failures and reentrancy.
contract WithdrawTest is Fixture {
    uint256 internal model;

    function setUp() public override {
        super.setUp();
        model = _mintBase(alice);
        _buy(bob, _publish(_terms(model, LicenseKind.Access, NATIVE, 3 ether, 0)));
        _buy(bob, _publish(_terms(model, LicenseKind.Access, address(token), 500, 0)));
    }

    function test_withdraw_native() public {
        vm.expectEmit(address(market));
        emit LicenseMarket.Withdrawn(alice, NATIVE, carol, 3 ether);
        vm.prank(alice);
        uint256 amount = market.withdraw(NATIVE, carol);
        vm.assertEq(amount, 3 ether, "amount");
        vm.assertEq(carol.balance, 3 ether, "sent to `to`");
        vm.assertEq(market.credits(alice, NATIVE), 0, "zeroed");
        vm.assertEq(address(market).balance, 0, "emptied");
        vm.assertEq(market.credits(alice, address(token)), 500, "other currency untouched");
    }

    function test_withdraw_erc20() public {
        vm.expectEmit(address(market));
        emit LicenseMarket.Withdrawn(alice, address(token), alice, 500);
        vm.prank(alice);
        uint256 amount = market.withdraw(address(token), alice);
        vm.assertEq(amount, 500, "amount");
        vm.assertEq(token.balanceOf(alice), 500, "received");
        vm.assertEq(token.balanceOf(address(market)), 0, "emptied");
        vm.assertEq(market.credits(alice, address(token)), 0, "zeroed");
    }

    function test_withdraw_toContractThatAcceptsEther() public {
        EtherAcceptor acceptor = new EtherAcceptor();
        vm.prank(alice);
        market.withdraw(NATIVE, address(acceptor));
        vm.assertEq(acceptor.received(), 3 ether, "received");
    }

    function test_withdraw_revertsWhenNothingToWithdraw() public {
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.NothingToWithdraw.selector, bob, NATIVE));
        market.withdraw(NATIVE, bob);

        vm.prank(alice);
        market.withdraw(NATIVE, alice);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.NothingToWithdraw.selector, alice, NATIVE));
        market.withdraw(NATIVE, alice);

        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.NothingToWithdraw.selector, alice, dave));
        market.withdraw(dave, alice);
    }

    function test_withdraw_revertsForZeroRecipient() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.ZeroAddress.selector));
        market.withdraw(NATIVE, address(0));
    }

    function test_withdraw_revertsWhenRecipientRejectsEther() public {
        EtherRejecter rejecter = new EtherRejecter();
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(LicenseMarket.NativeTransferFailed.selector, address(rejecter), 3 ether));
        market.withdraw(NATIVE, address(rejecter));
        vm.assertEq(market.credits(alice, NATIVE), 3 ether, "credit kept");
        vm.assertEq(address(market).balance, 3 ether, "still held");
    }

    function test_withdraw_reentrantReceiverIsBlocked() public {
        ReentrantReceiver attacker = new ReentrantReceiver(market);
        uint256 own = attacker.mintModel(registry, _params(address(attacker)));
        vm.prank(address(attacker));
        uint256 paid = market.publishOffering(_terms(own, LicenseKind.Access, NATIVE, 1 ether, 0));
        vm.prank(address(attacker));
        uint256 free = market.publishOffering(_terms(own, LicenseKind.Access, NATIVE, 0, 0));
        attacker.setReentryOffering(free);
        _buy(bob, paid);
        _buy(carol, paid);

        uint256 amount = attacker.withdrawNative();
        vm.assertEq(amount, 2 ether, "withdrew its balance once");
        vm.assertEq(attacker.received(), 2 ether, "received once");
        bytes memory guard = abi.encodeWithSelector(ReentrancyGuardTransient.ReentrancyGuardReentrantCall.selector);
        vm.assertEq(attacker.withdrawRevert(), guard, "reentrant withdraw blocked");
        vm.assertEq(attacker.buyRevert(), guard, "reentrant buy blocked");
        vm.assertEq(market.credits(address(attacker), NATIVE), 0, "zeroed");
        vm.assertEq(address(market).balance, 3 ether, "alice's 3 ether remain: paid out once");
    }

    /// A reentrant token would have to be accepted at deployment; even then the guard holds.
    function test_reentrantTokenIsBlockedInBuyAndWithdraw() public {
        ReentrantERC20 evil = new ReentrantERC20();
        LicenseMarket m = _marketAccepting(address(evil));
        vm.prank(alice);
        uint256 offering = m.publishOffering(_terms(model, LicenseKind.Access, address(evil), 100, 10 * DAY));
        evil.mint(bob, 1_000);
        vm.prank(bob);
        evil.approve(address(m), type(uint256).max);
        vm.prank(bob);
        uint256 first = m.buy(offering, bob, 100, bytes32(0));

        // During the second purchase the token tries to buy, renew and withdraw.
        evil.arm(m, offering, first);
        vm.prank(bob);
        m.buy(offering, bob, 100, bytes32(0));
        bytes memory guard = abi.encodeWithSelector(ReentrancyGuardTransient.ReentrancyGuardReentrantCall.selector);
        vm.assertEq(evil.buyRevert(), guard, "buy blocked");
        vm.assertEq(evil.renewRevert(), guard, "renew blocked");
        vm.assertEq(evil.withdrawRevert(), guard, "withdraw blocked");
        vm.assertEq(m.totalLicenses(), 2, "only the two purchases");
        vm.assertEq(m.credits(alice, address(evil)), 200, "credited");

        // During the withdrawal it tries again.
        evil.arm(m, offering, first);
        vm.prank(alice);
        m.withdraw(address(evil), alice);
        vm.assertEq(evil.withdrawRevert(), guard, "withdraw blocked");
        vm.assertEq(evil.balanceOf(alice), 200, "paid once");
        vm.assertEq(evil.balanceOf(address(m)), 0, "emptied");
    }

    function test_withdraw_accumulatesAcrossSales() public {
        Terms memory t = _terms(model, LicenseKind.Output, NATIVE, 2 ether, DAY);
        uint256 o = _publish(t);
        _buy(carol, o);
        _buy(dave, o);
        vm.assertEq(market.credits(alice, NATIVE), 7 ether, "3 + 2 + 2");
        vm.prank(alice);
        vm.assertEq(market.withdraw(NATIVE, alice), 7 ether, "all at once");
    }
}
