//! SC3: deposits, a settlement with a real EIP-712 meter signature, batches with skips.

use evflex_chain::alloy_types::{Address, B256, Bytes, U256};
use evflex_chain::bindings::EnergyBilling::EnergyBillingErrors;
use evflex_chain::wallet::eip712::{bill_signing_hash, billing_domain, sign_bill};
use evflex_chain::{Bill, ContractError, WriteOutcome};

use crate::helpers::TestChain;

fn bill(session: u8, user: Address, cpo: Address) -> Bill {
    Bill {
        sessionId: B256::repeat_byte(session),
        user,
        cpo,
        energyWh: 20_000,
        priceMicroEurPerKwh: 300_000,
        creditWh: 1_000,
        flexibilityWh: 5_000,
        start: 1_767_225_600,
        end: 1_767_240_000,
    }
}

/// (20_000 - 1_000) Wh * 300_000 µEUR/kWh / 1000
const COST: u64 = 5_700_000;
/// 5_000 Wh of flexibility * 1e15 FLEX wei per Wh
const FLEX: u128 = 5_000_000_000_000_000_000;

#[tokio::test]
async fn settle_with_a_real_meter_signature_moves_money_and_mints_flex() {
    let t = TestChain::start().await;
    let op = t.operator().await;
    let meter = t.accounts.cpo_meter().unwrap();
    let cpo = t.accounts.cpo_admin().unwrap().address();
    let user_key = t.accounts.demo_user(0).unwrap();
    let user = user_key.address();

    // the user deposits from their own tEUR (approve + depositFor)
    let user_client = t.client(user_key).await;
    user_client
        .deposit_for(user, U256::from(10_000_000u64))
        .await
        .unwrap();
    assert_eq!(
        op.billing_balance(user).await.unwrap(),
        U256::from(10_000_000u64)
    );
    assert_eq!(
        op.payment_token_balance(user).await.unwrap(),
        U256::from(1_000_000_000u64 - 10_000_000)
    );

    let domain = op.billing_domain().await.unwrap();
    assert_eq!(
        domain,
        billing_domain(t.deployment.chain_id, t.deployment.contracts.energy_billing)
    );
    let b = bill(1, user, cpo);
    assert_eq!(
        op.hash_bill_on_chain(&b).await.unwrap(),
        bill_signing_hash(&b, &domain)
    );
    let sig = sign_bill(&meter, &b, &domain).unwrap();

    let from = op.block_number().await.unwrap();
    let cpo_before = op.cpo_balance(cpo).await.unwrap();
    let out = op.settle(&b, &sig).await.unwrap();
    assert!(matches!(out, WriteOutcome::Mined(_)));
    assert!(op.is_settled(b.sessionId).await.unwrap());
    assert_eq!(
        op.billing_balance(user).await.unwrap(),
        U256::from(10_000_000u64 - COST)
    );
    assert_eq!(
        op.cpo_balance(cpo).await.unwrap(),
        cpo_before + U256::from(COST)
    );
    assert_eq!(op.flex_balance(user).await.unwrap(), U256::from(FLEX));

    // a replay is already done and moves nothing
    assert_eq!(
        op.settle(&b, &sig).await.unwrap(),
        WriteOutcome::AlreadyDone
    );
    assert_eq!(op.flex_balance(user).await.unwrap(), U256::from(FLEX));

    let events = op
        .settlement_events(from, op.block_number().await.unwrap())
        .await
        .unwrap();
    assert_eq!(events.settled.len(), 1);
    let ev = &events.settled[0];
    assert_eq!((ev.session_id, ev.user, ev.cpo), (b.sessionId, user, cpo));
    assert_eq!(
        (ev.cost, ev.flex_minted),
        (U256::from(COST), U256::from(FLEX))
    );
    assert_eq!(ev.energy_wh, 20_000);

    // a bill signed by anyone but the meter key is refused, decoded
    let forged_bill = bill(2, user, cpo);
    let forged = sign_bill(&t.accounts.demo_user(1).unwrap(), &forged_bill, &domain).unwrap();
    let err = op.settle(&forged_bill, &forged).await.unwrap_err();
    assert!(
        matches!(
            err.contract_error(),
            Some(ContractError::EnergyBilling(EnergyBillingErrors::EnergyBillingInvalidMeterSignature(e)))
                if e.expected == meter.address()
        ),
        "{err}"
    );
}

#[tokio::test]
async fn settle_batch_reports_the_underfunded_user_as_skipped() {
    let t = TestChain::start().await;
    let op = t.operator().await;
    let meter = t.accounts.cpo_meter().unwrap();
    let cpo = t.accounts.cpo_admin().unwrap().address();
    let rich = t.accounts.demo_user(0).unwrap().address();
    let poor = t.accounts.demo_user(1).unwrap().address();

    // the backend tops up its user with minted tEUR; the other user has no balance
    op.top_up(rich, U256::from(20_000_000u64)).await.unwrap();
    assert_eq!(
        op.billing_balance(rich).await.unwrap(),
        U256::from(20_000_000u64)
    );
    assert_eq!(op.billing_balance(poor).await.unwrap(), U256::ZERO);

    let domain = op.billing_domain().await.unwrap();
    let signed = |b: Bill| -> (Bill, Bytes) {
        let sig = sign_bill(&meter, &b, &domain).unwrap();
        (b, sig)
    };
    let bills = vec![
        signed(bill(10, rich, cpo)),
        signed(bill(11, poor, cpo)),
        signed(bill(12, rich, cpo)),
    ];
    let out = op.settle_batch(&bills).await.unwrap();
    assert_eq!(
        out.settled,
        vec![B256::repeat_byte(10), B256::repeat_byte(12)]
    );
    assert_eq!(out.skipped.len(), 1);
    assert_eq!(out.skipped[0].session_id, B256::repeat_byte(11));
    assert_eq!(
        out.skipped[0].reason_name.as_deref(),
        Some("EnergyBillingInsufficientBalance")
    );
    assert!(!out.skipped[0].is_already_settled());
    assert!(out.tx.gas_used > 0);
    assert!(!op.is_settled(B256::repeat_byte(11)).await.unwrap());
    assert_eq!(
        op.billing_balance(rich).await.unwrap(),
        U256::from(20_000_000u64 - 2 * COST)
    );
    assert_eq!(op.flex_balance(rich).await.unwrap(), U256::from(2 * FLEX));

    // replaying the batch: the settled ones come back as "already settled"
    let out = op.settle_batch(&bills).await.unwrap();
    assert!(out.settled.is_empty());
    assert_eq!(
        out.skipped
            .iter()
            .filter(|s| s.is_already_settled())
            .count(),
        2
    );
}
