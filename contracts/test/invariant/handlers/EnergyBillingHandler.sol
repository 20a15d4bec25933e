// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {EnergyBilling} from "../../../src/EnergyBilling.sol";
import {FlexToken} from "../../../src/FlexToken.sol";
import {TestEuro} from "../../../src/TestEuro.sol";
import {IEnergyBilling} from "../../../src/interfaces/IEnergyBilling.sol";
import {Test} from "forge-std/Test.sol";

/**
 * @notice Drives EnergyBilling through the actions users, the operator and the CPO take, and keeps ghost
 * totals for the invariants. Session ids come from a small pool so replays are frequent. Bills vary in price
 * and users set, change and remove spending limits, so some bills break a limit.
 */
contract EnergyBillingHandler is Test {
    uint256 internal constant SESSION_POOL = 16;

    EnergyBilling internal immutable billing;
    FlexToken internal immutable flex;
    TestEuro internal immutable euro;
    address internal immutable tokenAdmin;
    address internal immutable operator;
    address internal immutable cpo;
    uint256 internal immutable meterKey;

    address[] internal _users;

    uint256 public ghostFlexMinted;
    uint256 public ghostFlexBurned;
    uint256 public ghostSettlements;
    mapping(bytes32 sessionId => uint256 count) public ghostSettleCount;
    /// @dev The allowance `user` last set, and what settlements debited from it since.
    mapping(address user => uint256) public ghostAllowanceSet;
    mapping(address user => uint256) public ghostDebitedSinceLimit;
    /// @dev Settlements of a bill priced above its user's price cap: must stay zero.
    uint256 public ghostPriceCapBreaches;

    constructor(
        EnergyBilling billing_,
        FlexToken flex_,
        TestEuro euro_,
        address tokenAdmin_,
        address operator_,
        address cpo_,
        uint256 meterKey_,
        address[] memory users_
    ) {
        billing = billing_;
        flex = flex_;
        euro = euro_;
        tokenAdmin = tokenAdmin_;
        operator = operator_;
        cpo = cpo_;
        meterKey = meterKey_;
        _users = users_;
    }

    function users() external view returns (address[] memory) {
        return _users;
    }

    function sessionId(uint256 i) public pure returns (bytes32) {
        return keccak256(abi.encode("session", i));
    }

    function sessionPoolSize() external pure returns (uint256) {
        return SESSION_POOL;
    }

    function deposit(uint256 userSeed, uint256 amount) external {
        address user = _user(userSeed);
        amount = bound(amount, 1, 1_000_000_000);
        vm.prank(tokenAdmin);
        euro.mint(user, amount);
        vm.startPrank(user);
        euro.approve(address(billing), amount);
        billing.deposit(amount);
        vm.stopPrank();
    }

    function withdraw(uint256 userSeed, uint256 amount) external {
        address user = _user(userSeed);
        uint256 balance = billing.balanceOf(user);
        if (balance == 0) return;
        amount = bound(amount, 1, balance);
        vm.prank(user);
        billing.withdraw(amount);
    }

    function settle(
        uint256 userSeed,
        uint256 sessionSeed,
        uint64 energyWh,
        uint64 flexibilityWh,
        uint64 creditWh,
        uint64 price
    ) external {
        IEnergyBilling.Bill memory bill = _bill(userSeed, sessionSeed, energyWh, flexibilityWh, creditWh, price);
        bytes memory sig = _signBill(bill);
        IEnergyBilling.SpendingLimit memory limit = billing.spendingLimitOf(bill.user);
        uint256 flexBefore = flex.totalSupply();
        vm.prank(operator);
        try billing.settle(bill, sig) {
            _recordSettlement(bill.sessionId, flex.totalSupply() - flexBefore);
            _recordDebit(bill, limit);
        } catch {}
    }

    function settleBatch(uint256 userSeed, uint256 sessionSeed, uint64 energyWh, uint64 flexibilityWh, uint64 price)
        external
    {
        IEnergyBilling.Bill[] memory bills = new IEnergyBilling.Bill[](2);
        bytes[] memory sigs = new bytes[](2);
        bool[] memory before = new bool[](2);
        IEnergyBilling.SpendingLimit[] memory limits = new IEnergyBilling.SpendingLimit[](2);
        for (uint256 i = 0; i < 2; ++i) {
            // Distinct sessions (the pool is larger than the batch) and distinct users (there are more than two).
            bills[i] =
                _bill(userSeed % _users.length + i, sessionSeed % SESSION_POOL + i, energyWh, flexibilityWh, 0, price);
            sigs[i] = _signBill(bills[i]);
            before[i] = billing.settled(bills[i].sessionId);
            limits[i] = billing.spendingLimitOf(bills[i].user);
        }
        uint256 flexBefore = flex.totalSupply();
        vm.prank(operator);
        billing.settleBatch(bills, sigs);
        ghostFlexMinted += flex.totalSupply() - flexBefore;
        for (uint256 i = 0; i < 2; ++i) {
            if (!before[i] && billing.settled(bills[i].sessionId)) {
                ++ghostSettleCount[bills[i].sessionId];
                ++ghostSettlements;
                _recordDebit(bills[i], limits[i]);
            }
        }
    }

    /// @dev Sets a random limit: none, a price cap only, or a price cap (or none) and a finite allowance.
    function setSpendingLimit(uint256 userSeed, uint256 mode, uint64 maxPrice, uint256 allowance) external {
        address user = _user(userSeed);
        mode %= 4;
        maxPrice = mode == 0 ? 0 : uint64(bound(maxPrice, 0, 500_000));
        allowance = mode < 2 ? type(uint256).max : bound(allowance, 0, 100_000_000);
        vm.prank(user);
        billing.setSpendingLimit(maxPrice, allowance);
        ghostAllowanceSet[user] = allowance;
        ghostDebitedSinceLimit[user] = 0;
    }

    function redeem(uint256 userSeed, uint256 amount) external {
        address user = _user(userSeed);
        uint256 held = flex.balanceOf(user);
        if (held == 0) return;
        amount = bound(amount, 1, held);
        vm.startPrank(user);
        flex.approve(address(billing), amount);
        try billing.redeemFlex(cpo, amount) {
            ghostFlexBurned += amount;
        } catch {}
        vm.stopPrank();
    }

    function burnFlex(uint256 userSeed, uint256 amount) external {
        address user = _user(userSeed);
        uint256 held = flex.balanceOf(user);
        if (held == 0) return;
        amount = bound(amount, 1, held);
        vm.prank(user);
        flex.burn(amount);
        ghostFlexBurned += amount;
    }

    function withdrawCpo(uint256 amount) external {
        uint256 balance = billing.cpoBalanceOf(cpo);
        if (balance == 0) return;
        amount = bound(amount, 1, balance);
        vm.prank(cpo);
        billing.withdrawCpoBalance(amount);
    }

    function _recordSettlement(bytes32 id, uint256 minted) private {
        ghostFlexMinted += minted;
        ++ghostSettleCount[id];
        ++ghostSettlements;
    }

    /// @dev Records that `bill` settled while its user's limit was `limit`.
    function _recordDebit(IEnergyBilling.Bill memory bill, IEnergyBilling.SpendingLimit memory limit) private {
        ghostDebitedSinceLimit[bill.user] += billing.costOf(bill);
        if (
            limit.enabled && limit.maxPriceMicroEurPerKwh != 0
                && bill.priceMicroEurPerKwh > limit.maxPriceMicroEurPerKwh
        ) {
            ++ghostPriceCapBreaches;
        }
    }

    function _bill(
        uint256 userSeed,
        uint256 sessionSeed,
        uint64 energyWh,
        uint64 flexibilityWh,
        uint64 creditWh,
        uint64 price
    ) private view returns (IEnergyBilling.Bill memory bill) {
        energyWh = uint64(bound(energyWh, 0, 100_000));
        bill = IEnergyBilling.Bill({
            sessionId: sessionId(sessionSeed % SESSION_POOL),
            user: _user(userSeed),
            cpo: cpo,
            energyWh: energyWh,
            priceMicroEurPerKwh: uint64(bound(price, 100_000, 500_000)),
            creditWh: uint64(bound(creditWh, 0, energyWh)),
            flexibilityWh: uint64(bound(flexibilityWh, 0, energyWh)),
            start: 1_700_000_000,
            end: 1_700_003_600
        });
    }

    function _signBill(IEnergyBilling.Bill memory bill) private view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(meterKey, billing.hashBill(bill));
        return abi.encodePacked(r, s, v);
    }

    function _user(uint256 seed) private view returns (address) {
        return _users[seed % _users.length];
    }
}
