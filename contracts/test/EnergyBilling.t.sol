// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {EnergyBilling} from "../src/EnergyBilling.sol";
import {IEnergyBilling} from "../src/interfaces/IEnergyBilling.sol";
import {ERC1271Wallet} from "./utils/ERC1271Wallet.sol";
import {FeeOnTransferToken} from "./utils/FeeOnTransferToken.sol";
import {Fixtures} from "./utils/Fixtures.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";

contract EnergyBillingTest is Fixtures {
    bytes32 internal constant SESSION = keccak256("session-1");

    function _settle(IEnergyBilling.Bill memory bill) internal {
        bytes memory sig = _signBill(bill);
        vm.prank(operator);
        billing.settle(bill, sig);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Deposits and withdrawals
    // ---------------------------------------------------------------------------------------------------------

    function test_deposit_creditsCaller() public {
        vm.prank(admin);
        euro.mint(alice, 10_000_000);
        vm.startPrank(alice);
        euro.approve(address(billing), 10_000_000);
        vm.expectEmit(address(billing));
        emit IEnergyBilling.Deposited(alice, alice, 10_000_000);
        billing.deposit(10_000_000);
        vm.stopPrank();
        assertEq(billing.balanceOf(alice), 10_000_000);
        assertEq(euro.balanceOf(address(billing)), 10_000_000);
    }

    function test_deposit_revertsOnZero() public {
        vm.expectRevert(IEnergyBilling.EnergyBillingZeroAmount.selector);
        vm.prank(alice);
        billing.deposit(0);
    }

    function test_deposit_revertsWithoutAllowance() public {
        vm.prank(admin);
        euro.mint(alice, 1);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(billing), 0, 1)
        );
        vm.prank(alice);
        billing.deposit(1);
    }

    function test_deposit_creditsWhatArrivesOfAFeeOnTransferToken() public {
        FeeOnTransferToken fee = new FeeOnTransferToken();
        EnergyBilling feeBilling = new EnergyBilling(admin, fee, flex);
        fee.mint(alice, 1000);
        vm.startPrank(alice);
        fee.approve(address(feeBilling), 1000);
        feeBilling.deposit(1000);
        vm.stopPrank();
        assertEq(feeBilling.balanceOf(alice), 990);
        assertEq(fee.balanceOf(address(feeBilling)), 990);
    }

    function test_depositFor_creditsUser() public {
        vm.prank(admin);
        euro.mint(operator, 5_000_000);
        vm.startPrank(operator);
        euro.approve(address(billing), 5_000_000);
        vm.expectEmit(address(billing));
        emit IEnergyBilling.Deposited(operator, alice, 5_000_000);
        billing.depositFor(alice, 5_000_000);
        vm.stopPrank();
        assertEq(billing.balanceOf(alice), 5_000_000);
        assertEq(billing.balanceOf(operator), 0);
    }

    function test_depositFor_revertsOnZeroAddress() public {
        vm.expectRevert(IEnergyBilling.EnergyBillingZeroAddress.selector);
        billing.depositFor(address(0), 1);
    }

    function test_withdraw_returnsTokens() public {
        _fund(alice, 10_000_000);
        vm.expectEmit(address(billing));
        emit IEnergyBilling.Withdrawn(alice, 4_000_000);
        vm.prank(alice);
        billing.withdraw(4_000_000);
        assertEq(billing.balanceOf(alice), 6_000_000);
        assertEq(euro.balanceOf(alice), 4_000_000);
    }

    function test_withdraw_revertsWhenInsufficient() public {
        _fund(alice, 10);
        vm.expectRevert(abi.encodeWithSelector(IEnergyBilling.EnergyBillingInsufficientBalance.selector, alice, 10, 11));
        vm.prank(alice);
        billing.withdraw(11);
    }

    function test_withdraw_revertsOnZero() public {
        vm.expectRevert(IEnergyBilling.EnergyBillingZeroAmount.selector);
        vm.prank(alice);
        billing.withdraw(0);
    }

    // ---------------------------------------------------------------------------------------------------------
    // CPO administration
    // ---------------------------------------------------------------------------------------------------------

    function test_registerCpo_storesAndEmits() public {
        address cpo2 = makeAddr("cpo2");
        vm.expectEmit(address(billing));
        emit IEnergyBilling.CpoRegistered(cpo2, meter, treasury, 7);
        vm.prank(admin);
        billing.registerCpo(cpo2, meter, treasury, 7);
        IEnergyBilling.Cpo memory c = billing.cpo(cpo2);
        assertEq(c.meterSigner, meter);
        assertEq(c.treasury, treasury);
        assertEq(c.rewardRate, 7);
        assertEq(c.redemptionRate, 0);
        assertTrue(billing.isCpo(cpo2));
        assertFalse(billing.isCpo(stranger));
    }

    function test_registerCpo_revertsOnDuplicate() public {
        vm.expectRevert(abi.encodeWithSelector(IEnergyBilling.EnergyBillingDuplicateCpo.selector, cpoAdmin));
        vm.prank(admin);
        billing.registerCpo(cpoAdmin, meter, treasury, 1);
    }

    function test_registerCpo_revertsOnZeroAddress() public {
        vm.startPrank(admin);
        vm.expectRevert(IEnergyBilling.EnergyBillingZeroAddress.selector);
        billing.registerCpo(stranger, address(0), treasury, 1);
        vm.expectRevert(IEnergyBilling.EnergyBillingZeroAddress.selector);
        billing.registerCpo(stranger, meter, address(0), 1);
        vm.expectRevert(IEnergyBilling.EnergyBillingZeroAddress.selector);
        billing.registerCpo(address(0), meter, treasury, 1);
        vm.stopPrank();
    }

    function test_registerCpo_revertsOnRewardRateTooHigh() public {
        uint256 max = billing.MAX_REWARD_RATE();
        vm.expectRevert(abi.encodeWithSelector(IEnergyBilling.EnergyBillingRewardRateTooHigh.selector, max + 1, max));
        vm.prank(admin);
        billing.registerCpo(stranger, meter, treasury, max + 1);
    }

    function test_registerCpo_revertsWithoutRole() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, operator, billing.DEFAULT_ADMIN_ROLE()
            )
        );
        vm.prank(operator);
        billing.registerCpo(stranger, meter, treasury, 1);
    }

    function test_cpo_revertsOnUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IEnergyBilling.EnergyBillingUnknownCpo.selector, stranger));
        billing.cpo(stranger);
    }

    function test_setMeterSigner_rotatesKey() public {
        (address newMeter, uint256 newKey) = makeAddrAndKey("meter2");
        vm.expectEmit(address(billing));
        emit IEnergyBilling.MeterSignerChanged(cpoAdmin, meter, newMeter);
        vm.prank(admin);
        billing.setMeterSigner(cpoAdmin, newMeter);

        _fund(alice, 10_000_000);
        IEnergyBilling.Bill memory bill = _bill(SESSION, alice, 1000, 0);
        bytes memory oldSig = _signBill(bill);
        vm.expectRevert(
            abi.encodeWithSelector(IEnergyBilling.EnergyBillingInvalidMeterSignature.selector, meter, newMeter)
        );
        vm.prank(operator);
        billing.settle(bill, oldSig);

        bytes memory newSig = _sign(newKey, billing.hashBill(bill));
        vm.prank(operator);
        billing.settle(bill, newSig);
        assertTrue(billing.settled(SESSION));
    }

    function test_setMeterSigner_revertsOnUnknownCpo() public {
        vm.expectRevert(abi.encodeWithSelector(IEnergyBilling.EnergyBillingUnknownCpo.selector, stranger));
        vm.prank(admin);
        billing.setMeterSigner(stranger, meter);
    }

    function test_setMeterSigner_revertsOnZeroAddress() public {
        vm.expectRevert(IEnergyBilling.EnergyBillingZeroAddress.selector);
        vm.prank(admin);
        billing.setMeterSigner(cpoAdmin, address(0));
    }

    function test_setRewardRate_changesRate() public {
        vm.expectEmit(address(billing));
        emit IEnergyBilling.RewardRateChanged(cpoAdmin, REWARD_RATE, 2e15);
        vm.prank(admin);
        billing.setRewardRate(cpoAdmin, 2e15);
        assertEq(billing.cpo(cpoAdmin).rewardRate, 2e15);
    }

    function test_setRewardRate_revertsWithoutRole() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, cpoAdmin, billing.DEFAULT_ADMIN_ROLE()
            )
        );
        vm.prank(cpoAdmin);
        billing.setRewardRate(cpoAdmin, 2e15);
    }

    function test_setRedemptionRate_byCpo() public {
        vm.expectEmit(address(billing));
        emit IEnergyBilling.RedemptionRateChanged(cpoAdmin, REDEMPTION_RATE, 50_000);
        vm.prank(cpoAdmin);
        billing.setRedemptionRate(50_000);
        assertEq(billing.cpo(cpoAdmin).redemptionRate, 50_000);
    }

    function test_setRedemptionRate_revertsForNonCpo() public {
        vm.expectRevert(abi.encodeWithSelector(IEnergyBilling.EnergyBillingUnknownCpo.selector, stranger));
        vm.prank(stranger);
        billing.setRedemptionRate(1);
    }

    function test_setTreasury_byCpo() public {
        vm.expectEmit(address(billing));
        emit IEnergyBilling.TreasuryChanged(cpoAdmin, treasury, stranger);
        vm.prank(cpoAdmin);
        billing.setTreasury(stranger);
        assertEq(billing.cpo(cpoAdmin).treasury, stranger);
    }

    function test_setTreasury_revertsOnZeroAddress() public {
        vm.expectRevert(IEnergyBilling.EnergyBillingZeroAddress.selector);
        vm.prank(cpoAdmin);
        billing.setTreasury(address(0));
    }

    function test_withdrawCpoBalance_paysTreasury() public {
        _fund(alice, 10_000_000);
        _settle(_bill(SESSION, alice, 10_000, 0)); // 10 kWh at 0.30 EUR = 3,000,000 units
        vm.expectEmit(address(billing));
        emit IEnergyBilling.CpoWithdrawn(cpoAdmin, treasury, 2_000_000);
        vm.prank(cpoAdmin);
        billing.withdrawCpoBalance(2_000_000);
        assertEq(euro.balanceOf(treasury), 2_000_000);
        assertEq(billing.cpoBalanceOf(cpoAdmin), 1_000_000);
    }

    function test_withdrawCpoBalance_revertsWhenInsufficient() public {
        vm.expectRevert(
            abi.encodeWithSelector(IEnergyBilling.EnergyBillingInsufficientCpoBalance.selector, cpoAdmin, 0, 1)
        );
        vm.prank(cpoAdmin);
        billing.withdrawCpoBalance(1);
    }

    function test_withdrawCpoBalance_revertsForNonCpo() public {
        vm.expectRevert(abi.encodeWithSelector(IEnergyBilling.EnergyBillingUnknownCpo.selector, stranger));
        vm.prank(stranger);
        billing.withdrawCpoBalance(1);
    }

    function test_withdrawCpoBalance_revertsOnZero() public {
        vm.expectRevert(IEnergyBilling.EnergyBillingZeroAmount.selector);
        vm.prank(cpoAdmin);
        billing.withdrawCpoBalance(0);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Settlement
    // ---------------------------------------------------------------------------------------------------------

    function test_settle_movesCostAndMintsFlex() public {
        _fund(alice, 10_000_000);
        IEnergyBilling.Bill memory bill = _bill(SESSION, alice, 20_000, 8000);
        bytes memory sig = _signBill(bill);

        vm.expectEmit(address(billing));
        emit IEnergyBilling.SessionSettled(SESSION, alice, cpoAdmin, 20_000, 0, 8000, PRICE, 6_000_000, 8e18);
        vm.prank(operator);
        billing.settle(bill, sig);

        assertEq(billing.balanceOf(alice), 4_000_000);
        assertEq(billing.cpoBalanceOf(cpoAdmin), 6_000_000);
        assertEq(flex.balanceOf(alice), 8e18);
        assertEq(billing.totalFlexMinted(), 8e18);
        assertTrue(billing.settled(SESSION));
    }

    function test_settle_appliesCredit() public {
        _fund(alice, 10_000_000);
        IEnergyBilling.Bill memory bill = _bill(SESSION, alice, 20_000, 0);
        bill.creditWh = 5000;
        _settle(bill);
        assertEq(billing.cpoBalanceOf(cpoAdmin), 4_500_000);
        assertEq(billing.balanceOf(alice), 5_500_000);
    }

    function test_settle_fullCreditCostsNothing() public {
        IEnergyBilling.Bill memory bill = _bill(SESSION, alice, 20_000, 0);
        bill.creditWh = 20_000;
        _settle(bill);
        assertTrue(billing.settled(SESSION));
        assertEq(billing.cpoBalanceOf(cpoAdmin), 0);
    }

    function test_settle_roundsCostDown() public {
        _fund(alice, 1);
        IEnergyBilling.Bill memory bill = _bill(SESSION, alice, 1, 0);
        bill.priceMicroEurPerKwh = 1999; // 1 Wh at 1999 units/kWh = 1.999 units
        assertEq(billing.costOf(bill), 1);
        _settle(bill);
        assertEq(billing.balanceOf(alice), 0);
    }

    function test_settle_revertsOnReplay() public {
        _fund(alice, 10_000_000);
        IEnergyBilling.Bill memory bill = _bill(SESSION, alice, 1000, 0);
        bytes memory sig = _signBill(bill);
        vm.startPrank(operator);
        billing.settle(bill, sig);
        vm.expectRevert(abi.encodeWithSelector(IEnergyBilling.EnergyBillingAlreadySettled.selector, SESSION));
        billing.settle(bill, sig);
        vm.stopPrank();
    }

    function test_settle_revertsOnUnknownCpo() public {
        IEnergyBilling.Bill memory bill = _bill(SESSION, alice, 1000, 0);
        bill.cpo = stranger;
        bytes memory sig = _signBill(bill);
        vm.expectRevert(abi.encodeWithSelector(IEnergyBilling.EnergyBillingUnknownCpo.selector, stranger));
        vm.prank(operator);
        billing.settle(bill, sig);
    }

    function test_settle_revertsOnWrongSigner() public {
        _fund(alice, 10_000_000);
        IEnergyBilling.Bill memory bill = _bill(SESSION, alice, 1000, 0);
        bytes memory sig = _sign(aliceKey, billing.hashBill(bill));
        vm.expectRevert(
            abi.encodeWithSelector(IEnergyBilling.EnergyBillingInvalidMeterSignature.selector, alice, meter)
        );
        vm.prank(operator);
        billing.settle(bill, sig);
    }

    function test_settle_revertsOnTamperedBill() public {
        _fund(alice, 10_000_000);
        IEnergyBilling.Bill memory bill = _bill(SESSION, alice, 10_000, 0);
        bytes memory sig = _signBill(bill);
        bill.energyWh = 1000;
        (bool ok, bytes memory err) = address(billing).call(abi.encodeCall(billing.settle, (bill, sig))); // not as operator: role first
        assertFalse(ok);
        vm.prank(operator);
        (ok, err) = address(billing).call(abi.encodeCall(billing.settle, (bill, sig)));
        assertFalse(ok);
        assertEq(bytes4(err), IEnergyBilling.EnergyBillingInvalidMeterSignature.selector);
        assertFalse(billing.settled(SESSION));
    }

    function test_settle_revertsOnMalformedSignature() public {
        IEnergyBilling.Bill memory bill = _bill(SESSION, alice, 1000, 0);
        vm.expectRevert(
            abi.encodeWithSelector(IEnergyBilling.EnergyBillingInvalidMeterSignature.selector, address(0), meter)
        );
        vm.prank(operator);
        billing.settle(bill, hex"deadbeef");
    }

    function test_settle_revertsOnInsufficientBalance() public {
        _fund(alice, 100);
        IEnergyBilling.Bill memory bill = _bill(SESSION, alice, 1000, 0);
        bytes memory sig = _signBill(bill);
        vm.expectRevert(
            abi.encodeWithSelector(IEnergyBilling.EnergyBillingInsufficientBalance.selector, alice, 100, 300_000)
        );
        vm.prank(operator);
        billing.settle(bill, sig);
    }

    function test_settle_revertsOnCreditAboveEnergy() public {
        IEnergyBilling.Bill memory bill = _bill(SESSION, alice, 1000, 0);
        bill.creditWh = 1001;
        bytes memory sig = _signBill(bill);
        vm.expectRevert(abi.encodeWithSelector(IEnergyBilling.EnergyBillingInvalidCredit.selector, SESSION, 1001, 1000));
        vm.prank(operator);
        billing.settle(bill, sig);
    }

    function test_settle_revertsOnFlexibilityAboveEnergy() public {
        IEnergyBilling.Bill memory bill = _bill(SESSION, alice, 1000, 1001);
        bytes memory sig = _signBill(bill);
        vm.expectRevert(
            abi.encodeWithSelector(IEnergyBilling.EnergyBillingInvalidFlexibility.selector, SESSION, 1001, 1000)
        );
        vm.prank(operator);
        billing.settle(bill, sig);
    }

    function test_settle_revertsOnEndBeforeStart() public {
        IEnergyBilling.Bill memory bill = _bill(SESSION, alice, 1000, 0);
        bill.start = 2000;
        bill.end = 1000;
        bytes memory sig = _signBill(bill);
        vm.expectRevert(abi.encodeWithSelector(IEnergyBilling.EnergyBillingInvalidPeriod.selector, SESSION, 2000, 1000));
        vm.prank(operator);
        billing.settle(bill, sig);
    }

    function test_settle_revertsOnZeroUser() public {
        IEnergyBilling.Bill memory bill = _bill(SESSION, address(0), 1000, 0);
        bytes memory sig = _signBill(bill);
        vm.expectRevert(abi.encodeWithSelector(IEnergyBilling.EnergyBillingInvalidUser.selector, SESSION));
        vm.prank(operator);
        billing.settle(bill, sig);
    }

    function test_settle_revertsWithoutRole() public {
        IEnergyBilling.Bill memory bill = _bill(SESSION, alice, 1000, 0);
        bytes memory sig = _signBill(bill);
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, cpoAdmin, billing.OPERATOR_ROLE()
            )
        );
        vm.prank(cpoAdmin);
        billing.settle(bill, sig);
    }

    function test_hashBill_isEip712Digest() public view {
        IEnergyBilling.Bill memory bill = _bill(SESSION, alice, 1000, 10);
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(
                    "Bill(bytes32 sessionId,address user,address cpo,uint64 energyWh,uint64 priceMicroEurPerKwh,uint64 creditWh,uint64 flexibilityWh,uint64 start,uint64 end)"
                ),
                bill.sessionId,
                bill.user,
                bill.cpo,
                bill.energyWh,
                bill.priceMicroEurPerKwh,
                bill.creditWh,
                bill.flexibilityWh,
                bill.start,
                bill.end
            )
        );
        bytes32 domain = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("evflex EnergyBilling"),
                keccak256("1"),
                block.chainid,
                address(billing)
            )
        );
        assertEq(billing.domainSeparator(), domain);
        assertEq(billing.hashBill(bill), keccak256(abi.encodePacked("\x19\x01", domain, structHash)));
    }

    function testFuzz_settle_costAndReward(uint64 energyWh, uint64 creditWh, uint64 flexibilityWh, uint64 price)
        public
    {
        energyWh = uint64(bound(energyWh, 0, 1_000_000)); // up to 1 MWh
        creditWh = uint64(bound(creditWh, 0, energyWh));
        flexibilityWh = uint64(bound(flexibilityWh, 0, energyWh));
        price = uint64(bound(price, 0, 2_000_000)); // up to 2 EUR per kWh
        uint256 cost = uint256(energyWh - creditWh) * price / 1000;
        _fund(alice, cost + 1);

        IEnergyBilling.Bill memory bill = _bill(SESSION, alice, energyWh, flexibilityWh);
        bill.creditWh = creditWh;
        bill.priceMicroEurPerKwh = price;
        _settle(bill);

        assertEq(billing.balanceOf(alice), 1);
        assertEq(billing.cpoBalanceOf(cpoAdmin), cost);
        assertEq(flex.balanceOf(alice), uint256(flexibilityWh) * REWARD_RATE);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Batch settlement
    // ---------------------------------------------------------------------------------------------------------

    function test_settleBatch_skipsFailingBills() public {
        _fund(alice, 10_000_000);
        IEnergyBilling.Bill[] memory bills = new IEnergyBilling.Bill[](3);
        bytes[] memory sigs = new bytes[](3);
        bills[0] = _bill(keccak256("s0"), alice, 1000, 100);
        bills[1] = _bill(keccak256("s1"), bob, 1000, 100); // bob has no balance
        bills[2] = _bill(keccak256("s2"), alice, 2000, 0);
        for (uint256 i = 0; i < 3; ++i) {
            sigs[i] = _signBill(bills[i]);
        }

        vm.expectEmit(address(billing));
        emit IEnergyBilling.SettlementSkipped(keccak256("s1"), IEnergyBilling.EnergyBillingInsufficientBalance.selector);
        vm.prank(operator);
        billing.settleBatch(bills, sigs);

        assertTrue(billing.settled(keccak256("s0")));
        assertFalse(billing.settled(keccak256("s1")));
        assertTrue(billing.settled(keccak256("s2")));
        assertEq(billing.cpoBalanceOf(cpoAdmin), 900_000);
        assertEq(flex.balanceOf(bob), 0);
    }

    function test_settleBatch_replaySkipsEverySession() public {
        _fund(alice, 10_000_000);
        IEnergyBilling.Bill[] memory bills = new IEnergyBilling.Bill[](2);
        bytes[] memory sigs = new bytes[](2);
        bills[0] = _bill(keccak256("s0"), alice, 1000, 0);
        bills[1] = _bill(keccak256("s1"), alice, 1000, 0);
        sigs[0] = _signBill(bills[0]);
        sigs[1] = _signBill(bills[1]);
        vm.startPrank(operator);
        billing.settleBatch(bills, sigs);
        uint256 balance = billing.balanceOf(alice);

        vm.expectEmit(address(billing));
        emit IEnergyBilling.SettlementSkipped(keccak256("s0"), IEnergyBilling.EnergyBillingAlreadySettled.selector);
        vm.expectEmit(address(billing));
        emit IEnergyBilling.SettlementSkipped(keccak256("s1"), IEnergyBilling.EnergyBillingAlreadySettled.selector);
        billing.settleBatch(bills, sigs);
        vm.stopPrank();
        assertEq(billing.balanceOf(alice), balance);
    }

    function test_settleBatch_skipsBadSignature() public {
        IEnergyBilling.Bill[] memory bills = new IEnergyBilling.Bill[](1);
        bytes[] memory sigs = new bytes[](1);
        bills[0] = _bill(SESSION, alice, 0, 0);
        sigs[0] = hex"00";
        vm.expectEmit(address(billing));
        emit IEnergyBilling.SettlementSkipped(SESSION, IEnergyBilling.EnergyBillingInvalidMeterSignature.selector);
        vm.prank(operator);
        billing.settleBatch(bills, sigs);
    }

    function test_settleBatch_revertsOnLengthMismatch() public {
        IEnergyBilling.Bill[] memory bills = new IEnergyBilling.Bill[](2);
        bytes[] memory sigs = new bytes[](1);
        vm.expectRevert(abi.encodeWithSelector(IEnergyBilling.EnergyBillingLengthMismatch.selector, 2, 1));
        vm.prank(operator);
        billing.settleBatch(bills, sigs);
    }

    function test_settleBatch_revertsWithoutRole() public {
        IEnergyBilling.Bill[] memory bills = new IEnergyBilling.Bill[](0);
        bytes[] memory sigs = new bytes[](0);
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, stranger, billing.OPERATOR_ROLE()
            )
        );
        vm.prank(stranger);
        billing.settleBatch(bills, sigs);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Spending limits
    // ---------------------------------------------------------------------------------------------------------

    function _limit(address user) internal view returns (IEnergyBilling.SpendingLimit memory) {
        return billing.spendingLimitOf(user);
    }

    function _setLimit(address user, uint64 maxPrice, uint256 allowance) internal {
        vm.prank(user);
        billing.setSpendingLimit(maxPrice, allowance);
    }

    function _update(address user, uint64 maxPrice, uint256 allowance, uint256 nonce, uint64 deadline)
        internal
        pure
        returns (IEnergyBilling.SpendingLimitUpdate memory)
    {
        return IEnergyBilling.SpendingLimitUpdate({
            user: user, maxPriceMicroEurPerKwh: maxPrice, allowance: allowance, nonce: nonce, deadline: deadline
        });
    }

    function _signUpdate(uint256 key, IEnergyBilling.SpendingLimitUpdate memory update)
        internal
        view
        returns (bytes memory)
    {
        return _sign(key, billing.hashSpendingLimitUpdate(update));
    }

    /// @dev Settles `bill` as the operator and returns the error's selector, zero if it settled.
    function _trySettle(IEnergyBilling.Bill memory bill) internal returns (bytes4) {
        bytes memory sig = _signBill(bill);
        vm.prank(operator);
        (bool ok, bytes memory err) = address(billing).call(abi.encodeCall(billing.settle, (bill, sig)));
        return ok ? bytes4(0) : bytes4(err);
    }

    function test_spendingLimitOf_defaultIsNoLimit() public view {
        IEnergyBilling.SpendingLimit memory limit = _limit(alice);
        assertFalse(limit.enabled);
        assertEq(limit.maxPriceMicroEurPerKwh, 0);
        assertEq(limit.allowance, 0);
        assertEq(billing.spendingNonces(alice), 0);
    }

    function test_settle_withoutLimitIsUncapped() public {
        _fund(alice, 1_000_000_000);
        IEnergyBilling.Bill memory bill = _bill(SESSION, alice, 1_000_000, 0);
        bill.priceMicroEurPerKwh = 1_000_000; // 1 MWh at 1 EUR per kWh: the whole balance
        _settle(bill);
        assertEq(billing.balanceOf(alice), 0);
        assertEq(billing.cpoBalanceOf(cpoAdmin), 1_000_000_000);
        assertFalse(_limit(alice).enabled);
    }

    function test_setSpendingLimit_storesAndEmits() public {
        vm.expectEmit(address(billing));
        emit IEnergyBilling.SpendingLimitSet(alice, 400_000, 5_000_000);
        _setLimit(alice, 400_000, 5_000_000);
        IEnergyBilling.SpendingLimit memory limit = _limit(alice);
        assertTrue(limit.enabled);
        assertEq(limit.maxPriceMicroEurPerKwh, 400_000);
        assertEq(limit.allowance, 5_000_000);
        assertEq(billing.spendingNonces(alice), 1);
        assertFalse(_limit(bob).enabled);
    }

    function test_setSpendingLimit_zeroAllowanceBlocksPayingBills() public {
        _fund(alice, 10_000_000);
        _setLimit(alice, 0, 0);
        IEnergyBilling.Bill memory bill = _bill(SESSION, alice, 1000, 0);
        bytes memory sig = _signBill(bill);
        vm.expectRevert(
            abi.encodeWithSelector(IEnergyBilling.EnergyBillingAllowanceExceeded.selector, alice, 0, 300_000)
        );
        vm.prank(operator);
        billing.settle(bill, sig);

        // A bill that costs nothing still settles (and mints its FLEX).
        IEnergyBilling.Bill memory free = _bill(keccak256("free"), alice, 1000, 500);
        free.creditWh = 1000;
        _settle(free);
        assertEq(flex.balanceOf(alice), 500 * REWARD_RATE);
        assertEq(billing.balanceOf(alice), 10_000_000);
    }

    function test_setSpendingLimit_unlimitedRemovesLimit() public {
        _setLimit(alice, 100_000, 1);
        vm.expectEmit(address(billing));
        emit IEnergyBilling.SpendingLimitSet(alice, 0, type(uint256).max);
        _setLimit(alice, 0, type(uint256).max);
        IEnergyBilling.SpendingLimit memory limit = _limit(alice);
        assertFalse(limit.enabled);
        assertEq(limit.maxPriceMicroEurPerKwh, 0);
        assertEq(limit.allowance, 0);
        assertEq(billing.spendingNonces(alice), 2);

        _fund(alice, 10_000_000);
        _settle(_bill(SESSION, alice, 10_000, 0));
        assertEq(billing.balanceOf(alice), 7_000_000);
    }

    function test_settle_revertsOnPriceAboveLimit() public {
        _fund(alice, 10_000_000);
        _setLimit(alice, PRICE - 1, type(uint256).max);
        IEnergyBilling.Bill memory bill = _bill(SESSION, alice, 1000, 0);
        bytes memory sig = _signBill(bill);
        vm.expectRevert(
            abi.encodeWithSelector(IEnergyBilling.EnergyBillingPriceAboveLimit.selector, alice, PRICE, PRICE - 1)
        );
        vm.prank(operator);
        billing.settle(bill, sig);
        assertFalse(billing.settled(SESSION));
        assertEq(billing.balanceOf(alice), 10_000_000);
    }

    function test_settle_acceptsPriceAtLimit() public {
        _fund(alice, 10_000_000);
        _setLimit(alice, PRICE, type(uint256).max);
        _settle(_bill(SESSION, alice, 1000, 0));
        assertEq(billing.balanceOf(alice), 9_700_000);
        // An unlimited allowance does not decrease.
        assertEq(_limit(alice).allowance, type(uint256).max);
        assertTrue(_limit(alice).enabled);
    }

    function test_settle_zeroMaxPriceAcceptsAnyPrice() public {
        _fund(alice, 10_000_000);
        _setLimit(alice, 0, 5_000_000);
        IEnergyBilling.Bill memory bill = _bill(SESSION, alice, 100, 0);
        bill.priceMicroEurPerKwh = 10_000_000; // 10 EUR per kWh: only the allowance caps it
        _settle(bill);
        assertEq(billing.balanceOf(alice), 9_000_000);
        assertEq(_limit(alice).allowance, 4_000_000);
    }

    function test_settle_decrementsAllowance() public {
        _fund(alice, 10_000_000);
        _setLimit(alice, 0, 5_000_000);
        _settle(_bill(SESSION, alice, 10_000, 0)); // 3,000,000 units
        assertEq(_limit(alice).allowance, 2_000_000);
        assertEq(billing.balanceOf(alice), 7_000_000);
        _settle(_bill(keccak256("session-2"), alice, 5000, 0)); // 1,500,000 units
        assertEq(_limit(alice).allowance, 500_000);
        assertEq(billing.balanceOf(alice), 5_500_000);
    }

    function test_settle_revertsWhenAllowanceExhausted() public {
        _fund(alice, 10_000_000);
        _setLimit(alice, 0, 5_000_000);
        _settle(_bill(SESSION, alice, 10_000, 0)); // 3,000,000 of 5,000,000

        IEnergyBilling.Bill memory second = _bill(keccak256("session-2"), alice, 10_000, 0);
        bytes memory sig = _signBill(second);
        vm.expectRevert(
            abi.encodeWithSelector(IEnergyBilling.EnergyBillingAllowanceExceeded.selector, alice, 2_000_000, 3_000_000)
        );
        vm.prank(operator);
        billing.settle(second, sig);

        assertFalse(billing.settled(second.sessionId));
        assertEq(billing.balanceOf(alice), 7_000_000);
        assertEq(_limit(alice).allowance, 2_000_000);
        // What is left can still be spent, to the unit.
        IEnergyBilling.Bill memory exact = _bill(keccak256("session-3"), alice, 8000, 0);
        exact.priceMicroEurPerKwh = 250_001; // 8000 Wh at 250,001 units per kWh = 2,000,008: 8 too many
        assertEq(_trySettle(exact), IEnergyBilling.EnergyBillingAllowanceExceeded.selector);
        exact.priceMicroEurPerKwh = 250_000; // 2,000,000
        _settle(exact);
        assertEq(_limit(alice).allowance, 0);
        assertTrue(_limit(alice).enabled);
    }

    function test_settle_newLimitReplacesAllowance() public {
        _fund(alice, 10_000_000);
        _setLimit(alice, 0, 5_000_000);
        _settle(_bill(SESSION, alice, 10_000, 0));
        _setLimit(alice, 0, 1_000_000);
        assertEq(_limit(alice).allowance, 1_000_000);
        assertEq(
            _trySettle(_bill(keccak256("s2"), alice, 5000, 0)), IEnergyBilling.EnergyBillingAllowanceExceeded.selector
        );
    }

    function test_settle_checksMeterSignatureBeforeLimitAndLimitBeforeBalance() public {
        _setLimit(alice, PRICE - 1, 100);
        IEnergyBilling.Bill memory bill = _bill(SESSION, alice, 1000, 0);
        // A forged bill is refused for its signature, whatever the limit.
        bytes memory forged = _sign(aliceKey, billing.hashBill(bill));
        vm.expectRevert(
            abi.encodeWithSelector(IEnergyBilling.EnergyBillingInvalidMeterSignature.selector, alice, meter)
        );
        vm.prank(operator);
        billing.settle(bill, forged);
        // Alice has no balance: the price rule comes first, then the allowance, then the balance.
        assertEq(_trySettle(bill), IEnergyBilling.EnergyBillingPriceAboveLimit.selector);
        _setLimit(alice, PRICE, 100);
        assertEq(_trySettle(bill), IEnergyBilling.EnergyBillingAllowanceExceeded.selector);
        _setLimit(alice, PRICE, 300_000);
        assertEq(_trySettle(bill), IEnergyBilling.EnergyBillingInsufficientBalance.selector);
        // A failed settlement leaves the allowance alone.
        assertEq(_limit(alice).allowance, 300_000);
    }

    function test_settleBatch_skipsBillsAboveLimit() public {
        _fund(alice, 10_000_000);
        _fund(bob, 10_000_000);
        _setLimit(alice, PRICE, 4_000_000);
        IEnergyBilling.Bill[] memory bills = new IEnergyBilling.Bill[](4);
        bytes[] memory sigs = new bytes[](4);
        bills[0] = _bill(keccak256("s0"), alice, 10_000, 0); // 3,000,000: within the allowance
        bills[1] = _bill(keccak256("s1"), alice, 1000, 0);
        bills[1].priceMicroEurPerKwh = PRICE + 1; // above Alice's price cap
        bills[2] = _bill(keccak256("s2"), alice, 5000, 0); // 1,500,000: more than the 1,000,000 left
        bills[3] = _bill(keccak256("s3"), bob, 20_000, 0); // Bob has no limit: 6,000,000
        for (uint256 i = 0; i < 4; ++i) {
            sigs[i] = _signBill(bills[i]);
        }

        vm.expectEmit(address(billing));
        emit IEnergyBilling.SettlementSkipped(keccak256("s1"), IEnergyBilling.EnergyBillingPriceAboveLimit.selector);
        vm.expectEmit(address(billing));
        emit IEnergyBilling.SettlementSkipped(keccak256("s2"), IEnergyBilling.EnergyBillingAllowanceExceeded.selector);
        vm.prank(operator);
        billing.settleBatch(bills, sigs);

        assertTrue(billing.settled(keccak256("s0")));
        assertFalse(billing.settled(keccak256("s1")));
        assertFalse(billing.settled(keccak256("s2")));
        assertTrue(billing.settled(keccak256("s3")));
        assertEq(billing.balanceOf(alice), 7_000_000);
        assertEq(_limit(alice).allowance, 1_000_000);
        assertEq(billing.balanceOf(bob), 4_000_000);
    }

    function test_setSpendingLimitWithSig_relayedByThirdParty() public {
        uint64 deadline = uint64(block.timestamp + 1 hours);
        IEnergyBilling.SpendingLimitUpdate memory update = _update(alice, 350_000, 20_000_000, 0, deadline);
        bytes memory sig = _signUpdate(aliceKey, update);

        vm.expectEmit(address(billing));
        emit IEnergyBilling.SpendingLimitSet(alice, 350_000, 20_000_000);
        vm.prank(stranger);
        billing.setSpendingLimitWithSig(update, sig);

        IEnergyBilling.SpendingLimit memory limit = _limit(alice);
        assertTrue(limit.enabled);
        assertEq(limit.maxPriceMicroEurPerKwh, 350_000);
        assertEq(limit.allowance, 20_000_000);
        assertEq(billing.spendingNonces(alice), 1);
        assertEq(billing.spendingNonces(stranger), 0);

        // The next update carries the next nonce; the operator may relay too.
        update = _update(alice, 0, type(uint256).max, 1, deadline);
        sig = _signUpdate(aliceKey, update);
        vm.prank(operator);
        billing.setSpendingLimitWithSig(update, sig);
        assertFalse(_limit(alice).enabled);
        assertEq(billing.spendingNonces(alice), 2);
    }

    function test_setSpendingLimitWithSig_acceptsSmartAccount() public {
        ERC1271Wallet wallet = new ERC1271Wallet(alice);
        IEnergyBilling.SpendingLimitUpdate memory update =
            _update(address(wallet), 0, 1_000_000, 0, uint64(block.timestamp));
        billing.setSpendingLimitWithSig(update, _signUpdate(aliceKey, update));
        assertEq(_limit(address(wallet)).allowance, 1_000_000);

        update.nonce = 1;
        bytes memory bobSig = _signUpdate(bobKey, update);
        vm.expectRevert(abi.encodeWithSelector(IEnergyBilling.EnergyBillingInvalidSignature.selector, address(wallet)));
        billing.setSpendingLimitWithSig(update, bobSig);
    }

    function test_setSpendingLimitWithSig_revertsOnReplay() public {
        IEnergyBilling.SpendingLimitUpdate memory update =
            _update(alice, 0, 1_000_000, 0, uint64(block.timestamp + 1 hours));
        bytes memory sig = _signUpdate(aliceKey, update);
        billing.setSpendingLimitWithSig(update, sig);

        vm.expectRevert(abi.encodeWithSelector(IEnergyBilling.EnergyBillingInvalidNonce.selector, alice, 1, 0));
        vm.prank(operator);
        billing.setSpendingLimitWithSig(update, sig);
    }

    function test_setSpendingLimitWithSig_revertsOnFutureNonce() public {
        IEnergyBilling.SpendingLimitUpdate memory update =
            _update(alice, 0, 1_000_000, 1, uint64(block.timestamp + 1 hours));
        bytes memory sig = _signUpdate(aliceKey, update);
        vm.expectRevert(abi.encodeWithSelector(IEnergyBilling.EnergyBillingInvalidNonce.selector, alice, 0, 1));
        billing.setSpendingLimitWithSig(update, sig);
    }

    function test_setSpendingLimitWithSig_revertsOnWrongSigner() public {
        IEnergyBilling.SpendingLimitUpdate memory update =
            _update(alice, 0, type(uint256).max - 1, 0, uint64(block.timestamp + 1 hours));
        bytes memory sig = _signUpdate(bobKey, update);
        vm.expectRevert(abi.encodeWithSelector(IEnergyBilling.EnergyBillingInvalidSignature.selector, alice));
        vm.prank(operator);
        billing.setSpendingLimitWithSig(update, sig);
        assertEq(billing.spendingNonces(alice), 0);
        assertFalse(_limit(alice).enabled);
    }

    function test_setSpendingLimitWithSig_revertsOnTamperedUpdate() public {
        IEnergyBilling.SpendingLimitUpdate memory update =
            _update(alice, 300_000, 1_000_000, 0, uint64(block.timestamp + 1 hours));
        bytes memory sig = _signUpdate(aliceKey, update);
        update.allowance = 1_000_000_000; // the relayer raises the allowance
        vm.expectRevert(abi.encodeWithSelector(IEnergyBilling.EnergyBillingInvalidSignature.selector, alice));
        vm.prank(operator);
        billing.setSpendingLimitWithSig(update, sig);
    }

    function test_setSpendingLimitWithSig_revertsOnMalformedSignature() public {
        IEnergyBilling.SpendingLimitUpdate memory update = _update(alice, 0, 1, 0, uint64(block.timestamp + 1 hours));
        vm.expectRevert(abi.encodeWithSelector(IEnergyBilling.EnergyBillingInvalidSignature.selector, alice));
        billing.setSpendingLimitWithSig(update, hex"deadbeef");
    }

    function test_setSpendingLimitWithSig_revertsWhenExpired() public {
        uint64 deadline = uint64(block.timestamp + 1 hours);
        IEnergyBilling.SpendingLimitUpdate memory update = _update(alice, 0, 1_000_000, 0, deadline);
        bytes memory sig = _signUpdate(aliceKey, update);
        vm.warp(deadline + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IEnergyBilling.EnergyBillingExpired.selector, alice, deadline, deadline + 1)
        );
        vm.prank(operator);
        billing.setSpendingLimitWithSig(update, sig);

        // The deadline itself is still in time.
        vm.warp(deadline);
        billing.setSpendingLimitWithSig(update, sig);
        assertEq(_limit(alice).allowance, 1_000_000);
    }

    function test_setSpendingLimit_voidsUnrelayedSignedUpdate() public {
        // Alice signs a generous limit; the relayer holds it back, and she sets a tight one herself.
        IEnergyBilling.SpendingLimitUpdate memory update =
            _update(alice, 0, 100_000_000, 0, uint64(block.timestamp + 1 days));
        bytes memory sig = _signUpdate(aliceKey, update);
        _setLimit(alice, 0, 1_000_000);
        vm.expectRevert(abi.encodeWithSelector(IEnergyBilling.EnergyBillingInvalidNonce.selector, alice, 1, 0));
        vm.prank(operator);
        billing.setSpendingLimitWithSig(update, sig);
        assertEq(_limit(alice).allowance, 1_000_000);
    }

    function test_hashSpendingLimitUpdate_isEip712Digest() public view {
        IEnergyBilling.SpendingLimitUpdate memory update = _update(alice, 350_000, 20_000_000, 7, 1_700_000_000);
        bytes32 typeHash = keccak256(
            "SpendingLimitUpdate(address user,uint64 maxPriceMicroEurPerKwh,uint256 allowance,uint256 nonce,uint64 deadline)"
        );
        assertEq(billing.SPENDING_LIMIT_TYPEHASH(), typeHash);
        bytes32 structHash = keccak256(
            abi.encode(typeHash, alice, uint64(350_000), uint256(20_000_000), uint256(7), uint64(1_700_000_000))
        );
        assertEq(
            billing.hashSpendingLimitUpdate(update),
            keccak256(abi.encodePacked("\x19\x01", billing.domainSeparator(), structHash))
        );
    }

    function testFuzz_settle_neverDebitsMoreThanAllowance(uint256 allowance, uint64[4] memory energies, uint64 price)
        public
    {
        allowance = bound(allowance, 0, 20_000_000);
        price = uint64(bound(price, 1, 2_000_000));
        _fund(alice, 1_000_000_000);
        _setLimit(alice, 0, allowance);

        uint256 debited;
        for (uint256 i = 0; i < energies.length; ++i) {
            IEnergyBilling.Bill memory bill = _bill(keccak256(abi.encode(i)), alice, 0, 0);
            bill.energyWh = uint64(bound(energies[i], 0, 10_000));
            bill.priceMicroEurPerKwh = price;
            uint256 cost = billing.costOf(bill);
            uint256 left = allowance - debited;
            bytes4 err = _trySettle(bill);
            if (cost > left) {
                assertEq(err, IEnergyBilling.EnergyBillingAllowanceExceeded.selector);
            } else {
                assertEq(err, bytes4(0));
                debited += cost;
            }
            assertEq(_limit(alice).allowance, allowance - debited);
        }
        assertLe(debited, allowance);
        assertEq(1_000_000_000 - billing.balanceOf(alice), debited);
        assertEq(billing.cpoBalanceOf(cpoAdmin), debited);
    }

    function testFuzz_settle_respectsPriceCap(uint64 maxPrice, uint64 price) public {
        maxPrice = uint64(bound(maxPrice, 1, 2_000_000));
        price = uint64(bound(price, 0, 2_000_000));
        _fund(alice, 1_000_000_000);
        _setLimit(alice, maxPrice, type(uint256).max);
        IEnergyBilling.Bill memory bill = _bill(SESSION, alice, 1000, 0);
        bill.priceMicroEurPerKwh = price;
        bytes4 err = _trySettle(bill);
        assertEq(err, price > maxPrice ? IEnergyBilling.EnergyBillingPriceAboveLimit.selector : bytes4(0));
        assertEq(billing.settled(SESSION), price <= maxPrice);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Redemption
    // ---------------------------------------------------------------------------------------------------------

    /// @dev Alice pays 30 EUR for 100 kWh, 40 kWh of which flexible: the CPO holds 30 EUR, Alice 40 FLEX.
    function _earnFlex() internal {
        _fund(alice, 30_000_000);
        _settle(_bill(SESSION, alice, 100_000, 40_000));
    }

    function test_redeemFlex_burnsAndCredits() public {
        _earnFlex();
        vm.startPrank(alice);
        flex.approve(address(billing), 10e18);
        vm.expectEmit(address(billing));
        emit IEnergyBilling.FlexRedeemed(alice, cpoAdmin, 10e18, 1_000_000);
        billing.redeemFlex(cpoAdmin, 10e18);
        vm.stopPrank();

        assertEq(flex.balanceOf(alice), 30e18);
        assertEq(flex.totalSupply(), 30e18);
        assertEq(billing.balanceOf(alice), 1_000_000);
        assertEq(billing.cpoBalanceOf(cpoAdmin), 29_000_000);
        assertEq(billing.totalFlexRedeemed(), 10e18);
    }

    function test_redeemFlex_revertsWithoutAllowance() public {
        _earnFlex();
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(billing), 0, 1e18)
        );
        vm.prank(alice);
        billing.redeemFlex(cpoAdmin, 1e18);
    }

    function test_redeemFlex_revertsWhenDisabled() public {
        _earnFlex();
        vm.prank(cpoAdmin);
        billing.setRedemptionRate(0);
        vm.expectRevert(abi.encodeWithSelector(IEnergyBilling.EnergyBillingRedemptionDisabled.selector, cpoAdmin));
        vm.prank(alice);
        billing.redeemFlex(cpoAdmin, 1e18);
    }

    function test_redeemFlex_revertsWhenCpoBalanceInsufficient() public {
        _earnFlex();
        vm.prank(cpoAdmin);
        billing.withdrawCpoBalance(30_000_000);
        vm.expectRevert(
            abi.encodeWithSelector(IEnergyBilling.EnergyBillingInsufficientCpoBalance.selector, cpoAdmin, 0, 1_000_000)
        );
        vm.prank(alice);
        billing.redeemFlex(cpoAdmin, 10e18);
    }

    function test_redeemFlex_revertsWhenTooSmall() public {
        vm.expectRevert(
            abi.encodeWithSelector(IEnergyBilling.EnergyBillingRedemptionTooSmall.selector, cpoAdmin, 1e12 - 1)
        );
        vm.prank(alice);
        billing.redeemFlex(cpoAdmin, 1e12 - 1); // worth 0.99 units at 100,000 units per FLEX
    }

    function test_redeemFlex_revertsOnUnknownCpo() public {
        vm.expectRevert(abi.encodeWithSelector(IEnergyBilling.EnergyBillingUnknownCpo.selector, stranger));
        vm.prank(alice);
        billing.redeemFlex(stranger, 1e18);
    }

    function test_redeemFlex_revertsOnZero() public {
        vm.expectRevert(IEnergyBilling.EnergyBillingZeroAmount.selector);
        vm.prank(alice);
        billing.redeemFlex(cpoAdmin, 0);
    }

    function test_views_exposeTokens() public view {
        assertEq(billing.paymentToken(), address(euro));
        assertEq(billing.flexToken(), address(flex));
    }
}
