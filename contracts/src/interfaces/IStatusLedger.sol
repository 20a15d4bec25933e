// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title IStatusLedger
 * @notice Errors, events, types and functions of the evflex status ledger (SC2): one commit per group and
 * 15-minute timestep carries the status of every member charge point in calldata and in an event, and stores
 * a single commitment slot.
 *
 * A commit is identified by `(groupId, timestep, revision)`. Revision 0 is the quarter-hour tick's schedule;
 * revisions 1, 2, … are the re-plans the backend makes on events within the timestep (a session starts, a
 * capacity changes, …). Every revision's set-points are sent to charge point operators, so every revision
 * is committed, in order, after the tick's.
 *
 * Member record layout (`members` is the tight concatenation of one record per charge point in the group,
 * 21 bytes each, every field big-endian):
 *
 * | bytes   | field          | type   | meaning                                          |
 * |---------|----------------|--------|--------------------------------------------------|
 * | 0..4    | cpId           | uint32 | charge point id in the asset registry            |
 * | 4..5    | status         | uint8  | `IAssetRegistry.EvseStatus` ordinal              |
 * | 5..9    | setpointW      | uint32 | power the schedule allows for this timestep, W   |
 * | 9..13   | measuredW      | uint32 | power measured at the commit, W                  |
 * | 13..17  | energyLeftWh   | uint32 | energy the user still asks for, Wh               |
 * | 17..21  | timeLeftS      | uint32 | time to the user's departure, s                  |
 */
interface IStatusLedger {
    /// @notice One group's commit, for {commitBatch}.
    struct Commit {
        uint64 groupId;
        uint64 timestep;
        uint32 revision;
        bytes32 inputsHash;
        bytes32 scheduleHash;
        bytes32 algorithmVersion;
        bytes members;
    }

    /// @notice A decoded member record, see the layout above.
    struct Member {
        uint32 cpId;
        uint8 status;
        uint32 setpointW;
        uint32 measuredW;
        uint32 energyLeftWh;
        uint32 timeLeftS;
    }

    /// @dev `(groupId, timestep, revision)` already has a commitment. A replayed commit reports this error.
    error StatusLedgerAlreadyCommitted(uint64 groupId, uint64 timestep, uint32 revision);

    /// @dev A revision above zero was committed for `(groupId, timestep)` before the tick's (revision 0).
    error StatusLedgerRevisionOfUncommitted(uint64 groupId, uint64 timestep);

    /// @dev `revision` is not the next revision of `(groupId, timestep)`, which is `expected`.
    error StatusLedgerRevisionNotNext(uint64 groupId, uint64 timestep, uint32 revision, uint32 expected);

    /// @dev `timestep` is not after the group's last committed timestep `last`.
    error StatusLedgerTimestepNotAfterLast(uint64 groupId, uint64 timestep, uint64 last);

    /// @dev The members blob of `length` bytes is not a whole number of 21-byte records.
    error StatusLedgerInvalidMembersLength(uint256 length);

    /// @dev Record `index` was asked of a blob of `count` records.
    error StatusLedgerMemberIndexOutOfBounds(uint256 index, uint256 count);

    /// @dev `algorithmVersion` is not registered in the algorithm registry, or is deprecated.
    error StatusLedgerUnusableAlgorithm(bytes32 algorithmVersion);

    /// @notice Emitted for every commit; `members` is the packed member records (see the layout above).
    event StatusCommitted(
        uint64 indexed groupId,
        uint64 indexed timestep,
        uint32 revision,
        bytes32 inputsHash,
        bytes32 scheduleHash,
        bytes32 algorithmVersion,
        bytes members
    );

    /**
     * @notice Commits the status of group `groupId` at `timestep`, revision `revision` (0 for the tick's
     * schedule, then 1, 2, … in order for the re-plans within the timestep).
     * @param inputsHash Hash of every input the scheduler used for this group and timestep.
     * @param scheduleHash Hash of the schedule the scheduler produced.
     * @param algorithmVersion A usable version of the algorithm registry.
     * @param members Packed member records, 21 bytes each (see the layout above).
     */
    function commit(
        uint64 groupId,
        uint64 timestep,
        uint32 revision,
        bytes32 inputsHash,
        bytes32 scheduleHash,
        bytes32 algorithmVersion,
        bytes calldata members
    ) external;

    /// @notice Commits several groups in one transaction; any failing commit reverts the whole batch.
    function commitBatch(Commit[] calldata commits) external;

    /// @notice The commitment `keccak256(abi.encode(inputsHash, scheduleHash, algorithmVersion))` of
    /// `(groupId, timestep, revision)`, or zero.
    function commitmentOf(uint64 groupId, uint64 timestep, uint32 revision) external view returns (bytes32);

    /// @notice Whether `(groupId, timestep, revision)` has a commitment.
    function isCommitted(uint64 groupId, uint64 timestep, uint32 revision) external view returns (bool);

    /// @notice Whether the commitment of `(groupId, timestep, revision)` is the one of the given hashes.
    function matches(
        uint64 groupId,
        uint64 timestep,
        uint32 revision,
        bytes32 inputsHash,
        bytes32 scheduleHash,
        bytes32 algorithmVersion
    ) external view returns (bool);

    /// @notice The number of revisions committed after the tick's for `(groupId, timestep)`: 0 when only the
    /// tick's (or nothing) is committed, else the highest committed revision.
    function revisionCount(uint64 groupId, uint64 timestep) external view returns (uint32);

    /// @notice The last timestep of group `groupId` with a tick commit (revision 0), zero if none.
    function lastTimestep(uint64 groupId) external view returns (uint64);

    /// @notice The commitment of the given hashes, as {commitmentOf} stores it.
    function computeCommitment(bytes32 inputsHash, bytes32 scheduleHash, bytes32 algorithmVersion)
        external
        pure
        returns (bytes32);

    /// @notice The number of records in `members`; reverts if its length is not a multiple of 21.
    function memberCount(bytes calldata members) external pure returns (uint256);

    /// @notice Decodes record `index` of `members`; reverts on a bad length or index.
    function decodeMember(bytes calldata members, uint256 index) external pure returns (Member memory);
}
