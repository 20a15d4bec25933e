// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title IAssetRegistry
 * @notice Errors, events, types and functions of the evflex asset registry (SC1): groups (the cabinet or
 * transformer whose capacity their members share), charge points, PV inverters and batteries, plus the site's
 * tree of limit nodes (connection, transformer or fuse, cabinets) and each charge point's phase wiring.
 *
 * Units are in the names: `W` watts, `Wh` watt-hours, `V` volts, `A` amperes, `dA` deci-amperes (0.1 A). Every
 * asset id is chosen by the CPO (the evflex backend uses its database ids) and must be non-zero: an id of zero
 * in a returned record means "not registered". Limit nodes have their own id space, separate from groups.
 */
interface IAssetRegistry {
    /// @notice OCPI 2.2.1 `PowerType`.
    enum PowerType {
        AC_1_PHASE,
        AC_2_PHASE,
        AC_2_PHASE_SPLIT,
        AC_3_PHASE,
        DC
    }

    /// @notice OCPI 2.2.1 EVSE `Status`.
    enum EvseStatus {
        AVAILABLE,
        BLOCKED,
        CHARGING,
        INOPERATIVE,
        OUTOFORDER,
        PLANNED,
        REMOVED,
        RESERVED,
        UNKNOWN
    }

    /// @notice A group of assets sharing one grid connection (cabinet, transformer) of `capacityW`.
    struct Group {
        uint64 id;
        uint64 capacityW;
        bool active;
        bytes32 label;
    }

    /// @notice Electrical characteristics of a charge point (OCPI `Connector` power fields).
    struct PowerInfo {
        PowerType powerType;
        uint8 phases;
        uint16 voltageV;
        uint16 maxCurrentA;
    }

    /**
     * @notice What a registrar supplies to register or update a charge point.
     * @dev `connectorStandard` is the OCPI `ConnectorType` name as left-aligned ASCII, e.g.
     * `bytes32("IEC_62196_T2")`; every OCPI connector name fits in 32 bytes.
     */
    struct ChargePointParams {
        uint64 id;
        uint64 groupId;
        uint32 ratedPowerW;
        EvseStatus status;
        PowerInfo power;
        bytes32 connectorStandard;
        string evseUid;
    }

    /// @notice A registered charge point.
    struct ChargePoint {
        uint64 id;
        uint64 groupId;
        uint32 ratedPowerW;
        EvseStatus status;
        bool active;
        PowerInfo power;
        bytes32 connectorStandard;
        string evseUid;
    }

    /// @notice A registered PV inverter.
    struct PvInverter {
        uint64 id;
        uint64 groupId;
        uint64 peakW;
        bool active;
    }

    /// @notice A registered stationary battery.
    struct Battery {
        uint64 id;
        uint64 groupId;
        uint64 capacityWh;
        uint64 availableWh;
        bool active;
    }

    /// @notice What a limit node of the site's tree is.
    enum LimitNodeKind {
        CONNECTION,
        TRANSFORMER,
        FUSE,
        CABINET
    }

    /// @notice The unit of a charge point's rate limits: deci-amperes per phase or watts (OCPP `ChargingRateUnit`).
    enum RateUnit {
        DECI_AMPERE,
        WATT
    }

    /**
     * @notice What a registrar supplies to register or update a limit node: one node of the site's tree of
     * limits (site connection, then transformer or main fuse, then cabinets).
     * @dev `parentId` 0 makes the node a root; a root is a `CONNECTION` and a `CONNECTION` is a root. A limit of
     * zero means "no limit of this kind"; at least one of the four limits is non-zero, and a per-phase limit
     * needs `phaseVoltageV` (line-to-neutral) to be non-zero. `limitW` is for DC or balanced nodes (or a
     * transformer's rating); a node may carry both.
     */
    struct LimitNodeParams {
        uint64 id;
        uint64 parentId;
        LimitNodeKind kind;
        uint16 phaseVoltageV;
        uint32 limitL1dA;
        uint32 limitL2dA;
        uint32 limitL3dA;
        uint64 limitW;
    }

    /**
     * @notice A registered limit node.
     * @dev Two storage slots: the first holds everything but `limitW` and `activeChildren`.
     * `activeChildren` counts the active nodes whose parent this node is.
     */
    struct LimitNode {
        uint64 id;
        uint64 parentId;
        LimitNodeKind kind;
        bool active;
        uint16 phaseVoltageV;
        uint32 limitL1dA;
        uint32 limitL2dA;
        uint32 limitL3dA;
        uint64 limitW;
        uint32 activeChildren;
    }

