//! The Tariffs receiver interface (evflex as eMSP): a CPO pushes its tariffs (`PUT`), removes
//! them (`DELETE`) and checks what evflex holds (`GET`), always under its own party codes.
//! Billing prices a CDR that comes without `total_cost` with the tariff it names
//! (`billing::tariff`).

use super::model::{Price, Tariff, TariffDimensionType, TariffRestrictions, parse};
use super::receiver::Origin;
use crate::domain::bounds;
use crate::ingest::{IngestError, IngestResult, Written};
use crate::store::Db;
use crate::store::tariffs::{self, TariffRecord};
use serde_json::Value;

/// The largest VAT percentage accepted.
const VAT_PERCENT_MAX: f64 = 100.0;
/// The largest current a restriction may name (A, summed over three phases).
const RESTRICTION_CURRENT_A_MAX: i64 = 3 * *bounds::CURRENT_A.end();

fn invalid(field: String) -> IngestError {
    IngestError::Invalid(field)
}

/// An amount (a price per unit or a total) in micro-units within [`bounds::AMOUNT_MICRO_EUR`].
fn amount(field: &str, value: f64) -> Result<i64, String> {
    bounds::scaled_within(
        field,
        value,
        1_000_000.0,
        &bounds::AMOUNT_MICRO_EUR,
        "currency units",
    )
}

fn price(field: &str, p: &Price) -> Result<(), String> {
    amount(&format!("{field}.excl_vat"), p.excl_vat)?;
    if let Some(incl) = p.incl_vat {
        amount(&format!("{field}.incl_vat"), incl)?;
    }
    Ok(())
}

/// `HH:MM`, 24 h with leading zeros, as the OCPI regex `([0-1][0-9]|2[0-3]):[0-5][0-9]` says.
pub fn parse_time_of_day(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// `YYYY-MM-DD`, as the OCPI regex says (a real calendar date).
pub fn parse_date(text: &str) -> Option<(i32, u8, u8)> {
    let mut parts = text.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d): (i32, u8, u8) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let month = time::Month::try_from(m).ok()?;
    time::Date::from_calendar_date(y, month, d).ok()?;
    Some((y, m, d))
}

fn restrictions(at: &str, r: &TariffRestrictions) -> Result<(), String> {
    for (field, value) in [("start_time", &r.start_time), ("end_time", &r.end_time)] {
        if let Some(v) = value
            && parse_time_of_day(v).is_none()
        {
            return Err(format!("{at}{field}: {v:?} is not a time of day (HH:MM)"));
        }
    }
    for (field, value) in [("start_date", &r.start_date), ("end_date", &r.end_date)] {
        if let Some(v) = value
            && parse_date(v).is_none()
        {
            return Err(format!("{at}{field}: {v:?} is not a date (YYYY-MM-DD)"));
        }
    }
    for (field, value) in [("min_kwh", r.min_kwh), ("max_kwh", r.max_kwh)] {
        if let Some(v) = value {
            bounds::scaled_within(
                &format!("{at}{field}"),
                v,
                1_000.0,
                &bounds::SESSION_ENERGY_WH,
                "kWh",
            )?;
        }
    }
    for (field, value) in [("min_power", r.min_power), ("max_power", r.max_power)] {
        if let Some(v) = value {
            bounds::scaled_within(&format!("{at}{field}"), v, 1_000.0, &bounds::POWER_W, "kW")?;
        }
    }
    for (field, value) in [
        ("min_current", r.min_current),
        ("max_current", r.max_current),
    ] {
        if let Some(v) = value {
            bounds::scaled_within(
                &format!("{at}{field}"),
                v,
                1.0,
                &(0..=RESTRICTION_CURRENT_A_MAX),
                "A",
            )?;
        }
    }
    for (field, value) in [
        ("min_duration", r.min_duration),
        ("max_duration", r.max_duration),
    ] {
        if let Some(v) = value {
            bounds::within(&format!("{at}{field}"), v, &bounds::DURATION_S, "s")?;
        }
    }
    Ok(())
}

