// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AlgorithmRegistry} from "../../src/AlgorithmRegistry.sol";
import {AssetRegistry} from "../../src/AssetRegistry.sol";
import {ConsentRegistry} from "../../src/ConsentRegistry.sol";
import {EnergyBilling} from "../../src/EnergyBilling.sol";
import {FlexToken} from "../../src/FlexToken.sol";
import {StatusLedger} from "../../src/StatusLedger.sol";
import {TestEuro} from "../../src/TestEuro.sol";
import {IAssetRegistry} from "../../src/interfaces/IAssetRegistry.sol";
import {IEnergyBilling} from "../../src/interfaces/IEnergyBilling.sol";
import {Test} from "forge-std/Test.sol";

/// @notice Shared fixtures: every evflex contract deployed and wired as the deploy script does, plus helpers.
abstract contract Fixtures is Test {
    /// @dev FLEX wei per Wh of flexibility: 1 FLEX per kWh.
    uint256 internal constant REWARD_RATE = 1e15;
    /// @dev tEUR units (micro-EUR) per whole FLEX: 0.10 EUR.
    uint256 internal constant REDEMPTION_RATE = 100_000;
    /// @dev 0.30 EUR per kWh.
    uint64 internal constant PRICE = 300_000;

    address internal admin = makeAddr("admin");
    address internal operator = makeAddr("operator");
    address internal registrar = makeAddr("registrar");
    address internal cpoAdmin = makeAddr("cpoAdmin");
    address internal treasury = makeAddr("treasury");
    address internal stranger = makeAddr("stranger");
    address internal meter;
    uint256 internal meterKey;
    address internal alice;
    uint256 internal aliceKey;
    address internal bob;
    uint256 internal bobKey;

    TestEuro internal euro;
    FlexToken internal flex;
    AssetRegistry internal assets;
    AlgorithmRegistry internal algorithms;
    StatusLedger internal ledger;
    EnergyBilling internal billing;
    ConsentRegistry internal consents;

    bytes32 internal algorithmVersion;

    function setUp() public virtual {
        (meter, meterKey) = makeAddrAndKey("meter");
        (alice, aliceKey) = makeAddrAndKey("alice");
        (bob, bobKey) = makeAddrAndKey("bob");

        vm.startPrank(admin);
        euro = new TestEuro(admin);
        flex = new FlexToken(admin);
        assets = new AssetRegistry(admin);
        algorithms = new AlgorithmRegistry(admin);
        ledger = new StatusLedger(admin, algorithms);
        billing = new EnergyBilling(admin, euro, flex);
        consents = new ConsentRegistry();

        flex.grantRole(flex.MINTER_ROLE(), address(billing));
        assets.grantRole(assets.REGISTRAR_ROLE(), registrar);
        assets.grantRole(assets.OPERATOR_ROLE(), operator);
        algorithms.grantRole(algorithms.OPERATOR_ROLE(), operator);
        ledger.grantRole(ledger.OPERATOR_ROLE(), operator);
        billing.grantRole(billing.OPERATOR_ROLE(), operator);
        billing.registerCpo(cpoAdmin, meter, treasury, REWARD_RATE);
        vm.stopPrank();

        vm.prank(cpoAdmin);
        billing.setRedemptionRate(REDEMPTION_RATE);

        vm.prank(operator);
        algorithmVersion = algorithms.register(
            keccak256("evflex-milp-v1"), "highs-1.11.0", keccak256("params-v1"), "https://evflex.example/algo/v1"
        );
    }

    // ---------------------------------------------------------------------------------------------------------
    // Asset helpers
    // ---------------------------------------------------------------------------------------------------------

    function _chargePointParams(uint64 cpId, uint64 groupId)
        internal
        pure
        returns (IAssetRegistry.ChargePointParams memory)
    {
        return IAssetRegistry.ChargePointParams({
            id: cpId,
            groupId: groupId,
            ratedPowerW: 22_000,
            status: IAssetRegistry.EvseStatus.AVAILABLE,
            power: IAssetRegistry.PowerInfo({
                powerType: IAssetRegistry.PowerType.AC_3_PHASE, phases: 3, voltageV: 230, maxCurrentA: 32
            }),
            connectorStandard: bytes32("IEC_62196_T2"),
            evseUid: string.concat("DE*EVF*E", vm.toString(cpId))
        });
    }

    // ---------------------------------------------------------------------------------------------------------
    // Status ledger helpers
    // ---------------------------------------------------------------------------------------------------------

    /// @dev One packed 21-byte member record.
    function _member(
        uint32 cpId,
        uint8 status,
        uint32 setpointW,
        uint32 measuredW,
        uint32 energyLeftWh,
        uint32 timeLeftS
    ) internal pure returns (bytes memory) {
        return abi.encodePacked(cpId, status, setpointW, measuredW, energyLeftWh, timeLeftS);
    }

    /// @dev `n` realistic member records (charge point ids 101.., set-points up to 22 kW, a day ahead at most).
    function _members(uint256 n, uint256 seed) internal pure returns (bytes memory members) {
        for (uint256 i = 0; i < n; ++i) {
            uint256 r = uint256(keccak256(abi.encode(seed, i)));
            bool charging = r % 4 != 0;
            uint32 setpointW = charging ? uint32(4140 + (r >> 8) % 17_861) : 0;
            members = bytes.concat(
                members,
                _member(
                    uint32(101 + i),
                    charging ? uint8(IAssetRegistry.EvseStatus.CHARGING) : uint8(IAssetRegistry.EvseStatus.AVAILABLE),
                    setpointW,
                    charging ? setpointW - uint32((r >> 40) % 300) : 0,
                    charging ? uint32(1000 + (r >> 64) % 59_000) : 0,
                    charging ? uint32(900 + (r >> 96) % 35_100) : 0
                )
            );
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // Billing helpers
    // ---------------------------------------------------------------------------------------------------------

    function _bill(bytes32 sessionId, address user, uint64 energyWh, uint64 flexibilityWh)
        internal
        view
        returns (IEnergyBilling.Bill memory)
    {
        return IEnergyBilling.Bill({
            sessionId: sessionId,
            user: user,
            cpo: cpoAdmin,
            energyWh: energyWh,
            priceMicroEurPerKwh: PRICE,
            creditWh: 0,
            flexibilityWh: flexibilityWh,
            start: uint64(block.timestamp),
            end: uint64(block.timestamp + 3600)
        });
    }

    function _sign(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    function _signBill(IEnergyBilling.Bill memory bill) internal view returns (bytes memory) {
        return _sign(meterKey, billing.hashBill(bill));
    }

    /// @dev Mints `amount` tEUR to `user` and deposits it into the user's billing balance.
    function _fund(address user, uint256 amount) internal {
        vm.prank(admin);
        euro.mint(user, amount);
        vm.startPrank(user);
        euro.approve(address(billing), amount);
        billing.deposit(amount);
        vm.stopPrank();
    }
}