    /**
     * @notice How a charge point is wired to its limit node, and the rate limits it accepts. One storage slot.
     * @dev `phaseMap` holds three 2-bit fields: bits 0-1 name the node phase (1 = L1, 2 = L2, 3 = L3, 0 = not
     * wired) the charge point's phase L1 is wired to, bits 2-3 its L2, bits 4-5 its L3; bits 6-7 are zero.
     * The charge point's L1 is wired, its wired phases are contiguous from L1 and no two share a node phase:
     * `0x39` (1 | 2 << 2 | 3 << 4) is L1-L2-L3 straight, `0x1e` (2 | 3 << 2 | 1 << 4) is rotated to
     * L2-L3-L1, `0x02` is single-phase on L2. `lineToLine` (e.g. a 208 V pair in a 120/208 V system) needs at
     * least two wired phases. `minRate`, `maxRate` and `rateStep` are in `unit`: deci-amperes per phase (so a
     * 1 A step is 10, a 0.1 A step is 1) or watts; `rateStep` is non-zero, `maxRate` is non-zero and at least
     * `minRate`. `nodeId` 0 in a returned wiring means "no wiring set".
     */
    struct PhaseWiring {
        uint64 nodeId;
        uint8 phaseMap;
        bool lineToLine;
        RateUnit unit;
        uint32 minRate;
        uint32 maxRate;
        uint32 rateStep;
    }

    /// @dev An asset id of zero was given; zero means "not registered".
    error AssetRegistryZeroId();

    /// @dev A group with `groupId` is already registered.
    error AssetRegistryDuplicateGroup(uint64 groupId);

    /// @dev No group with `groupId` is registered.
    error AssetRegistryUnknownGroup(uint64 groupId);

    /// @dev The group `groupId` is deactivated: it neither takes new members nor updates.
    error AssetRegistryInactiveGroup(uint64 groupId);

    /// @dev A charge point with `cpId` is already registered.
    error AssetRegistryDuplicateChargePoint(uint64 cpId);

    /// @dev No charge point with `cpId` is registered.
    error AssetRegistryUnknownChargePoint(uint64 cpId);

    /// @dev The charge point `cpId` is deactivated.
    error AssetRegistryInactiveChargePoint(uint64 cpId);

    /// @dev A PV inverter with `pvId` is already registered.
    error AssetRegistryDuplicatePvInverter(uint64 pvId);

    /// @dev No PV inverter with `pvId` is registered.
    error AssetRegistryUnknownPvInverter(uint64 pvId);

    /// @dev The PV inverter `pvId` is deactivated.
    error AssetRegistryInactivePvInverter(uint64 pvId);

    /// @dev A battery with `batteryId` is already registered.
    error AssetRegistryDuplicateBattery(uint64 batteryId);

    /// @dev No battery with `batteryId` is registered.
    error AssetRegistryUnknownBattery(uint64 batteryId);

    /// @dev The battery `batteryId` is deactivated.
    error AssetRegistryInactiveBattery(uint64 batteryId);

    /// @dev A battery cannot hold more than its capacity.
    error AssetRegistryBatteryOverCapacity(uint64 batteryId, uint64 availableWh, uint64 capacityWh);

    /// @dev The caller holds neither of the roles allowed to change a charge point's status.
    error AssetRegistryUnauthorizedStatusWriter(address account);

    /// @dev A limit node with `nodeId` is already registered.
    error AssetRegistryDuplicateLimitNode(uint64 nodeId);

    /// @dev No limit node with `nodeId` is registered.
    error AssetRegistryUnknownLimitNode(uint64 nodeId);

    /// @dev The limit node `nodeId` is deactivated.
    error AssetRegistryInactiveLimitNode(uint64 nodeId);

    /// @dev The parent `parentId` of limit node `nodeId` is not registered.
    error AssetRegistryUnknownParent(uint64 nodeId, uint64 parentId);

    /// @dev The parent `parentId` of limit node `nodeId` is deactivated.
    error AssetRegistryInactiveParent(uint64 nodeId, uint64 parentId);

    /// @dev Making `parentId` the parent of limit node `nodeId` would make `nodeId` its own ancestor.
    error AssetRegistryLimitNodeCycle(uint64 nodeId, uint64 parentId);

    /// @dev Limit node `nodeId` of `kind` under `parentId`: a root must be a `CONNECTION` and a `CONNECTION`
    /// must be a root.
    error AssetRegistryBadRootKind(uint64 nodeId, LimitNodeKind kind, uint64 parentId);

    /// @dev Limit node `nodeId` has no limit: all of its per-phase and watt limits are zero.
    error AssetRegistryLimitNodeWithoutLimit(uint64 nodeId);

    /// @dev Limit node `nodeId` has a per-phase limit but no phase voltage.
    error AssetRegistryLimitNodeWithoutVoltage(uint64 nodeId);

