//! SC1 through the bindings: groups, charge points, PV inverters and batteries written and read
//! back, reverts decoded.

use evflex_chain::bindings::AssetRegistry::AssetRegistryErrors;
use evflex_chain::{
    Battery, ChainError, ChargePoint, ChargePointId, ContractError, EvseStatus, Group, PowerType,
    PvInverter, WriteOutcome,
};

use crate::helpers::TestChain;

fn id(n: u32) -> ChargePointId {
    ChargePointId::try_from(n).unwrap()
}

fn cp(n: u32, group_id: u64, evse_uid: &str) -> ChargePoint {
    ChargePoint {
        id: id(n),
        group_id,
        evse_uid: evse_uid.to_owned(),
        rated_power_w: 11_000,
        power_type: PowerType::Ac3Phase,
        phases: 3,
        voltage_v: 230,
        max_current_a: 16,
        connector_standard: "IEC_62196_T2".to_owned(),
        status: EvseStatus::Available,
    }
}

#[tokio::test]
async fn register_and_read_back_charge_points() {
    let t = TestChain::start().await;
    let cpo = t.cpo_admin().await;
    let group = Group {
        id: 7,
        label: "Depot North".into(),
        capacity_w: 50_000,
    };

    let out = cpo.register_group(&group).await.unwrap();
    let tx = out.tx().expect("mined");
    assert!(tx.gas_used > 0 && tx.block_number > 0);
    assert_eq!(cpo.group(7).await.unwrap(), Some(group.clone()));
    // replay: already done; other values: conflict
    assert_eq!(
        cpo.register_group(&group).await.unwrap(),
        WriteOutcome::AlreadyDone
    );
    let bigger = Group {
        capacity_w: 60_000,
        ..group.clone()
    };
    assert!(matches!(
        cpo.register_group(&bigger).await,
        Err(ChainError::AssetConflict { id: 7, .. })
    ));
    cpo.update_group(&bigger).await.unwrap();
    assert_eq!(cpo.group(7).await.unwrap(), Some(bigger));

    let cps = vec![cp(101, 7, "DE*EVF*E101"), cp(102, 7, "DE*EVF*E102")];
    assert!(matches!(
        cpo.register_charge_points(&cps).await.unwrap(),
        WriteOutcome::Mined(_)
    ));
    let read = cpo.charge_points_of(7).await.unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!(read[0].charge_point, cps[0]);
    assert_eq!(read[1].charge_point, cps[1]);
    assert!(read.iter().all(|r| r.active));
    assert_eq!(cpo.charge_point(id(999)).await.unwrap(), None);

    // a replayed batch sends nothing; a batch with one new charge point registers only it
    assert_eq!(
        cpo.register_charge_points(&cps).await.unwrap(),
        WriteOutcome::AlreadyDone
    );
    let mut more = cps.clone();
    more.push(cp(103, 7, "DE*EVF*E103"));
    assert!(matches!(
        cpo.register_charge_points(&more).await.unwrap(),
        WriteOutcome::Mined(_)
    ));
    assert_eq!(cpo.charge_points_of(7).await.unwrap().len(), 3);

    // update and status
    let mut changed = cps[0].clone();
    changed.rated_power_w = 22_000;
    changed.status = EvseStatus::Charging;
    cpo.update_charge_points(std::slice::from_ref(&changed))
        .await
        .unwrap();
    assert_eq!(
        cpo.charge_point(id(101))
            .await
            .unwrap()
            .unwrap()
            .charge_point,
        changed
    );
    let operator = t.operator().await;
    operator
        .set_charge_point_status(id(102), EvseStatus::OutOfOrder)
        .await
        .unwrap();
    assert_eq!(
        operator
            .charge_point(id(102))
            .await
            .unwrap()
            .unwrap()
            .charge_point
            .status,
        EvseStatus::OutOfOrder
    );
}

