// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Fixtures} from "../utils/Fixtures.sol";
import {StatusLedgerHandler} from "./handlers/StatusLedgerHandler.sol";

contract StatusLedgerInvariantTest is Fixtures {
    StatusLedgerHandler internal handler;

    function setUp() public override {
        super.setUp();
        handler = new StatusLedgerHandler(ledger, operator, algorithmVersion);

        bytes4[] memory selectors = new bytes4[](6);
        selectors[0] = StatusLedgerHandler.commitForward.selector;
        selectors[1] = StatusLedgerHandler.replay.selector;
        selectors[2] = StatusLedgerHandler.commitBackward.selector;
        selectors[3] = StatusLedgerHandler.commitBatch.selector;
        selectors[4] = StatusLedgerHandler.commitRevision.selector;
        selectors[5] = StatusLedgerHandler.commitRevisionOfUncommitted.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
        targetContract(address(handler));
    }

    /// @dev A (group, timestep, revision) commitment, once written, never changes.
    function invariant_commitmentNeverOverwritten() public view {
        uint256 n = handler.landedCount();
        for (uint256 i = 0; i < n; ++i) {
            StatusLedgerHandler.Landed memory l = handler.landed(i);
            assertEq(ledger.commitmentOf(l.groupId, l.timestep, l.revision), l.commitment);
        }
    }

    /// @dev Every committed timestep has exactly the revisions that landed, 1 to its count with no gap, and none
    /// after.
    function invariant_revisionsAreContiguous() public view {
        uint256 n = handler.tickCount();
        for (uint256 i = 0; i < n; ++i) {
            StatusLedgerHandler.Landed memory t = handler.tick(i);
            uint32 count = ledger.revisionCount(t.groupId, t.timestep);
            assertEq(count, handler.ghostRevisions(t.groupId, t.timestep));
            for (uint32 r = 1; r <= count; ++r) {
                assertTrue(ledger.isCommitted(t.groupId, t.timestep, r));
            }
            assertFalse(ledger.isCommitted(t.groupId, t.timestep, count + 1));
        }
    }

    /// @dev Each group's last timestep is the latest tick that landed: timesteps only move forward, and revisions
    /// (also of older timesteps) do not move them.
    function invariant_lastTimestepOnlyMovesForward() public view {
        for (uint64 g = 1; g <= handler.groups(); ++g) {
            assertEq(ledger.lastTimestep(g), handler.ghostLast(g));
        }
    }
}
