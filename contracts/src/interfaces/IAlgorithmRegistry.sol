// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title IAlgorithmRegistry
 * @notice Errors, events, types and functions of the registry of scheduling-algorithm versions that
 * {IStatusLedger} commits refer to.
 *
 * A version id is derived, never chosen: `keccak256(abi.encode(modelHash, keccak256(bytes(solverVersion)),
 * paramsHash))` (see {computeVersion}), so the id itself proves which model, solver and parameters it names.
 */
interface IAlgorithmRegistry {
    /// @notice A registered algorithm version.
    struct Algorithm {
        uint64 registeredAt;
        bool deprecated;
        bytes32 modelHash;
        bytes32 paramsHash;
        string solverVersion;
        string uri;
    }

    /// @dev The version `version` is already registered.
    error AlgorithmRegistryDuplicateVersion(bytes32 version);

    /// @dev The version `version` is not registered.
    error AlgorithmRegistryUnknownVersion(bytes32 version);

    /// @dev The version `version` is already deprecated.
    error AlgorithmRegistryAlreadyDeprecated(bytes32 version);

    /// @dev The caller holds neither the admin nor the operator role.
    error AlgorithmRegistryUnauthorized(address account);

    /// @notice Emitted when `version` is registered.
    event AlgorithmRegistered(
        bytes32 indexed version, bytes32 modelHash, string solverVersion, bytes32 paramsHash, string uri
    );

    /// @notice Emitted when `version` is deprecated: ledgers no longer accept commits that name it.
    event AlgorithmDeprecated(bytes32 indexed version);

    /**
     * @notice Registers the algorithm defined by `modelHash` (hash of the model definition), `solverVersion`
     * and `paramsHash` (hash of the parameters); `uri` points at a human-readable definition.
     * @return version The derived version id, see {computeVersion}.
     */
    function register(bytes32 modelHash, string calldata solverVersion, bytes32 paramsHash, string calldata uri)
        external
        returns (bytes32 version);

    /// @notice Deprecates `version`. Past commits naming it stay valid; new ones are refused.
    function deprecate(bytes32 version) external;

    /// @notice The version id of a model, solver version and parameters.
    function computeVersion(bytes32 modelHash, string calldata solverVersion, bytes32 paramsHash)
        external
        pure
        returns (bytes32);

    /// @notice The record of `version`; reverts if unknown.
    function algorithm(bytes32 version) external view returns (Algorithm memory);

    /// @notice Whether `version` is registered (deprecated or not).
    function isRegistered(bytes32 version) external view returns (bool);

    /// @notice Whether `version` is registered and not deprecated, i.e. new commits may name it.
    function isUsable(bytes32 version) external view returns (bool);
}
