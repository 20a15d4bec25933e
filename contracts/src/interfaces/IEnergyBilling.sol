// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title IEnergyBilling
 * @notice Errors, events, types and functions of evflex energy billing (SC3).
 *
 * Users prepay a payment token into a balance. Each charging session is settled once from a bill that the
 * CPO's meter key signed as EIP-712 typed data: the energy cost moves from the user's balance to the CPO's,
 * and FLEX is minted to the user for the flexibility given. Users redeem FLEX against a CPO's balance at the
 * rate that CPO sets. Money is in payment-token units (on anvil, tEUR: 1 unit = 1 micro-EUR).
 *
 * Users may cap what settlements take from their balance with a {SpendingLimit}: a highest price per kWh and
 * an allowance that each settlement uses up. The operator (the evflex backend) settles, so the cap is what
 * stands between a compromised backend and a user's whole prepaid balance. A user who never set a limit is
 * not capped.
 */
interface IEnergyBilling {
    /**
     * @notice A charging session's bill, signed by the CPO's meter key.
     * @param sessionId Unique id of the charging session.
     * @param user The EV user who pays.
     * @param cpo The CPO who is paid (its registration address).
     * @param energyWh Metered energy delivered, Wh.
     * @param priceMicroEurPerKwh Price, payment-token units per kWh.
     * @param creditWh Energy given free as compensation for a shortfall, Wh; at most `energyWh`.
     * @param flexibilityWh Energy whose timing the user let the scheduler shift, Wh; at most `energyWh`.
     * @param start Session start, unix seconds.
     * @param end Session end, unix seconds; not before `start`.
     */
    struct Bill {
        bytes32 sessionId;
        address user;
        address cpo;
        uint64 energyWh;
        uint64 priceMicroEurPerKwh;
        uint64 creditWh;
        uint64 flexibilityWh;
        uint64 start;
        uint64 end;
    }

    /**
     * @notice A registered CPO.
     * @param meterSigner The key that signs the CPO's bills.
     * @param treasury Where the CPO's withdrawals go.
     * @param rewardRate FLEX (in wei, 18 decimals) minted per Wh of flexibility; set by the admin.
     * @param redemptionRate Payment-token units the CPO pays per whole FLEX (1e18 wei) redeemed; set by the CPO;
     * zero disables redemption.
     */
    struct Cpo {
        address meterSigner;
        address treasury;
        uint256 rewardRate;
        uint256 redemptionRate;
    }

    /**
     * @notice A user's cap on what settlements may take from its balance.
     *
     * The zero value, which every user starts with, is "no limit": `enabled` is false and settlements are
     * capped only by the balance. Setting the limit `(0, type(uint256).max)` returns to that value; there is no
     * separate call to clear a limit.
     *
     * @param enabled Whether the user has a limit; when false the other fields are zero and nothing is capped.
     * @param maxPriceMicroEurPerKwh Highest `priceMicroEurPerKwh` of a bill the user accepts, payment-token units
     * per kWh; zero accepts any price.
     * @param allowance Payment-token units settlements may still debit; each settlement subtracts its cost.
     * `type(uint256).max` is unlimited and never decreases.
     */
    struct SpendingLimit {
        bool enabled;
        uint64 maxPriceMicroEurPerKwh;
        uint256 allowance;
    }

    /**
     * @notice `user` sets its {SpendingLimit} to `maxPriceMicroEurPerKwh` and `allowance`, signed as EIP-712
     * typed data so that anyone may relay it (the evflex backend relays for its custodial users).
     * @param user The user whose limit is set; the signer.
     * @param maxPriceMicroEurPerKwh The new highest price, payment-token units per kWh; zero accepts any price.
     * @param allowance The new allowance, payment-token units; it replaces the remaining one.
     * @param nonce The user's current nonce, {spendingNonces}.
     * @param deadline Last unix second at which the update may be relayed.
     */
    struct SpendingLimitUpdate {
        address user;
        uint64 maxPriceMicroEurPerKwh;
        uint256 allowance;
        uint256 nonce;
        uint64 deadline;
    }

    /// @dev The session `sessionId` is already settled.
    error EnergyBillingAlreadySettled(bytes32 sessionId);

    /// @dev `cpo` is not a registered CPO.
    error EnergyBillingUnknownCpo(address cpo);

    /// @dev `cpo` is already registered.
    error EnergyBillingDuplicateCpo(address cpo);

    /// @dev The bill is signed by `recovered` (zero if the signature is malformed), not by the meter key `expected`.
    error EnergyBillingInvalidMeterSignature(address recovered, address expected);

    /// @dev `user`'s balance `balance` is less than `needed`.
    error EnergyBillingInsufficientBalance(address user, uint256 balance, uint256 needed);

