// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IConsentRegistry} from "./interfaces/IConsentRegistry.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

/**
 * @title ConsentRegistry
 * @notice Users' consents to smart charging, per scope (e.g. `keccak256("evflex.smart-charging.v1")`). A
 * consent or a revocation is EIP-712 typed data signed by the user; anyone may relay it (the evflex backend
 * relays for its custodial users), and signatures of smart-contract accounts are checked with ERC-1271.
 *
 * Consents and revocations share one nonce per user, which must equal the user's current nonce: each signature
 * is usable once, and in order. A new consent to a scope replaces the previous one (and its expiry).
 */
contract ConsentRegistry is IConsentRegistry, EIP712 {
    /// @notice EIP-712 type hash of {IConsentRegistry-Consent}.
    bytes32 public constant CONSENT_TYPEHASH =
        keccak256("Consent(address user,bytes32 scope,uint64 expiry,uint256 nonce)");

    /// @notice EIP-712 type hash of {IConsentRegistry-Revocation}.
    bytes32 public constant REVOCATION_TYPEHASH = keccak256("Revocation(address user,bytes32 scope,uint256 nonce)");

    mapping(address user => mapping(bytes32 scope => uint64 expiry)) private _expiries;
    mapping(address user => uint256) private _nonces;

    constructor() EIP712("evflex ConsentRegistry", "1") {}

    /// @inheritdoc IConsentRegistry
    function recordConsent(Consent calldata consent, bytes calldata signature) external {
        address user = consent.user;
        // Expiries are days or months away: the few seconds a validator can skew the timestamp do not matter.
        // forge-lint: disable-next-line(block-timestamp)
        if (consent.expiry <= block.timestamp) {
            revert ConsentRegistryExpired(user, consent.scope, consent.expiry, block.timestamp);
        }
        _useNonce(user, consent.nonce);
        _checkSignature(user, hashConsent(consent), signature);
        _expiries[user][consent.scope] = consent.expiry;
        emit ConsentRecorded(user, consent.scope, consent.expiry, consent.nonce);
    }

    /// @inheritdoc IConsentRegistry
    function revoke(bytes32 scope) external {
        delete _expiries[msg.sender][scope];
        emit ConsentRevoked(msg.sender, scope, false);
    }

    /// @inheritdoc IConsentRegistry
    function revokeWithSig(Revocation calldata revocation, bytes calldata signature) external {
        address user = revocation.user;
        _useNonce(user, revocation.nonce);
        _checkSignature(user, hashRevocation(revocation), signature);
        delete _expiries[user][revocation.scope];
        emit ConsentRevoked(user, revocation.scope, true);
    }

    /// @inheritdoc IConsentRegistry
    function hasConsent(address user, bytes32 scope) external view returns (bool) {
        // forge-lint: disable-next-line(block-timestamp)
        return _expiries[user][scope] > block.timestamp;
    }

    /// @inheritdoc IConsentRegistry
    function consentExpiry(address user, bytes32 scope) external view returns (uint64) {
        return _expiries[user][scope];
    }

    /// @inheritdoc IConsentRegistry
    function nonces(address user) external view returns (uint256) {
        return _nonces[user];
    }

    /// @inheritdoc IConsentRegistry
    function hashConsent(Consent calldata consent) public view returns (bytes32) {
        // `Consent` has only static fields, so `abi.encode(consent)` is the concatenation of its encoded fields.
        return _hashTypedDataV4(keccak256(abi.encode(CONSENT_TYPEHASH, consent)));
    }

    /// @inheritdoc IConsentRegistry
    function hashRevocation(Revocation calldata revocation) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(REVOCATION_TYPEHASH, revocation)));
    }

    /// @inheritdoc IConsentRegistry
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    function _useNonce(address user, uint256 nonce) private {
        uint256 expected = _nonces[user];
        if (nonce != expected) revert ConsentRegistryInvalidNonce(user, expected, nonce);
        unchecked {
            // A nonce increments by one per signed message: it cannot reach 2^256.
            _nonces[user] = expected + 1;
        }
    }

    function _checkSignature(address user, bytes32 digest, bytes calldata signature) private view {
        if (!SignatureChecker.isValidSignatureNow(user, digest, signature)) {
            revert ConsentRegistryInvalidSignature(user);
        }
    }
}
