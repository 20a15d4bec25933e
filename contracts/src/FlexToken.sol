// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IFlexToken} from "./interfaces/IFlexToken.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/**
 * @title FlexToken
 * @notice The evflex Flexibility Token (FLEX, 18 decimals), paid to EV users for the charging flexibility they
 * give. Only `MINTER_ROLE` mints; the deploy script grants it to EnergyBilling alone, so every FLEX in
 * existence was minted by a settlement. Holders burn their own FLEX, or let EnergyBilling burn it on
 * redemption through an allowance (ERC-2612 permit lets a relayer set it from a signature).
 */
contract FlexToken is IFlexToken, ERC20, ERC20Burnable, ERC20Permit, AccessControl {
    /// @notice Mints FLEX.
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// @param admin Receives `DEFAULT_ADMIN_ROLE`, which grants `MINTER_ROLE`.
    constructor(address admin) ERC20("evflex Flexibility Token", "FLEX") ERC20Permit("evflex Flexibility Token") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @inheritdoc IFlexToken
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
    }

    /// @inheritdoc IFlexToken
    function burn(uint256 amount) public override(IFlexToken, ERC20Burnable) {
        super.burn(amount);
    }

    /// @inheritdoc IFlexToken
    function burnFrom(address account, uint256 amount) public override(IFlexToken, ERC20Burnable) {
        super.burnFrom(account, amount);
    }
}
