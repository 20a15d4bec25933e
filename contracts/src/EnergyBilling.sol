// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IEnergyBilling} from "./interfaces/IEnergyBilling.sol";
import {IFlexToken} from "./interfaces/IFlexToken.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/**
 * @title EnergyBilling
 * @notice evflex energy billing (SC3): prepaid user balances in a payment token, one settlement per charging
 * session from a bill signed by the CPO's meter key (EIP-712), FLEX rewards for flexibility, and FLEX
 * redemption against a CPO's balance.
 *
 * Money:
 * - Balances are in payment-token units; the contract holds exactly the sum of user and CPO balances
 *   (deposits credit the amount actually received, so fee-on-transfer tokens cannot break this).
 * - A session costs `(energyWh - creditWh) * priceMicroEurPerKwh / 1000`, rounded down (in the user's favour,
 *   by less than one unit). `creditWh` is energy given free as compensation for a shortfall.
 * - A settlement mints `flexibilityWh * rewardRate` FLEX wei to the user, where `rewardRate` (FLEX wei per Wh)
 *   is set per CPO by the admin, at most {MAX_REWARD_RATE}. E.g. 1e15 pays 1 FLEX per kWh of flexibility.
 * - Redeeming `flexAmount` FLEX wei at a CPO burns it and credits the user
 *   `flexAmount * redemptionRate / 1e18` units (rounded down) out of that CPO's balance: the CPO, who earns
 *   from the flexibility its users give, funds the discount at the rate it chooses and can stop accepting FLEX
 *   by setting the rate to zero. The user approves (or permits) this contract to burn the FLEX first.
 *
 * Spending limits: the operator settles any bill the meter key signed, so a user may cap what settlements take
 * with a {IEnergyBilling-SpendingLimit}: a highest price per kWh and an allowance that each settlement's cost
 * is subtracted from. A bill above either is refused ({settle}) or skipped ({settleBatch}). A user who never
 * set a limit is not capped; setting `(0, type(uint256).max)` removes a limit again. The user sets its limit
 * itself ({setSpendingLimit}) or signs it as EIP-712 typed data for anyone to relay
 * ({setSpendingLimitWithSig}, checked with ERC-1271 for smart-contract accounts), with one nonce per user that
 * must equal the current one and a deadline. A new limit replaces the old one: its allowance is what may be
 * debited from then on, whatever was debited before.
 *
 * Roles: `DEFAULT_ADMIN_ROLE` registers CPOs and sets reward rates and meter keys; `OPERATOR_ROLE` (the evflex
 * backend) settles. A CPO is identified by its registration address, which sets its own redemption rate and
 * treasury and withdraws its balance to the treasury.
 */
