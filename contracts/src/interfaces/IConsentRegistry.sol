// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title IConsentRegistry
 * @notice Errors, events, types and functions of the registry of users' consents to smart charging. Consents
 * and revocations are EIP-712 typed data signed by the user and may be relayed by anyone (the evflex backend
 * relays for its custodial users); a user may also revoke directly.
 */
interface IConsentRegistry {
    /// @notice `user` consents to `scope` until `expiry` (unix seconds); `nonce` is the user's current nonce.
    struct Consent {
        address user;
        bytes32 scope;
        uint64 expiry;
        uint256 nonce;
    }

    /// @notice `user` revokes consent to `scope`; `nonce` is the user's current nonce.
    struct Revocation {
        address user;
        bytes32 scope;
        uint256 nonce;
    }

    /// @dev The signature is not `user`'s signature of the typed data.
    error ConsentRegistryInvalidSignature(address user);

    /// @dev `nonce` is not `user`'s current nonce `expected` (e.g. a replay).
    error ConsentRegistryInvalidNonce(address user, uint256 expected, uint256 nonce);

    /// @dev The consent expires at `expiry`, which is not after the current block's timestamp `now_`.
    error ConsentRegistryExpired(address user, bytes32 scope, uint64 expiry, uint256 now_);

    /// @notice Emitted when `user`'s consent to `scope` is recorded.
    event ConsentRecorded(address indexed user, bytes32 indexed scope, uint64 expiry, uint256 nonce);

    /// @notice Emitted when `user` revokes consent to `scope`; `relayed` tells a signed revocation.
    event ConsentRevoked(address indexed user, bytes32 indexed scope, bool relayed);

    /// @notice Records a consent signed by `consent.user`. Anyone may relay it.
    function recordConsent(Consent calldata consent, bytes calldata signature) external;

    /// @notice Revokes the caller's consent to `scope`. Succeeds even if no consent is active.
    function revoke(bytes32 scope) external;

    /// @notice Revokes a consent by a revocation signed by `revocation.user`. Anyone may relay it.
    function revokeWithSig(Revocation calldata revocation, bytes calldata signature) external;

    /// @notice Whether `user` has an unexpired, unrevoked consent to `scope`.
    function hasConsent(address user, bytes32 scope) external view returns (bool);

    /// @notice The expiry of `user`'s consent to `scope`, zero if none or revoked.
    function consentExpiry(address user, bytes32 scope) external view returns (uint64);

    /// @notice The nonce the next consent or revocation of `user` must carry.
    function nonces(address user) external view returns (uint256);

    /// @notice The EIP-712 digest `user` signs for `consent`.
    function hashConsent(Consent calldata consent) external view returns (bytes32);

    /// @notice The EIP-712 digest `user` signs for `revocation`.
    function hashRevocation(Revocation calldata revocation) external view returns (bytes32);

    /// @notice The EIP-712 domain separator.
    function domainSeparator() external view returns (bytes32);
}
