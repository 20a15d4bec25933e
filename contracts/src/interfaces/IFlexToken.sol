// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/**
 * @title IFlexToken
 * @notice The evflex flexibility token (FLEX): minted by the settlement contract for the charging flexibility
 * users give, burned by holders when they redeem it.
 */
interface IFlexToken is IERC20 {
    /// @notice Mints `amount` FLEX to `to`. Only MINTER_ROLE.
    function mint(address to, uint256 amount) external;

    /// @notice Burns `amount` of the caller's FLEX.
    function burn(uint256 amount) external;

    /// @notice Burns `amount` of `account`'s FLEX, spending the caller's allowance.
    function burnFrom(address account, uint256 amount) external;
}