contract EnergyBilling is IEnergyBilling, AccessControl, EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice The evflex backend: settles sessions.
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");

    /// @notice EIP-712 type hash of {IEnergyBilling-Bill}.
    bytes32 public constant BILL_TYPEHASH = keccak256(
        "Bill(bytes32 sessionId,address user,address cpo,uint64 energyWh,uint64 priceMicroEurPerKwh,uint64 creditWh,uint64 flexibilityWh,uint64 start,uint64 end)"
    );

    /// @notice EIP-712 type hash of {IEnergyBilling-SpendingLimitUpdate}.
    bytes32 public constant SPENDING_LIMIT_TYPEHASH = keccak256(
        "SpendingLimitUpdate(address user,uint64 maxPriceMicroEurPerKwh,uint256 allowance,uint256 nonce,uint64 deadline)"
    );

    /// @notice Highest FLEX reward rate, FLEX wei per Wh (a million FLEX per Wh): keeps minting far from overflow.
    uint256 public constant MAX_REWARD_RATE = 1e24;

    IERC20 private immutable _paymentToken;
    IFlexToken private immutable _flexToken;

    mapping(address user => uint256) private _balances;
    mapping(address cpo => uint256) private _cpoBalances;
    mapping(address cpo => Cpo) private _cpos;
    mapping(bytes32 sessionId => bool) private _settled;
    uint256 private _totalFlexMinted;
    uint256 private _totalFlexRedeemed;
    mapping(address user => SpendingLimit) private _spendingLimits;
    mapping(address user => uint256) private _spendingNonces;

    /**
     * @param admin Receives `DEFAULT_ADMIN_ROLE`.
     * @param paymentToken_ The ERC-20 users pay in.
     * @param flexToken_ The FLEX token; this contract needs its `MINTER_ROLE`.
     */
    constructor(address admin, IERC20 paymentToken_, IFlexToken flexToken_) EIP712("evflex EnergyBilling", "1") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _paymentToken = paymentToken_;
        _flexToken = flexToken_;
    }

    // ---------------------------------------------------------------------------------------------------------
    // Users
    // ---------------------------------------------------------------------------------------------------------

    /// @inheritdoc IEnergyBilling
    function deposit(uint256 amount) external {
        _deposit(_msgSender(), amount);
    }

    /// @inheritdoc IEnergyBilling
    function depositFor(address user, uint256 amount) external {
        if (user == address(0)) revert EnergyBillingZeroAddress();
        _deposit(user, amount);
    }

    /// @inheritdoc IEnergyBilling
    function withdraw(uint256 amount) external nonReentrant {
        if (amount == 0) revert EnergyBillingZeroAmount();
        address user = _msgSender();
        uint256 balance = _balances[user];
        if (balance < amount) revert EnergyBillingInsufficientBalance(user, balance, amount);
        unchecked {
            // `amount <= balance` was checked above.
            _balances[user] = balance - amount;
        }
        _paymentToken.safeTransfer(user, amount);
        emit Withdrawn(user, amount);
    }

    /// @inheritdoc IEnergyBilling
    function redeemFlex(address cpo_, uint256 flexAmount) external nonReentrant {
        if (flexAmount == 0) revert EnergyBillingZeroAmount();
        Cpo storage c = _registeredCpo(cpo_);
        uint256 rate = c.redemptionRate;
        if (rate == 0) revert EnergyBillingRedemptionDisabled(cpo_);
        uint256 credit = Math.mulDiv(flexAmount, rate, 1e18);
        if (credit == 0) revert EnergyBillingRedemptionTooSmall(cpo_, flexAmount);
        uint256 cpoBalance = _cpoBalances[cpo_];
        if (cpoBalance < credit) revert EnergyBillingInsufficientCpoBalance(cpo_, cpoBalance, credit);

        address user = _msgSender();
        unchecked {
            // `credit <= cpoBalance` was checked above.
            _cpoBalances[cpo_] = cpoBalance - credit;
        }
        // Cannot overflow: the sum of all balances is at most the payment token's total supply.
        _balances[user] += credit;
        _totalFlexRedeemed += flexAmount;
        _flexToken.burnFrom(user, flexAmount);
        emit FlexRedeemed(user, cpo_, flexAmount, credit);
    }

    /// @inheritdoc IEnergyBilling
    function setSpendingLimit(uint64 maxPriceMicroEurPerKwh, uint256 allowance) external {
        address user = _msgSender();
        // Void any signed update the relayer still holds: it must not override this newer limit.
        _useSpendingNonce(user, _spendingNonces[user]);
        _setSpendingLimit(user, maxPriceMicroEurPerKwh, allowance);
    }

    /**
     * @inheritdoc IEnergyBilling
     * @dev Reverts with {EnergyBillingExpired} once `block.timestamp` is past `update.deadline`, with
     * {EnergyBillingInvalidNonce} unless `update.nonce` is the user's current nonce, and with
     * {EnergyBillingInvalidSignature} unless `signature` is the user's (an ECDSA signature of an EOA, or one a
     * smart-contract account accepts through ERC-1271).
     */
    function setSpendingLimitWithSig(SpendingLimitUpdate calldata update, bytes calldata signature) external {
        address user = update.user;
        // Deadlines are minutes or hours away: the few seconds a validator can skew the timestamp do not matter.
        // forge-lint: disable-next-line(block-timestamp)
        if (update.deadline < block.timestamp) {
            revert EnergyBillingExpired(user, update.deadline, block.timestamp);
        }
        _useSpendingNonce(user, update.nonce);
        if (!SignatureChecker.isValidSignatureNow(user, hashSpendingLimitUpdate(update), signature)) {
            revert EnergyBillingInvalidSignature(user);
        }
        _setSpendingLimit(user, update.maxPriceMicroEurPerKwh, update.allowance);
    }

    // ---------------------------------------------------------------------------------------------------------
    // CPOs
    // ---------------------------------------------------------------------------------------------------------

    /// @inheritdoc IEnergyBilling
    function registerCpo(address cpo_, address meterSigner, address treasury, uint256 rewardRate)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        if (cpo_ == address(0) || meterSigner == address(0) || treasury == address(0)) {
            revert EnergyBillingZeroAddress();
        }
        if (_cpos[cpo_].meterSigner != address(0)) revert EnergyBillingDuplicateCpo(cpo_);
        _checkRewardRate(rewardRate);
        _cpos[cpo_] = Cpo({meterSigner: meterSigner, treasury: treasury, rewardRate: rewardRate, redemptionRate: 0});
        emit CpoRegistered(cpo_, meterSigner, treasury, rewardRate);
    }

    /// @inheritdoc IEnergyBilling
    function setMeterSigner(address cpo_, address meterSigner) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (meterSigner == address(0)) revert EnergyBillingZeroAddress();
        Cpo storage c = _registeredCpo(cpo_);
        address previous = c.meterSigner;
        c.meterSigner = meterSigner;
        emit MeterSignerChanged(cpo_, previous, meterSigner);
    }

    /// @inheritdoc IEnergyBilling
    function setRewardRate(address cpo_, uint256 rewardRate) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _checkRewardRate(rewardRate);
        Cpo storage c = _registeredCpo(cpo_);
        uint256 previous = c.rewardRate;
        c.rewardRate = rewardRate;
        emit RewardRateChanged(cpo_, previous, rewardRate);
    }

    /// @inheritdoc IEnergyBilling
    function setRedemptionRate(uint256 redemptionRate) external {
        address cpo_ = _msgSender();
        Cpo storage c = _registeredCpo(cpo_);
        uint256 previous = c.redemptionRate;
        c.redemptionRate = redemptionRate;
        emit RedemptionRateChanged(cpo_, previous, redemptionRate);
    }

    /// @inheritdoc IEnergyBilling
    function setTreasury(address treasury) external {
        if (treasury == address(0)) revert EnergyBillingZeroAddress();
        address cpo_ = _msgSender();
        Cpo storage c = _registeredCpo(cpo_);
        address previous = c.treasury;
        c.treasury = treasury;
        emit TreasuryChanged(cpo_, previous, treasury);
    }

    /// @inheritdoc IEnergyBilling
    function withdrawCpoBalance(uint256 amount) external nonReentrant {
        if (amount == 0) revert EnergyBillingZeroAmount();
        address cpo_ = _msgSender();
        address treasury = _registeredCpo(cpo_).treasury;
        uint256 balance = _cpoBalances[cpo_];
        if (balance < amount) revert EnergyBillingInsufficientCpoBalance(cpo_, balance, amount);
        unchecked {
            // `amount <= balance` was checked above.
            _cpoBalances[cpo_] = balance - amount;
        }
        _paymentToken.safeTransfer(treasury, amount);
        emit CpoWithdrawn(cpo_, treasury, amount);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Settlement
    // ---------------------------------------------------------------------------------------------------------

    /**
     * @inheritdoc IEnergyBilling
     * @dev Reverts with the first rule the bill breaks, checked in this order: {EnergyBillingAlreadySettled},
     * {EnergyBillingUnknownCpo}, {EnergyBillingInvalidUser}, {EnergyBillingInvalidCredit},
     * {EnergyBillingInvalidFlexibility}, {EnergyBillingInvalidPeriod}, {EnergyBillingInvalidMeterSignature},
     * {EnergyBillingPriceAboveLimit}, {EnergyBillingAllowanceExceeded}, {EnergyBillingInsufficientBalance}. The
     * two limit rules apply only to a user with a spending limit; a settlement then lowers its allowance by the
     * cost (unless the allowance is unlimited).
     */
    function settle(Bill calldata bill, bytes calldata meterSignature) external onlyRole(OPERATOR_ROLE) {
        bytes memory err = _trySettle(bill, meterSignature);
        if (err.length != 0) {
            assembly ("memory-safe") {
                revert(add(err, 0x20), mload(err))
            }
        }
    }

    /**
     * @inheritdoc IEnergyBilling
     * @dev A bill that {settle} would reject is skipped, not reverted: the batch emits {SettlementSkipped} with
     * the selector of the error {settle} would raise and goes on. This way one underfunded user or one stale
     * bill (or one above its user's spending limit) does not hold back every other session in the backend's batch; the backend reads the skip events
     * (or {settled}) to decide what to retry. In particular a replayed batch skips its sessions with
     * {EnergyBillingAlreadySettled}, so replays are harmless. Only a length mismatch reverts the whole batch.
     */
    function settleBatch(Bill[] calldata bills, bytes[] calldata meterSignatures) external onlyRole(OPERATOR_ROLE) {
        if (bills.length != meterSignatures.length) {
            revert EnergyBillingLengthMismatch(bills.length, meterSignatures.length);
        }
        for (uint256 i = 0; i < bills.length; ++i) {
            bytes memory err = _trySettle(bills[i], meterSignatures[i]);
            if (err.length != 0) {
                // casting to 'bytes4' is safe because `err` is an ABI-encoded custom error: selector first.
                // forge-lint: disable-next-line(unsafe-typecast)
                emit SettlementSkipped(bills[i].sessionId, bytes4(err));
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // Reads
    // ---------------------------------------------------------------------------------------------------------

    /// @inheritdoc IEnergyBilling
    function paymentToken() external view returns (address) {
        return address(_paymentToken);
    }

    /// @inheritdoc IEnergyBilling
    function flexToken() external view returns (address) {
        return address(_flexToken);
    }

    /// @inheritdoc IEnergyBilling
    function balanceOf(address user) external view returns (uint256) {
        return _balances[user];
    }

    /// @inheritdoc IEnergyBilling
    function cpoBalanceOf(address cpo_) external view returns (uint256) {
        return _cpoBalances[cpo_];
    }

    /// @inheritdoc IEnergyBilling
    function cpo(address cpo_) external view returns (Cpo memory) {
        return _registeredCpo(cpo_);
    }

    /// @inheritdoc IEnergyBilling
    function isCpo(address cpo_) external view returns (bool) {
        return _cpos[cpo_].meterSigner != address(0);
    }

    /// @inheritdoc IEnergyBilling
    function settled(bytes32 sessionId) external view returns (bool) {
        return _settled[sessionId];
    }

    /// @inheritdoc IEnergyBilling
    function costOf(Bill calldata bill) public pure returns (uint256) {
        // Cannot overflow: a uint64 times a uint64 fits in 128 bits. Callers check `creditWh <= energyWh`.
        return uint256(bill.energyWh - bill.creditWh) * bill.priceMicroEurPerKwh / 1000;
    }

    /// @inheritdoc IEnergyBilling
    function hashBill(Bill calldata bill) public view returns (bytes32) {
        // `Bill` has only static fields, so `abi.encode(bill)` is the concatenation of its encoded fields.
        return _hashTypedDataV4(keccak256(abi.encode(BILL_TYPEHASH, bill)));
    }

    /// @inheritdoc IEnergyBilling
    function spendingLimitOf(address user) external view returns (SpendingLimit memory) {
        return _spendingLimits[user];
    }

    /// @inheritdoc IEnergyBilling
    function spendingNonces(address user) external view returns (uint256) {
        return _spendingNonces[user];
    }

    /// @inheritdoc IEnergyBilling
    function hashSpendingLimitUpdate(SpendingLimitUpdate calldata update) public view returns (bytes32) {
        // `SpendingLimitUpdate` has only static fields, so `abi.encode(update)` is the concatenation of its
        // encoded fields.
        return _hashTypedDataV4(keccak256(abi.encode(SPENDING_LIMIT_TYPEHASH, update)));
    }

    /// @inheritdoc IEnergyBilling
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @inheritdoc IEnergyBilling
    function totalFlexMinted() external view returns (uint256) {
        return _totalFlexMinted;
    }

    /// @inheritdoc IEnergyBilling
    function totalFlexRedeemed() external view returns (uint256) {
        return _totalFlexRedeemed;
    }

    // ---------------------------------------------------------------------------------------------------------
    // Internals
    // ---------------------------------------------------------------------------------------------------------

    function _deposit(address user, uint256 amount) private nonReentrant {
        if (amount == 0) revert EnergyBillingZeroAmount();
        uint256 before = _paymentToken.balanceOf(address(this));
        _paymentToken.safeTransferFrom(_msgSender(), address(this), amount);
        // Credit what arrived, so a fee-on-transfer token cannot make balances exceed holdings.
        uint256 received = _paymentToken.balanceOf(address(this)) - before;
        _balances[user] += received;
        emit Deposited(_msgSender(), user, received);
    }

    /**
     * @dev Settles `bill` if it passes every rule and returns empty bytes; otherwise changes nothing and returns
     * the ABI-encoded custom error. Once the checks pass nothing can fail: the user is not the zero address and
     * the reward rate is capped, so minting cannot revert.
     */
    function _trySettle(Bill calldata bill, bytes calldata meterSignature) private returns (bytes memory) {
        bytes32 sessionId = bill.sessionId;
        if (_settled[sessionId]) return abi.encodeWithSelector(EnergyBillingAlreadySettled.selector, sessionId);
        Cpo storage c = _cpos[bill.cpo];
        address signer = c.meterSigner;
        if (signer == address(0)) return abi.encodeWithSelector(EnergyBillingUnknownCpo.selector, bill.cpo);
        if (bill.user == address(0)) return abi.encodeWithSelector(EnergyBillingInvalidUser.selector, sessionId);
        if (bill.creditWh > bill.energyWh) {
            return abi.encodeWithSelector(EnergyBillingInvalidCredit.selector, sessionId, bill.creditWh, bill.energyWh);
        }
        if (bill.flexibilityWh > bill.energyWh) {
            return abi.encodeWithSelector(
                EnergyBillingInvalidFlexibility.selector, sessionId, bill.flexibilityWh, bill.energyWh
            );
        }
        if (bill.end < bill.start) {
            return abi.encodeWithSelector(EnergyBillingInvalidPeriod.selector, sessionId, bill.start, bill.end);
        }
        // A malformed signature recovers the zero address, which is never a meter key.
        (address recovered,,) = ECDSA.tryRecover(hashBill(bill), meterSignature);
        if (recovered != signer) {
            return abi.encodeWithSelector(EnergyBillingInvalidMeterSignature.selector, recovered, signer);
        }
        uint256 cost = costOf(bill);
        bytes memory limitErr = _checkSpendingLimit(bill.user, bill.priceMicroEurPerKwh, cost);
        if (limitErr.length != 0) return limitErr;
        uint256 balance = _balances[bill.user];
        if (balance < cost) {
            return abi.encodeWithSelector(EnergyBillingInsufficientBalance.selector, bill.user, balance, cost);
        }

        // Cannot overflow: a uint64 times at most MAX_REWARD_RATE (< 2^80) fits in 144 bits.
        uint256 flexMinted = uint256(bill.flexibilityWh) * c.rewardRate;
        _settled[sessionId] = true;
        unchecked {
            // `cost <= balance` was checked above.
            _balances[bill.user] = balance - cost;
        }
        _spendAllowance(bill.user, cost);
        // Cannot overflow: the sum of all balances is at most the payment token's total supply.
        _cpoBalances[bill.cpo] += cost;
        if (flexMinted != 0) {
            _totalFlexMinted += flexMinted;
            _flexToken.mint(bill.user, flexMinted);
        }
        _emitSettled(bill, cost, flexMinted);
        return "";
    }

    /**
     * @dev Returns the ABI-encoded error if a bill of `price` and `cost` breaks `user`'s spending limit, else
     * empty bytes. A user without a limit passes.
     */
    function _checkSpendingLimit(address user, uint64 price, uint256 cost) private view returns (bytes memory) {
        SpendingLimit storage limit = _spendingLimits[user];
        if (!limit.enabled) return "";
        uint64 max = limit.maxPriceMicroEurPerKwh;
        if (max != 0 && price > max) {
            return abi.encodeWithSelector(EnergyBillingPriceAboveLimit.selector, user, price, max);
        }
        uint256 allowance = limit.allowance;
        if (cost > allowance) {
            return abi.encodeWithSelector(EnergyBillingAllowanceExceeded.selector, user, allowance, cost);
        }
        return "";
    }

    /// @dev Lowers `user`'s allowance by `cost`, which {_checkSpendingLimit} let through; unlimited stays so.
    function _spendAllowance(address user, uint256 cost) private {
        SpendingLimit storage limit = _spendingLimits[user];
        if (!limit.enabled) return;
        uint256 allowance = limit.allowance;
        if (allowance == type(uint256).max || cost == 0) return;
        unchecked {
            // `cost <= allowance` was checked by {_checkSpendingLimit}.
            limit.allowance = allowance - cost;
        }
    }

    /// @dev Stores `user`'s limit; `(0, type(uint256).max)` is no limit and is stored as the zero value.
    function _setSpendingLimit(address user, uint64 maxPriceMicroEurPerKwh, uint256 allowance) private {
        if (maxPriceMicroEurPerKwh == 0 && allowance == type(uint256).max) {
            delete _spendingLimits[user];
        } else {
            _spendingLimits[user] =
                SpendingLimit({enabled: true, maxPriceMicroEurPerKwh: maxPriceMicroEurPerKwh, allowance: allowance});
        }
        emit SpendingLimitSet(user, maxPriceMicroEurPerKwh, allowance);
    }

    function _useSpendingNonce(address user, uint256 nonce) private {
        uint256 expected = _spendingNonces[user];
        if (nonce != expected) revert EnergyBillingInvalidNonce(user, expected, nonce);
        unchecked {
            // A nonce increments by one per limit set: it cannot reach 2^256.
            _spendingNonces[user] = expected + 1;
        }
    }

    /// @dev Emits {SessionSettled}; a function of its own to keep {_trySettle}'s stack shallow.
    function _emitSettled(Bill calldata bill, uint256 cost, uint256 flexMinted) private {
        emit SessionSettled(
            bill.sessionId,
            bill.user,
            bill.cpo,
            bill.energyWh,
            bill.creditWh,
            bill.flexibilityWh,
            bill.priceMicroEurPerKwh,
            cost,
            flexMinted
        );
    }

    function _registeredCpo(address cpo_) private view returns (Cpo storage c) {
        c = _cpos[cpo_];
        if (c.meterSigner == address(0)) revert EnergyBillingUnknownCpo(cpo_);
    }

    function _checkRewardRate(uint256 rewardRate) private pure {
        if (rewardRate > MAX_REWARD_RATE) revert EnergyBillingRewardRateTooHigh(rewardRate, MAX_REWARD_RATE);
    }
}
