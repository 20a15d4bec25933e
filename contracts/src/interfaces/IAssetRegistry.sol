// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title IAssetRegistry
 * @notice Errors, events, types and functions of the evflex asset registry (SC1): groups (the cabinet or
 * transformer whose capacity their members share), charge points, PV inverters and batteries.
 *
 * Units are in the names: `W` watts, `Wh` watt-hours, `V` volts, `A` amperes. Every asset id is chosen by the
 * CPO (the evflex backend uses its database ids) and must be non-zero: an id of zero in a returned record means
 * "not registered".
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
