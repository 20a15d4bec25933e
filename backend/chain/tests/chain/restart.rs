//! The node and the writer restarting: the chain survives an anvil stop/start, and a fresh
//! client continues from the pending nonce.

use std::time::Duration;

use alloy::providers::Provider;
use evflex_chain::{ChainError, Group, WriteOutcome};

use crate::helpers::TestChain;

#[tokio::test]
async fn anvil_stop_and_restart_keeps_the_chain() {
    let mut t = TestChain::start().await;
    let port = t.chain.port();
    let op = t.operator().await;
    let group = Group {
        id: 3,
        label: "Garage".into(),
        capacity_w: 22_000,
    };
    let tx = *op.register_group(&group).await.unwrap().tx().unwrap();

    t.chain.stop().await.unwrap();
    assert!(!t.chain.is_running());
    let err = op.group(3).await.unwrap_err();
    assert!(
        err.is_retryable(),
        "a stopped node is a retryable RPC error: {err}"
    );

    t.chain.start_again().await.unwrap();
    assert_eq!(t.chain.port(), port);
    // the same client works again: state, blocks and receipts survived
    assert_eq!(op.group(3).await.unwrap(), Some(group.clone()));
    assert!(op.block_number().await.unwrap() >= tx.block_number);
    let receipt = op
        .provider()
        .get_transaction_receipt(tx.tx_hash)
        .await
        .unwrap()
        .expect("receipt kept");
    assert_eq!(receipt.block_number, Some(tx.block_number));
    assert_eq!(
        op.register_group(&group).await.unwrap(),
        WriteOutcome::AlreadyDone
    );
    let next = Group {
        id: 4,
        label: "Garage 2".into(),
        capacity_w: 11_000,
    };
    assert!(
        op.register_group(&next)
            .await
            .unwrap()
            .tx()
            .unwrap()
            .block_number
            > tx.block_number
    );

    // restart() = stop + start_again
    t.chain.restart().await.unwrap();
    assert_eq!(op.group(4).await.unwrap(), Some(next));
}

#[tokio::test]
async fn fresh_client_after_restart_continues_from_the_pending_nonce() {
    let t = TestChain::start().await;
    let op = t.operator().await;
    let address = op.address();
    // Hold mining so transactions stay pending, as on a slow network.
    let _: serde_json::Value = op
        .provider()
        .raw_request("evm_setAutomine".into(), (false,))
        .await
        .unwrap();
    let latest = op.provider().get_transaction_count(address).await.unwrap();

    // The writer sends, then "crashes" before its receipt.
    let short = op.with_receipt_timeout(Duration::from_millis(500));
    let err = short
        .register_group(&Group {
            id: 1,
            label: "a".into(),
            capacity_w: 1_000,
        })
        .await
        .unwrap_err();
    let ChainError::ReceiptTimeout { tx_hash: first, .. } = err else {
        panic!("expected a timeout, got {err}")
    };
    assert!(err.is_retryable());
    drop(short);

    // A fresh client (the restarted process) takes the pending nonce, not the mined one, so it
    // neither replaces nor collides with the pending transaction.
    let restarted = t
        .operator()
        .await
        .with_receipt_timeout(Duration::from_secs(30));
    assert_eq!(restarted.pending_nonce().await.unwrap(), latest + 1);
    let mine = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _: serde_json::Value = restarted
            .provider()
            .raw_request("evm_mine".into(), ())
            .await
            .unwrap();
    };
    let group_b = Group {
        id: 2,
        label: "b".into(),
        capacity_w: 2_000,
    };
    let (second, ()) = tokio::join!(restarted.register_group(&group_b), mine);
    let second = *second.unwrap().tx().unwrap();

    let first_tx = restarted
        .provider()
        .get_transaction_by_hash(first)
        .await
        .unwrap()
        .unwrap();
    let second_tx = restarted
        .provider()
        .get_transaction_by_hash(second.tx_hash)
        .await
        .unwrap()
        .unwrap();
    use alloy::consensus::Transaction as _;
    assert_eq!(first_tx.nonce(), latest);
    assert_eq!(second_tx.nonce(), latest + 1);
    let first_receipt = restarted
        .provider()
        .get_transaction_receipt(first)
        .await
        .unwrap()
        .unwrap();
    assert!(first_receipt.status());
    assert_eq!(
        restarted.group(1).await.unwrap().map(|g| g.capacity_w),
        Some(1_000)
    );
    assert_eq!(
        restarted.group(2).await.unwrap().map(|g| g.capacity_w),
        Some(2_000)
    );

    // Back to auto-mining; the re-sent work of the crashed writer is already done.
    let _: serde_json::Value = restarted
        .provider()
        .raw_request("evm_setAutomine".into(), (true,))
        .await
        .unwrap();
    let again = restarted
        .register_group(&Group {
            id: 1,
            label: "a".into(),
            capacity_w: 1_000,
        })
        .await
        .unwrap();
    assert_eq!(again, WriteOutcome::AlreadyDone);
}
