// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {StatusLedger} from "../../../src/StatusLedger.sol";
import {IStatusLedger} from "../../../src/interfaces/IStatusLedger.sol";
import {Test} from "forge-std/Test.sol";

/**
 * @notice Drives StatusLedger with forward commits, replays, backward commits and revisions (next, replayed or
 * skipping one) over three groups, and remembers every commitment that landed.
 */
contract StatusLedgerHandler is Test {
    uint64 internal constant GROUPS = 3;

    StatusLedger internal immutable ledger;
    address internal immutable operator;
    bytes32 internal immutable algorithmVersion;

    struct Landed {
        uint64 groupId;
        uint64 timestep;
        uint32 revision;
        bytes32 commitment;
    }

    Landed[] internal _landed;
    /// @dev Indexes into `_landed` of the ticks (revision 0), which revisions amend.
    uint256[] internal _ticks;
    mapping(uint64 groupId => uint64 timestep) public ghostLast;
    mapping(uint64 groupId => mapping(uint64 timestep => uint32 count)) public ghostRevisions;

    constructor(StatusLedger ledger_, address operator_, bytes32 algorithmVersion_) {
        ledger = ledger_;
        operator = operator_;
        algorithmVersion = algorithmVersion_;
    }

    function landedCount() external view returns (uint256) {
        return _landed.length;
    }

    function landed(uint256 i) external view returns (Landed memory) {
        return _landed[i];
    }

    function tickCount() external view returns (uint256) {
        return _ticks.length;
    }

    function tick(uint256 i) external view returns (Landed memory) {
        return _landed[_ticks[i]];
    }

    function groups() external pure returns (uint64) {
        return GROUPS;
    }

    /// @dev Commits `step` timesteps after the group's last one (step 0 replays it, so it must revert).
    function commitForward(uint256 groupSeed, uint256 step, bytes32 inputsHash, bytes32 scheduleHash) external {
        uint64 groupId = _group(groupSeed);
        uint64 timestep = ghostLast[groupId] + uint64(bound(step, 0, 4));
        _tryCommit(groupId, timestep, 0, inputsHash, scheduleHash);
    }

    /// @dev Tries to overwrite a commitment that already landed (a tick or a revision), with different hashes.
    function replay(uint256 index, bytes32 inputsHash, bytes32 scheduleHash) external {
        if (_landed.length == 0) return;
        Landed memory l = _landed[index % _landed.length];
        _tryCommit(l.groupId, l.timestep, l.revision, inputsHash, scheduleHash);
    }

    /// @dev A revision of a committed timestep (any, not only the group's last): `skip` 0 replays the last
    /// revision, 1 is the next (lands), 2 leaves a gap (reverts).
    function commitRevision(uint256 index, uint256 skip, bytes32 inputsHash, bytes32 scheduleHash) external {
        if (_ticks.length == 0) return;
        Landed memory t = _landed[_ticks[index % _ticks.length]];
        uint32 revision = ghostRevisions[t.groupId][t.timestep] + uint32(bound(skip, 0, 2));
        _tryCommit(t.groupId, t.timestep, revision, inputsHash, scheduleHash);
    }

    /// @dev A revision of a timestep without a tick: must revert.
    function commitRevisionOfUncommitted(uint256 groupSeed, uint256 ahead, bytes32 inputsHash) external {
        uint64 groupId = _group(groupSeed);
        _tryCommit(groupId, ghostLast[groupId] + uint64(bound(ahead, 1, 4)), 1, inputsHash, inputsHash);
    }

    /// @dev Tries to commit a timestep before the group's last one.
    function commitBackward(uint256 groupSeed, uint256 back, bytes32 inputsHash, bytes32 scheduleHash) external {
        uint64 groupId = _group(groupSeed);
        uint64 last = ghostLast[groupId];
        if (last == 0) return;
        _tryCommit(groupId, last - uint64(bound(back, 0, last)), 0, inputsHash, scheduleHash);
    }

    /// @dev A batch of one forward commit per group.
    function commitBatch(uint256 step, bytes32 inputsHash) external {
        IStatusLedger.Commit[] memory commits = new IStatusLedger.Commit[](GROUPS);
        for (uint64 g = 1; g <= GROUPS; ++g) {
            commits[g - 1] = IStatusLedger.Commit({
                groupId: g,
                timestep: ghostLast[g] + uint64(bound(step, 1, 4)),
                revision: 0,
                inputsHash: inputsHash,
                scheduleHash: keccak256(abi.encode(inputsHash, g)),
                algorithmVersion: algorithmVersion,
                members: abi.encodePacked(
                    uint32(g), uint8(2), uint32(11_000), uint32(10_900), uint32(5000), uint32(900)
                )
            });
        }
        vm.prank(operator);
        ledger.commitBatch(commits);
        for (uint256 i = 0; i < commits.length; ++i) {
            IStatusLedger.Commit memory c = commits[i];
            _land(c.groupId, c.timestep, 0, c.inputsHash, c.scheduleHash);
        }
    }

    function _tryCommit(uint64 groupId, uint64 timestep, uint32 revision, bytes32 inputsHash, bytes32 scheduleHash)
        private
    {
        vm.prank(operator);
        try ledger.commit(groupId, timestep, revision, inputsHash, scheduleHash, algorithmVersion, "") {
            _land(groupId, timestep, revision, inputsHash, scheduleHash);
        } catch {}
    }

    function _land(uint64 groupId, uint64 timestep, uint32 revision, bytes32 inputsHash, bytes32 scheduleHash) private {
        bytes32 commitment = ledger.computeCommitment(inputsHash, scheduleHash, algorithmVersion);
        if (revision == 0) {
            _ticks.push(_landed.length);
            ghostLast[groupId] = timestep;
        } else {
            ghostRevisions[groupId][timestep] = revision;
        }
        _landed.push(Landed(groupId, timestep, revision, commitment));
    }

    function _group(uint256 seed) private pure returns (uint64) {
        return uint64(seed % GROUPS) + 1;
    }
}
