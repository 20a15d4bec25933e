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
}
