//! The OCPI versions evflex speaks, side by side: 2.2.1 and 2.3.0.
//!
//! Both are served at once (`/ocpi/2.2.1/…` and `/ocpi/2.3.0/…`, listed by `GET /ocpi/versions`)
//! and the credentials handshake picks the highest version both sides offer
//! ([`OcpiVersion::highest_common`]); the chosen one is stored with the party and names the
//! URLs evflex gives that party (`response_url`s).
//!
//! One internal model: what differs on the wire is mapped at the edge, before the receiver
//! parses an object ([`to_internal`]). The differences that matter to a receiver of
//! Locations, Sessions, CDRs and ChargingProfiles (docs/ocpi-2.3.0.md has the digest of the
//! 2.3.0 specification they come from, with its sources):
//!
//! - `Price` (a session's `total_cost`, a CDR's `total_cost` and `total_*_cost`): 2.2.1 has
//!   `{excl_vat, incl_vat?}`, 2.3.0 `{before_taxes, taxes?: [TaxAmount]}` with
//!   `TaxAmount {name, amount, percentage?, account_number?}`. Mapped as `excl_vat =
//!   before_taxes` and `incl_vat = before_taxes + Σ taxes[].amount` (summed in micro-units, so
//!   no float drift). Decision: `taxes` absent means the taxes are not known (`incl_vat`
//!   absent, as a 2.2.1 price without `incl_vat`); `taxes: []` means none apply (`incl_vat =
//!   excl_vat`). The original body is kept as received.
//! - Tariffs' `min_price`/`max_price` are a `PriceLimit {before_taxes, after_taxes?}` in 2.3.0:
//!   mapped to `{excl_vat, incl_vat}` the same way. A 2.3.0 Tariff's `tax_included` says
//!   whether its component prices include tax; they are brought to the internal excl.-VAT
//!   prices (see `tariff_prices_to_internal`).
//! - New enum values (TokenType `EMAID`, roles, connector standards such as `MCS` and
//!   `SAE_J3400`) and new optional fields are accepted by the shared model (open enums; unknown
//!   fields are ignored), as 2.3.0 requires of receivers.
//! - Transport, status codes, ChargingProfiles and the handshake itself are unchanged.

use serde_json::Value;

/// An OCPI version evflex speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OcpiVersion {
    /// OCPI 2.2.1.
    V221,
    /// OCPI 2.3.0.
    V230,
}

impl OcpiVersion {
    /// Every version evflex speaks, newest first (the order of `GET /ocpi/versions`).
    pub const ALL: [Self; 2] = [Self::V230, Self::V221];

    /// The version number as OCPI writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V221 => "2.2.1",
            Self::V230 => "2.3.0",
        }
    }

    /// The version a version number names, if evflex speaks it.
    pub fn parse(number: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == number.trim())
    }

    /// The highest version among `offered` that evflex speaks too.
    pub fn highest_common<'a>(offered: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        offered.into_iter().filter_map(Self::parse).max()
    }

    /// The version a stored party uses (2.2.1 for a party stored before versions were
    /// negotiated).
    pub fn of_party(version: Option<&str>) -> Self {
        version.and_then(Self::parse).unwrap_or(Self::V221)
    }
}

impl std::fmt::Display for OcpiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `Price` fields of a Session or CDR.
const PRICE_FIELDS: [&str; 6] = [
    "total_cost",
    "total_fixed_cost",
    "total_energy_cost",
    "total_time_cost",
    "total_parking_cost",
    "total_reservation_cost",
];

