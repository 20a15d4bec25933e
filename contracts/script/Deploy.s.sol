// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AlgorithmRegistry} from "../src/AlgorithmRegistry.sol";
import {AssetRegistry} from "../src/AssetRegistry.sol";
import {ConsentRegistry} from "../src/ConsentRegistry.sol";
import {EnergyBilling} from "../src/EnergyBilling.sol";
import {FlexToken} from "../src/FlexToken.sol";
import {StatusLedger} from "../src/StatusLedger.sol";
import {TestEuro} from "../src/TestEuro.sol";
import {Script} from "forge-std/Script.sol";
import {console} from "forge-std/console.sol";

/**
 * @title Deploy
 * @notice Deploys and wires every evflex contract, registers the demo CPO, funds the demo users with tEUR and
 * writes the addresses to `$DEPLOYMENT_OUT` (default `../anvil/deployment.json`).
 *
 * Accounts are derived from `$MNEMONIC` (default: anvil's public test mnemonic):
 *   0 deployer and admin (DEFAULT_ADMIN_ROLE everywhere, tEUR minter)
 *   1 operator, the evflex backend (OPERATOR_ROLE everywhere, REGISTRAR_ROLE on assets, tEUR minter)
 *   2 CPO admin: registrar of assets and the CPO's identity in EnergyBilling
 *   3 CPO meter signer (signs bills)
 *   4 CPO treasury (receives the CPO's withdrawals)
 *   5..9 demo EV users (1,000 tEUR each)
 *
 * Usage (from contracts/): `../node_modules/.bin/forge script script/Deploy.s.sol --rpc-url <url> --broadcast`.
 */
