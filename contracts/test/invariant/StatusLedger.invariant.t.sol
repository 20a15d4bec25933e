// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Fixtures} from "../utils/Fixtures.sol";
import {StatusLedgerHandler} from "./handlers/StatusLedgerHandler.sol";

contract StatusLedgerInvariantTest is Fixtures {
    StatusLedgerHandler internal handler;

    function setUp() public override {
        super.setUp();
        handler = new StatusLedgerHandler(ledger, operator, algorithmVersion);

        bytes4[] memory selectors = new bytes4[](4);
        selectors[0] = StatusLedgerHandler.commitForward.selector;
        selectors[1] = StatusLedgerHandler.replay.selector;
        selectors[2] = StatusLedgerHandler.commitBackward.selector;
        selectors[3] = StatusLedgerHandler.commitBatch.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
        targetContract(address(handler));
    }

    /// @dev A (group, timestep) commitment, once written, never changes.
    function invariant_commitmentNeverOverwritten() public view {
        uint256 n = handler.landedCount();
        for (uint256 i = 0; i < n; ++i) {
            StatusLedgerHandler.Landed memory l = handler.landed(i);
            assertEq(ledger.commitmentOf(l.groupId, l.timestep), l.commitment);
        }
    }

    /// @dev Each group's last timestep is the latest that landed: timesteps only move forward.
    function invariant_lastTimestepOnlyMovesForward() public view {
        for (uint64 g = 1; g <= handler.groups(); ++g) {
            assertEq(ledger.lastTimestep(g), handler.ghostLast(g));
        }
    }
}