/// An object `version` puts on the wire, in the internal (2.2.1-shaped) model: for 2.3.0, its
/// `Price`s and `PriceLimit`s become `{excl_vat, incl_vat}` (see the module doc). A field that
/// is not a well-formed 2.3.0 price is left as it is, for the receiver to name it in its
/// refusal. Objects of 2.2.1 are returned unchanged.
pub fn to_internal(version: OcpiVersion, mut object: Value) -> Value {
    if version == OcpiVersion::V221 {
        return object;
    }
    if let Some(map) = object.as_object_mut() {
        for field in PRICE_FIELDS {
            if let Some(price) = map.get_mut(field) {
                price_to_internal(price, "taxes");
            }
        }
        for field in ["min_price", "max_price"] {
            if let Some(limit) = map.get_mut(field) {
                price_to_internal(limit, "after_taxes");
            }
        }
        tariff_prices_to_internal(map);
        // A CDR carries the Tariffs it was priced with.
        if let Some(Value::Array(tariffs)) = map.get_mut("tariffs") {
            for tariff in tariffs {
                *tariff = to_internal(version, tariff.take());
            }
        }
    }
    object
}

/// A 2.3.0 Tariff's `tax_included` says whether its `price_components[].price` include tax;
/// the internal model (2.2.1's) prices exclude VAT and name it in `vat`. So: `NO` leaves them;
/// `YES` with a `vat` divides it out; `YES` without a rate (taxes not known per component, as in
/// North America) and `N/A` (no tax applies) keep the price as what the driver pays and drop
/// `vat`, so nothing is added on top. A Tariff without `tax_included` is left as it is.
fn tariff_prices_to_internal(tariff: &mut serde_json::Map<String, Value>) {
    let included = match tariff.get("tax_included").and_then(Value::as_str) {
        Some("YES") => true,
        Some("N/A") => false,
        _ => return,
    };
    let Some(Value::Array(elements)) = tariff.get_mut("elements") else {
        return;
    };
    for element in elements {
        let Some(Value::Array(components)) = element.get_mut("price_components") else {
            continue;
        };
        for component in components.iter_mut().filter_map(Value::as_object_mut) {
            let vat = component.get("vat").and_then(Value::as_f64);
            let price = component.get("price").and_then(Value::as_f64);
            match (included, price, vat) {
                (true, Some(price), Some(vat)) if vat > -100.0 => {
                    let excl = (price / (1.0 + vat / 100.0) * 1e9).round() / 1e9;
                    component.insert("price".to_owned(), excl.into());
                }
                _ => {
                    component.remove("vat");
                }
            }
        }
    }
}

/// Rewrites one 2.3.0 `Price` (`taxes`) or `PriceLimit` (`after_taxes`) in place.
fn price_to_internal(price: &mut Value, taxes_field: &str) {
    let Some(map) = price.as_object() else {
        return;
    };
    let Some(before) = map.get("before_taxes").and_then(Value::as_f64) else {
        return;
    };
    let incl = match map.get(taxes_field) {
        None | Some(Value::Null) => None,
        Some(Value::Number(after)) => after.as_f64(),
        Some(Value::Array(taxes)) => {
            let mut micro = to_micro(before);
            for tax in taxes {
                match tax.get("amount").and_then(Value::as_f64) {
                    Some(amount) => micro = micro.saturating_add(to_micro(amount)),
                    // Not a TaxAmount: leave the price for the receiver to refuse.
                    None => return,
                }
            }
            Some(micro as f64 / 1e6)
        }
        Some(_) => return,
    };
    let mut internal = serde_json::Map::new();
    internal.insert("excl_vat".to_owned(), before.into());
    if let Some(incl) = incl {
        internal.insert("incl_vat".to_owned(), incl.into());
    }
    *price = Value::Object(internal);
}