/// A tariff within what tariffs hold: ids OCPI ids, a three-letter currency, at least one
/// element with at least one price component, prices and totals within
/// [`bounds::AMOUNT_MICRO_EUR`], VAT 0–100 %, a `step_size` of at least 1 and no more than a
/// session holds, restrictions well-formed and within the physical bounds. `at` prefixes every
/// field name (`tariffs[0].` inside a CDR). Pure: the CDR receiver checks embedded tariffs too.
pub fn check_tariff(t: &Tariff, at: &str) -> Result<(), String> {
    bounds::id(&format!("{at}id"), &t.id, bounds::ID_MAX_LEN)?;
    if t.currency.len() != 3 || !t.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "{at}currency: {:?} is not an ISO 4217 code",
            t.currency
        ));
    }
    if t.elements.is_empty() {
        return Err(format!("{at}elements: a tariff needs at least one element"));
    }
    for (field, p) in [("min_price", &t.min_price), ("max_price", &t.max_price)] {
        if let Some(p) = p {
            price(&format!("{at}{field}"), p)?;
        }
    }
    for (field, value) in [
        ("start_date_time", t.start_date_time),
        ("end_date_time", t.end_date_time),
    ] {
        if let Some(v) = value {
            bounds::instant(&format!("{at}{field}"), v.0)?;
        }
    }
    for (i, e) in t.elements.iter().enumerate() {
        let at = format!("{at}elements[{i}].");
        if e.price_components.is_empty() {
            return Err(format!(
                "{at}price_components: an element needs at least one price component"
            ));
        }
        for (j, c) in e.price_components.iter().enumerate() {
            let at = format!("{at}price_components[{j}].");
            amount(&format!("{at}price"), c.price)?;
            if let Some(vat) = c.vat
                && !(0.0..=VAT_PERCENT_MAX).contains(&vat)
            {
                return Err(format!("{at}vat: {vat} is outside 0..=100 %"));
            }
            // A step is 1 Wh or 1 s: at least one, at most what one session holds (FLAT has no
            // unit; its step_size means nothing).
            let most = match c.dimension {
                TariffDimensionType::Energy => Some(*bounds::SESSION_ENERGY_WH.end()),
                TariffDimensionType::Time | TariffDimensionType::ParkingTime => {
                    Some(*bounds::DURATION_S.end())
                }
                TariffDimensionType::Flat => None,
            };
            if let Some(most) = most {
                bounds::within(&format!("{at}step_size"), c.step_size, &(1..=most), "steps")?;
            }
        }
        if let Some(r) = &e.restrictions {
            restrictions(&format!("{at}restrictions."), r)?;
        }
    }
    Ok(())
}