    /// @dev `cpo`'s balance `balance` is less than `needed`.
    error EnergyBillingInsufficientCpoBalance(address cpo, uint256 balance, uint256 needed);

    /// @dev The bill of `sessionId` credits `creditWh`, more than its `energyWh`.
    error EnergyBillingInvalidCredit(bytes32 sessionId, uint64 creditWh, uint64 energyWh);

    /// @dev The bill of `sessionId` claims `flexibilityWh`, more than its `energyWh`.
    error EnergyBillingInvalidFlexibility(bytes32 sessionId, uint64 flexibilityWh, uint64 energyWh);

    /// @dev The bill of `sessionId` ends at `end`, before its `start`.
    error EnergyBillingInvalidPeriod(bytes32 sessionId, uint64 start, uint64 end);

    /// @dev The bill of `sessionId` names the zero address as its user.
    error EnergyBillingInvalidUser(bytes32 sessionId);

    /// @dev A zero address was given where an account is required.
    error EnergyBillingZeroAddress();

    /// @dev A zero amount was given.
    error EnergyBillingZeroAmount();

    /// @dev The reward rate `rate` exceeds `max`.
    error EnergyBillingRewardRateTooHigh(uint256 rate, uint256 max);

    /// @dev `cpo` does not accept FLEX (its redemption rate is zero).
    error EnergyBillingRedemptionDisabled(address cpo);

    /// @dev Redeeming `flexAmount` at `cpo`'s rate is worth less than one payment-token unit.
    error EnergyBillingRedemptionTooSmall(address cpo, uint256 flexAmount);

    /// @dev {settleBatch} got `bills` bills but `signatures` signatures.
    error EnergyBillingLengthMismatch(uint256 bills, uint256 signatures);

    /// @dev The bill's `price` is above `user`'s spending limit `max` (payment-token units per kWh).
    error EnergyBillingPriceAboveLimit(address user, uint64 price, uint64 max);

    /// @dev The bill's `cost` is more than `user`'s remaining spending `allowance`.
    error EnergyBillingAllowanceExceeded(address user, uint256 allowance, uint256 cost);

    /// @dev The signature of a {SpendingLimitUpdate} is not `user`'s.
    error EnergyBillingInvalidSignature(address user);

    /// @dev `nonce` is not `user`'s current spending-limit nonce `expected` (e.g. a replay).
    error EnergyBillingInvalidNonce(address user, uint256 expected, uint256 nonce);

    /// @dev `user`'s {SpendingLimitUpdate} had to be relayed by `deadline`; it is `now_`.
    error EnergyBillingExpired(address user, uint64 deadline, uint256 now_);

    /// @notice Emitted when `payer` deposits `amount` into `user`'s balance.
    event Deposited(address indexed payer, address indexed user, uint256 amount);

    /// @notice Emitted when `user` withdraws `amount` from its balance.
    event Withdrawn(address indexed user, uint256 amount);

    /// @notice Emitted when `cpo` withdraws `amount` to its `treasury`.
    event CpoWithdrawn(address indexed cpo, address indexed treasury, uint256 amount);

    /// @notice Emitted when `cpo` is registered.
    event CpoRegistered(address indexed cpo, address meterSigner, address treasury, uint256 rewardRate);

    /// @notice Emitted when `cpo`'s meter key changes.
    event MeterSignerChanged(address indexed cpo, address previous, address meterSigner);

    /// @notice Emitted when `cpo`'s treasury changes.
    event TreasuryChanged(address indexed cpo, address previous, address treasury);

    /// @notice Emitted when `cpo`'s FLEX reward rate changes.
    event RewardRateChanged(address indexed cpo, uint256 previous, uint256 rewardRate);

    /// @notice Emitted when `cpo`'s FLEX redemption rate changes.
    event RedemptionRateChanged(address indexed cpo, uint256 previous, uint256 redemptionRate);

    /**
     * @notice Emitted when a session is settled: `cost` moved from `user` to `cpo` and `flexMinted` FLEX was
     * minted to `user`.
     */
    event SessionSettled(
        bytes32 indexed sessionId,
        address indexed user,
        address indexed cpo,
        uint64 energyWh,
        uint64 creditWh,
        uint64 flexibilityWh,
        uint64 priceMicroEurPerKwh,
        uint256 cost,
        uint256 flexMinted
    );

    /// @notice Emitted by {settleBatch} for a bill it skipped; `reason` is the selector of the error it hit.
    event SettlementSkipped(bytes32 indexed sessionId, bytes4 reason);

    /// @notice Emitted when `user` burns `flexAmount` FLEX and gets `credit` from `cpo`'s balance.
    event FlexRedeemed(address indexed user, address indexed cpo, uint256 flexAmount, uint256 credit);