#[tokio::test]
async fn reverts_decode_into_the_contract_errors() {
    let t = TestChain::start().await;
    let cpo = t.cpo_admin().await;

    // unknown group
    let err = cpo
        .register_charge_points(&[cp(1, 42, "X")])
        .await
        .unwrap_err();
    match &err {
        ChainError::Reverted {
            error: ContractError::AssetRegistry(AssetRegistryErrors::AssetRegistryUnknownGroup(e)),
            method,
            ..
        } => {
            assert_eq!(e.groupId, 42);
            assert_eq!(*method, "registerChargePoints");
        }
        other => panic!("unexpected {other:?}"),
    }
    let shown = err.to_string();
    assert!(
        shown.contains("AssetRegistryUnknownGroup") && shown.contains("42"),
        "{shown}"
    );
    assert_eq!(
        err.contract_error().unwrap().name(),
        "AssetRegistryUnknownGroup"
    );
    assert!(!err.is_retryable());

    // a demo user holds no role: AccessControl's error, decoded through AssetRegistry's ABI
    let user = t.client(t.accounts.demo_user(0).unwrap()).await;
    let err = user
        .register_group(&Group {
            id: 1,
            label: "x".into(),
            capacity_w: 1,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.contract_error(),
            Some(ContractError::AssetRegistry(AssetRegistryErrors::AccessControlUnauthorizedAccount(e)))
                if e.account == user.address()
        ),
        "{err}"
    );
}

#[tokio::test]
async fn pv_inverters_and_batteries_upsert_idempotently() {
    let t = TestChain::start().await;
    let cpo = t.cpo_admin().await;
    let group = Group {
        id: 9,
        label: "Solar car park".into(),
        capacity_w: 40_000,
    };
    cpo.register_group(&group).await.unwrap();
    assert_eq!(cpo.pv_inverter(77).await.unwrap(), None);
    assert_eq!(cpo.battery(78).await.unwrap(), None);

    let pv = PvInverter {
        id: 77,
        group_id: 9,
        peak_w: 20_000,
    };
    assert!(matches!(
        cpo.upsert_pv_inverter(&pv).await.unwrap(),
        WriteOutcome::Mined(_)
    ));
    assert_eq!(cpo.pv_inverter(77).await.unwrap(), Some((pv.clone(), true)));
    // the same values again: nothing sent
    assert_eq!(
        cpo.upsert_pv_inverter(&pv).await.unwrap(),
        WriteOutcome::AlreadyDone
    );
    // other values: an update
    let bigger = PvInverter {
        peak_w: 25_000,
        ..pv
    };
    assert!(matches!(
        cpo.upsert_pv_inverter(&bigger).await.unwrap(),
        WriteOutcome::Mined(_)
    ));
    assert_eq!(cpo.pv_inverter(77).await.unwrap(), Some((bigger, true)));

    let battery = Battery {
        id: 78,
        group_id: 9,
        capacity_wh: 50_000,
        available_wh: 20_000,
    };
    assert!(matches!(
        cpo.upsert_battery(&battery).await.unwrap(),
        WriteOutcome::Mined(_)
    ));
    assert_eq!(
        cpo.upsert_battery(&battery).await.unwrap(),
        WriteOutcome::AlreadyDone
    );
    let charged = Battery {
        available_wh: 35_000,
        ..battery
    };
    cpo.upsert_battery(&charged).await.unwrap();
    assert_eq!(
        cpo.battery(78).await.unwrap(),
        Some((charged.clone(), true))
    );
    // more energy than capacity is refused by the registry, decoded
    let over = Battery {
        available_wh: 60_000,
        ..charged
    };
    assert!(matches!(
        cpo.upsert_battery(&over).await,
        Err(ChainError::Reverted {
            error: ContractError::AssetRegistry(
                AssetRegistryErrors::AssetRegistryBatteryOverCapacity(_)
            ),
            ..
        })
    ));
}
