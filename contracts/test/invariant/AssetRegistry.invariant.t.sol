// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IAssetRegistry} from "../../src/interfaces/IAssetRegistry.sol";
import {Fixtures} from "../utils/Fixtures.sol";
import {AssetRegistryHandler} from "./handlers/AssetRegistryHandler.sol";

contract AssetRegistryInvariantTest is Fixtures {
    AssetRegistryHandler internal handler;

    function setUp() public override {
        super.setUp();
        handler = new AssetRegistryHandler(assets, registrar);

        bytes4[] memory selectors = new bytes4[](3);
        selectors[0] = AssetRegistryHandler.register.selector;
        selectors[1] = AssetRegistryHandler.move.selector;
        selectors[2] = AssetRegistryHandler.deactivate.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
        targetContract(address(handler));
    }

    /// @dev No node is its own ancestor: walking up from any node reaches a root within the pool's size.
    function invariant_limitNodesFormATree() public view {
        uint64 pool = handler.POOL();
        for (uint64 id = 1; id <= pool; ++id) {
            if (!assets.isLimitNodeRegistered(id)) continue;
            uint64 a = id;
            uint256 steps = 0;
            while (a != 0) {
                a = assets.limitNode(a).parentId;
                ++steps;
                assertLe(steps, pool, "cycle in the limit-node tree");
            }
        }
    }

    /// @dev An active node's parent is registered and active; a root is a connection and a connection a root.
    function invariant_activeNodesHangOffActiveParents() public view {
        for (uint64 id = 1; id <= handler.POOL(); ++id) {
            if (!assets.isLimitNodeRegistered(id)) continue;
            IAssetRegistry.LimitNode memory n = assets.limitNode(id);
            assertEq(n.parentId == 0, n.kind == IAssetRegistry.LimitNodeKind.CONNECTION);
            if (n.active && n.parentId != 0) assertTrue(assets.limitNode(n.parentId).active);
        }
    }

    /// @dev Every node's `activeChildren` is the number of active nodes whose parent it is.
    function invariant_activeChildrenCountsActiveChildren() public view {
        uint64 pool = handler.POOL();
        for (uint64 id = 1; id <= pool; ++id) {
            if (!assets.isLimitNodeRegistered(id)) continue;
            uint32 count = 0;
            for (uint64 c = 1; c <= pool; ++c) {
                if (!assets.isLimitNodeRegistered(c)) continue;
                IAssetRegistry.LimitNode memory child = assets.limitNode(c);
                if (child.active && child.parentId == id) ++count;
            }
            assertEq(assets.limitNode(id).activeChildren, count);
        }
    }
}