contract Deploy is Script {
    string internal constant DEFAULT_MNEMONIC = "test test test test test test test test test test test junk";
    string internal constant DEFAULT_OUT = "../anvil/deployment.json";

    /// @notice FLEX wei per Wh of flexibility for the demo CPO: 1 FLEX per kWh.
    uint256 public constant DEMO_REWARD_RATE = 1e15;
    /// @notice tEUR units per whole FLEX the demo CPO pays on redemption: 0.10 EUR.
    uint256 public constant DEMO_REDEMPTION_RATE = 100_000;
    /// @notice tEUR units minted to each demo user: 1,000 EUR.
    uint256 public constant DEMO_USER_FUNDS = 1_000_000_000;
    /// @notice Number of demo users (accounts 5..).
    uint32 public constant DEMO_USERS = 5;

    struct Accounts {
        uint256 deployerKey;
        uint256 cpoAdminKey;
        address deployer;
        address operator;
        address cpoAdmin;
        address meterSigner;
        address treasury;
        address[] users;
    }

    struct Deployment {
        uint256 startBlock;
        TestEuro testEuro;
        FlexToken flexToken;
        AssetRegistry assetRegistry;
        AlgorithmRegistry algorithmRegistry;
        StatusLedger statusLedger;
        EnergyBilling energyBilling;
        ConsentRegistry consentRegistry;
    }

    function run() external returns (Deployment memory d) {
        Accounts memory a = accounts(vm.envOr("MNEMONIC", DEFAULT_MNEMONIC));
        d = deploy(a);
        string memory out = vm.envOr("DEPLOYMENT_OUT", DEFAULT_OUT);
        vm.writeJson(_toJson(a, d), out);
        console.log("evflex deployment written to", out);
    }

    /// @notice The evflex accounts derived from `mnemonic`.
    function accounts(string memory mnemonic) public returns (Accounts memory a) {
        a.deployerKey = vm.deriveKey(mnemonic, 0);
        a.cpoAdminKey = vm.deriveKey(mnemonic, 2);
        a.deployer = vm.rememberKey(a.deployerKey);
        a.operator = vm.addr(vm.deriveKey(mnemonic, 1));
        a.cpoAdmin = vm.rememberKey(a.cpoAdminKey);
        a.meterSigner = vm.addr(vm.deriveKey(mnemonic, 3));
        a.treasury = vm.addr(vm.deriveKey(mnemonic, 4));
        a.users = new address[](DEMO_USERS);
        for (uint32 i = 0; i < DEMO_USERS; ++i) {
            a.users[i] = vm.addr(vm.deriveKey(mnemonic, 5 + i));
        }
    }

    /// @notice Deploys, wires and funds everything, broadcasting as the deployer and then the CPO admin.
    function deploy(Accounts memory a) public returns (Deployment memory d) {
        d.startBlock = block.number;

        vm.startBroadcast(a.deployerKey);
        d.testEuro = new TestEuro(a.deployer);
        d.flexToken = new FlexToken(a.deployer);
        d.assetRegistry = new AssetRegistry(a.deployer);
        d.algorithmRegistry = new AlgorithmRegistry(a.deployer);
        d.statusLedger = new StatusLedger(a.deployer, d.algorithmRegistry);
        d.energyBilling = new EnergyBilling(a.deployer, d.testEuro, d.flexToken);
        d.consentRegistry = new ConsentRegistry();

        // Only EnergyBilling mints FLEX.
        d.flexToken.grantRole(d.flexToken.MINTER_ROLE(), address(d.energyBilling));
        // The backend operates everything; it also writes asset records on the demo CPO's behalf.
        d.assetRegistry.grantRole(d.assetRegistry.OPERATOR_ROLE(), a.operator);
        d.assetRegistry.grantRole(d.assetRegistry.REGISTRAR_ROLE(), a.operator);
        d.assetRegistry.grantRole(d.assetRegistry.REGISTRAR_ROLE(), a.cpoAdmin);
        d.algorithmRegistry.grantRole(d.algorithmRegistry.OPERATOR_ROLE(), a.operator);
        d.statusLedger.grantRole(d.statusLedger.OPERATOR_ROLE(), a.operator);
        d.energyBilling.grantRole(d.energyBilling.OPERATOR_ROLE(), a.operator);
        // On anvil the backend tops up its custodial users with freshly minted tEUR.
        d.testEuro.grantRole(d.testEuro.MINTER_ROLE(), a.operator);

        d.energyBilling.registerCpo(a.cpoAdmin, a.meterSigner, a.treasury, DEMO_REWARD_RATE);
        for (uint256 i = 0; i < a.users.length; ++i) {
            d.testEuro.mint(a.users[i], DEMO_USER_FUNDS);
        }
        vm.stopBroadcast();

        vm.startBroadcast(a.cpoAdminKey);
        d.energyBilling.setRedemptionRate(DEMO_REDEMPTION_RATE);
        vm.stopBroadcast();
    }

    function _toJson(Accounts memory a, Deployment memory d) internal returns (string memory) {
        string memory c = "contracts";
        vm.serializeAddress(c, "TestEuro", address(d.testEuro));
        vm.serializeAddress(c, "FlexToken", address(d.flexToken));
        vm.serializeAddress(c, "AssetRegistry", address(d.assetRegistry));
        vm.serializeAddress(c, "AlgorithmRegistry", address(d.algorithmRegistry));
        vm.serializeAddress(c, "StatusLedger", address(d.statusLedger));
        vm.serializeAddress(c, "EnergyBilling", address(d.energyBilling));
        string memory contractsJson = vm.serializeAddress(c, "ConsentRegistry", address(d.consentRegistry));

        string memory r = "roles";
        vm.serializeAddress(r, "admin", a.deployer);
        vm.serializeAddress(r, "operator", a.operator);
        vm.serializeAddress(r, "registrar", a.cpoAdmin);
        vm.serializeAddress(r, "cpo", a.cpoAdmin);
        vm.serializeAddress(r, "meterSigner", a.meterSigner);
        vm.serializeAddress(r, "treasury", a.treasury);
        string memory rolesJson = vm.serializeAddress(r, "users", a.users);

        string memory p = "parameters";
        vm.serializeUint(p, "rewardRateFlexWeiPerWh", DEMO_REWARD_RATE);
        vm.serializeUint(p, "redemptionRateMicroEurPerFlex", DEMO_REDEMPTION_RATE);
        string memory paramsJson = vm.serializeUint(p, "demoUserFundsMicroEur", DEMO_USER_FUNDS);

        string memory root = "deployment";
        vm.serializeUint(root, "chainId", block.chainid);
        vm.serializeUint(root, "startBlock", d.startBlock);
        vm.serializeString(root, "contracts", contractsJson);
        vm.serializeString(root, "roles", rolesJson);
        return vm.serializeString(root, "parameters", paramsJson);
    }
}