    /**
     * @notice Emitted when `user` sets its spending limit, itself or through a relayed signature;
     * `(0, type(uint256).max)` means the limit was removed.
     */
    event SpendingLimitSet(address indexed user, uint64 maxPriceMicroEurPerKwh, uint256 allowance);

    /// @notice Deposits `amount` payment tokens of the caller into the caller's balance.
    function deposit(uint256 amount) external;

    /// @notice Deposits `amount` payment tokens of the caller into `user`'s balance.
    function depositFor(address user, uint256 amount) external;

    /// @notice Withdraws `amount` from the caller's balance to the caller.
    function withdraw(uint256 amount) external;

    /**
     * @notice Sets the caller's spending limit: settlements may debit at most `allowance` in total from now on
     * (`type(uint256).max`: unlimited), for bills priced at most `maxPriceMicroEurPerKwh` (zero: any price).
     * `(0, type(uint256).max)` removes the limit. Also uses up the caller's current nonce, voiding any signed
     * {SpendingLimitUpdate} not yet relayed.
     */
    function setSpendingLimit(uint64 maxPriceMicroEurPerKwh, uint256 allowance) external;

    /// @notice Sets `update.user`'s spending limit as {setSpendingLimit} does, from the user's signature. Anyone.
    function setSpendingLimitWithSig(SpendingLimitUpdate calldata update, bytes calldata signature) external;

    /// @notice Registers `cpo`. Only the admin.
    function registerCpo(address cpo, address meterSigner, address treasury, uint256 rewardRate) external;

    /// @notice Rotates `cpo`'s meter key. Only the admin.
    function setMeterSigner(address cpo, address meterSigner) external;

    /// @notice Sets `cpo`'s FLEX reward rate, FLEX wei per Wh of flexibility. Only the admin.
    function setRewardRate(address cpo, uint256 rewardRate) external;

    /// @notice Sets the caller's (a CPO's) FLEX redemption rate, payment-token units per whole FLEX.
    function setRedemptionRate(uint256 redemptionRate) external;

    /// @notice Sets the caller's (a CPO's) treasury.
    function setTreasury(address treasury) external;

    /// @notice Withdraws `amount` from the caller's (a CPO's) balance to its treasury.
    function withdrawCpoBalance(uint256 amount) external;

    /// @notice Settles one session. Only OPERATOR_ROLE.
    function settle(Bill calldata bill, bytes calldata meterSignature) external;

    /// @notice Settles several sessions, skipping those that fail. Only OPERATOR_ROLE.
    function settleBatch(Bill[] calldata bills, bytes[] calldata meterSignatures) external;

    /// @notice Burns `flexAmount` of the caller's FLEX and credits the caller's balance from `cpo`'s.
    function redeemFlex(address cpo, uint256 flexAmount) external;

    /// @notice The payment token.
    function paymentToken() external view returns (address);

    /// @notice The FLEX token.
    function flexToken() external view returns (address);

    /// @notice `user`'s prepaid balance, payment-token units.
    function balanceOf(address user) external view returns (uint256);

    /// @notice `cpo`'s balance, payment-token units.
    function cpoBalanceOf(address cpo) external view returns (uint256);

    /// @notice `cpo`'s registration; reverts if unknown.
    function cpo(address cpo_) external view returns (Cpo memory);

    /// @notice Whether `cpo_` is registered.
    function isCpo(address cpo_) external view returns (bool);

    /// @notice Whether session `sessionId` is settled.
    function settled(bytes32 sessionId) external view returns (bool);

    /// @notice The cost of `bill`: `(energyWh - creditWh) * priceMicroEurPerKwh / 1000`, rounded down.
    function costOf(Bill calldata bill) external pure returns (uint256);

    /// @notice The EIP-712 digest the meter key signs for `bill`.
    function hashBill(Bill calldata bill) external view returns (bytes32);

    /// @notice `user`'s spending limit; the zero value (`enabled` false) if it has none.
    function spendingLimitOf(address user) external view returns (SpendingLimit memory);

    /// @notice The nonce the next {SpendingLimitUpdate} of `user` must carry.
    function spendingNonces(address user) external view returns (uint256);

    /// @notice The EIP-712 digest the user signs for `update`.
    function hashSpendingLimitUpdate(SpendingLimitUpdate calldata update) external view returns (bytes32);

    /// @notice The EIP-712 domain separator.
    function domainSeparator() external view returns (bytes32);

    /// @notice All FLEX ever minted by settlements.
    function totalFlexMinted() external view returns (uint256);

    /// @notice All FLEX ever burned by redemptions.
    function totalFlexRedeemed() external view returns (uint256);
}
