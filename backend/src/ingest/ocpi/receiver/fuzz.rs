//! A property run over the OCPI and meter-value parsers (issue 13): random and hostile values in
//! every field that evflex computes with (numbers from −10³⁰⁸ to 10³⁰⁸, NaN-like strings,
//! timestamps from year 0 to 9999, ids with control, non-ASCII and 4 000 characters). The
//! parsers never panic, and whatever they accept is within `domain::bounds`. The seed is fixed
//! so that CI runs the same cases every time.

use super::*;
use crate::domain::bounds::{ID_MAX_LEN, INSTANT_S, METER_REGISTER_WH, POWER_W, SESSION_ENERGY_WH};
use crate::ingest::Actor;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Cases each property accepted, so a test below can check the accepted path ran at all.
static ACCEPTED: [AtomicUsize; 4] = [const { AtomicUsize::new(0) }; 4];
use serde_json::json;

fn config() -> Config {
    Config {
        cases: 512,
        rng_seed: RngSeed::Fixed(0x0e7f_1e85),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Numbers a hostile or broken CPO may send.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        // Plausible values half of the time, so the accepted path is exercised too.
        8 => (0.0..100.0f64).prop_map(Value::from),
        1 => (-1e6..1e6f64).prop_map(Value::from),
        1 => prop::num::f64::ANY.prop_filter_map("finite", |x| x.is_finite().then(|| Value::from(x))),
        1 => Just(json!(1e308)),
        1 => Just(json!(-1e308)),
        1 => Just(json!(i64::MAX)),
        1 => Just(json!(i64::MIN)),
        1 => Just(json!(u64::MAX)),
        1 => Just(json!("12.5")),
        1 => Just(Value::Null),
    ]
}

/// Whole numbers (connector volts and amperes are integers in OCPI), with the extremes.
fn integer() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => (0i64..1_000).prop_map(Value::from),
        1 => Just(json!(i64::MAX)),
        1 => Just(json!(-1)),
        1 => number(),
    ]
}

/// Timestamps, well-formed or not.
fn instant() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (1_700_000_000i64..1_700_086_400).prop_map(|t| json!(crate::domain::format_rfc3339(t))),
        1 => (0i64..4_200_000_000).prop_map(|t| json!(crate::domain::format_rfc3339(t))),
        1 => Just(json!("0000-01-01T00:00:00Z")),
        1 => Just(json!("9999-12-31T23:59:59Z")),
        1 => Just(json!("2024-02-30T00:00:00Z")),
        1 => Just(json!("not a time")),
    ]
}

/// Ids: ordinary, long, or with characters OCPI does not allow.
fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Z0-9-]{1,36}",
        1 => "[A-Z]{37,60}",
        1 => Just("x".repeat(4_000)),
        1 => Just("a\u{0}b".to_owned()),
        1 => Just("\u{202e}evil".to_owned()),
        1 => Just("caf\u{e9}".to_owned()),
        1 => Just(String::new()),
        1 => ".{0,40}",
    ]
}

fn origin() -> Origin {
    Origin {
        country_code: "NL".into(),
        party_id: "EXA".into(),
        owner_party: 1,
    }
}

