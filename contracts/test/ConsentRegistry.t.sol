// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IConsentRegistry} from "../src/interfaces/IConsentRegistry.sol";
import {Fixtures} from "./utils/Fixtures.sol";

contract ConsentRegistryTest is Fixtures {
    bytes32 internal constant SCOPE = keccak256("evflex.smart-charging.v1");

    function _consent(address user, uint64 expiry, uint256 nonce)
        internal
        pure
        returns (IConsentRegistry.Consent memory)
    {
        return IConsentRegistry.Consent({user: user, scope: SCOPE, expiry: expiry, nonce: nonce});
    }

    function _record(uint64 expiry) internal returns (IConsentRegistry.Consent memory c) {
        c = _consent(alice, expiry, consents.nonces(alice));
        bytes memory sig = _sign(aliceKey, consents.hashConsent(c));
        vm.prank(operator);
        consents.recordConsent(c, sig);
    }

    function test_recordConsent_relayedByAnyone() public {
        uint64 expiry = uint64(block.timestamp + 30 days);
        IConsentRegistry.Consent memory c = _consent(alice, expiry, 0);
        bytes memory sig = _sign(aliceKey, consents.hashConsent(c));

        vm.expectEmit(address(consents));
        emit IConsentRegistry.ConsentRecorded(alice, SCOPE, expiry, 0);
        vm.prank(stranger);
        consents.recordConsent(c, sig);

        assertTrue(consents.hasConsent(alice, SCOPE));
        assertFalse(consents.hasConsent(alice, keccak256("other")));
        assertFalse(consents.hasConsent(bob, SCOPE));
        assertEq(consents.consentExpiry(alice, SCOPE), expiry);
        assertEq(consents.nonces(alice), 1);
    }

    function test_recordConsent_digestIsEip712() public view {
        IConsentRegistry.Consent memory c = _consent(alice, 1000, 0);
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256("Consent(address user,bytes32 scope,uint64 expiry,uint256 nonce)"), alice, SCOPE, 1000, 0
            )
        );
        assertEq(
            consents.hashConsent(c), keccak256(abi.encodePacked("\x19\x01", consents.domainSeparator(), structHash))
        );
    }

    function test_recordConsent_revertsOnReplay() public {
        IConsentRegistry.Consent memory c = _consent(alice, uint64(block.timestamp + 1 days), 0);
        bytes memory sig = _sign(aliceKey, consents.hashConsent(c));
        consents.recordConsent(c, sig);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidNonce.selector, alice, 1, 0));
        consents.recordConsent(c, sig);
    }

    function test_recordConsent_revertsOnWrongSigner() public {
        IConsentRegistry.Consent memory c = _consent(alice, uint64(block.timestamp + 1 days), 0);
        bytes memory sig = _sign(bobKey, consents.hashConsent(c));
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidSignature.selector, alice));
        consents.recordConsent(c, sig);
    }

    function test_recordConsent_revertsWhenExpired() public {
        vm.warp(1_000_000);
        IConsentRegistry.Consent memory c = _consent(alice, 1_000_000, 0);
        bytes memory sig = _sign(aliceKey, consents.hashConsent(c));
        vm.expectRevert(
            abi.encodeWithSelector(
                IConsentRegistry.ConsentRegistryExpired.selector, alice, SCOPE, uint64(1_000_000), 1_000_000
            )
        );
        consents.recordConsent(c, sig);
    }

    function test_hasConsent_falseAfterExpiry() public {
        _record(uint64(block.timestamp + 1 hours));
        assertTrue(consents.hasConsent(alice, SCOPE));
        vm.warp(block.timestamp + 1 hours);
        assertFalse(consents.hasConsent(alice, SCOPE));
    }

    function test_revoke_byUser() public {
        _record(uint64(block.timestamp + 1 days));
        vm.expectEmit(address(consents));
        emit IConsentRegistry.ConsentRevoked(alice, SCOPE, false);
        vm.prank(alice);
        consents.revoke(SCOPE);
        assertFalse(consents.hasConsent(alice, SCOPE));
        assertEq(consents.consentExpiry(alice, SCOPE), 0);
    }

    function test_revokeWithSig_relayed() public {
        _record(uint64(block.timestamp + 1 days));
        IConsentRegistry.Revocation memory r = IConsentRegistry.Revocation({user: alice, scope: SCOPE, nonce: 1});
        bytes memory sig = _sign(aliceKey, consents.hashRevocation(r));
        vm.expectEmit(address(consents));
        emit IConsentRegistry.ConsentRevoked(alice, SCOPE, true);
        vm.prank(operator);
        consents.revokeWithSig(r, sig);
        assertFalse(consents.hasConsent(alice, SCOPE));
        assertEq(consents.nonces(alice), 2);
    }

    function test_revokeWithSig_revertsOnReplay() public {
        IConsentRegistry.Revocation memory r = IConsentRegistry.Revocation({user: alice, scope: SCOPE, nonce: 0});
        bytes memory sig = _sign(aliceKey, consents.hashRevocation(r));
        consents.revokeWithSig(r, sig);
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidNonce.selector, alice, 1, 0));
        consents.revokeWithSig(r, sig);
    }

    function test_revokeWithSig_revertsOnWrongSigner() public {
        IConsentRegistry.Revocation memory r = IConsentRegistry.Revocation({user: alice, scope: SCOPE, nonce: 0});
        bytes memory sig = _sign(bobKey, consents.hashRevocation(r));
        vm.expectRevert(abi.encodeWithSelector(IConsentRegistry.ConsentRegistryInvalidSignature.selector, alice));
        consents.revokeWithSig(r, sig);
    }

    function testFuzz_recordConsent_respectsExpiry(uint64 lifetime, uint64 elapsed) public {
        lifetime = uint64(bound(lifetime, 1, 365 days));
        elapsed = uint64(bound(elapsed, 0, 2 * 365 days));
        _record(uint64(block.timestamp) + lifetime);
        vm.warp(block.timestamp + elapsed);
        assertEq(consents.hasConsent(alice, SCOPE), elapsed < lifetime);
    }
}
