// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IAssetRegistry} from "../src/interfaces/IAssetRegistry.sol";
import {Fixtures} from "./utils/Fixtures.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

contract AssetRegistryTest is Fixtures {
    uint64 internal constant GROUP = 1;
    uint64 internal constant OTHER_GROUP = 2;
    uint64 internal constant CP = 101;

    function setUp() public override {
        super.setUp();
        vm.startPrank(registrar);
        assets.registerGroup(GROUP, "cabinet-1", 100_000);
        assets.registerGroup(OTHER_GROUP, "cabinet-2", 50_000);
        vm.stopPrank();
    }

    function _registerCp(uint64 cpId, uint64 groupId) internal {
        vm.prank(registrar);
        assets.registerChargePoint(_chargePointParams(cpId, groupId));
    }

    // ---------------------------------------------------------------------------------------------------------
    // Groups
    // ---------------------------------------------------------------------------------------------------------

    function test_registerGroup_storesAndEmits() public {
        vm.expectEmit(address(assets));
        emit IAssetRegistry.GroupRegistered(7, "transformer-7", 630_000);
        vm.prank(registrar);
        assets.registerGroup(7, "transformer-7", 630_000);

        IAssetRegistry.Group memory g = assets.group(7);
        assertEq(g.id, 7);
        assertEq(g.capacityW, 630_000);
        assertEq(g.label, bytes32("transformer-7"));
        assertTrue(g.active);
        assertTrue(assets.isGroupRegistered(7));
        assertFalse(assets.isGroupRegistered(8));
    }

    function test_registerGroup_revertsOnZeroId() public {
        vm.expectRevert(IAssetRegistry.AssetRegistryZeroId.selector);
        vm.prank(registrar);
        assets.registerGroup(0, "x", 1);
    }

    function test_registerGroup_revertsOnDuplicate() public {
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryDuplicateGroup.selector, GROUP));
        vm.prank(registrar);
        assets.registerGroup(GROUP, "again", 1);
    }

    function test_registerGroup_revertsWithoutRole() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, stranger, assets.REGISTRAR_ROLE()
            )
        );
        vm.prank(stranger);
        assets.registerGroup(9, "x", 1);
    }

    function test_updateGroup_changesFields() public {
        vm.expectEmit(address(assets));
        emit IAssetRegistry.GroupUpdated(GROUP, "cabinet-1b", 120_000);
        vm.prank(registrar);
        assets.updateGroup(GROUP, "cabinet-1b", 120_000);
        IAssetRegistry.Group memory g = assets.group(GROUP);
        assertEq(g.capacityW, 120_000);
        assertEq(g.label, bytes32("cabinet-1b"));
    }

    function test_updateGroup_revertsOnUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryUnknownGroup.selector, 99));
        vm.prank(registrar);
        assets.updateGroup(99, "x", 1);
    }

    function test_updateGroup_revertsWhenInactive() public {
        vm.startPrank(registrar);
        assets.deactivateGroup(GROUP);
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryInactiveGroup.selector, GROUP));
        assets.updateGroup(GROUP, "x", 1);
        vm.stopPrank();
    }

    function test_deactivateGroup_keepsRecord() public {
        vm.expectEmit(address(assets));
        emit IAssetRegistry.GroupDeactivated(GROUP);
        vm.prank(registrar);
        assets.deactivateGroup(GROUP);
        assertFalse(assets.group(GROUP).active);
        assertTrue(assets.isGroupRegistered(GROUP));
    }

    function test_deactivateGroup_revertsTwice() public {
        vm.startPrank(registrar);
        assets.deactivateGroup(GROUP);
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryInactiveGroup.selector, GROUP));
        assets.deactivateGroup(GROUP);
        vm.stopPrank();
    }

    function test_group_revertsOnUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryUnknownGroup.selector, 99));
        assets.group(99);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Charge points
    // ---------------------------------------------------------------------------------------------------------

    function test_registerChargePoint_storesAndEmits() public {
        IAssetRegistry.ChargePointParams memory p = _chargePointParams(CP, GROUP);
        vm.expectEmit(address(assets));
        emit IAssetRegistry.ChargePointRegistered(
            CP, GROUP, p.evseUid, p.ratedPowerW, p.power, p.connectorStandard, p.status
        );
        vm.prank(registrar);
        assets.registerChargePoint(p);

        IAssetRegistry.ChargePoint memory cp = assets.chargePoint(CP);
        assertEq(cp.id, CP);
        assertEq(cp.groupId, GROUP);
        assertEq(cp.ratedPowerW, 22_000);
        assertEq(uint8(cp.status), uint8(IAssetRegistry.EvseStatus.AVAILABLE));
        assertTrue(cp.active);
        assertEq(uint8(cp.power.powerType), uint8(IAssetRegistry.PowerType.AC_3_PHASE));
        assertEq(cp.power.phases, 3);
        assertEq(cp.power.voltageV, 230);
        assertEq(cp.power.maxCurrentA, 32);
        assertEq(cp.connectorStandard, bytes32("IEC_62196_T2"));
        assertEq(cp.evseUid, "DE*EVF*E101");

        uint64[] memory ids = assets.chargePointsOf(GROUP);
        assertEq(ids.length, 1);
        assertEq(ids[0], CP);
    }

    function test_registerChargePoint_revertsOnZeroId() public {
        vm.expectRevert(IAssetRegistry.AssetRegistryZeroId.selector);
        vm.prank(registrar);
        assets.registerChargePoint(_chargePointParams(0, GROUP));
    }

    function test_registerChargePoint_revertsOnDuplicate() public {
        _registerCp(CP, GROUP);
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryDuplicateChargePoint.selector, CP));
        vm.prank(registrar);
        assets.registerChargePoint(_chargePointParams(CP, OTHER_GROUP));
    }

    function test_registerChargePoint_revertsOnUnknownGroup() public {
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryUnknownGroup.selector, 99));
        vm.prank(registrar);
        assets.registerChargePoint(_chargePointParams(CP, 99));
    }

    function test_registerChargePoint_revertsOnInactiveGroup() public {
        vm.startPrank(registrar);
        assets.deactivateGroup(GROUP);
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryInactiveGroup.selector, GROUP));
        assets.registerChargePoint(_chargePointParams(CP, GROUP));
        vm.stopPrank();
    }

    function test_registerChargePoint_revertsWithoutRole() public {
        IAssetRegistry.ChargePointParams memory p = _chargePointParams(CP, GROUP);
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, operator, assets.REGISTRAR_ROLE()
            )
        );
        vm.prank(operator);
        assets.registerChargePoint(p);
    }

    function test_registerChargePoints_registersAll() public {
        IAssetRegistry.ChargePointParams[] memory batch = new IAssetRegistry.ChargePointParams[](3);
        for (uint256 i = 0; i < 3; ++i) {
            batch[i] = _chargePointParams(uint64(CP + i), GROUP);
        }
        vm.prank(registrar);
        assets.registerChargePoints(batch);
        assertEq(assets.chargePointsOf(GROUP).length, 3);
        assertEq(assets.chargePoint(CP + 2).evseUid, "DE*EVF*E103");
    }

    function test_registerChargePoints_revertsAtomically() public {
        IAssetRegistry.ChargePointParams[] memory batch = new IAssetRegistry.ChargePointParams[](2);
        batch[0] = _chargePointParams(CP, GROUP);
        batch[1] = _chargePointParams(CP, GROUP);
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryDuplicateChargePoint.selector, CP));
        vm.prank(registrar);
        assets.registerChargePoints(batch);
        assertEq(assets.chargePointsOf(GROUP).length, 0);
    }

    function test_updateChargePoint_replacesFieldsAndMovesGroup() public {
        _registerCp(CP, GROUP);
        IAssetRegistry.ChargePointParams memory p = _chargePointParams(CP, OTHER_GROUP);
        p.ratedPowerW = 150_000;
        p.power = IAssetRegistry.PowerInfo({
            powerType: IAssetRegistry.PowerType.DC, phases: 0, voltageV: 800, maxCurrentA: 200
        });
        p.connectorStandard = bytes32("IEC_62196_T2_COMBO");
        p.status = IAssetRegistry.EvseStatus.CHARGING;
        p.evseUid = "DE*EVF*E101-DC";

        vm.expectEmit(address(assets));
        emit IAssetRegistry.ChargePointUpdated(
            CP, OTHER_GROUP, p.evseUid, p.ratedPowerW, p.power, p.connectorStandard, p.status
        );
        vm.prank(registrar);
        assets.updateChargePoint(p);

        IAssetRegistry.ChargePoint memory cp = assets.chargePoint(CP);
        assertEq(cp.groupId, OTHER_GROUP);
        assertEq(cp.ratedPowerW, 150_000);
        assertEq(uint8(cp.power.powerType), uint8(IAssetRegistry.PowerType.DC));
        assertEq(cp.connectorStandard, bytes32("IEC_62196_T2_COMBO"));
        assertEq(cp.evseUid, "DE*EVF*E101-DC");
        assertEq(assets.chargePointsOf(GROUP).length, 0);
        assertEq(assets.chargePointsOf(OTHER_GROUP).length, 1);
    }

    function test_updateChargePoint_revertsOnUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryUnknownChargePoint.selector, CP));
        vm.prank(registrar);
        assets.updateChargePoint(_chargePointParams(CP, GROUP));
    }

    function test_updateChargePoint_revertsWhenInactive() public {
        _registerCp(CP, GROUP);
        vm.startPrank(registrar);
        assets.deactivateChargePoint(CP);
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryInactiveChargePoint.selector, CP));
        assets.updateChargePoint(_chargePointParams(CP, GROUP));
        vm.stopPrank();
    }

    function test_updateChargePoint_revertsOnUnknownGroup() public {
        _registerCp(CP, GROUP);
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryUnknownGroup.selector, 99));
        vm.prank(registrar);
        assets.updateChargePoint(_chargePointParams(CP, 99));
    }

    function test_updateChargePoints_updatesAll() public {
        _registerCp(CP, GROUP);
        _registerCp(CP + 1, GROUP);
        IAssetRegistry.ChargePointParams[] memory batch = new IAssetRegistry.ChargePointParams[](2);
        batch[0] = _chargePointParams(CP, GROUP);
        batch[1] = _chargePointParams(CP + 1, GROUP);
        batch[0].ratedPowerW = 11_000;
        batch[1].ratedPowerW = 7400;
        vm.prank(registrar);
        assets.updateChargePoints(batch);
        assertEq(assets.chargePoint(CP).ratedPowerW, 11_000);
        assertEq(assets.chargePoint(CP + 1).ratedPowerW, 7400);
    }

    function test_deactivateChargePoint_keepsRecordAndListing() public {
        _registerCp(CP, GROUP);
        vm.expectEmit(address(assets));
        emit IAssetRegistry.ChargePointDeactivated(CP, GROUP);
        vm.prank(registrar);
        assets.deactivateChargePoint(CP);
        assertFalse(assets.chargePoint(CP).active);
        assertEq(assets.chargePointsOf(GROUP).length, 1);
    }

    function test_deactivateChargePoint_revertsOnUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryUnknownChargePoint.selector, CP));
        vm.prank(registrar);
        assets.deactivateChargePoint(CP);
    }

    function test_setChargePointStatus_byOperator() public {
        _registerCp(CP, GROUP);
        vm.expectEmit(address(assets));
        emit IAssetRegistry.ChargePointStatusChanged(
            CP, IAssetRegistry.EvseStatus.AVAILABLE, IAssetRegistry.EvseStatus.CHARGING
        );
        vm.prank(operator);
        assets.setChargePointStatus(CP, IAssetRegistry.EvseStatus.CHARGING);
        assertEq(uint8(assets.chargePoint(CP).status), uint8(IAssetRegistry.EvseStatus.CHARGING));
    }

    function test_setChargePointStatus_byRegistrar() public {
        _registerCp(CP, GROUP);
        vm.prank(registrar);
        assets.setChargePointStatus(CP, IAssetRegistry.EvseStatus.OUTOFORDER);
        assertEq(uint8(assets.chargePoint(CP).status), uint8(IAssetRegistry.EvseStatus.OUTOFORDER));
    }

    function test_setChargePointStatus_revertsForOthers() public {
        _registerCp(CP, GROUP);
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryUnauthorizedStatusWriter.selector, stranger));
        vm.prank(stranger);
        assets.setChargePointStatus(CP, IAssetRegistry.EvseStatus.CHARGING);
    }

    function test_setChargePointStatus_revertsOnUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryUnknownChargePoint.selector, CP));
        vm.prank(operator);
        assets.setChargePointStatus(CP, IAssetRegistry.EvseStatus.CHARGING);
    }

    function test_chargePoint_revertsOnUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryUnknownChargePoint.selector, CP));
        assets.chargePoint(CP);
    }

    function testFuzz_registerChargePoint_roundTrips(uint64 cpId, uint32 ratedPowerW, uint8 status, uint8 powerType)
        public
    {
        cpId = uint64(bound(cpId, 1, type(uint64).max));
        IAssetRegistry.ChargePointParams memory p = _chargePointParams(cpId, GROUP);
        p.ratedPowerW = ratedPowerW;
        p.status = IAssetRegistry.EvseStatus(bound(status, 0, uint8(type(IAssetRegistry.EvseStatus).max)));
        p.power.powerType = IAssetRegistry.PowerType(bound(powerType, 0, uint8(type(IAssetRegistry.PowerType).max)));
        vm.prank(registrar);
        assets.registerChargePoint(p);

        IAssetRegistry.ChargePoint memory cp = assets.chargePoint(cpId);
        assertEq(cp.id, cpId);
        assertEq(cp.ratedPowerW, ratedPowerW);
        assertEq(uint8(cp.status), uint8(p.status));
        assertEq(uint8(cp.power.powerType), uint8(p.power.powerType));
        assertEq(assets.chargePointsOf(GROUP)[0], cpId);
    }

    // ---------------------------------------------------------------------------------------------------------
    // PV inverters
    // ---------------------------------------------------------------------------------------------------------

    function test_registerPvInverter_storesAndEmits() public {
        vm.expectEmit(address(assets));
        emit IAssetRegistry.PvInverterRegistered(5, GROUP, 30_000);
        vm.prank(registrar);
        assets.registerPvInverter(5, GROUP, 30_000);
        IAssetRegistry.PvInverter memory pv = assets.pvInverter(5);
        assertEq(pv.groupId, GROUP);
        assertEq(pv.peakW, 30_000);
        assertTrue(pv.active);
    }

    function test_registerPvInverter_revertsOnDuplicate() public {
        vm.startPrank(registrar);
        assets.registerPvInverter(5, GROUP, 30_000);
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryDuplicatePvInverter.selector, 5));
        assets.registerPvInverter(5, GROUP, 30_000);
        vm.stopPrank();
    }

    function test_registerPvInverter_revertsOnUnknownGroup() public {
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryUnknownGroup.selector, 99));
        vm.prank(registrar);
        assets.registerPvInverter(5, 99, 30_000);
    }

    function test_registerPvInverter_revertsOnZeroId() public {
        vm.expectRevert(IAssetRegistry.AssetRegistryZeroId.selector);
        vm.prank(registrar);
        assets.registerPvInverter(0, GROUP, 30_000);
    }

    function test_updatePvInverter_changesFields() public {
        vm.startPrank(registrar);
        assets.registerPvInverter(5, GROUP, 30_000);
        vm.expectEmit(address(assets));
        emit IAssetRegistry.PvInverterUpdated(5, OTHER_GROUP, 45_000);
        assets.updatePvInverter(5, OTHER_GROUP, 45_000);
        vm.stopPrank();
        assertEq(assets.pvInverter(5).groupId, OTHER_GROUP);
        assertEq(assets.pvInverter(5).peakW, 45_000);
    }

    function test_updatePvInverter_revertsOnUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryUnknownPvInverter.selector, 5));
        vm.prank(registrar);
        assets.updatePvInverter(5, GROUP, 1);
    }

    function test_deactivatePvInverter_revertsTwice() public {
        vm.startPrank(registrar);
        assets.registerPvInverter(5, GROUP, 30_000);
        vm.expectEmit(address(assets));
        emit IAssetRegistry.PvInverterDeactivated(5, GROUP);
        assets.deactivatePvInverter(5);
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryInactivePvInverter.selector, 5));
        assets.deactivatePvInverter(5);
        vm.stopPrank();
    }

    function test_pvInverter_revertsOnUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryUnknownPvInverter.selector, 5));
        assets.pvInverter(5);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Batteries
    // ---------------------------------------------------------------------------------------------------------

    function test_registerBattery_storesAndEmits() public {
        vm.expectEmit(address(assets));
        emit IAssetRegistry.BatteryRegistered(8, GROUP, 100_000, 40_000);
        vm.prank(registrar);
        assets.registerBattery(8, GROUP, 100_000, 40_000);
        IAssetRegistry.Battery memory b = assets.battery(8);
        assertEq(b.capacityWh, 100_000);
        assertEq(b.availableWh, 40_000);
        assertTrue(b.active);
    }

    function test_registerBattery_revertsOverCapacity() public {
        vm.expectRevert(
            abi.encodeWithSelector(IAssetRegistry.AssetRegistryBatteryOverCapacity.selector, 8, 100_001, 100_000)
        );
        vm.prank(registrar);
        assets.registerBattery(8, GROUP, 100_000, 100_001);
    }

    function test_registerBattery_revertsOnDuplicate() public {
        vm.startPrank(registrar);
        assets.registerBattery(8, GROUP, 100_000, 0);
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryDuplicateBattery.selector, 8));
        assets.registerBattery(8, GROUP, 100_000, 0);
        vm.stopPrank();
    }

    function test_registerBattery_revertsOnZeroId() public {
        vm.expectRevert(IAssetRegistry.AssetRegistryZeroId.selector);
        vm.prank(registrar);
        assets.registerBattery(0, GROUP, 1, 0);
    }

    function test_updateBattery_changesFields() public {
        vm.startPrank(registrar);
        assets.registerBattery(8, GROUP, 100_000, 40_000);
        vm.expectEmit(address(assets));
        emit IAssetRegistry.BatteryUpdated(8, GROUP, 100_000, 90_000);
        assets.updateBattery(8, GROUP, 100_000, 90_000);
        vm.stopPrank();
        assertEq(assets.battery(8).availableWh, 90_000);
    }

    function test_updateBattery_revertsOverCapacity() public {
        vm.startPrank(registrar);
        assets.registerBattery(8, GROUP, 100_000, 40_000);
        vm.expectRevert(
            abi.encodeWithSelector(IAssetRegistry.AssetRegistryBatteryOverCapacity.selector, 8, 60_000, 50_000)
        );
        assets.updateBattery(8, GROUP, 50_000, 60_000);
        vm.stopPrank();
    }

    function test_updateBattery_revertsOnUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryUnknownBattery.selector, 8));
        vm.prank(registrar);
        assets.updateBattery(8, GROUP, 1, 0);
    }

    function test_deactivateBattery_revertsTwice() public {
        vm.startPrank(registrar);
        assets.registerBattery(8, GROUP, 100_000, 0);
        vm.expectEmit(address(assets));
        emit IAssetRegistry.BatteryDeactivated(8, GROUP);
        assets.deactivateBattery(8);
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryInactiveBattery.selector, 8));
        assets.deactivateBattery(8);
        vm.stopPrank();
    }

    function test_battery_revertsOnUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryUnknownBattery.selector, 8));
        assets.battery(8);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Limit nodes
    // ---------------------------------------------------------------------------------------------------------

    uint64 internal constant SITE = 1000;
    uint64 internal constant TRAFO = 1001;
    uint64 internal constant CABINET = 1002;
    uint64 internal constant CABINET_2 = 1003;
    /// @dev CP phases L1, L2, L3 on node phases L1, L2, L3.
    uint8 internal constant STRAIGHT = 1 | (2 << 2) | (3 << 4);

    function _node(uint64 id, uint64 parentId, IAssetRegistry.LimitNodeKind kind)
        internal
        pure
        returns (IAssetRegistry.LimitNodeParams memory)
    {
        return IAssetRegistry.LimitNodeParams({
            id: id,
            parentId: parentId,
            kind: kind,
            phaseVoltageV: 230,
            limitL1dA: 630,
            limitL2dA: 630,
            limitL3dA: 500,
            limitW: 0
        });
    }

    function _registerNode(uint64 id, uint64 parentId, IAssetRegistry.LimitNodeKind kind) internal {
        vm.prank(registrar);
        assets.registerLimitNode(_node(id, parentId, kind));
    }

    /// @dev SITE (connection) -> TRAFO (transformer) -> CABINET, CABINET_2 (cabinets).
    function _registerTree() internal {
        _registerNode(SITE, 0, IAssetRegistry.LimitNodeKind.CONNECTION);
        _registerNode(TRAFO, SITE, IAssetRegistry.LimitNodeKind.TRANSFORMER);
        _registerNode(CABINET, TRAFO, IAssetRegistry.LimitNodeKind.CABINET);
        _registerNode(CABINET_2, TRAFO, IAssetRegistry.LimitNodeKind.CABINET);
    }

    function _wiring(uint64 nodeId, uint8 phaseMap) internal pure returns (IAssetRegistry.PhaseWiring memory) {
        return IAssetRegistry.PhaseWiring({
            nodeId: nodeId,
            phaseMap: phaseMap,
            lineToLine: false,
            unit: IAssetRegistry.RateUnit.DECI_AMPERE,
            minRate: 60,
            maxRate: 320,
            rateStep: 10
        });
    }

    function test_registerLimitNode_storesAndEmits() public {
        IAssetRegistry.LimitNodeParams memory p = _node(SITE, 0, IAssetRegistry.LimitNodeKind.CONNECTION);
        p.limitW = 400_000;
        vm.expectEmit(address(assets));
        emit IAssetRegistry.LimitNodeRegistered(SITE, 0, p);
        vm.prank(registrar);
        assets.registerLimitNode(p);

        IAssetRegistry.LimitNode memory n = assets.limitNode(SITE);
        assertEq(n.id, SITE);
        assertEq(n.parentId, 0);
        assertEq(uint8(n.kind), uint8(IAssetRegistry.LimitNodeKind.CONNECTION));
        assertTrue(n.active);
        assertEq(n.phaseVoltageV, 230);
        assertEq(n.limitL1dA, 630);
        assertEq(n.limitL2dA, 630);
        assertEq(n.limitL3dA, 500);
        assertEq(n.limitW, 400_000);
        assertEq(n.activeChildren, 0);
        assertTrue(assets.isLimitNodeRegistered(SITE));
        assertFalse(assets.isLimitNodeRegistered(TRAFO));
    }

    function test_registerLimitNode_buildsTreeAndCountsChildren() public {
        _registerTree();
        assertEq(assets.limitNode(SITE).activeChildren, 1);
        assertEq(assets.limitNode(TRAFO).activeChildren, 2);
        assertEq(assets.limitNode(CABINET).activeChildren, 0);
        assertEq(assets.limitNode(CABINET).parentId, TRAFO);
        assertEq(uint8(assets.limitNode(TRAFO).kind), uint8(IAssetRegistry.LimitNodeKind.TRANSFORMER));
    }

    function test_registerLimitNode_acceptsWattLimitOnly() public {
        _registerNode(SITE, 0, IAssetRegistry.LimitNodeKind.CONNECTION);
        IAssetRegistry.LimitNodeParams memory p = _node(TRAFO, SITE, IAssetRegistry.LimitNodeKind.FUSE);
        p.phaseVoltageV = 0;
        p.limitL1dA = 0;
        p.limitL2dA = 0;
        p.limitL3dA = 0;
        p.limitW = 150_000;
        vm.prank(registrar);
        assets.registerLimitNode(p);
        assertEq(assets.limitNode(TRAFO).limitW, 150_000);
    }

    function test_registerLimitNode_revertsOnZeroId() public {
        vm.expectRevert(IAssetRegistry.AssetRegistryZeroId.selector);
        vm.prank(registrar);
        assets.registerLimitNode(_node(0, 0, IAssetRegistry.LimitNodeKind.CONNECTION));
    }

    function test_registerLimitNode_revertsOnDuplicate() public {
        _registerNode(SITE, 0, IAssetRegistry.LimitNodeKind.CONNECTION);
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryDuplicateLimitNode.selector, SITE));
        vm.prank(registrar);
        assets.registerLimitNode(_node(SITE, 0, IAssetRegistry.LimitNodeKind.CONNECTION));
    }

    function test_registerLimitNode_revertsWithoutRole() public {
        IAssetRegistry.LimitNodeParams memory p = _node(SITE, 0, IAssetRegistry.LimitNodeKind.CONNECTION);
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, operator, assets.REGISTRAR_ROLE()
            )
        );
        vm.prank(operator);
        assets.registerLimitNode(p);
    }

    function test_registerLimitNode_revertsOnUnknownParent() public {
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryUnknownParent.selector, TRAFO, SITE));
        vm.prank(registrar);
        assets.registerLimitNode(_node(TRAFO, SITE, IAssetRegistry.LimitNodeKind.TRANSFORMER));
    }

    function test_registerLimitNode_revertsOnOwnIdAsParent() public {
        // Not registered yet, so the node cannot be its own parent: an unknown parent.
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryUnknownParent.selector, TRAFO, TRAFO));
        vm.prank(registrar);
        assets.registerLimitNode(_node(TRAFO, TRAFO, IAssetRegistry.LimitNodeKind.TRANSFORMER));
    }

    function test_registerLimitNode_revertsOnInactiveParent() public {
        _registerNode(SITE, 0, IAssetRegistry.LimitNodeKind.CONNECTION);
        vm.startPrank(registrar);
        assets.deactivateLimitNode(SITE);
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryInactiveParent.selector, TRAFO, SITE));
        assets.registerLimitNode(_node(TRAFO, SITE, IAssetRegistry.LimitNodeKind.TRANSFORMER));
        vm.stopPrank();
    }

    function test_registerLimitNode_revertsOnRootThatIsNotAConnection() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IAssetRegistry.AssetRegistryBadRootKind.selector, CABINET, IAssetRegistry.LimitNodeKind.CABINET, 0
            )
        );
        vm.prank(registrar);
        assets.registerLimitNode(_node(CABINET, 0, IAssetRegistry.LimitNodeKind.CABINET));
    }

    function test_registerLimitNode_revertsOnConnectionWithParent() public {
        _registerNode(SITE, 0, IAssetRegistry.LimitNodeKind.CONNECTION);
        vm.expectRevert(
            abi.encodeWithSelector(
                IAssetRegistry.AssetRegistryBadRootKind.selector, TRAFO, IAssetRegistry.LimitNodeKind.CONNECTION, SITE
            )
        );
        vm.prank(registrar);
        assets.registerLimitNode(_node(TRAFO, SITE, IAssetRegistry.LimitNodeKind.CONNECTION));
    }

    function test_registerLimitNode_revertsWithoutLimit() public {
        IAssetRegistry.LimitNodeParams memory p = _node(SITE, 0, IAssetRegistry.LimitNodeKind.CONNECTION);
        p.limitL1dA = 0;
        p.limitL2dA = 0;
        p.limitL3dA = 0;
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryLimitNodeWithoutLimit.selector, SITE));
        vm.prank(registrar);
        assets.registerLimitNode(p);
    }

    function test_registerLimitNode_revertsWithoutVoltage() public {
        IAssetRegistry.LimitNodeParams memory p = _node(SITE, 0, IAssetRegistry.LimitNodeKind.CONNECTION);
        p.phaseVoltageV = 0;
        p.limitL1dA = 0;
        p.limitL2dA = 0;
        p.limitW = 100_000;
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryLimitNodeWithoutVoltage.selector, SITE));
        vm.prank(registrar);
        assets.registerLimitNode(p);
    }

    function test_updateLimitNode_changesFieldsAndEmits() public {
        _registerTree();
        IAssetRegistry.LimitNodeParams memory p = _node(CABINET, TRAFO, IAssetRegistry.LimitNodeKind.FUSE);
        p.phaseVoltageV = 120;
        p.limitL1dA = 1000;
        p.limitL2dA = 800;
        p.limitL3dA = 0;
        p.limitW = 22_000;
        vm.expectEmit(address(assets));
        emit IAssetRegistry.LimitNodeUpdated(CABINET, TRAFO, p);
        vm.prank(registrar);
        assets.updateLimitNode(p);

        IAssetRegistry.LimitNode memory n = assets.limitNode(CABINET);
        assertEq(uint8(n.kind), uint8(IAssetRegistry.LimitNodeKind.FUSE));
        assertEq(n.phaseVoltageV, 120);
        assertEq(n.limitL1dA, 1000);
        assertEq(n.limitL2dA, 800);
        assertEq(n.limitL3dA, 0);
        assertEq(n.limitW, 22_000);
        assertTrue(n.active);
        assertEq(assets.limitNode(TRAFO).activeChildren, 2);
    }

    function test_updateLimitNode_movesAndRecountsChildren() public {
        _registerTree();
        // CABINET_2 moves under CABINET (a sub-distribution board).
        vm.prank(registrar);
        assets.updateLimitNode(_node(CABINET_2, CABINET, IAssetRegistry.LimitNodeKind.CABINET));
        assertEq(assets.limitNode(CABINET_2).parentId, CABINET);
        assertEq(assets.limitNode(TRAFO).activeChildren, 1);
        assertEq(assets.limitNode(CABINET).activeChildren, 1);
    }

    function test_updateLimitNode_movesToRootAsConnection() public {
        _registerTree();
        vm.prank(registrar);
        assets.updateLimitNode(_node(CABINET_2, 0, IAssetRegistry.LimitNodeKind.CONNECTION));
        assertEq(assets.limitNode(CABINET_2).parentId, 0);
        assertEq(assets.limitNode(TRAFO).activeChildren, 1);
    }

    function test_updateLimitNode_revertsOnSelfAsParent() public {
        _registerTree();
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryLimitNodeCycle.selector, TRAFO, TRAFO));
        vm.prank(registrar);
        assets.updateLimitNode(_node(TRAFO, TRAFO, IAssetRegistry.LimitNodeKind.TRANSFORMER));
    }

    function test_updateLimitNode_revertsOnDescendantAsParent() public {
        _registerTree();
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryLimitNodeCycle.selector, TRAFO, CABINET));
        vm.prank(registrar);
        assets.updateLimitNode(_node(TRAFO, CABINET, IAssetRegistry.LimitNodeKind.TRANSFORMER));
    }

    function test_updateLimitNode_revertsOnUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryUnknownLimitNode.selector, SITE));
        vm.prank(registrar);
        assets.updateLimitNode(_node(SITE, 0, IAssetRegistry.LimitNodeKind.CONNECTION));
    }

    function test_updateLimitNode_revertsWhenInactive() public {
        _registerTree();
        vm.startPrank(registrar);
        assets.deactivateLimitNode(CABINET);
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryInactiveLimitNode.selector, CABINET));
        assets.updateLimitNode(_node(CABINET, TRAFO, IAssetRegistry.LimitNodeKind.CABINET));
        vm.stopPrank();
    }

    function test_updateLimitNode_revertsOnUnknownParent() public {
        _registerTree();
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryUnknownParent.selector, CABINET, 99));
        vm.prank(registrar);
        assets.updateLimitNode(_node(CABINET, 99, IAssetRegistry.LimitNodeKind.CABINET));
    }

    function test_updateLimitNode_revertsOnInactiveParent() public {
        _registerTree();
        vm.startPrank(registrar);
        assets.deactivateLimitNode(CABINET_2);
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryInactiveParent.selector, CABINET, CABINET_2));
        assets.updateLimitNode(_node(CABINET, CABINET_2, IAssetRegistry.LimitNodeKind.CABINET));
        vm.stopPrank();
    }

    function test_updateLimitNode_revertsOnBadRootKind() public {
        _registerTree();
        vm.expectRevert(
            abi.encodeWithSelector(
                IAssetRegistry.AssetRegistryBadRootKind.selector, SITE, IAssetRegistry.LimitNodeKind.TRANSFORMER, 0
            )
        );
        vm.prank(registrar);
        assets.updateLimitNode(_node(SITE, 0, IAssetRegistry.LimitNodeKind.TRANSFORMER));
    }

    function test_updateLimitNode_revertsWithoutLimit() public {
        _registerTree();
        IAssetRegistry.LimitNodeParams memory p = _node(CABINET, TRAFO, IAssetRegistry.LimitNodeKind.CABINET);
        p.limitL1dA = 0;
        p.limitL2dA = 0;
        p.limitL3dA = 0;
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryLimitNodeWithoutLimit.selector, CABINET));
        vm.prank(registrar);
        assets.updateLimitNode(p);
    }

    function test_updateLimitNode_revertsWithoutRole() public {
        _registerTree();
        IAssetRegistry.LimitNodeParams memory p = _node(CABINET, TRAFO, IAssetRegistry.LimitNodeKind.CABINET);
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, stranger, assets.REGISTRAR_ROLE()
            )
        );
        vm.prank(stranger);
        assets.updateLimitNode(p);
    }

    function test_deactivateLimitNode_keepsRecordAndReleasesParent() public {
        _registerTree();
        vm.expectEmit(address(assets));
        emit IAssetRegistry.LimitNodeDeactivated(CABINET, TRAFO);
        vm.prank(registrar);
        assets.deactivateLimitNode(CABINET);
        assertFalse(assets.limitNode(CABINET).active);
        assertTrue(assets.isLimitNodeRegistered(CABINET));
        assertEq(assets.limitNode(TRAFO).activeChildren, 1);
    }

    function test_deactivateLimitNode_revertsWithActiveChildren() public {
        _registerTree();
        vm.expectRevert(
            abi.encodeWithSelector(IAssetRegistry.AssetRegistryLimitNodeHasActiveChildren.selector, TRAFO, 2)
        );
        vm.prank(registrar);
        assets.deactivateLimitNode(TRAFO);
    }

    function test_deactivateLimitNode_revertsTwice() public {
        _registerNode(SITE, 0, IAssetRegistry.LimitNodeKind.CONNECTION);
        vm.startPrank(registrar);
        assets.deactivateLimitNode(SITE);
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryInactiveLimitNode.selector, SITE));
        assets.deactivateLimitNode(SITE);
        vm.stopPrank();
    }

    function test_deactivateLimitNode_revertsOnUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryUnknownLimitNode.selector, SITE));
        vm.prank(registrar);
        assets.deactivateLimitNode(SITE);
    }

    function test_deactivateLimitNode_revertsWithoutRole() public {
        _registerNode(SITE, 0, IAssetRegistry.LimitNodeKind.CONNECTION);
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, operator, assets.REGISTRAR_ROLE()
            )
        );
        vm.prank(operator);
        assets.deactivateLimitNode(SITE);
    }

    function test_limitNode_revertsOnUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryUnknownLimitNode.selector, SITE));
        assets.limitNode(SITE);
    }

    function testFuzz_registerLimitNode_roundTrips(
        uint64 id,
        uint8 kind,
        uint16 voltage,
        uint32 l1,
        uint32 l2,
        uint32 l3,
        uint64 limitW
    ) public {
        id = uint64(bound(id, 1, type(uint64).max));
        vm.assume(id != SITE);
        _registerNode(SITE, 0, IAssetRegistry.LimitNodeKind.CONNECTION);
        IAssetRegistry.LimitNodeParams memory p = IAssetRegistry.LimitNodeParams({
            id: id,
            parentId: SITE,
            kind: IAssetRegistry.LimitNodeKind(bound(kind, 1, uint8(type(IAssetRegistry.LimitNodeKind).max))),
            phaseVoltageV: uint16(bound(voltage, 1, type(uint16).max)),
            limitL1dA: l1,
            limitL2dA: l2,
            limitL3dA: l3,
            limitW: uint64(bound(limitW, 1, type(uint64).max))
        });
        vm.prank(registrar);
        assets.registerLimitNode(p);

        IAssetRegistry.LimitNode memory n = assets.limitNode(id);
        assertEq(n.id, id);
        assertEq(n.parentId, SITE);
        assertEq(uint8(n.kind), uint8(p.kind));
        assertEq(n.phaseVoltageV, p.phaseVoltageV);
        assertEq(n.limitL1dA, l1);
        assertEq(n.limitL2dA, l2);
        assertEq(n.limitL3dA, l3);
        assertEq(n.limitW, p.limitW);
        assertEq(assets.limitNode(SITE).activeChildren, 1);
    }

    /// @dev A chain SITE -> n1 -> ... -> nk: moving node i under node j is a cycle exactly when j is i or below i.
    function testFuzz_updateLimitNode_refusesExactlyTheCycles(uint256 depth, uint256 i, uint256 j) public {
        depth = bound(depth, 2, 8);
        i = bound(i, 1, depth);
        j = bound(j, 1, depth);
        _registerNode(SITE, 0, IAssetRegistry.LimitNodeKind.CONNECTION);
        for (uint64 k = 1; k <= depth; ++k) {
            _registerNode(SITE + k, k == 1 ? SITE : SITE + k - 1, IAssetRegistry.LimitNodeKind.FUSE);
        }
        uint64 nodeId = SITE + uint64(i);
        uint64 parentId = SITE + uint64(j);
        if (j >= i) {
            vm.expectRevert(
                abi.encodeWithSelector(IAssetRegistry.AssetRegistryLimitNodeCycle.selector, nodeId, parentId)
            );
        }
        vm.prank(registrar);
        assets.updateLimitNode(_node(nodeId, parentId, IAssetRegistry.LimitNodeKind.FUSE));
        if (j < i) {
            assertEq(assets.limitNode(nodeId).parentId, parentId);
            // The node left its old parent for the new one.
            uint64 oldParent = i == 1 ? SITE : SITE + uint64(i) - 1;
            if (oldParent != parentId) assertEq(assets.limitNode(oldParent).activeChildren, 0);
            assertEq(assets.limitNode(parentId).activeChildren, j + 1 == i ? 1 : 2);
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // Group links
    // ---------------------------------------------------------------------------------------------------------

    function test_setGroupLimitNode_linksUnlinksAndEmits() public {
        _registerTree();
        IAssetRegistry.Group memory before = assets.group(GROUP);
        assertEq(assets.groupLimitNode(GROUP), 0);

        vm.expectEmit(address(assets));
        emit IAssetRegistry.GroupLimitNodeSet(GROUP, CABINET);
        vm.prank(registrar);
        assets.setGroupLimitNode(GROUP, CABINET);
        assertEq(assets.groupLimitNode(GROUP), CABINET);
        // The group record itself is untouched.
        IAssetRegistry.Group memory later = assets.group(GROUP);
        assertEq(later.capacityW, before.capacityW);
        assertEq(later.label, before.label);

        vm.expectEmit(address(assets));
        emit IAssetRegistry.GroupLimitNodeSet(GROUP, 0);
        vm.prank(registrar);
        assets.setGroupLimitNode(GROUP, 0);
        assertEq(assets.groupLimitNode(GROUP), 0);
    }

    function test_setGroupLimitNode_revertsOnUnknownGroup() public {
        _registerTree();
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryUnknownGroup.selector, 99));
        vm.prank(registrar);
        assets.setGroupLimitNode(99, CABINET);
    }

    function test_setGroupLimitNode_revertsOnInactiveGroup() public {
        _registerTree();
        vm.startPrank(registrar);
        assets.deactivateGroup(GROUP);
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryInactiveGroup.selector, GROUP));
        assets.setGroupLimitNode(GROUP, CABINET);
        vm.stopPrank();
    }

    function test_setGroupLimitNode_revertsOnUnknownNode() public {
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryUnknownLimitNode.selector, CABINET));
        vm.prank(registrar);
        assets.setGroupLimitNode(GROUP, CABINET);
    }

    function test_setGroupLimitNode_revertsOnInactiveNode() public {
        _registerTree();
        vm.startPrank(registrar);
        assets.deactivateLimitNode(CABINET);
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryInactiveLimitNode.selector, CABINET));
        assets.setGroupLimitNode(GROUP, CABINET);
        vm.stopPrank();
    }

    function test_setGroupLimitNode_revertsWithoutRole() public {
        _registerTree();
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, operator, assets.REGISTRAR_ROLE()
            )
        );
        vm.prank(operator);
        assets.setGroupLimitNode(GROUP, CABINET);
    }

    function test_groupLimitNode_revertsOnUnknownGroup() public {
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryUnknownGroup.selector, 99));
        assets.groupLimitNode(99);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Phase wiring
    // ---------------------------------------------------------------------------------------------------------

    function test_setPhaseWiring_storesAndEmits() public {
        _registerTree();
        _registerCp(CP, GROUP);
        IAssetRegistry.PhaseWiring memory w = _wiring(CABINET, STRAIGHT);
        vm.expectEmit(address(assets));
        emit IAssetRegistry.PhaseWiringSet(CP, CABINET, w);
        vm.prank(registrar);
        assets.setPhaseWiring(CP, w);

        IAssetRegistry.PhaseWiring memory r = assets.phaseWiring(CP);
        assertEq(r.nodeId, CABINET);
        assertEq(r.phaseMap, STRAIGHT);
        assertFalse(r.lineToLine);
        assertEq(uint8(r.unit), uint8(IAssetRegistry.RateUnit.DECI_AMPERE));
        assertEq(r.minRate, 60);
        assertEq(r.maxRate, 320);
        assertEq(r.rateStep, 10);
        // The charge point record is untouched.
        assertEq(assets.chargePoint(CP).power.maxCurrentA, 32);
    }

    function test_setPhaseWiring_replacesPrevious() public {
        _registerTree();
        _registerCp(CP, GROUP);
        vm.startPrank(registrar);
        assets.setPhaseWiring(CP, _wiring(CABINET, STRAIGHT));
        IAssetRegistry.PhaseWiring memory w = _wiring(CABINET_2, 3);
        w.unit = IAssetRegistry.RateUnit.WATT;
        w.minRate = 1380;
        w.maxRate = 7360;
        w.rateStep = 23;
        assets.setPhaseWiring(CP, w);
        vm.stopPrank();
        IAssetRegistry.PhaseWiring memory r = assets.phaseWiring(CP);
        assertEq(r.nodeId, CABINET_2);
        assertEq(r.phaseMap, 3);
        assertEq(uint8(r.unit), uint8(IAssetRegistry.RateUnit.WATT));
        assertEq(r.maxRate, 7360);
        assertEq(r.rateStep, 23);
    }

    function test_setPhaseWiring_acceptsRotationsAndSinglePhase() public {
        _registerTree();
        _registerCp(CP, GROUP);
        uint8[6] memory good = [
            STRAIGHT,
            uint8(2 | (3 << 2) | (1 << 4)), // L2-L3-L1
            uint8(3 | (1 << 2) | (2 << 4)), // L3-L1-L2
            uint8(1 | (3 << 2) | (2 << 4)), // L1-L3-L2 (reversed rotation)
            uint8(2), // single-phase on L2
            uint8(3 | (1 << 2)) // two phases: L3, L1
        ];
        vm.startPrank(registrar);
        for (uint256 k = 0; k < good.length; ++k) {
            assets.setPhaseWiring(CP, _wiring(CABINET, good[k]));
            assertEq(assets.phaseWiring(CP).phaseMap, good[k]);
        }
        vm.stopPrank();
    }

    function test_setPhaseWiring_revertsOnBadPhaseMap() public {
        _registerTree();
        _registerCp(CP, GROUP);
        uint8[7] memory bad = [
            uint8(0), // nothing wired
            uint8(2 << 2), // L1 not wired
            uint8(1 | (2 << 4)), // gap: L2 not wired, L3 wired
            uint8(1 | (1 << 2)), // L1 and L2 on the same node phase
            uint8(1 | (2 << 2) | (1 << 4)), // L3 on L1's node phase
            uint8(1 | (2 << 2) | (2 << 4)), // L3 on L2's node phase
            uint8(STRAIGHT | 0x40) // bits 6-7 set
        ];
        vm.startPrank(registrar);
        for (uint256 k = 0; k < bad.length; ++k) {
            vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryBadPhaseMap.selector, CP, bad[k]));
            assets.setPhaseWiring(CP, _wiring(CABINET, bad[k]));
        }
        vm.stopPrank();
    }

    function test_setPhaseWiring_acceptsLineToLinePair() public {
        _registerTree();
        _registerCp(CP, GROUP);
        IAssetRegistry.PhaseWiring memory w = _wiring(CABINET, uint8(1 | (2 << 2)));
        w.lineToLine = true;
        vm.prank(registrar);
        assets.setPhaseWiring(CP, w);
        assertTrue(assets.phaseWiring(CP).lineToLine);
    }

    function test_setPhaseWiring_revertsOnLineToLineWithOnePhase() public {
        _registerTree();
        _registerCp(CP, GROUP);
        IAssetRegistry.PhaseWiring memory w = _wiring(CABINET, 1);
        w.lineToLine = true;
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryLineToLineNeedsTwoPhases.selector, CP, 1));
        vm.prank(registrar);
        assets.setPhaseWiring(CP, w);
    }

    function test_setPhaseWiring_revertsOnBadRateLimits() public {
        _registerTree();
        _registerCp(CP, GROUP);
        uint32[3][3] memory bad = [[uint32(60), 0, 10], [uint32(60), 320, 0], [uint32(321), 320, 10]];
        vm.startPrank(registrar);
        for (uint256 k = 0; k < bad.length; ++k) {
            IAssetRegistry.PhaseWiring memory w = _wiring(CABINET, STRAIGHT);
            (w.minRate, w.maxRate, w.rateStep) = (bad[k][0], bad[k][1], bad[k][2]);
            vm.expectRevert(
                abi.encodeWithSelector(
                    IAssetRegistry.AssetRegistryBadRateLimits.selector, CP, bad[k][0], bad[k][1], bad[k][2]
                )
            );
            assets.setPhaseWiring(CP, w);
        }
        vm.stopPrank();
    }

    function test_setPhaseWiring_revertsOnUnknownChargePoint() public {
        _registerTree();
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryUnknownChargePoint.selector, CP));
        vm.prank(registrar);
        assets.setPhaseWiring(CP, _wiring(CABINET, STRAIGHT));
    }

    function test_setPhaseWiring_revertsOnInactiveChargePoint() public {
        _registerTree();
        _registerCp(CP, GROUP);
        vm.startPrank(registrar);
        assets.deactivateChargePoint(CP);
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryInactiveChargePoint.selector, CP));
        assets.setPhaseWiring(CP, _wiring(CABINET, STRAIGHT));
        vm.stopPrank();
    }

    function test_setPhaseWiring_revertsOnUnknownNode() public {
        _registerCp(CP, GROUP);
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryUnknownLimitNode.selector, CABINET));
        vm.prank(registrar);
        assets.setPhaseWiring(CP, _wiring(CABINET, STRAIGHT));
    }

    function test_setPhaseWiring_revertsOnInactiveNode() public {
        _registerTree();
        _registerCp(CP, GROUP);
        vm.startPrank(registrar);
        assets.deactivateLimitNode(CABINET);
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryInactiveLimitNode.selector, CABINET));
        assets.setPhaseWiring(CP, _wiring(CABINET, STRAIGHT));
        vm.stopPrank();
    }

    function test_setPhaseWiring_revertsWithoutRole() public {
        _registerTree();
        _registerCp(CP, GROUP);
        IAssetRegistry.PhaseWiring memory w = _wiring(CABINET, STRAIGHT);
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, operator, assets.REGISTRAR_ROLE()
            )
        );
        vm.prank(operator);
        assets.setPhaseWiring(CP, w);
    }

    function test_phaseWiring_isZeroWhenUnset() public {
        _registerCp(CP, GROUP);
        IAssetRegistry.PhaseWiring memory r = assets.phaseWiring(CP);
        assertEq(r.nodeId, 0);
        assertEq(r.phaseMap, 0);
        assertEq(r.maxRate, 0);
    }

    function test_phaseWiring_revertsOnUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryUnknownChargePoint.selector, CP));
        assets.phaseWiring(CP);
    }

    /// @dev Reference model of a valid phase map: an injective map of the first n >= 1 charge point phases.
    function _validPhaseMap(uint8 phaseMap) internal pure returns (bool valid, uint256 wired) {
        if (phaseMap >> 6 != 0) return (false, 0);
        bool[4] memory used;
        bool gap;
        for (uint256 k = 0; k < 3; ++k) {
            uint8 p = (phaseMap >> (2 * k)) & 3;
            if (p == 0) {
                gap = true;
                continue;
            }
            if (gap || used[p]) return (false, 0);
            used[p] = true;
            ++wired;
        }
        valid = wired != 0;
    }

    function testFuzz_setPhaseWiring_acceptsExactlyValidMaps(uint8 phaseMap, bool lineToLine) public {
        _registerTree();
        _registerCp(CP, GROUP);
        IAssetRegistry.PhaseWiring memory w = _wiring(CABINET, phaseMap);
        w.lineToLine = lineToLine;
        (bool valid, uint256 wired) = _validPhaseMap(phaseMap);
        if (!valid) {
            vm.expectRevert(abi.encodeWithSelector(IAssetRegistry.AssetRegistryBadPhaseMap.selector, CP, phaseMap));
        } else if (lineToLine && wired < 2) {
            vm.expectRevert(
                abi.encodeWithSelector(IAssetRegistry.AssetRegistryLineToLineNeedsTwoPhases.selector, CP, phaseMap)
            );
        }
        vm.prank(registrar);
        assets.setPhaseWiring(CP, w);
        if (valid && !(lineToLine && wired < 2)) assertEq(assets.phaseWiring(CP).phaseMap, phaseMap);
    }

    function testFuzz_setPhaseWiring_rateLimits(uint32 minRate, uint32 maxRate, uint32 rateStep, bool watt) public {
        _registerTree();
        _registerCp(CP, GROUP);
        IAssetRegistry.PhaseWiring memory w = _wiring(CABINET, STRAIGHT);
        (w.minRate, w.maxRate, w.rateStep) = (minRate, maxRate, rateStep);
        w.unit = watt ? IAssetRegistry.RateUnit.WATT : IAssetRegistry.RateUnit.DECI_AMPERE;
        bool ok = maxRate != 0 && rateStep != 0 && minRate <= maxRate;
        if (!ok) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    IAssetRegistry.AssetRegistryBadRateLimits.selector, CP, minRate, maxRate, rateStep
                )
            );
        }
        vm.prank(registrar);
        assets.setPhaseWiring(CP, w);
        if (ok) {
            IAssetRegistry.PhaseWiring memory r = assets.phaseWiring(CP);
            assertEq(r.minRate, minRate);
            assertEq(r.maxRate, maxRate);
            assertEq(r.rateStep, rateStep);
            assertEq(uint8(r.unit), uint8(w.unit));
        }
    }

    function testFuzz_setPhaseWiring_validRateLimitsRoundTrip(uint32 minRate, uint32 maxRate, uint32 rateStep) public {
        maxRate = uint32(bound(maxRate, 1, type(uint32).max));
        minRate = uint32(bound(minRate, 0, maxRate));
        rateStep = uint32(bound(rateStep, 1, type(uint32).max));
        _registerTree();
        _registerCp(CP, GROUP);
        IAssetRegistry.PhaseWiring memory w = _wiring(CABINET, STRAIGHT);
        (w.minRate, w.maxRate, w.rateStep) = (minRate, maxRate, rateStep);
        vm.prank(registrar);
        assets.setPhaseWiring(CP, w);
        IAssetRegistry.PhaseWiring memory r = assets.phaseWiring(CP);
        assertEq(r.minRate, minRate);
        assertEq(r.maxRate, maxRate);
        assertEq(r.rateStep, rateStep);
    }
}
