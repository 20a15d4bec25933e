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
 *
 * Site topology: limit nodes form a tree per site (a `CONNECTION` root, then transformers or main fuses, then
 * cabinets), each with per-phase current limits and/or a watt limit. A group is *linked* to a limit node
 * (`setGroupLimitNode`) rather than being one: groups keep their record, API, events and gas unchanged, and keep
 * the capacity the scheduler shares among their members, while the node holds the electrical limits the
 * electrician installed. Nodes have their own id space. Every active node's parent is active (a node with
 * active children cannot be deactivated) and no node is its own ancestor (checked by walking the new parent's
 * ancestors on every move, one storage read per level). Each charge point may carry a phase wiring (the node it
 * hangs off, which node phase each of its phases is on, line-to-neutral or line-to-line, and its rate limits),
 * set apart from `registerChargePoint` so the charge point API is unchanged.
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
    mapping(uint64 nodeId => LimitNode) private _limitNodes;
    mapping(uint64 groupId => uint64 nodeId) private _groupLimitNodes;
    mapping(uint64 cpId => PhaseWiring) private _phaseWirings;

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
    // Site topology: limit nodes, group links, phase wiring
    // ---------------------------------------------------------------------------------------------------------

    /// @inheritdoc IAssetRegistry
    function registerLimitNode(LimitNodeParams calldata params) external onlyRole(REGISTRAR_ROLE) {
        uint64 nodeId = params.id;
        if (nodeId == 0) revert AssetRegistryZeroId();
        if (_limitNodes[nodeId].id != 0) revert AssetRegistryDuplicateLimitNode(nodeId);
        _checkLimitNode(params);
        if (params.parentId != 0) _activeParent(nodeId, params.parentId).activeChildren += 1;

        LimitNode storage node = _limitNodes[nodeId];
        node.id = nodeId;
        node.active = true;
        _writeLimitNode(node, params);
        emit LimitNodeRegistered(nodeId, params.parentId, params);
    }

    /// @inheritdoc IAssetRegistry
    function updateLimitNode(LimitNodeParams calldata params) external onlyRole(REGISTRAR_ROLE) {
        uint64 nodeId = params.id;
        LimitNode storage node = _activeLimitNode(nodeId);
        _checkLimitNode(params);
        uint64 previousParentId = node.parentId;
        if (params.parentId != previousParentId) {
            if (params.parentId != 0) {
                LimitNode storage parent = _activeParent(nodeId, params.parentId);
                // Walk up from the new parent: finding the node itself means it would become its own ancestor.
                // Ends at a root because the tree has no cycle (every move is checked here).
                for (uint64 a = params.parentId; a != 0; a = _limitNodes[a].parentId) {
                    if (a == nodeId) revert AssetRegistryLimitNodeCycle(nodeId, params.parentId);
                }
                parent.activeChildren += 1;
            }
            if (previousParentId != 0) {
                // The node is active and counted in its parent's active children, so the count is at least 1.
                unchecked {
                    _limitNodes[previousParentId].activeChildren -= 1;
                }
            }
        }
        _writeLimitNode(node, params);
        emit LimitNodeUpdated(nodeId, params.parentId, params);
    }

    /// @inheritdoc IAssetRegistry
    function deactivateLimitNode(uint64 nodeId) external onlyRole(REGISTRAR_ROLE) {
        LimitNode storage node = _activeLimitNode(nodeId);
        if (node.activeChildren != 0) revert AssetRegistryLimitNodeHasActiveChildren(nodeId, node.activeChildren);
        node.active = false;
        uint64 parentId = node.parentId;
        if (parentId != 0) {
            // The node was active and counted in its parent's active children, so the count is at least 1.
            unchecked {
                _limitNodes[parentId].activeChildren -= 1;
            }
        }
        emit LimitNodeDeactivated(nodeId, parentId);
    }

    /// @inheritdoc IAssetRegistry
    function setGroupLimitNode(uint64 groupId, uint64 nodeId) external onlyRole(REGISTRAR_ROLE) {
        _activeGroup(groupId);
        if (nodeId != 0) _activeLimitNode(nodeId);
        _groupLimitNodes[groupId] = nodeId;
        emit GroupLimitNodeSet(groupId, nodeId);
    }

    /// @inheritdoc IAssetRegistry
    function setPhaseWiring(uint64 cpId, PhaseWiring calldata wiring) external onlyRole(REGISTRAR_ROLE) {
        _activeChargePoint(cpId);
        _activeLimitNode(wiring.nodeId);
        _checkPhaseMap(cpId, wiring.phaseMap, wiring.lineToLine);
        if (wiring.maxRate == 0 || wiring.rateStep == 0 || wiring.minRate > wiring.maxRate) {
            revert AssetRegistryBadRateLimits(cpId, wiring.minRate, wiring.maxRate, wiring.rateStep);
        }
        _phaseWirings[cpId] = wiring;
        emit PhaseWiringSet(cpId, wiring.nodeId, wiring);
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

    /// @inheritdoc IAssetRegistry
    function limitNode(uint64 nodeId) external view returns (LimitNode memory) {
        LimitNode storage node = _limitNodes[nodeId];
        if (node.id == 0) revert AssetRegistryUnknownLimitNode(nodeId);
        return node;
    }

    /// @inheritdoc IAssetRegistry
    function isLimitNodeRegistered(uint64 nodeId) external view returns (bool) {
        return _limitNodes[nodeId].id != 0;
    }

    /// @inheritdoc IAssetRegistry
    function groupLimitNode(uint64 groupId) external view returns (uint64) {
        if (_groups[groupId].id == 0) revert AssetRegistryUnknownGroup(groupId);
        return _groupLimitNodes[groupId];
    }

    /// @inheritdoc IAssetRegistry
    function phaseWiring(uint64 cpId) external view returns (PhaseWiring memory) {
        if (_chargePoints[cpId].id == 0) revert AssetRegistryUnknownChargePoint(cpId);
        return _phaseWirings[cpId];
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

    function _activeLimitNode(uint64 nodeId) private view returns (LimitNode storage node) {
        node = _limitNodes[nodeId];
        if (node.id == 0) revert AssetRegistryUnknownLimitNode(nodeId);
        if (!node.active) revert AssetRegistryInactiveLimitNode(nodeId);
    }

    function _activeParent(uint64 nodeId, uint64 parentId) private view returns (LimitNode storage parent) {
        parent = _limitNodes[parentId];
        if (parent.id == 0) revert AssetRegistryUnknownParent(nodeId, parentId);
        if (!parent.active) revert AssetRegistryInactiveParent(nodeId, parentId);
    }

    function _checkLimitNode(LimitNodeParams calldata params) private pure {
        if ((params.parentId == 0) != (params.kind == LimitNodeKind.CONNECTION)) {
            revert AssetRegistryBadRootKind(params.id, params.kind, params.parentId);
        }
        bool perPhase = params.limitL1dA != 0 || params.limitL2dA != 0 || params.limitL3dA != 0;
        if (!perPhase && params.limitW == 0) revert AssetRegistryLimitNodeWithoutLimit(params.id);
        if (perPhase && params.phaseVoltageV == 0) revert AssetRegistryLimitNodeWithoutVoltage(params.id);
    }

    function _writeLimitNode(LimitNode storage node, LimitNodeParams calldata params) private {
        node.parentId = params.parentId;
        node.kind = params.kind;
        node.phaseVoltageV = params.phaseVoltageV;
        node.limitL1dA = params.limitL1dA;
        node.limitL2dA = params.limitL2dA;
        node.limitL3dA = params.limitL3dA;
        node.limitW = params.limitW;
    }

    /// @dev See `PhaseWiring`: three 2-bit node phases, L1 wired, wired phases contiguous from L1, distinct.
    function _checkPhaseMap(uint64 cpId, uint8 phaseMap, bool lineToLine) private pure {
        uint8 p1 = phaseMap & 3;
        uint8 p2 = (phaseMap >> 2) & 3;
        uint8 p3 = (phaseMap >> 4) & 3;
        if (
            phaseMap >> 6 != 0 || p1 == 0 || (p2 == 0 && p3 != 0) || (p2 != 0 && p2 == p1)
                || (p3 != 0 && (p3 == p1 || p3 == p2))
        ) revert AssetRegistryBadPhaseMap(cpId, phaseMap);
        if (lineToLine && p2 == 0) revert AssetRegistryLineToLineNeedsTwoPhases(cpId, phaseMap);
    }

    function _checkBatteryCharge(uint64 batteryId, uint64 capacityWh, uint64 availableWh) private pure {
        if (availableWh > capacityWh) revert AssetRegistryBatteryOverCapacity(batteryId, availableWh, capacityWh);
    }
}