/// `PUT /tariffs/{cc}/{party}/{tariff_id}`: a whole Tariff, new (201) or replacing the stored
/// one (200). The body's party codes and id must be the URL's.
#[tracing::instrument(skip_all, fields(tariff = tariff_id))]
pub async fn put_tariff(
    db: &Db,
    origin: &Origin,
    tariff_id: &str,
    body: Value,
) -> IngestResult<Written> {
    if !body.is_object() {
        return Err(invalid("body: a Tariff must be a JSON object".to_owned()));
    }
    let t: Tariff = parse(body.clone()).map_err(IngestError::Invalid)?;
    for (field, in_body, in_url) in [
        (
            "country_code",
            t.country_code.as_str(),
            origin.country_code.as_str(),
        ),
        ("party_id", t.party_id.as_str(), origin.party_id.as_str()),
        ("id", t.id.as_str(), tariff_id),
    ] {
        if !in_body.eq_ignore_ascii_case(in_url) || (field == "id" && in_body != in_url) {
            return Err(invalid(format!(
                "{field}: {in_body:?} does not match the URL ({in_url:?})"
            )));
        }
    }
    check_tariff(&t, "").map_err(IngestError::Invalid)?;
    bounds::instant("last_updated", t.last_updated.0).map_err(IngestError::Invalid)?;
    let mut tx = db.begin().await?;
    let created = tariffs::upsert(
        &mut tx,
        &TariffRecord {
            country_code: origin.country_code.clone(),
            party_id: origin.party_id.clone(),
            tariff_id: tariff_id.to_owned(),
            owner_party: Some(origin.owner_party),
            currency: t.currency.clone(),
            body,
            last_updated: t.last_updated.0,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Written::new_if(!created))
}

/// `GET /tariffs/{cc}/{party}/{tariff_id}`: the tariff as evflex holds it.
pub async fn get_tariff(db: &Db, origin: &Origin, tariff_id: &str) -> IngestResult<Value> {
    let mut conn = db.conn().await?;
    tariffs::get(&mut conn, &origin.country_code, &origin.party_id, tariff_id)
        .await?
        .map(|t| t.body)
        .ok_or_else(|| IngestError::NotFound(format!("unknown tariff {tariff_id}")))
}

/// `DELETE /tariffs/{cc}/{party}/{tariff_id}`: the tariff is no longer used. CDRs billed with
/// it keep their bills; a later CDR that names it is billed with the next price source.
pub async fn delete_tariff(db: &Db, origin: &Origin, tariff_id: &str) -> IngestResult<()> {
    let mut conn = db.conn().await?;
    if tariffs::delete(&mut conn, &origin.country_code, &origin.party_id, tariff_id).await? {
        Ok(())
    } else {
        Err(IngestError::NotFound(format!("unknown tariff {tariff_id}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tariff(v: Value) -> Tariff {
        parse(v).unwrap()
    }

    fn simple() -> Value {
        json!({"country_code": "DE", "party_id": "ALL", "id": "16", "currency": "EUR",
            "elements": [{"price_components": [
                {"type": "ENERGY", "price": 0.25, "vat": 10.0, "step_size": 1}]}],
            "last_updated": "2018-12-17T11:16:55Z"})
    }

    #[test]
    fn the_spec_example_is_accepted() {
        assert_eq!(check_tariff(&tariff(simple()), ""), Ok(()));
    }

    #[test]
    fn errors_name_the_field() {
        let mut v = simple();
        v["elements"][0]["price_components"][0]["price"] = json!(1e12);
        let e = check_tariff(&tariff(v), "").unwrap_err();
        assert!(
            e.starts_with("elements[0].price_components[0].price:"),
            "{e}"
        );
        let mut v = simple();
        v["elements"][0]["price_components"][0]["step_size"] = json!(0);
        let e = check_tariff(&tariff(v), "tariffs[0].").unwrap_err();
        assert!(
            e.starts_with("tariffs[0].elements[0].price_components[0].step_size:"),
            "{e}"
        );
        let mut v = simple();
        v["elements"][0]["restrictions"] = json!({"start_time": "25:00"});
        let e = check_tariff(&tariff(v), "").unwrap_err();
        assert!(e.starts_with("elements[0].restrictions.start_time:"), "{e}");
        let mut v = simple();
        v["currency"] = json!("euro");
        assert!(
            check_tariff(&tariff(v), "")
                .unwrap_err()
                .starts_with("currency:")
        );
        let mut v = simple();
        v["elements"][0]["price_components"][0]["vat"] = json!(250.0);
        assert!(check_tariff(&tariff(v), "").unwrap_err().contains(".vat:"));
        let mut v = simple();
        v["elements"] = json!([]);
        assert!(
            check_tariff(&tariff(v), "")
                .unwrap_err()
                .starts_with("elements:")
        );
    }

    #[test]
    fn times_and_dates_follow_the_ocpi_patterns() {
        assert_eq!(parse_time_of_day("00:00"), Some(0));
        assert_eq!(parse_time_of_day("23:59"), Some(23 * 60 + 59));
        for bad in ["24:00", "9:00", "09:60", "0900", "09:00:00", ""] {
            assert_eq!(parse_time_of_day(bad), None, "{bad}");
        }
        assert_eq!(parse_date("2015-12-24"), Some((2015, 12, 24)));
        for bad in ["2015-02-30", "15-12-24", "2015-12-24T00", "2015/12/24"] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }
}
