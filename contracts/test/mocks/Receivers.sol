// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @notice Refuses every ether transfer.
contract EtherRejecter {
    receive() external payable {
        revert("no ether");
    }
}

/// @notice Accepts ether and counts the payments.
contract EtherAcceptor {
    uint256 public received;

    receive() external payable {
        received += msg.value;
    }
}
