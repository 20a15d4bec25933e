// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IAssetRegistry} from "./interfaces/IAssetRegistry.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";

/**
 * @title AssetRegistry
 * @notice The evflex asset registry (SC1): groups, charge points, PV inverters and batteries of a CPO.
 *
 * Who writes:
 * - `REGISTRAR_ROLE` registers, updates and deactivates every asset. It is held by the CPO admin and, because
 *   the evflex backend writes asset records on the demo CPO's behalf (its outbox batches them), by the backend's
 *   operator key too: the deploy script grants it to both.
 * - `REGISTRAR_ROLE` or `OPERATOR_ROLE` may change the status of a single charge point, which the backend
 *   derives from the CPO's OCPI feed.
 *
 * Deactivation is final for writes: a deactivated asset keeps its record (and a deactivated charge point stays
 * listed in its group) but can no longer be updated; a deactivated group takes no new members.
 */
contract AssetRegistry is IAssetRegistry, AccessControl {
    using EnumerableSet for EnumerableSet.UintSet;

    /// @notice Registers, updates and deactivates assets.
    bytes32 public constant REGISTRAR_ROLE = keccak256("REGISTRAR_ROLE");

    /// @notice The evflex backend: may change charge point status.
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");

    mapping(uint64 groupId => Group) private _groups;
    mapping(uint64 cpId => ChargePoint) private _chargePoints;
    mapping(uint64 pvId => PvInverter) private _pvInverters;
    mapping(uint64 batteryId => Battery) private _batteries;
    mapping(uint64 groupId => EnumerableSet.UintSet) private _groupChargePoints;

    /// @param admin Receives `DEFAULT_ADMIN_ROLE`, which grants the other roles.
    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Groups
    // ---------------------------------------------------------------------------------------------------------

    /// @inheritdoc IAssetRegistry
    function registerGroup(uint64 groupId, bytes32 label, uint64 capacityW) external onlyRole(REGISTRAR_ROLE) {
        if (groupId == 0) revert AssetRegistryZeroId();
        if (_groups[groupId].id != 0) revert AssetRegistryDuplicateGroup(groupId);
        _groups[groupId] = Group({id: groupId, capacityW: capacityW, active: true, label: label});
        emit GroupRegistered(groupId, label, capacityW);
    }

    /// @inheritdoc IAssetRegistry
    function updateGroup(uint64 groupId, bytes32 label, uint64 capacityW) external onlyRole(REGISTRAR_ROLE) {
        Group storage g = _activeGroup(groupId);
        g.label = label;
        g.capacityW = capacityW;
        emit GroupUpdated(groupId, label, capacityW);
    }

    /// @inheritdoc IAssetRegistry
    function deactivateGroup(uint64 groupId) external onlyRole(REGISTRAR_ROLE) {
        _activeGroup(groupId).active = false;
        emit GroupDeactivated(groupId);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Charge points
    // ---------------------------------------------------------------------------------------------------------

    /// @inheritdoc IAssetRegistry
    function registerChargePoint(ChargePointParams calldata params) external onlyRole(REGISTRAR_ROLE) {
        _registerChargePoint(params);
    }

    /// @inheritdoc IAssetRegistry
    function registerChargePoints(ChargePointParams[] calldata params) external onlyRole(REGISTRAR_ROLE) {
        for (uint256 i = 0; i < params.length; ++i) {
            _registerChargePoint(params[i]);
        }
    }

    /// @inheritdoc IAssetRegistry
    function updateChargePoint(ChargePointParams calldata params) external onlyRole(REGISTRAR_ROLE) {
        _updateChargePoint(params);
    }

    /// @inheritdoc IAssetRegistry
    function updateChargePoints(ChargePointParams[] calldata params) external onlyRole(REGISTRAR_ROLE) {
        for (uint256 i = 0; i < params.length; ++i) {
            _updateChargePoint(params[i]);
        }
    }

    /// @inheritdoc IAssetRegistry
    function deactivateChargePoint(uint64 cpId) external onlyRole(REGISTRAR_ROLE) {
        ChargePoint storage cp = _activeChargePoint(cpId);
        cp.active = false;
        emit ChargePointDeactivated(cpId, cp.groupId);
    }

    /// @inheritdoc IAssetRegistry
    function setChargePointStatus(uint64 cpId, EvseStatus status) external {
        if (!hasRole(OPERATOR_ROLE, _msgSender()) && !hasRole(REGISTRAR_ROLE, _msgSender())) {
            revert AssetRegistryUnauthorizedStatusWriter(_msgSender());
        }
        ChargePoint storage cp = _activeChargePoint(cpId);
        EvseStatus previous = cp.status;
        cp.status = status;
        emit ChargePointStatusChanged(cpId, previous, status);
    }

    // ---------------------------------------------------------------------------------------------------------
    // PV inverters
    // ---------------------------------------------------------------------------------------------------------

    /// @inheritdoc IAssetRegistry
    function registerPvInverter(uint64 pvId, uint64 groupId, uint64 peakW) external onlyRole(REGISTRAR_ROLE) {
        if (pvId == 0) revert AssetRegistryZeroId();
        if (_pvInverters[pvId].id != 0) revert AssetRegistryDuplicatePvInverter(pvId);
        _activeGroup(groupId);
        _pvInverters[pvId] = PvInverter({id: pvId, groupId: groupId, peakW: peakW, active: true});
        emit PvInverterRegistered(pvId, groupId, peakW);
    }

    /// @inheritdoc IAssetRegistry
    function updatePvInverter(uint64 pvId, uint64 groupId, uint64 peakW) external onlyRole(REGISTRAR_ROLE) {
        PvInverter storage pv = _activePvInverter(pvId);
        if (groupId != pv.groupId) _activeGroup(groupId);
        pv.groupId = groupId;
        pv.peakW = peakW;
        emit PvInverterUpdated(pvId, groupId, peakW);
    }

    /// @inheritdoc IAssetRegistry
    function deactivatePvInverter(uint64 pvId) external onlyRole(REGISTRAR_ROLE) {
        PvInverter storage pv = _activePvInverter(pvId);
        pv.active = false;
        emit PvInverterDeactivated(pvId, pv.groupId);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Batteries
    // ---------------------------------------------------------------------------------------------------------

    /// @inheritdoc IAssetRegistry
    function registerBattery(uint64 batteryId, uint64 groupId, uint64 capacityWh, uint64 availableWh)
        external
        onlyRole(REGISTRAR_ROLE)
    {
        if (batteryId == 0) revert AssetRegistryZeroId();
        if (_batteries[batteryId].id != 0) revert AssetRegistryDuplicateBattery(batteryId);
        _activeGroup(groupId);
        _checkBatteryCharge(batteryId, capacityWh, availableWh);
        _batteries[batteryId] =
            Battery({id: batteryId, groupId: groupId, capacityWh: capacityWh, availableWh: availableWh, active: true});
        emit BatteryRegistered(batteryId, groupId, capacityWh, availableWh);
    }

    /// @inheritdoc IAssetRegistry
    function updateBattery(uint64 batteryId, uint64 groupId, uint64 capacityWh, uint64 availableWh)
        external
        onlyRole(REGISTRAR_ROLE)
    {
        Battery storage b = _activeBattery(batteryId);
        if (groupId != b.groupId) _activeGroup(groupId);
        _checkBatteryCharge(batteryId, capacityWh, availableWh);
        b.groupId = groupId;
        b.capacityWh = capacityWh;
        b.availableWh = availableWh;
        emit BatteryUpdated(batteryId, groupId, capacityWh, availableWh);
    }

    /// @inheritdoc IAssetRegistry
    function deactivateBattery(uint64 batteryId) external onlyRole(REGISTRAR_ROLE) {
        Battery storage b = _activeBattery(batteryId);
        b.active = false;
        emit BatteryDeactivated(batteryId, b.groupId);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Reads
    // ---------------------------------------------------------------------------------------------------------

    /// @inheritdoc IAssetRegistry
    function group(uint64 groupId) external view returns (Group memory) {
        Group storage g = _groups[groupId];
        if (g.id == 0) revert AssetRegistryUnknownGroup(groupId);
        return g;
    }

    /// @inheritdoc IAssetRegistry
    function chargePoint(uint64 cpId) external view returns (ChargePoint memory) {
        ChargePoint storage cp = _chargePoints[cpId];
        if (cp.id == 0) revert AssetRegistryUnknownChargePoint(cpId);
        return cp;
    }

    /// @inheritdoc IAssetRegistry
    function pvInverter(uint64 pvId) external view returns (PvInverter memory) {
        PvInverter storage pv = _pvInverters[pvId];
        if (pv.id == 0) revert AssetRegistryUnknownPvInverter(pvId);
        return pv;
    }

    /// @inheritdoc IAssetRegistry
    function battery(uint64 batteryId) external view returns (Battery memory) {
        Battery storage b = _batteries[batteryId];
        if (b.id == 0) revert AssetRegistryUnknownBattery(batteryId);
        return b;
    }

    /// @inheritdoc IAssetRegistry
    function chargePointsOf(uint64 groupId) external view returns (uint64[] memory ids) {
        EnumerableSet.UintSet storage set = _groupChargePoints[groupId];
        uint256 n = set.length();
        ids = new uint64[](n);
        for (uint256 i = 0; i < n; ++i) {
            // Only uint64 charge point ids are ever added to the set.
            ids[i] = uint64(set.at(i));
        }
    }

    /// @inheritdoc IAssetRegistry
    function isGroupRegistered(uint64 groupId) external view returns (bool) {
        return _groups[groupId].id != 0;
    }

    // ---------------------------------------------------------------------------------------------------------
    // Internals
    // ---------------------------------------------------------------------------------------------------------

    function _registerChargePoint(ChargePointParams calldata params) private {
        uint64 cpId = params.id;
        if (cpId == 0) revert AssetRegistryZeroId();
        if (_chargePoints[cpId].id != 0) revert AssetRegistryDuplicateChargePoint(cpId);
        _activeGroup(params.groupId);

        ChargePoint storage cp = _chargePoints[cpId];
        cp.id = cpId;
        cp.active = true;
        _writeChargePoint(cp, params);
        _groupChargePoints[params.groupId].add(cpId);

        emit ChargePointRegistered(
            cpId,
            params.groupId,
            params.evseUid,
            params.ratedPowerW,
            params.power,
            params.connectorStandard,
            params.status
        );
    }

    function _updateChargePoint(ChargePointParams calldata params) private {
        uint64 cpId = params.id;
        ChargePoint storage cp = _activeChargePoint(cpId);
        uint64 previousGroupId = cp.groupId;
        if (params.groupId != previousGroupId) {
            _activeGroup(params.groupId);
            _groupChargePoints[previousGroupId].remove(cpId);
            _groupChargePoints[params.groupId].add(cpId);
        }
        _writeChargePoint(cp, params);

        emit ChargePointUpdated(
            cpId,
            params.groupId,
            params.evseUid,
            params.ratedPowerW,
            params.power,
            params.connectorStandard,
            params.status
        );
    }

    function _writeChargePoint(ChargePoint storage cp, ChargePointParams calldata params) private {
        cp.groupId = params.groupId;
        cp.ratedPowerW = params.ratedPowerW;
        cp.status = params.status;
        cp.power = params.power;
        cp.connectorStandard = params.connectorStandard;
        cp.evseUid = params.evseUid;
    }

    function _activeGroup(uint64 groupId) private view returns (Group storage g) {
        g = _groups[groupId];
        if (g.id == 0) revert AssetRegistryUnknownGroup(groupId);
        if (!g.active) revert AssetRegistryInactiveGroup(groupId);
    }

    function _activeChargePoint(uint64 cpId) private view returns (ChargePoint storage cp) {
        cp = _chargePoints[cpId];
        if (cp.id == 0) revert AssetRegistryUnknownChargePoint(cpId);
        if (!cp.active) revert AssetRegistryInactiveChargePoint(cpId);
    }

    function _activePvInverter(uint64 pvId) private view returns (PvInverter storage pv) {
        pv = _pvInverters[pvId];
        if (pv.id == 0) revert AssetRegistryUnknownPvInverter(pvId);
        if (!pv.active) revert AssetRegistryInactivePvInverter(pvId);
    }

    function _activeBattery(uint64 batteryId) private view returns (Battery storage b) {
        b = _batteries[batteryId];
        if (b.id == 0) revert AssetRegistryUnknownBattery(batteryId);
        if (!b.active) revert AssetRegistryInactiveBattery(batteryId);
    }

    function _checkBatteryCharge(uint64 batteryId, uint64 capacityWh, uint64 availableWh) private pure {
        if (availableWh > capacityWh) revert AssetRegistryBatteryOverCapacity(batteryId, availableWh, capacityWh);
    }
}