    /// @dev Limit node `nodeId` still has `activeChildren` active child nodes: deactivate or move them first.
    error AssetRegistryLimitNodeHasActiveChildren(uint64 nodeId, uint32 activeChildren);

    /// @dev `phaseMap` of charge point `cpId` is not a valid wiring (see `PhaseWiring`).
    error AssetRegistryBadPhaseMap(uint64 cpId, uint8 phaseMap);

    /// @dev Charge point `cpId` is wired line-to-line with fewer than two wired phases in `phaseMap`.
    error AssetRegistryLineToLineNeedsTwoPhases(uint64 cpId, uint8 phaseMap);

    /// @dev The rate limits of charge point `cpId` are inconsistent: zero `maxRate` or `rateStep`, or
    /// `minRate` above `maxRate`.
    error AssetRegistryBadRateLimits(uint64 cpId, uint32 minRate, uint32 maxRate, uint32 rateStep);

    /// @notice Emitted when group `groupId` is registered.
    event GroupRegistered(uint64 indexed groupId, bytes32 label, uint64 capacityW);

    /// @notice Emitted when group `groupId` changes label or capacity.
    event GroupUpdated(uint64 indexed groupId, bytes32 label, uint64 capacityW);

    /// @notice Emitted when group `groupId` is deactivated.
    event GroupDeactivated(uint64 indexed groupId);

    /// @notice Emitted when charge point `cpId` is registered in group `groupId`.
    event ChargePointRegistered(
        uint64 indexed cpId,
        uint64 indexed groupId,
        string evseUid,
        uint32 ratedPowerW,
        PowerInfo power,
        bytes32 connectorStandard,
        EvseStatus status
    );

    /// @notice Emitted when charge point `cpId` is updated; `groupId` is its (possibly new) group.
    event ChargePointUpdated(
        uint64 indexed cpId,
        uint64 indexed groupId,
        string evseUid,
        uint32 ratedPowerW,
        PowerInfo power,
        bytes32 connectorStandard,
        EvseStatus status
    );

    /// @notice Emitted when charge point `cpId` of group `groupId` is deactivated.
    event ChargePointDeactivated(uint64 indexed cpId, uint64 indexed groupId);

    /// @notice Emitted when the status of charge point `cpId` changes from `previous` to `status`.
    event ChargePointStatusChanged(uint64 indexed cpId, EvseStatus previous, EvseStatus status);

    /// @notice Emitted when PV inverter `pvId` is registered in group `groupId`.
    event PvInverterRegistered(uint64 indexed pvId, uint64 indexed groupId, uint64 peakW);

    /// @notice Emitted when PV inverter `pvId` is updated.
    event PvInverterUpdated(uint64 indexed pvId, uint64 indexed groupId, uint64 peakW);

    /// @notice Emitted when PV inverter `pvId` is deactivated.
    event PvInverterDeactivated(uint64 indexed pvId, uint64 indexed groupId);

    /// @notice Emitted when battery `batteryId` is registered in group `groupId`.
    event BatteryRegistered(uint64 indexed batteryId, uint64 indexed groupId, uint64 capacityWh, uint64 availableWh);

    /// @notice Emitted when battery `batteryId` is updated.
    event BatteryUpdated(uint64 indexed batteryId, uint64 indexed groupId, uint64 capacityWh, uint64 availableWh);

    /// @notice Emitted when battery `batteryId` is deactivated.
    event BatteryDeactivated(uint64 indexed batteryId, uint64 indexed groupId);

    /// @notice Emitted when limit node `nodeId` is registered under `parentId` (0: a root).
    event LimitNodeRegistered(uint64 indexed nodeId, uint64 indexed parentId, LimitNodeParams params);

    /// @notice Emitted when limit node `nodeId` is updated; `parentId` is its (possibly new) parent.
    event LimitNodeUpdated(uint64 indexed nodeId, uint64 indexed parentId, LimitNodeParams params);

    /// @notice Emitted when limit node `nodeId` under `parentId` is deactivated.
    event LimitNodeDeactivated(uint64 indexed nodeId, uint64 indexed parentId);

    /// @notice Emitted when group `groupId` is linked to limit node `nodeId` (0: unlinked).
    event GroupLimitNodeSet(uint64 indexed groupId, uint64 indexed nodeId);

    /// @notice Emitted when the phase wiring of charge point `cpId` to limit node `nodeId` is set.
    event PhaseWiringSet(uint64 indexed cpId, uint64 indexed nodeId, PhaseWiring wiring);

    /// @notice Registers group `groupId` with a `label` and a shared `capacityW`.
    function registerGroup(uint64 groupId, bytes32 label, uint64 capacityW) external;

