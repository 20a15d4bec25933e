// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Fixtures} from "./utils/Fixtures.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";

contract FlexTokenTest is Fixtures {
    function test_metadata() public view {
        assertEq(flex.name(), "evflex Flexibility Token");
        assertEq(flex.symbol(), "FLEX");
        assertEq(flex.decimals(), 18);
        assertEq(flex.totalSupply(), 0);
    }

    function test_mint_onlyMinter() public {
        vm.prank(address(billing));
        flex.mint(alice, 1e18);
        assertEq(flex.balanceOf(alice), 1e18);
    }

    function test_mint_revertsWithoutRole() public {
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, admin, flex.MINTER_ROLE())
        );
        vm.prank(admin);
        flex.mint(alice, 1);
    }

    function test_burn_byHolder() public {
        vm.prank(address(billing));
        flex.mint(alice, 5e18);
        vm.prank(alice);
        flex.burn(2e18);
        assertEq(flex.balanceOf(alice), 3e18);
        assertEq(flex.totalSupply(), 3e18);
    }

    function test_burnFrom_revertsWithoutAllowance() public {
        vm.prank(address(billing));
        flex.mint(alice, 5e18);
        vm.expectRevert(abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, bob, 0, 1e18));
        vm.prank(bob);
        flex.burnFrom(alice, 1e18);
    }

    function test_permit_setsAllowanceFromSignature() public {
        uint256 deadline = block.timestamp + 1 hours;
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"),
                alice,
                address(billing),
                7e18,
                flex.nonces(alice),
                deadline
            )
        );
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", flex.DOMAIN_SEPARATOR(), structHash));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(aliceKey, digest);
        vm.prank(stranger);
        flex.permit(alice, address(billing), 7e18, deadline, v, r, s);
        assertEq(flex.allowance(alice, address(billing)), 7e18);
    }
}
