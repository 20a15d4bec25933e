// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Deploy} from "../../script/Deploy.s.sol";
import {IEnergyBilling} from "../../src/interfaces/IEnergyBilling.sol";
import {Test} from "forge-std/Test.sol";

contract DeployTest is Test {
    string internal constant MNEMONIC = "test test test test test test test test test test test junk";

    Deploy internal script;
    Deploy.Accounts internal a;
    Deploy.Deployment internal d;

    function setUp() public {
        script = new Deploy();
        a = script.accounts(MNEMONIC);
        d = script.deploy(a);
    }

    function test_accounts_areAnvilDefaults() public view {
        assertEq(a.deployer, 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266);
        assertEq(a.operator, 0x70997970C51812dc3A010C7d01b50e0d17dc79C8);
        assertEq(a.cpoAdmin, 0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC);
        assertEq(a.meterSigner, 0x90F79bf6EB2c4f870365E785982E1f101E93b906);
        assertEq(a.treasury, 0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65);
        assertEq(a.users[0], 0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc);
    }

    function test_deploy_grantsRoles() public view {
        assertTrue(d.flexToken.hasRole(d.flexToken.MINTER_ROLE(), address(d.energyBilling)));
        assertFalse(d.flexToken.hasRole(d.flexToken.MINTER_ROLE(), a.deployer));
        assertTrue(d.assetRegistry.hasRole(d.assetRegistry.REGISTRAR_ROLE(), a.cpoAdmin));
        assertTrue(d.assetRegistry.hasRole(d.assetRegistry.REGISTRAR_ROLE(), a.operator));
        assertTrue(d.assetRegistry.hasRole(d.assetRegistry.OPERATOR_ROLE(), a.operator));
        assertTrue(d.algorithmRegistry.hasRole(d.algorithmRegistry.OPERATOR_ROLE(), a.operator));
        assertTrue(d.statusLedger.hasRole(d.statusLedger.OPERATOR_ROLE(), a.operator));
        assertTrue(d.energyBilling.hasRole(d.energyBilling.OPERATOR_ROLE(), a.operator));
        assertTrue(d.energyBilling.hasRole(d.energyBilling.DEFAULT_ADMIN_ROLE(), a.deployer));
        assertEq(address(d.statusLedger.algorithmRegistry()), address(d.algorithmRegistry));
        assertEq(d.energyBilling.paymentToken(), address(d.testEuro));
    }

    function test_deploy_registersDemoCpo() public view {
        IEnergyBilling.Cpo memory c = d.energyBilling.cpo(a.cpoAdmin);
        assertEq(c.meterSigner, a.meterSigner);
        assertEq(c.treasury, a.treasury);
        assertEq(c.rewardRate, script.DEMO_REWARD_RATE());
        assertEq(c.redemptionRate, script.DEMO_REDEMPTION_RATE());
        for (uint256 i = 0; i < a.users.length; ++i) {
            assertEq(d.testEuro.balanceOf(a.users[i]), script.DEMO_USER_FUNDS());
        }
    }
}
