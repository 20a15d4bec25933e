// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {EnergyBilling} from "../src/EnergyBilling.sol";
import {IEnergyBilling} from "../src/interfaces/IEnergyBilling.sol";
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
