// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IEnergyBilling} from "../../src/interfaces/IEnergyBilling.sol";
import {Fixtures} from "../utils/Fixtures.sol";
import {EnergyBillingHandler} from "./handlers/EnergyBillingHandler.sol";

contract EnergyBillingInvariantTest is Fixtures {
    EnergyBillingHandler internal handler;

    function setUp() public override {
        super.setUp();
        address[] memory users = new address[](3);
        users[0] = alice;
        users[1] = bob;
        users[2] = makeAddr("carol");
        handler = new EnergyBillingHandler(billing, flex, euro, admin, operator, cpoAdmin, meterKey, users);

        bytes4[] memory selectors = new bytes4[](8);
        selectors[0] = EnergyBillingHandler.deposit.selector;
        selectors[1] = EnergyBillingHandler.withdraw.selector;
        selectors[2] = EnergyBillingHandler.settle.selector;
        selectors[3] = EnergyBillingHandler.settleBatch.selector;
        selectors[4] = EnergyBillingHandler.redeem.selector;
        selectors[5] = EnergyBillingHandler.burnFlex.selector;
        selectors[6] = EnergyBillingHandler.withdrawCpo.selector;
        selectors[7] = EnergyBillingHandler.setSpendingLimit.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
        targetContract(address(handler));
    }

    /// @dev Every FLEX in existence was minted by a settlement and not yet burned.
    function invariant_flexSupplyEqualsMintedMinusBurned() public view {
        assertEq(flex.totalSupply(), handler.ghostFlexMinted() - handler.ghostFlexBurned());
        assertEq(billing.totalFlexMinted(), handler.ghostFlexMinted());
    }

    /// @dev The contract holds exactly the sum of every user and CPO balance.
    function invariant_paymentTokenBalanceEqualsInternalBalances() public view {
        address[] memory users = handler.users();
        uint256 sum = billing.cpoBalanceOf(cpoAdmin);
        for (uint256 i = 0; i < users.length; ++i) {
            sum += billing.balanceOf(users[i]);
        }
        assertEq(euro.balanceOf(address(billing)), sum);
    }

    /// @dev Every tEUR ever minted is in a user's wallet, the treasury, or the billing contract.
    function invariant_paymentTokenConserved() public view {
        address[] memory users = handler.users();
        uint256 sum = euro.balanceOf(address(billing)) + euro.balanceOf(treasury);
        for (uint256 i = 0; i < users.length; ++i) {
            sum += euro.balanceOf(users[i]);
        }
        assertEq(euro.totalSupply(), sum);
    }

    /**
     * @dev A user with a finite allowance was debited at most the allowance it last set, and what is left of the
     * allowance is exactly the rest; an unlimited allowance stays unlimited.
     */
    function invariant_settlementsStayWithinAllowance() public view {
        address[] memory users = handler.users();
        for (uint256 i = 0; i < users.length; ++i) {
            IEnergyBilling.SpendingLimit memory limit = billing.spendingLimitOf(users[i]);
            if (!limit.enabled) continue;
            uint256 set = handler.ghostAllowanceSet(users[i]);
            uint256 debited = handler.ghostDebitedSinceLimit(users[i]);
            if (set == type(uint256).max) {
                assertEq(limit.allowance, type(uint256).max);
            } else {
                assertLe(debited, set);
                assertEq(limit.allowance, set - debited);
            }
        }
    }

    /// @dev No bill priced above its user's price cap ever settled.
    function invariant_noSettlementAbovePriceCap() public view {
        assertEq(handler.ghostPriceCapBreaches(), 0);
    }

    /// @dev No session settles twice, and every settled session was settled exactly once.
    function invariant_noSessionSettlesTwice() public view {
        uint256 settledCount;
        for (uint256 i = 0; i < handler.sessionPoolSize(); ++i) {
            bytes32 id = handler.sessionId(i);
            uint256 count = handler.ghostSettleCount(id);
            assertLe(count, 1);
            assertEq(billing.settled(id), count == 1);
            settledCount += count;
        }
        assertEq(settledCount, handler.ghostSettlements());
    }
}
