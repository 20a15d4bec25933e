// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IAlgorithmRegistry} from "./interfaces/IAlgorithmRegistry.sol";
import {IStatusLedger} from "./interfaces/IStatusLedger.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/**
 * @title StatusLedger
 * @notice The evflex status ledger (SC2). Every 15-minute timestep the evflex backend (`OPERATOR_ROLE`) commits,
 * per group, the status of every member charge point. The member records travel in calldata and in the
 * {StatusCommitted} event; storage keeps one slot per commit, the commitment
 * `keccak256(abi.encode(inputsHash, scheduleHash, algorithmVersion))`, plus each group's last timestep and the
 * revision count of each re-planned timestep.
 *
 * A commit is identified by `(groupId, timestep, revision)`. Revision 0 is the quarter-hour tick's schedule.
 * When an event (a session starts, a request is made, a capacity changes) makes the backend re-plan a group
 * within a timestep, the new set-points go to the charge point operators at once, so the re-plan is committed
 * too, as revision 1, 2, … of that timestep: every set of set-points ever sent is covered by a commitment.
 *
 * Rules for the tick (revision 0), checked in this order so that a replayed commit reports
 * {StatusLedgerAlreadyCommitted} (which makes the backend's writer idempotent):
 * 1. `(groupId, timestep, 0)` has no commitment yet, else {StatusLedgerAlreadyCommitted};
 * 2. `timestep` is after the group's last committed timestep, else {StatusLedgerTimestepNotAfterLast}. A
 *    fresh group's last timestep is zero, so timestep zero is never committable: timesteps count 15-minute
 *    slots since the unix epoch (`unixSeconds / 900`), which is never zero;
 * 3. `members` is a whole number of 21-byte records, else {StatusLedgerInvalidMembersLength};
 * 4. `algorithmVersion` is registered and not deprecated in the algorithm registry, else
 *    {StatusLedgerUnusableAlgorithm}.
 *
 * Rules for a re-plan (revision `r` > 0), in this order:
 * 1. the tick `(groupId, timestep, 0)` is committed, else {StatusLedgerRevisionOfUncommitted};
 * 2. `r` is not committed yet (`r` > {revisionCount}), else {StatusLedgerAlreadyCommitted}: a replay;
 * 3. `r` is the next revision ({revisionCount} + 1), else {StatusLedgerRevisionNotNext}: revisions land in
 *    order and without gaps;
 * 4. `members` is a whole number of 21-byte records, else {StatusLedgerInvalidMembersLength};
 * 5. `algorithmVersion` is usable, else {StatusLedgerUnusableAlgorithm}.
 *
 * A revision may amend any committed timestep, also one before the group's last: the next timestep's tick may
 * land before a re-plan of the previous one. It does not move the group's last timestep.
 *
 * The ledger does not read the asset registry: whether the records name the group's charge points is for
 * auditors to check off-chain from the events, and saves an external call per commit.
 */
contract StatusLedger is IStatusLedger, AccessControl {
    /// @notice The evflex backend: commits status.
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");

    /// @notice Size of one packed member record, bytes.
    uint256 public constant MEMBER_SIZE = 21;

    IAlgorithmRegistry private immutable _algorithmRegistry;

    /// @dev The re-plans of one timestep: how many are committed, and the commitment of each from revision 1.
    struct Revisions {
        uint32 count;
        mapping(uint32 revision => bytes32 commitment) commitments;
    }

    /// @dev The ticks' commitments (revision 0): one slot per commit in the steady state of a 15-minute tick.
    mapping(uint64 groupId => mapping(uint64 timestep => bytes32 commitment)) private _commitments;
    mapping(uint64 groupId => mapping(uint64 timestep => Revisions)) private _revisions;
    mapping(uint64 groupId => uint64 timestep) private _lastTimesteps;

    /// @param admin Receives `DEFAULT_ADMIN_ROLE`.
    /// @param algorithmRegistry_ The registry whose versions commits must name.
    constructor(address admin, IAlgorithmRegistry algorithmRegistry_) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _algorithmRegistry = algorithmRegistry_;
    }

    /// @inheritdoc IStatusLedger
    function commit(
        uint64 groupId,
        uint64 timestep,
        uint32 revision,
        bytes32 inputsHash,
        bytes32 scheduleHash,
        bytes32 algorithmVersion,
        bytes calldata members
    ) external onlyRole(OPERATOR_ROLE) {
        _commit(groupId, timestep, revision, inputsHash, scheduleHash, algorithmVersion, members);
    }

    /**
     * @inheritdoc IStatusLedger
     * @dev Atomic on purpose: the backend's outbox treats a batch as one unit of work, so a batch is either
     * wholly on chain or not at all, and a replayed batch reverts with {StatusLedgerAlreadyCommitted} for its
     * first commit. Groups are independent, so the backend never needs a partial batch. Commits land in array
     * order: a timestep's tick and its revisions may share a batch, the tick first and the revisions in order.
     */
    function commitBatch(Commit[] calldata commits) external onlyRole(OPERATOR_ROLE) {
        for (uint256 i = 0; i < commits.length; ++i) {
            Commit calldata c = commits[i];
            _commit(c.groupId, c.timestep, c.revision, c.inputsHash, c.scheduleHash, c.algorithmVersion, c.members);
        }
    }

    /// @notice The algorithm registry whose versions commits must name.
    function algorithmRegistry() external view returns (IAlgorithmRegistry) {
        return _algorithmRegistry;
    }

    /// @inheritdoc IStatusLedger
    function commitmentOf(uint64 groupId, uint64 timestep, uint32 revision) external view returns (bytes32) {
        return _commitmentOf(groupId, timestep, revision);
    }

    /// @inheritdoc IStatusLedger
    function isCommitted(uint64 groupId, uint64 timestep, uint32 revision) external view returns (bool) {
        return _commitmentOf(groupId, timestep, revision) != 0;
    }

    /// @inheritdoc IStatusLedger
    function matches(
        uint64 groupId,
        uint64 timestep,
        uint32 revision,
        bytes32 inputsHash,
        bytes32 scheduleHash,
        bytes32 algorithmVersion
    ) external view returns (bool) {
        bytes32 stored = _commitmentOf(groupId, timestep, revision);
        return stored != 0 && stored == computeCommitment(inputsHash, scheduleHash, algorithmVersion);
    }

    /// @inheritdoc IStatusLedger
    function revisionCount(uint64 groupId, uint64 timestep) external view returns (uint32) {
        return _revisions[groupId][timestep].count;
    }

    /// @inheritdoc IStatusLedger
    function lastTimestep(uint64 groupId) external view returns (uint64) {
        return _lastTimesteps[groupId];
    }

    /// @inheritdoc IStatusLedger
    function computeCommitment(bytes32 inputsHash, bytes32 scheduleHash, bytes32 algorithmVersion)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(inputsHash, scheduleHash, algorithmVersion));
    }

    /// @inheritdoc IStatusLedger
    function memberCount(bytes calldata members) public pure returns (uint256) {
        if (members.length % MEMBER_SIZE != 0) revert StatusLedgerInvalidMembersLength(members.length);
        return members.length / MEMBER_SIZE;
    }

    /// @inheritdoc IStatusLedger
    function decodeMember(bytes calldata members, uint256 index) external pure returns (Member memory member) {
        uint256 count = memberCount(members);
        if (index >= count) revert StatusLedgerMemberIndexOutOfBounds(index, count);
        bytes calldata r = members[index * MEMBER_SIZE:(index + 1) * MEMBER_SIZE];
        member.cpId = uint32(bytes4(r[0:4]));
        member.status = uint8(r[4]);
        member.setpointW = uint32(bytes4(r[5:9]));
        member.measuredW = uint32(bytes4(r[9:13]));
        member.energyLeftWh = uint32(bytes4(r[13:17]));
        member.timeLeftS = uint32(bytes4(r[17:21]));
    }

    function _commitmentOf(uint64 groupId, uint64 timestep, uint32 revision) private view returns (bytes32) {
        return revision == 0 ? _commitments[groupId][timestep] : _revisions[groupId][timestep].commitments[revision];
    }

    function _commit(
        uint64 groupId,
        uint64 timestep,
        uint32 revision,
        bytes32 inputsHash,
        bytes32 scheduleHash,
        bytes32 algorithmVersion,
        bytes calldata members
    ) private {
        if (revision == 0) {
            mapping(uint64 timestep => bytes32 commitment) storage groupCommitments = _commitments[groupId];
            if (groupCommitments[timestep] != 0) revert StatusLedgerAlreadyCommitted(groupId, timestep, 0);
            uint64 last = _lastTimesteps[groupId];
            if (timestep <= last) revert StatusLedgerTimestepNotAfterLast(groupId, timestep, last);
            _checkRecord(algorithmVersion, members);

            groupCommitments[timestep] = computeCommitment(inputsHash, scheduleHash, algorithmVersion);
            _lastTimesteps[groupId] = timestep;
        } else {
            if (_commitments[groupId][timestep] == 0) revert StatusLedgerRevisionOfUncommitted(groupId, timestep);
            Revisions storage revisions = _revisions[groupId][timestep];
            uint32 count = revisions.count;
            if (revision <= count) revert StatusLedgerAlreadyCommitted(groupId, timestep, revision);
            uint32 expected;
            // Cannot overflow: count < revision <= type(uint32).max.
            unchecked {
                expected = count + 1;
            }
            if (revision != expected) revert StatusLedgerRevisionNotNext(groupId, timestep, revision, expected);
            _checkRecord(algorithmVersion, members);

            revisions.count = revision;
            revisions.commitments[revision] = computeCommitment(inputsHash, scheduleHash, algorithmVersion);
        }
        emit StatusCommitted(groupId, timestep, revision, inputsHash, scheduleHash, algorithmVersion, members);
    }

    /// @dev The rules every commit keeps whatever its revision: whole member records, a usable algorithm.
    function _checkRecord(bytes32 algorithmVersion, bytes calldata members) private view {
        if (members.length % MEMBER_SIZE != 0) revert StatusLedgerInvalidMembersLength(members.length);
        if (!_algorithmRegistry.isUsable(algorithmVersion)) revert StatusLedgerUnusableAlgorithm(algorithmVersion);
    }
}