    /// @notice Changes the label and capacity of the active group `groupId`.
    function updateGroup(uint64 groupId, bytes32 label, uint64 capacityW) external;

    /// @notice Deactivates group `groupId`. Its members keep their records.
    function deactivateGroup(uint64 groupId) external;

    /// @notice Registers a charge point in an active group.
    function registerChargePoint(ChargePointParams calldata params) external;

    /// @notice Registers several charge points atomically: any failure reverts the whole batch.
    function registerChargePoints(ChargePointParams[] calldata params) external;

    /// @notice Replaces every field of the active charge point `params.id`, possibly moving it to another group.
    function updateChargePoint(ChargePointParams calldata params) external;

    /// @notice Updates several charge points atomically: any failure reverts the whole batch.
    function updateChargePoints(ChargePointParams[] calldata params) external;

    /// @notice Deactivates charge point `cpId`. The record stays readable and stays listed in its group.
    function deactivateChargePoint(uint64 cpId) external;

    /// @notice Sets the OCPI status of the active charge point `cpId`.
    function setChargePointStatus(uint64 cpId, EvseStatus status) external;

    /// @notice Registers PV inverter `pvId` of `peakW` in an active group.
    function registerPvInverter(uint64 pvId, uint64 groupId, uint64 peakW) external;

    /// @notice Updates the group and peak power of the active PV inverter `pvId`.
    function updatePvInverter(uint64 pvId, uint64 groupId, uint64 peakW) external;

    /// @notice Deactivates PV inverter `pvId`.
    function deactivatePvInverter(uint64 pvId) external;

    /// @notice Registers battery `batteryId` in an active group.
    function registerBattery(uint64 batteryId, uint64 groupId, uint64 capacityWh, uint64 availableWh) external;

    /// @notice Updates the group, capacity and available energy of the active battery `batteryId`.
    function updateBattery(uint64 batteryId, uint64 groupId, uint64 capacityWh, uint64 availableWh) external;

    /// @notice Deactivates battery `batteryId`.
    function deactivateBattery(uint64 batteryId) external;

    /// @notice Registers limit node `params.id` under the active node `params.parentId` (0: a root connection).
    function registerLimitNode(LimitNodeParams calldata params) external;

    /// @notice Replaces the kind, limits, voltage and parent of the active limit node `params.id`; moving it under
    /// another active parent is allowed unless the parent is the node itself or one of its descendants.
    function updateLimitNode(LimitNodeParams calldata params) external;

    /// @notice Deactivates limit node `nodeId`, which must have no active children. Groups and phase wirings that
    /// name it keep naming it.
    function deactivateLimitNode(uint64 nodeId) external;

    /// @notice Links the active group `groupId` to the active limit node `nodeId` (usually its cabinet), or
    /// unlinks it with `nodeId` 0.
    function setGroupLimitNode(uint64 groupId, uint64 nodeId) external;

    /// @notice Sets how the active charge point `cpId` is wired to the active limit node `wiring.nodeId`, and the
    /// rate limits it accepts. Replaces any previous wiring.
    function setPhaseWiring(uint64 cpId, PhaseWiring calldata wiring) external;

    /// @notice The limit node `nodeId`; reverts if unknown.
    function limitNode(uint64 nodeId) external view returns (LimitNode memory);

    /// @notice Whether limit node `nodeId` is registered (active or not).
    function isLimitNodeRegistered(uint64 nodeId) external view returns (bool);

    /// @notice The limit node group `groupId` is linked to, 0 if none; reverts if the group is unknown.
    function groupLimitNode(uint64 groupId) external view returns (uint64);

    /// @notice The phase wiring of charge point `cpId` (`nodeId` 0 if none was set); reverts if the charge point
    /// is unknown.
    function phaseWiring(uint64 cpId) external view returns (PhaseWiring memory);

    /// @notice The group `groupId`; reverts if unknown.
    function group(uint64 groupId) external view returns (Group memory);

    /// @notice The charge point `cpId`; reverts if unknown.
    function chargePoint(uint64 cpId) external view returns (ChargePoint memory);

    /// @notice The PV inverter `pvId`; reverts if unknown.
    function pvInverter(uint64 pvId) external view returns (PvInverter memory);

    /// @notice The battery `batteryId`; reverts if unknown.
    function battery(uint64 batteryId) external view returns (Battery memory);

    /// @notice Ids of every charge point registered in group `groupId`, active or not, in no particular order.
    function chargePointsOf(uint64 groupId) external view returns (uint64[] memory);

    /// @notice Whether group `groupId` is registered (active or not).
    function isGroupRegistered(uint64 groupId) external view returns (bool);
}
