// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/**
 * @title TestEuro
 * @notice A test payment token for local chains: "Test Euro" (tEUR), 6 decimals, so 1 unit = 1 micro-EUR.
 * The admin and every `MINTER_ROLE` holder mint freely. Never deploy it to a public network.
 */
contract TestEuro is ERC20, AccessControl {
    /// @notice Mints tEUR.
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// @param admin Receives `DEFAULT_ADMIN_ROLE` and `MINTER_ROLE`.
    constructor(address admin) ERC20("Test Euro", "tEUR") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(MINTER_ROLE, admin);
    }

    /// @notice Mints `amount` tEUR units to `to`. Only `MINTER_ROLE`.
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
    }

    /// @inheritdoc ERC20
    function decimals() public pure override returns (uint8) {
        return 6;
    }
}