fn assert_id(value: &str) {
    assert!(
        value.len() <= ID_MAX_LEN && value.chars().all(|c| (' '..='~').contains(&c)),
        "{value:?}"
    );
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sessions_never_panic_and_what_is_accepted_is_in_bounds(
        kwh in number(), start in instant(), end in prop::option::of(instant()),
        cost in number(), session_id in id(), token in id(), connector in id(),
    ) {
        let body = json!({
            "country_code": "NL", "party_id": "EXA", "id": session_id,
            "start_date_time": start, "end_date_time": end, "kwh": kwh,
            "cdr_token": {"uid": token, "type": "RFID", "contract_id": "C"},
            "auth_method": "WHITELIST", "location_id": "LOC", "evse_uid": "E1",
            "connector_id": connector, "currency": "EUR", "status": "ACTIVE",
            "total_cost": {"excl_vat": cost}, "last_updated": "2024-05-01T10:00:00Z"
        });
        let Ok(s) = parse::<Session>(body.clone()) else { return Ok(()) };
        if let Ok(r) = session_record(&origin(), &s, body) {
            ACCEPTED[0].fetch_add(1, Ordering::Relaxed);
            prop_assert!(SESSION_ENERGY_WH.contains(&r.energy_wh));
            prop_assert!(INSTANT_S.contains(&r.start_ts));
            if let Some(end) = r.end_ts {
                prop_assert!(end >= r.start_ts && INSTANT_S.contains(&end));
            }
            for v in [&r.session_id, &r.token_uid, &r.connector_id] {
                assert_id(v);
            }
        }
    }

    #[test]
    fn cdrs_never_panic_and_what_is_accepted_is_in_bounds(
        energy in number(), time in number(), start in instant(), end in instant(),
        excl in number(), incl in number(), cdr_id in id(),
    ) {
        let body = json!({
            "country_code": "NL", "party_id": "EXA", "id": cdr_id,
            "start_date_time": start, "end_date_time": end,
            "cdr_token": {"uid": "CARD", "type": "RFID", "contract_id": "C"},
            "auth_method": "WHITELIST",
            "cdr_location": {"id": "LOC", "evse_uid": "E1", "evse_id": "X", "connector_id": "1"},
            "currency": "EUR", "charging_periods": [],
            "total_cost": {"excl_vat": excl, "incl_vat": incl},
            "total_energy": energy, "total_time": time, "last_updated": "2024-05-01T10:00:00Z"
        });
        let Ok(cdr) = parse::<Cdr>(body.clone()) else { return Ok(()) };
        if let Ok(r) = cdr_record(&cdr, 1, body) {
            ACCEPTED[1].fetch_add(1, Ordering::Relaxed);
            prop_assert!(SESSION_ENERGY_WH.contains(&r.energy_wh));
            prop_assert!(r.total_cost_excl_vat_micro_eur.is_some_and(|c| bounds::AMOUNT_MICRO_EUR.contains(&c)));
            prop_assert!(r.end_ts >= r.start_ts);
            assert_id(&r.cdr_id);
        }
    }

    #[test]
    fn connectors_never_panic_and_what_is_accepted_is_in_bounds(
        voltage in integer(), amperage in integer(), power in prop::option::of(integer()),
        connector_id in id(),
    ) {
        let body = json!({"id": connector_id, "standard": "IEC_62196_T2", "format": "SOCKET",
            "power_type": "AC_3_PHASE", "max_voltage": voltage, "max_amperage": amperage,
            "max_electric_power": power});
        let Ok(c) = parse::<Connector>(body) else { return Ok(()) };
        if check_connector(&c, "").is_ok() {
            ACCEPTED[2].fetch_add(1, Ordering::Relaxed);
            prop_assert!(c.rated_power_w().is_none_or(|w| POWER_W.contains(&w)));
            assert_id(&c.id);
        }
    }

    #[test]
    fn meter_values_never_panic_and_what_is_accepted_is_in_bounds(
        energy in number(), power in number(), soc in number(), ts in instant(), uid in id(),
    ) {
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let body = json!({"meter_values": [{"evse_uid": uid, "meterValue": [{
            "timestamp": ts, "sampledValue": [
                {"value": text(&energy), "unit": "kWh"},
                {"measurand": "Power.Active.Import", "value": text(&power), "unit": "W"},
                {"measurand": "SoC", "value": text(&soc), "unit": "Percent"}]}]}]});
        if let Ok(readings) = crate::ingest::meter::readings(body, Actor::Operator, "NL", "EXA") {
            ACCEPTED[3].fetch_add(1, Ordering::Relaxed);
            for r in readings {
                prop_assert!(r.energy_wh.is_none_or(|e| METER_REGISTER_WH.contains(&e)));
                prop_assert!(r.power_w.is_none_or(|p| POWER_W.contains(&p)));
                prop_assert!(r.soc_permille.is_none_or(|s| (0..=1_000).contains(&s)));
                prop_assert!(INSTANT_S.contains(&r.ts));
                assert_id(&r.evse_uid);
            }
        }
    }
}

/// The properties above reached their accepted path, not only the refusals.
#[test]
fn the_properties_accept_plausible_values_too() {
    sessions_never_panic_and_what_is_accepted_is_in_bounds();
    cdrs_never_panic_and_what_is_accepted_is_in_bounds();
    connectors_never_panic_and_what_is_accepted_is_in_bounds();
    meter_values_never_panic_and_what_is_accepted_is_in_bounds();
    for (i, n) in ACCEPTED.iter().enumerate() {
        assert!(
            n.load(Ordering::Relaxed) > 0,
            "property {i} accepted no case"
        );
    }
}
