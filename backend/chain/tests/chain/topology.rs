//! SC1 site topology through the bindings: a tree of limit nodes, a group linked to its cabinet
//! and a charge point's phase wiring, written and read back; the registry's rules as decoded
//! reverts.

use evflex_chain::bindings::AssetRegistry::AssetRegistryErrors;
use evflex_chain::{
    ChainError, ChargePoint, ChargePointId, ContractError, EvseStatus, Group, LimitNode,
    LimitNodeKind, PhaseWiring, PowerType, RateUnit, WriteOutcome,
};

use crate::helpers::TestChain;

const SITE: u64 = 1000;
const TRAFO: u64 = 1001;
const CABINET: u64 = 1002;

fn node(id: u64, parent_id: Option<u64>, kind: LimitNodeKind) -> LimitNode {
    LimitNode {
        id,
        parent_id,
        kind,
        phase_voltage_v: 230,
        limit_da: [2500, 2500, 2500],
        limit_w: 0,
    }
}

fn cp(n: u32, group_id: u64) -> ChargePoint {
    ChargePoint {
        id: ChargePointId::try_from(n).unwrap(),
        group_id,
        evse_uid: format!("DE*EVF*E{n}"),
        rated_power_w: 11_000,
        power_type: PowerType::Ac3Phase,
        phases: 3,
        voltage_v: 230,
        max_current_a: 16,
        connector_standard: "IEC_62196_T2".to_owned(),
        status: EvseStatus::Available,
    }
}

fn reverted_with(err: &ChainError) -> &AssetRegistryErrors {
    match err {
        ChainError::Reverted {
            error: ContractError::AssetRegistry(e),
            ..
        } => e,
        other => panic!("expected an AssetRegistry revert, got {other:?}"),
    }
}

#[tokio::test]
async fn node_tree_group_link_and_phase_wiring_round_trip() {
    let t = TestChain::start().await;
    let cpo = t.cpo_admin().await;

    // connection -> transformer -> cabinet
    let site = LimitNode {
        limit_w: 400_000,
        ..node(SITE, None, LimitNodeKind::Connection)
    };
    let trafo = node(TRAFO, Some(SITE), LimitNodeKind::Transformer);
    let cabinet = LimitNode {
        limit_da: [630, 630, 500],
        ..node(CABINET, Some(TRAFO), LimitNodeKind::Cabinet)
    };
    for n in [&site, &trafo, &cabinet] {
        let out = cpo.register_limit_node(n).await.unwrap();
        eprintln!(
            "registerLimitNode {}: {} gas",
            n.id,
            out.tx().expect("mined").gas_used
        );
    }
    let read = cpo.limit_node(SITE).await.unwrap().unwrap();
    assert_eq!(read.node, site);
    assert!(read.active);
    assert_eq!(read.active_children, 1);
    let read = cpo.limit_node(CABINET).await.unwrap().unwrap();
    assert_eq!(read.node, cabinet);
    assert_eq!(read.active_children, 0);
    assert_eq!(cpo.limit_node(4242).await.unwrap(), None);

    // replay: already done; other values: conflict, then upsert updates
    assert_eq!(
        cpo.register_limit_node(&cabinet).await.unwrap(),
        WriteOutcome::AlreadyDone
    );
    let bigger = LimitNode {
        limit_da: [800, 800, 800],
        ..cabinet.clone()
    };
    assert!(matches!(
        cpo.register_limit_node(&bigger).await,
        Err(ChainError::AssetConflict { id: CABINET, .. })
    ));
    assert!(matches!(
        cpo.upsert_limit_node(&bigger).await.unwrap(),
        WriteOutcome::Mined(_)
    ));
    assert_eq!(cpo.limit_node(CABINET).await.unwrap().unwrap().node, bigger);

    // the group keeps its record and is linked to its cabinet
    let group = Group {
        id: 7,
        label: "Depot North".into(),
        capacity_w: 50_000,
    };
    cpo.register_group(&group).await.unwrap();
    assert_eq!(cpo.group_limit_node(7).await.unwrap(), None);
    assert!(matches!(
        cpo.set_group_limit_node(7, Some(CABINET)).await.unwrap(),
        WriteOutcome::Mined(_)
    ));
    assert_eq!(cpo.group_limit_node(7).await.unwrap(), Some(CABINET));
    assert_eq!(
        cpo.set_group_limit_node(7, Some(CABINET)).await.unwrap(),
        WriteOutcome::AlreadyDone
    );
    assert_eq!(cpo.group(7).await.unwrap(), Some(group));

    // a charge point wired rotated (its L1 on the cabinet's L2), 6-32 A in 1 A steps
    let c = cp(101, 7);
    cpo.register_charge_points(std::slice::from_ref(&c))
        .await
        .unwrap();
    assert_eq!(cpo.phase_wiring(c.id).await.unwrap(), None);
    let wiring = PhaseWiring {
        node_id: CABINET,
        phases: [2, 3, 1],
        line_to_line: false,
        unit: RateUnit::DeciAmpere,
        min_rate: 60,
        max_rate: 320,
        rate_step: 10,
    };
    assert_eq!(wiring.phase_map().unwrap(), 0x1e);
    let out = cpo.set_phase_wiring(c.id, &wiring).await.unwrap();
    eprintln!("setPhaseWiring: {} gas", out.tx().expect("mined").gas_used);
    assert_eq!(cpo.phase_wiring(c.id).await.unwrap(), Some(wiring.clone()));
    assert_eq!(
        cpo.set_phase_wiring(c.id, &wiring).await.unwrap(),
        WriteOutcome::AlreadyDone
    );
    // the charge point record is untouched
    assert_eq!(
        cpo.charge_point(c.id).await.unwrap().unwrap().charge_point,
        c
    );
    // an unknown charge point has no wiring
    let unknown = ChargePointId::try_from(999_u32).unwrap();
    assert_eq!(cpo.phase_wiring(unknown).await.unwrap(), None);

    // a 208 V pair in watts replaces it
    let pair = PhaseWiring {
        phases: [1, 2, 0],
        line_to_line: true,
        unit: RateUnit::Watt,
        min_rate: 1_250,
        max_rate: 6_650,
        rate_step: 208,
        ..wiring
    };
    cpo.set_phase_wiring(c.id, &pair).await.unwrap();
    assert_eq!(cpo.phase_wiring(c.id).await.unwrap(), Some(pair));
}

