// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Fixtures} from "./utils/Fixtures.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

contract TestEuroTest is Fixtures {
    function test_metadata() public view {
        assertEq(euro.name(), "Test Euro");
        assertEq(euro.symbol(), "tEUR");
        assertEq(euro.decimals(), 6);
    }

    function test_mint_byAdmin() public {
        vm.prank(admin);
        euro.mint(alice, 25_000_000);
        assertEq(euro.balanceOf(alice), 25_000_000);
    }

    function test_mint_byGrantedMinter() public {
        bytes32 role = euro.MINTER_ROLE();
        vm.prank(admin);
        euro.grantRole(role, operator);
        vm.prank(operator);
        euro.mint(alice, 1);
        assertEq(euro.balanceOf(alice), 1);
    }

    function test_mint_revertsWithoutRole() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, stranger, euro.MINTER_ROLE()
            )
        );
        vm.prank(stranger);
        euro.mint(stranger, 1);
    }
}
