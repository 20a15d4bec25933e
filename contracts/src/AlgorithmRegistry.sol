// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IAlgorithmRegistry} from "./interfaces/IAlgorithmRegistry.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/**
 * @title AlgorithmRegistry
 * @notice Versions of the evflex scheduling algorithm that status-ledger commits refer to. The admin or the
 * operator (the evflex backend, which registers the version it runs before committing with it) registers and
 * deprecates versions.
 */
contract AlgorithmRegistry is IAlgorithmRegistry, AccessControl {
    /// @notice The evflex backend.
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");

    mapping(bytes32 version => Algorithm) private _algorithms;

    /// @param admin Receives `DEFAULT_ADMIN_ROLE`.
    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @dev Reverts unless the caller is the admin or an operator.
    modifier onlyAdminOrOperator() {
        if (!hasRole(DEFAULT_ADMIN_ROLE, _msgSender()) && !hasRole(OPERATOR_ROLE, _msgSender())) {
            revert AlgorithmRegistryUnauthorized(_msgSender());
        }
        _;
    }

    /// @inheritdoc IAlgorithmRegistry
    function register(bytes32 modelHash, string calldata solverVersion, bytes32 paramsHash, string calldata uri)
        external
        onlyAdminOrOperator
        returns (bytes32 version)
    {
        version = computeVersion(modelHash, solverVersion, paramsHash);
        Algorithm storage a = _algorithms[version];
        if (a.registeredAt != 0) revert AlgorithmRegistryDuplicateVersion(version);
        a.registeredAt = uint64(block.timestamp);
        a.modelHash = modelHash;
        a.paramsHash = paramsHash;
        a.solverVersion = solverVersion;
        a.uri = uri;
        emit AlgorithmRegistered(version, modelHash, solverVersion, paramsHash, uri);
    }

    /// @inheritdoc IAlgorithmRegistry
    function deprecate(bytes32 version) external onlyAdminOrOperator {
        Algorithm storage a = _algorithms[version];
        if (a.registeredAt == 0) revert AlgorithmRegistryUnknownVersion(version);
        if (a.deprecated) revert AlgorithmRegistryAlreadyDeprecated(version);
        a.deprecated = true;
        emit AlgorithmDeprecated(version);
    }

    /// @inheritdoc IAlgorithmRegistry
    function computeVersion(bytes32 modelHash, string calldata solverVersion, bytes32 paramsHash)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(modelHash, keccak256(bytes(solverVersion)), paramsHash));
    }

    /// @inheritdoc IAlgorithmRegistry
    function algorithm(bytes32 version) external view returns (Algorithm memory) {
        Algorithm storage a = _algorithms[version];
        if (a.registeredAt == 0) revert AlgorithmRegistryUnknownVersion(version);
        return a;
    }

    /// @inheritdoc IAlgorithmRegistry
    function isRegistered(bytes32 version) external view returns (bool) {
        return _algorithms[version].registeredAt != 0;
    }

    /// @inheritdoc IAlgorithmRegistry
    function isUsable(bytes32 version) external view returns (bool) {
        // `registeredAt` and `deprecated` share one slot: a single SLOAD on the status ledger's hot path.
        Algorithm storage a = _algorithms[version];
        return a.registeredAt != 0 && !a.deprecated;
    }
}