#[tokio::test]
async fn topology_rules_revert_decoded() {
    let t = TestChain::start().await;
    let cpo = t.cpo_admin().await;
    for n in [
        node(SITE, None, LimitNodeKind::Connection),
        node(TRAFO, Some(SITE), LimitNodeKind::Transformer),
        node(CABINET, Some(TRAFO), LimitNodeKind::Cabinet),
    ] {
        cpo.register_limit_node(&n).await.unwrap();
    }

    // unknown parent
    let err = cpo
        .register_limit_node(&node(5, Some(77), LimitNodeKind::Fuse))
        .await
        .unwrap_err();
    assert!(
        matches!(reverted_with(&err), AssetRegistryErrors::AssetRegistryUnknownParent(e)
            if e.nodeId == 5 && e.parentId == 77),
        "{err}"
    );
    // a root that is not a connection
    let err = cpo
        .register_limit_node(&node(5, None, LimitNodeKind::Cabinet))
        .await
        .unwrap_err();
    assert!(
        matches!(
            reverted_with(&err),
            AssetRegistryErrors::AssetRegistryBadRootKind(_)
        ),
        "{err}"
    );
    // moving the transformer under its own cabinet: a cycle
    let err = cpo
        .update_limit_node(&node(TRAFO, Some(CABINET), LimitNodeKind::Transformer))
        .await
        .unwrap_err();
    assert!(
        matches!(reverted_with(&err), AssetRegistryErrors::AssetRegistryLimitNodeCycle(e)
            if e.nodeId == TRAFO && e.parentId == CABINET),
        "{err}"
    );
    assert_eq!(
        err.contract_error().unwrap().name(),
        "AssetRegistryLimitNodeCycle"
    );
    // a node with active children stays
    let err = cpo.deactivate_limit_node(TRAFO).await.unwrap_err();
    assert!(
        matches!(reverted_with(&err), AssetRegistryErrors::AssetRegistryLimitNodeHasActiveChildren(e)
            if e.nodeId == TRAFO && e.activeChildren == 1),
        "{err}"
    );
    // leaves first, then the transformer
    cpo.deactivate_limit_node(CABINET).await.unwrap();
    cpo.deactivate_limit_node(TRAFO).await.unwrap();
    let read = cpo.limit_node(TRAFO).await.unwrap().unwrap();
    assert!(!read.active);
    assert_eq!(
        cpo.limit_node(SITE).await.unwrap().unwrap().active_children,
        0
    );
    // a deactivated node with the same values is a conflict for register, not "already done"
    assert!(matches!(
        cpo.register_limit_node(&read.node).await,
        Err(ChainError::AssetConflict { id: TRAFO, .. })
    ));

    // wiring: two charge-point phases on one node phase; a node phase above 3 never leaves
    let group = Group {
        id: 3,
        label: "Cabinet".into(),
        capacity_w: 22_000,
    };
    cpo.register_group(&group).await.unwrap();
    let c = cp(301, 3);
    cpo.register_charge_points(std::slice::from_ref(&c))
        .await
        .unwrap();
    let mut wiring = PhaseWiring {
        node_id: SITE,
        phases: [1, 1, 0],
        line_to_line: false,
        unit: RateUnit::DeciAmpere,
        min_rate: 60,
        max_rate: 160,
        rate_step: 1,
    };
    let err = cpo.set_phase_wiring(c.id, &wiring).await.unwrap_err();
    assert!(
        matches!(reverted_with(&err), AssetRegistryErrors::AssetRegistryBadPhaseMap(e)
            if e.phaseMap == 0b0101),
        "{err}"
    );
    wiring.phases = [1, 4, 0];
    assert!(matches!(
        cpo.set_phase_wiring(c.id, &wiring).await,
        Err(ChainError::Invalid(_))
    ));
    // a wiring to a deactivated node
    wiring.phases = [1, 0, 0];
    wiring.node_id = CABINET;
    let err = cpo.set_phase_wiring(c.id, &wiring).await.unwrap_err();
    assert!(
        matches!(reverted_with(&err), AssetRegistryErrors::AssetRegistryInactiveLimitNode(e)
            if e.nodeId == CABINET),
        "{err}"
    );
    // min above max
    wiring.node_id = SITE;
    wiring.min_rate = 200;
    let err = cpo.set_phase_wiring(c.id, &wiring).await.unwrap_err();
    assert!(
        matches!(
            reverted_with(&err),
            AssetRegistryErrors::AssetRegistryBadRateLimits(_)
        ),
        "{err}"
    );
}
