// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title DemoToken
/// @notice The dollar token of the demo market (`registry up --demo`): 6 decimals, as most dollar
/// tokens have, its whole supply minted at deployment to the demo's accounts. Nothing mints more.
/// Not for production: a real market accepts real tokens.
contract DemoToken is ERC20 {
    error LengthMismatch(uint256 holders, uint256 amounts);

    constructor(address[] memory holders, uint256[] memory amounts) ERC20("Demo Dollar", "DUSD") {
        if (holders.length != amounts.length) revert LengthMismatch(holders.length, amounts.length);
        for (uint256 i; i < holders.length; ++i) {
            _mint(holders[i], amounts[i]);
        }
    }

    function decimals() public pure override returns (uint8) {
        return 6;
    }
}