fn to_micro(amount: f64) -> i64 {
    (amount * 1e6).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_highest_common_version_is_chosen() {
        assert_eq!(
            OcpiVersion::highest_common(["2.1.1", "2.2.1", "2.3.0"]),
            Some(OcpiVersion::V230)
        );
        assert_eq!(
            OcpiVersion::highest_common(["2.2.1", "2.1.1"]),
            Some(OcpiVersion::V221)
        );
        assert_eq!(OcpiVersion::highest_common(["2.1.1", "3.0"]), None);
        assert_eq!(OcpiVersion::of_party(None), OcpiVersion::V221);
        assert_eq!(OcpiVersion::of_party(Some("2.3.0")), OcpiVersion::V230);
    }

    #[test]
    fn a_2_3_0_price_becomes_excl_and_incl_vat() {
        // The CDR example of the 2.3.0 specification (examples/cdr_example.json).
        let cdr = json!({
            "total_cost": {"before_taxes": 4.00, "taxes": [{"name": "VAT", "amount": 0.84}]},
            "total_energy_cost": {"before_taxes": 2.0,
                "taxes": [{"name": "GST", "amount": 0.1}, {"name": "QST", "amount": 0.2}]},
            "total_time_cost": {"before_taxes": 1.0, "taxes": []},
            "total_parking_cost": {"before_taxes": 0.5},
            "tariffs": [{"id": "12", "min_price": {"before_taxes": 1.0, "after_taxes": 1.21}}]
        });
        let internal = to_internal(OcpiVersion::V230, cdr);
        assert_eq!(
            internal["total_cost"],
            json!({"excl_vat": 4.0, "incl_vat": 4.84})
        );
        assert_eq!(
            internal["total_energy_cost"],
            json!({"excl_vat": 2.0, "incl_vat": 2.3})
        );
        assert_eq!(
            internal["total_time_cost"],
            json!({"excl_vat": 1.0, "incl_vat": 1.0})
        );
        assert_eq!(internal["total_parking_cost"], json!({"excl_vat": 0.5}));
        assert_eq!(
            internal["tariffs"][0]["min_price"],
            json!({"excl_vat": 1.0, "incl_vat": 1.21})
        );
    }

    #[test]
    fn a_2_3_0_tariff_with_tax_included_prices_excluding_vat() {
        let tariff = |tax_included: &str| {
            json!({"currency": "EUR", "tax_included": tax_included, "elements": [{"price_components": [
                {"type": "ENERGY", "price": 0.35, "vat": 25.0, "step_size": 1},
                {"type": "FLAT", "price": 1.0, "step_size": 1}]}]})
        };
        let components = |t: &Value| t["elements"][0]["price_components"].clone();
        let yes = to_internal(OcpiVersion::V230, tariff("YES"));
        assert_eq!(
            components(&yes),
            json!([{"type": "ENERGY", "price": 0.28, "vat": 25.0, "step_size": 1},
                   {"type": "FLAT", "price": 1.0, "step_size": 1}])
        );
        let no = to_internal(OcpiVersion::V230, tariff("NO"));
        assert_eq!(components(&no), components(&tariff("NO")));
        let none = to_internal(OcpiVersion::V230, tariff("N/A"));
        assert_eq!(
            components(&none),
            json!([{"type": "ENERGY", "price": 0.35, "step_size": 1},
                   {"type": "FLAT", "price": 1.0, "step_size": 1}])
        );
        // Embedded in a CDR, too.
        let cdr = to_internal(OcpiVersion::V230, json!({"tariffs": [tariff("YES")]}));
        assert_eq!(
            cdr["tariffs"][0]["elements"][0]["price_components"][0]["price"],
            0.28
        );
    }

    #[test]
    fn objects_of_2_2_1_and_malformed_prices_are_left_alone() {
        let v221 = json!({"total_cost": {"excl_vat": 1.0}});
        assert_eq!(to_internal(OcpiVersion::V221, v221.clone()), v221);
        let odd = json!({"total_cost": {"before_taxes": 1.0, "taxes": [{"name": "VAT"}]}});
        assert_eq!(to_internal(OcpiVersion::V230, odd.clone()), odd);
        let text = json!({"total_cost": "4 EUR"});
        assert_eq!(to_internal(OcpiVersion::V230, text.clone()), text);
    }
}
