// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AssetRegistry} from "../../../src/AssetRegistry.sol";
import {IAssetRegistry} from "../../../src/interfaces/IAssetRegistry.sol";
import {Test} from "forge-std/Test.sol";

/**
 * @notice Drives the AssetRegistry's tree of limit nodes through what a registrar does: register nodes under
 * existing ones, move them (including attempts that would close a cycle) and deactivate them. Node ids come
 * from a small pool so moves and deactivations hit existing nodes often; reverts are expected and ignored.
 */
contract AssetRegistryHandler is Test {
    uint64 public constant POOL = 12;

    AssetRegistry internal immutable assets;
    address internal immutable registrar;

    uint256 public ghostMoves;
    uint256 public ghostRefusedCycles;

    constructor(AssetRegistry assets_, address registrar_) {
        assets = assets_;
        registrar = registrar_;
    }

    function _params(uint64 id, uint64 parentId, uint256 kindSeed)
        internal
        pure
        returns (IAssetRegistry.LimitNodeParams memory)
    {
        IAssetRegistry.LimitNodeKind kind = parentId == 0
            ? IAssetRegistry.LimitNodeKind.CONNECTION
            : IAssetRegistry.LimitNodeKind(bound(kindSeed, 1, uint8(type(IAssetRegistry.LimitNodeKind).max)));
        return IAssetRegistry.LimitNodeParams({
            id: id,
            parentId: parentId,
            kind: kind,
            phaseVoltageV: 230,
            limitL1dA: 400,
            limitL2dA: 400,
            limitL3dA: 400,
            limitW: 0
        });
    }

    /// @dev A pool id, or 0 (a root) when the id drawn is not registered, so that trees grow deep.
    function _parent(uint256 parentSeed) internal view returns (uint64 parentId) {
        parentId = uint64(bound(parentSeed, 0, POOL));
        if (parentId != 0 && !assets.isLimitNodeRegistered(parentId)) parentId = 0;
    }

    /// @notice Registers node `idSeed` under node `parentSeed` (a root if that node is not registered).
    function register(uint256 idSeed, uint256 parentSeed, uint256 kindSeed) external {
        uint64 id = uint64(bound(idSeed, 1, POOL));
        uint64 parentId = _parent(parentSeed);
        vm.prank(registrar);
        try assets.registerLimitNode(_params(id, parentId, kindSeed)) {} catch {}
    }

    /// @notice Moves node `idSeed` under node `parentSeed` (to the root if that node is not registered).
    function move(uint256 idSeed, uint256 parentSeed, uint256 kindSeed) external {
        uint64 id = uint64(bound(idSeed, 1, POOL));
        uint64 parentId = _parent(parentSeed);
        vm.prank(registrar);
        try assets.updateLimitNode(_params(id, parentId, kindSeed)) {
            ++ghostMoves;
        } catch (bytes memory reason) {
            if (bytes4(reason) == IAssetRegistry.AssetRegistryLimitNodeCycle.selector) ++ghostRefusedCycles;
        }
    }

    /// @notice Deactivates node `idSeed`.
    function deactivate(uint256 idSeed) external {
        uint64 id = uint64(bound(idSeed, 1, POOL));
        vm.prank(registrar);
        try assets.deactivateLimitNode(id) {} catch {}
    }
}
