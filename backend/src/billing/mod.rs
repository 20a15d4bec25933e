//! Billing: a CDR becomes a bill, signed by the CPO's meter key (EIP-712) and settled on chain
//! (EnergyBilling moves the cost from the user to the CPO and mints FLEX for the flexibility the
//! user gave). Owns `bills` (through [`crate::store::bills`]).
//!
//! # Price sources
//!
//! A bill's price comes from one of three sources, tried in this order; the bill records which
//! one it used (`bills.price_source`, shown in the settlement lists and the demo summary):
//!
//! 1. **`cdr_total_cost`**: the CDR's `total_cost`, when it has one. The driver pays VAT, so the
//!    bill charges `incl_vat`, or `excl_vat` when the CPO gave no `incl_vat` (then no VAT is
//!    known to apply). This is the CPO's own figure for the session, as OCPI intends.
//! 2. **`tariff`**: without a `total_cost`, the OCPI Tariff the CDR or its session names, priced
//!    by [`tariff::price_session`] from the CDR's charging periods (incl. VAT, as above). Where
//!    the name comes from, first found: a tariff embedded in the CDR's `tariffs` (the one its
//!    charging periods name, else the first); a `tariff_id` of the CDR's charging periods; one
//!    of the session's charging periods; the `tariff_ids` of the CDR's connector. Named tariffs
//!    are those the CPO pushed to the Tariffs receiver (`store::tariffs`). A tariff that is not
//!    valid at the session's start is skipped.
//! 3. **`flat`**: the operator's flat tariff (`EVFLEX_CPO_TARIFF`, micro-EUR per kWh), the last
//!    resort when neither of the above exists.
//!
//! On chain a bill is energy × price per kWh (EnergyBilling's formula), so a total from 1 or 2
//! becomes an effective price: total × 1 000 / energy (micro-EUR per kWh), rounded down; the
//! cost the contract charges is then below the total by less than one micro-EUR per kWh
//! (0.001 cent per kWh), in the driver's favour, as the contract rounds. A bill without energy
//! charges nothing.
//!
//! **Currency.** Settlement is in the payment token, a euro token (1 unit = 1 micro-EUR). A CDR
//! in another currency, or a tariff in another currency, is not converted: its bill is
//! `unbillable` with the reason stored (`bills.status_reason`, e.g. "CDR currency USD does not
//! match the payment token (EUR)") and is never signed or settled.
//!
//! When a CDR arrives, [`enqueue_settlement`] runs inside the receiver's transaction: it
//! computes the bill with [`bill_for_session`], signs it, stores the bill row and enqueues the
//! `settlement` outbox work ([`SettlementWork`]) carrying the signed bill, all in that one
//! transaction. Without a chain the work carries the CDR's facts only (the "no chain
//! configured" policy of `evflex_chain::work`).
//!
//! # The rules (all in [`bill_for_session`] and [`flexibility_reward_wh`])
//!
//! - **Energy**: the CDR's `total_energy` (kWh → Wh) is billed. It is cross-checked with the
//!   meter register (last minus first `Energy.Active.Import.Register` reading over the session);
//!   a difference is recorded on the bill (`energy_discrepancy_wh`) and logged when it exceeds
//!   max(100 Wh, 2 %). The CDR wins because it is the CPO's billing record under OCPI (meter
//!   values may be sparse, missing or cut at the session edges), and it is what the CPO's meter
//!   key signs.
//! - **Price** (micro-EUR per kWh): from the price sources above ([`bill_price`]).
//! - **Credit** (`creditWh`): the shortfall of an accepted charging request, i.e. requested
//!   energy minus energy delivered since the request, floored at 0 and capped at the billed
//!   energy; with `--compensation free-kwh` (default) it is billed as free energy, with `none` it
//!   is 0 (the shortfall is still recorded).
//! - **Flexibility** (`flexibilityWh`): [`flexibility_reward_wh`]: for an opted-in user, the
//!   energy the optimiser moved away from the user's uncontrolled profile as stored on the
//!   session by the last tick that planned it (each tick re-plans the whole remaining horizon,
//!   so summing the per-tick figures would count the same shifted energy several times), capped
//!   at the billed energy; 0 for a user who did not opt in.
//! - **Cost** = (energy − credit) × price / 1000 (micro-EUR; exactly the contract's formula).
//! - **Counterfactual**: `uncontrolled_cost` = cost of the same energy charged uncontrolled and
//!   without compensation = energy × price / 1000 + the flexibility value at the price signal
//!   (what the optimiser saved against the uncontrolled profile); `saving` = uncontrolled cost −
//!   cost.

pub mod flexibility;
pub mod signer;
pub mod tariff;

use crate::chain::{ChainContext, Compensation};
use crate::ingest::ocpi::model::{Tariff, parse};
use crate::store::bills::{self, BillRow};
use crate::store::outbox;
use crate::store::{
    Conn, StoreError, StoreResult, locations, meter, requests, sessions, tariffs, users, wallets,
};
use alloy::primitives::{Address, B256, keccak256};
use evflex_chain::Bill;
use evflex_chain::wallet::eip712::{billing_domain, sign_bill};
use evflex_chain::work::{CdrFacts, ChainWork, SettlementWork, SignedBill};

/// What [`bill_for_session`] needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BillInputs {
    /// CDR `total_energy` (Wh).
    pub cdr_energy_wh: i64,
    /// Energy from the meter register (Wh), when known.
    pub meter_energy_wh: Option<i64>,
    /// Tariff (micro-EUR per kWh).
    pub price_micro_eur_per_kwh: i64,
    /// The accepted request, if any: (requested Wh, session energy when requested Wh).
    pub accepted_request: Option<(i64, i64)>,
    /// Whether the user opted into smart charging.
    pub opted_in: bool,
    /// Energy the optimiser shifted for this session (Wh).
    pub shifted_wh: i64,
    /// Value of that shift at the price signal (micro-EUR).
    pub shifted_value_micro_eur: i64,
    /// Shortfall compensation.
    pub compensation: Compensation,
}

/// The bill's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BillFigures {
    /// Billed energy (Wh).
    pub energy_wh: i64,
    /// CDR minus meter energy (Wh; 0 without meter readings).
    pub energy_discrepancy_wh: i64,
    /// Whether the discrepancy exceeds max(100 Wh, 2 %).
    pub discrepancy_significant: bool,
    /// Shortfall of the accepted request (Wh).
    pub shortfall_wh: i64,
    /// Credited energy (Wh).
    pub credit_wh: i64,
    /// Rewarded flexibility (Wh).
    pub flexibility_wh: i64,
    /// Cost (micro-EUR).
    pub cost_micro_eur: i64,
    /// Uncontrolled counterfactual cost (micro-EUR).
    pub uncontrolled_cost_micro_eur: i64,
    /// Saving (micro-EUR).
    pub saving_micro_eur: i64,
}

/// The flexibility reward of a session (Wh): the shifted energy for an opted-in user, capped at
/// the billed energy; 0 for a user who did not opt in.
pub fn flexibility_reward_wh(opted_in: bool, shifted_wh: i64, energy_wh: i64) -> i64 {
    if opted_in {
        shifted_wh.clamp(0, energy_wh.max(0))
    } else {
        0
    }
}

/// `wh` at `price` micro-EUR per kWh, in micro-EUR: the product in `i128`, so it cannot wrap.
/// Ingestion bounds energy and prices (`domain::bounds`) so that the result always fits; the
/// clamp only makes that a saturation rather than a wrap if it ever did not.
fn per_kwh(wh: i64, price_micro_eur_per_kwh: i64) -> i64 {
    let micro = i128::from(wh) * i128::from(price_micro_eur_per_kwh) / 1_000;
    micro.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// Computes a session's bill (the rules are in the module docs).
pub fn bill_for_session(i: &BillInputs) -> BillFigures {
    let energy_wh = i.cdr_energy_wh.max(0);
    let energy_discrepancy_wh = i.meter_energy_wh.map_or(0, |m| energy_wh - m);
    let threshold = (energy_wh / 50).max(100);
    let shortfall_wh = i
        .accepted_request
        .map_or(0, |(requested, at_request)| {
            (requested - (energy_wh - at_request).max(0)).max(0)
        })
        .min(energy_wh);
    let credit_wh = match i.compensation {
        Compensation::FreeKwh => shortfall_wh,
        Compensation::None => 0,
    };
    let flexibility_wh = flexibility_reward_wh(i.opted_in, i.shifted_wh, energy_wh);
    let price = i.price_micro_eur_per_kwh.max(0);
    let cost_micro_eur = per_kwh(energy_wh - credit_wh, price);
    let value = if i.opted_in {
        i.shifted_value_micro_eur.max(0)
    } else {
        0
    };
    let uncontrolled_cost_micro_eur = per_kwh(energy_wh, price).saturating_add(value);
    BillFigures {
        energy_wh,
        energy_discrepancy_wh,
        discrepancy_significant: energy_discrepancy_wh.abs() > threshold,
        shortfall_wh,
        credit_wh,
        flexibility_wh,
        cost_micro_eur,
        uncontrolled_cost_micro_eur,
        saving_micro_eur: uncontrolled_cost_micro_eur.saturating_sub(cost_micro_eur),
    }
}

/// The currency of the payment token bills are settled in.
pub const PAYMENT_CURRENCY: &str = "EUR";

/// Where a bill's price came from (module docs, "Price sources").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceSource {
    /// The CDR's `total_cost`.
    CdrTotalCost,
    /// The OCPI tariff the CDR or its session names.
    Tariff,
    /// The operator's flat tariff (`EVFLEX_CPO_TARIFF`).
    Flat,
}

impl PriceSource {
    /// The name stored in `bills.price_source`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CdrTotalCost => "cdr_total_cost",
            Self::Tariff => "tariff",
            Self::Flat => "flat",
        }
    }
}

/// A named tariff's price for the session, as [`bill_price`] weighs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TariffQuote {
    /// Tariff id.
    pub tariff_id: String,
    /// Its currency.
    pub currency: String,
    /// The session's price under it, or why it could not price it.
    pub cost: Result<tariff::TariffCost, tariff::TariffError>,
}

/// A bill's price: its source, the currency it was stated in, the price per kWh the bill
/// charges, and, when the bill cannot be settled, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillPrice {
    /// Where it came from.
    pub source: PriceSource,
    /// The currency it was stated in.
    pub currency: String,
    /// Micro-EUR per kWh.
    pub price_micro_eur_per_kwh: i64,
    /// Why the bill is refused (a currency other than the payment token's).
    pub refused: Option<String>,
}

/// A total (micro-units) as a price per kWh of `energy_wh`, rounded down (module docs).
pub fn effective_price_per_kwh(total_micro: i64, energy_wh: i64) -> i64 {
    if energy_wh <= 0 {
        return 0;
    }
    let p = i128::from(total_micro.max(0)) * 1_000 / i128::from(energy_wh);
    i64::try_from(p).unwrap_or(i64::MAX)
}

/// Chooses a bill's price from the three sources (module docs, "Price sources"): the CDR's
/// `total_cost` (excl. VAT, incl. VAT when given) in `cdr_currency`; else a named tariff's
/// quote, unless it failed; else the flat tariff. Refuses (with the reason) a CDR or tariff
/// currency other than [`PAYMENT_CURRENCY`]. Pure.
pub fn bill_price(
    energy_wh: i64,
    total_cost: Option<(i64, Option<i64>)>,
    cdr_currency: &str,
    quote: Option<&TariffQuote>,
    flat_micro_eur_per_kwh: i64,
) -> BillPrice {
    let refuse = |source: PriceSource, currency: &str, reason: String| BillPrice {
        source,
        currency: currency.to_owned(),
        price_micro_eur_per_kwh: 0,
        refused: Some(reason),
    };
    let priced = |source: PriceSource, currency: &str, price: i64| BillPrice {
        source,
        currency: currency.to_owned(),
        price_micro_eur_per_kwh: price,
        refused: None,
    };
    let usable = quote.and_then(|q| q.cost.as_ref().ok().map(|c| (q, c)));
    let source = match (total_cost, usable) {
        (Some(_), _) => PriceSource::CdrTotalCost,
        (None, Some(_)) => PriceSource::Tariff,
        (None, None) => PriceSource::Flat,
    };
    if !cdr_currency.eq_ignore_ascii_case(PAYMENT_CURRENCY) {
        return refuse(
            source,
            cdr_currency,
            format!(
                "CDR currency {cdr_currency} does not match the payment token ({PAYMENT_CURRENCY})"
            ),
        );
    }
    match (total_cost, usable) {
        (Some((excl, incl)), _) => priced(
            source,
            cdr_currency,
            effective_price_per_kwh(incl.unwrap_or(excl), energy_wh),
        ),
        (None, Some((q, _))) if !q.currency.eq_ignore_ascii_case(PAYMENT_CURRENCY) => refuse(
            source,
            &q.currency,
            format!(
                "tariff {} currency {} does not match the payment token ({PAYMENT_CURRENCY})",
                q.tariff_id, q.currency
            ),
        ),
        (None, Some((q, cost))) => priced(
            source,
            &q.currency,
            effective_price_per_kwh(cost.incl_vat_micro, energy_wh),
        ),
        (None, None) => priced(source, PAYMENT_CURRENCY, flat_micro_eur_per_kwh),
    }
}

/// What billing prices a CDR with beyond its facts: what the tariff path needs (not part of
/// the outbox payload).
#[derive(Debug, Clone, Default)]
pub struct CdrPricing {
    /// The tariffs the CDR carries (`tariffs`).
    pub tariffs: Vec<Tariff>,
    /// The tariff ids its charging periods name, in order.
    pub tariff_ids: Vec<String>,
    /// The session's usage ([`tariff::usage_from_cdr`]).
    pub usage: Vec<tariff::UsagePeriod>,
    /// `cdr_location.id` (its Location's `time_zone` is the tariff's local time).
    pub location_id: String,
    /// `cdr_location.connector_id` (its `tariff_ids` are the last place a tariff is named).
    pub connector_id: String,
}

/// The `tariff_id`s named in a list of OCPI charging periods (JSON), in order, once each.
pub fn tariff_ids_of_periods(periods: &serde_json::Value) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for id in periods
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("tariff_id").and_then(serde_json::Value::as_str))
    {
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_owned());
        }
    }
    ids
}

/// The tariff a CDR or its session names (module docs, "Price sources"), first found.
async fn named_tariff(
    conn: &mut Conn,
    cdr: &CdrFacts,
    pricing: &CdrPricing,
    session: Option<&sessions::StoredSession>,
) -> StoreResult<Option<Tariff>> {
    let embedded = pricing
        .tariffs
        .iter()
        .find(|t| pricing.tariff_ids.contains(&t.id))
        .or(pricing.tariffs.first());
    if let Some(t) = embedded {
        return Ok(Some(t.clone()));
    }
    let mut names = pricing.tariff_ids.clone();
    if let Some(s) = session {
        names.extend(tariff_ids_of_periods(&s.record.charging_periods));
    }
    if let Some(evse) =
        locations::get_evse(conn, &cdr.country_code, &cdr.party_id, &cdr.evse_uid).await?
    {
        for c in locations::connectors_of(conn, evse.id).await? {
            if c.connector_id == pricing.connector_id
                && let Some(ids) = c.body.get("tariff_ids").and_then(|v| v.as_array())
            {
                names.extend(ids.iter().filter_map(|v| v.as_str()).map(str::to_owned));
            }
        }
    }
    for name in names {
        let Some(stored) = tariffs::get(conn, &cdr.country_code, &cdr.party_id, &name).await?
        else {
            continue;
        };
        match parse::<Tariff>(stored.body) {
            Ok(t) => return Ok(Some(t)),
            Err(e) => tracing::warn!(tariff = %name, error = %e, "stored tariff unreadable"),
        }
    }
    Ok(None)
}

/// The named tariff's price for the CDR's session, in its location's local time.
async fn tariff_quote(
    conn: &mut Conn,
    cdr: &CdrFacts,
    pricing: &CdrPricing,
    session: Option<&sessions::StoredSession>,
) -> StoreResult<Option<TariffQuote>> {
    let Some(t) = named_tariff(conn, cdr, pricing, session).await? else {
        return Ok(None);
    };
    let location =
        locations::get_location(conn, &cdr.country_code, &cdr.party_id, &pricing.location_id)
            .await?;
    let zone_name = location
        .as_ref()
        .and_then(|l| l.body.get("time_zone"))
        .and_then(serde_json::Value::as_str);
    let zone = zone_name.and_then(tariff::Zone::named).unwrap_or_else(|| {
        tracing::warn!(location = %pricing.location_id, zone = ?zone_name,
            "no known time zone for the location: tariff restrictions read in UTC");
        tariff::Zone::utc()
    });
    let cost = tariff::price_session(&t, &pricing.usage, &zone);
    if let Err(e) = &cost {
        tracing::warn!(error = %e, "the named tariff cannot price the session; next price source");
    }
    Ok(Some(TariffQuote {
        tariff_id: t.id,
        currency: t.currency,
        cost,
    }))
}

/// The bill's `sessionId` on chain: keccak-256 of `cc*party*cdr_id`.
pub fn chain_session_id(cdr_key: &str) -> B256 {
    keccak256(cdr_key.as_bytes())
}

/// Enqueues a CDR's `settlement` under `dedupe_key`, in the caller's transaction. With a chain,
/// bills the CDR first (bill row + signed bill in the payload); a CDR without a known user
/// wallet gets an `unbillable` bill and no signed bill. Without a chain, only the CDR's facts.
#[tracing::instrument(skip_all, fields(dedupe_key))]
pub async fn enqueue_settlement(
    conn: &mut Conn,
    chain: Option<&ChainContext>,
    dedupe_key: &str,
    cdr: CdrFacts,
    pricing: &CdrPricing,
    now: i64,
) -> StoreResult<bool> {
    let bill = match chain {
        Some(ctx) => bill_cdr(conn, ctx, &cdr, pricing, now).await?,
        None => None,
    };
    let work = ChainWork::Settlement(SettlementWork { cdr, bill });
    if !work.wanted(chain.is_some()) {
        return Ok(false);
    }
    outbox::enqueue(conn, dedupe_key, &work, now).await
}

async fn bill_cdr(
    conn: &mut Conn,
    ctx: &ChainContext,
    cdr: &CdrFacts,
    pricing: &CdrPricing,
    now: i64,
) -> StoreResult<Option<SignedBill>> {
    let cdr_key = format!("{}*{}*{}", cdr.country_code, cdr.party_id, cdr.cdr_id);
    let session = match &cdr.session_id {
        Some(id) => sessions::get(conn, &cdr.country_code, &cdr.party_id, id).await?,
        None => None,
    };
    let request = match &session {
        Some(s) => requests::accepted_for_session(conn, s.id).await?,
        None => None,
    };
    let user = match cdr.user_id {
        Some(id) => users::get(conn, id).await?,
        None => None,
    };
    let wallet = match cdr.user_id {
        Some(id) => wallets::of_user(conn, id).await?,
        None => None,
    };
    let meter_energy_wh = meter::register_energy_wh(
        conn,
        &cdr.country_code,
        &cdr.party_id,
        &cdr.evse_uid,
        cdr.start_ts,
        cdr.end_ts,
    )
    .await?;
    let config = &ctx.config;
    let total_cost = cdr
        .total_cost_excl_vat_micro
        .map(|excl| (excl, cdr.total_cost_incl_vat_micro));
    let quote = match total_cost {
        Some(_) => None,
        None => tariff_quote(conn, cdr, pricing, session.as_ref()).await?,
    };
    let price = bill_price(
        cdr.energy_wh,
        total_cost,
        &cdr.currency,
        quote.as_ref(),
        config.tariff_micro_eur_per_kwh,
    );
    if let Some(reason) = &price.refused {
        tracing::warn!(cdr = %cdr_key, %reason, "the CDR cannot be billed");
    }
    let figures = bill_for_session(&BillInputs {
        cdr_energy_wh: cdr.energy_wh,
        meter_energy_wh,
        price_micro_eur_per_kwh: price.price_micro_eur_per_kwh,
        accepted_request: request
            .as_ref()
            .map(|r| (r.energy_wh, r.session_energy_wh_at_request)),
        opted_in: user.as_ref().is_some_and(|u| u.opted_in),
        shifted_wh: cdr.shifted_wh,
        shifted_value_micro_eur: cdr.shifted_value_micro_eur,
        compensation: config.compensation,
    });
    if figures.discrepancy_significant {
        tracing::warn!(
            cdr = %cdr_key,
            cdr_energy_wh = cdr.energy_wh,
            meter_energy_wh,
            discrepancy_wh = figures.energy_discrepancy_wh,
            "CDR energy differs from the meter values; billing the CDR"
        );
    }
    let session_id = chain_session_id(&cdr_key);
    let user_address = wallet
        .as_ref()
        .and_then(|w| w.address.parse::<Address>().ok());
    let payee = payee(conn, ctx, cdr).await?;
    let status_reason = match (&price.refused, user_address, &payee) {
        (Some(reason), _, _) => Some(reason.clone()),
        (None, None, _) => Some("no wallet for the CDR's user".to_owned()),
        (None, Some(_), None) => Some("the CPO set no settlement address".to_owned()),
        (None, Some(_), Some(_)) => None,
    };
    let signed = match (user_address, payee, status_reason.is_none()) {
        (Some(user), Some((cpo, sign_here)), true) => {
            let u64c = |v: i64| v.max(0) as u64;
            let bill = Bill {
                sessionId: session_id,
                user,
                cpo,
                energyWh: u64c(figures.energy_wh),
                priceMicroEurPerKwh: u64c(price.price_micro_eur_per_kwh),
                creditWh: u64c(figures.credit_wh),
                flexibilityWh: u64c(figures.flexibility_wh),
                start: u64c(cdr.start_ts),
                end: u64c(cdr.end_ts.max(cdr.start_ts)),
            };
            let domain = billing_domain(
                ctx.deployment.chain_id,
                ctx.deployment.contracts.energy_billing,
            );
            // The CPO's own signer signs when the writer settles (`signer`); only the demo
            // CPO's bills are signed here, with the backend-held key.
            let signature = if sign_here {
                sign_bill(ctx.meter.signer(), &bill, &domain)
                    .map_err(|e| StoreError::Corrupt(format!("signing the bill: {e}")))?
            } else {
                alloy::primitives::Bytes::new()
            };
            Some(SignedBill::new(&bill, &signature))
        }
        _ => None,
    };
    let row = BillRow {
        id: 0,
        cdr_key,
        user_id: cdr.user_id,
        user_address: user_address.map(|a| a.to_string()),
        cpo_address: signed.as_ref().map_or_else(String::new, |s| s.cpo.clone()),
        session_id: cdr.session_id.clone(),
        chain_session_id: session_id.to_string(),
        start_ts: cdr.start_ts,
        end_ts: cdr.end_ts,
        energy_wh: figures.energy_wh,
        cdr_energy_wh: cdr.energy_wh,
        meter_energy_wh,
        energy_discrepancy_wh: figures.energy_discrepancy_wh,
        price_micro_eur_per_kwh: price.price_micro_eur_per_kwh,
        price_source: price.source.as_str().to_owned(),
        currency: price.currency.clone(),
        credit_wh: figures.credit_wh,
        flexibility_wh: figures.flexibility_wh,
        cost_micro_eur: figures.cost_micro_eur,
        uncontrolled_cost_micro_eur: figures.uncontrolled_cost_micro_eur,
        saving_micro_eur: figures.saving_micro_eur,
        meter_signature: signed
            .as_ref()
            .map(|s| s.signature.clone())
            .filter(|s| s != "0x"),
        status: if signed.is_some() {
            "pending"
        } else {
            "unbillable"
        }
        .to_owned(),
        status_reason,
        tx_hash: None,
        block_number: None,
        created_at: now,
        updated_at: now,
    };
    bills::insert(conn, &row).await?;
    Ok(signed)
}

/// Who a CDR's bill pays, and whether evflex signs it here: the CDR's CPO's own settlement
/// address (its signer signs later), or on the demo chain, for a CPO that set none, the demo
/// CPO with the backend-held meter key. `None`: nobody can be paid (the bill is unbillable).
async fn payee(
    conn: &mut Conn,
    ctx: &ChainContext,
    cdr: &CdrFacts,
) -> StoreResult<Option<(Address, bool)>> {
    let party =
        crate::store::parties::party_of_codes(conn, &cdr.country_code, &cdr.party_id).await?;
    let settlement = match party {
        Some(p) => crate::store::parties::settlement_of(conn, p).await?,
        None => None,
    };
    Ok(match settlement {
        Some(s) => s.cpo_address.parse().ok().map(|a| (a, false)),
        None if ctx.demo => Some((ctx.cpo, true)),
        None => {
            tracing::warn!(cpo = %format!("{}*{}", cdr.country_code, cdr.party_id),
                "the CPO set no settlement address: its CDR cannot be billed");
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> BillInputs {
        BillInputs {
            cdr_energy_wh: 20_000,
            meter_energy_wh: Some(20_050),
            price_micro_eur_per_kwh: 300_000,
            accepted_request: None,
            opted_in: true,
            shifted_wh: 5_000,
            shifted_value_micro_eur: 120_000,
            compensation: Compensation::FreeKwh,
        }
    }

    #[test]
    fn plain_bill_matches_the_contract_formula() {
        let f = bill_for_session(&inputs());
        assert_eq!(f.energy_wh, 20_000);
        assert_eq!(f.cost_micro_eur, 6_000_000);
        assert_eq!(f.flexibility_wh, 5_000);
        assert_eq!(f.energy_discrepancy_wh, -50);
        assert!(!f.discrepancy_significant);
        assert_eq!(f.uncontrolled_cost_micro_eur, 6_120_000);
        assert_eq!(f.saving_micro_eur, 120_000);
    }

    #[test]
    fn the_largest_bill_ingestion_accepts_is_exact() {
        // 10 MWh at 1 000 EUR/kWh: 10^13 micro-EUR, computed in i128 without wrapping (the
        // i64 product of Wh and micro-EUR/kWh would be 10^16, still fine; 10^12 kWh was not).
        let f = bill_for_session(&BillInputs {
            cdr_energy_wh: *crate::domain::bounds::SESSION_ENERGY_WH.end(),
            price_micro_eur_per_kwh: 1_000_000_000,
            ..inputs()
        });
        assert_eq!(f.cost_micro_eur, 10_000_000_000_000);
        assert_eq!(
            per_kwh(i64::MAX, i64::MAX),
            i64::MAX,
            "saturates, never wraps"
        );
    }

    #[test]
    fn shortfall_of_an_accepted_request_is_credited() {
        // asked 25 kWh when 1 kWh was in; 20 kWh delivered in total: 6 kWh short
        let f = bill_for_session(&BillInputs {
            accepted_request: Some((25_000, 1_000)),
            ..inputs()
        });
        assert_eq!(f.shortfall_wh, 6_000);
        assert_eq!(f.credit_wh, 6_000);
        assert_eq!(f.cost_micro_eur, 14_000 * 300);
        let none = bill_for_session(&BillInputs {
            accepted_request: Some((25_000, 1_000)),
            compensation: Compensation::None,
            ..inputs()
        });
        assert_eq!((none.shortfall_wh, none.credit_wh), (6_000, 0));
    }

    #[test]
    fn no_reward_without_opt_in_and_reward_capped_at_energy() {
        assert_eq!(flexibility_reward_wh(false, 5_000, 20_000), 0);
        assert_eq!(flexibility_reward_wh(true, 50_000, 20_000), 20_000);
        assert_eq!(flexibility_reward_wh(true, -3, 20_000), 0);
        let f = bill_for_session(&BillInputs {
            opted_in: false,
            ..inputs()
        });
        assert_eq!((f.flexibility_wh, f.saving_micro_eur), (0, 0));
    }

    fn quote(currency: &str, incl: i64) -> TariffQuote {
        TariffQuote {
            tariff_id: "T1".into(),
            currency: currency.into(),
            cost: Ok(tariff::TariffCost {
                excl_vat_micro: incl * 4 / 5,
                incl_vat_micro: incl,
            }),
        }
    }

    #[test]
    fn the_cdr_total_incl_vat_comes_first_then_the_tariff_then_the_flat_price() {
        // 10 kWh, 3.00 excl. / 3.60 incl. VAT: the driver pays 3.60, 0.36 €/kWh.
        let p = bill_price(
            10_000,
            Some((3_000_000, Some(3_600_000))),
            "EUR",
            None,
            300_000,
        );
        assert_eq!(
            (p.source, p.price_micro_eur_per_kwh, p.refused),
            (PriceSource::CdrTotalCost, 360_000, None)
        );
        // excl_vat alone: no VAT is known to apply.
        let p = bill_price(10_000, Some((3_000_000, None)), "EUR", None, 300_000);
        assert_eq!(p.price_micro_eur_per_kwh, 300_000);
        // A total wins over a tariff.
        let q = quote("EUR", 3_500_000);
        let p = bill_price(10_000, Some((3_000_000, None)), "EUR", Some(&q), 1);
        assert_eq!(p.source, PriceSource::CdrTotalCost);
        let p = bill_price(10_000, None, "EUR", Some(&q), 1);
        assert_eq!(
            (p.source, p.price_micro_eur_per_kwh),
            (PriceSource::Tariff, 350_000)
        );
        // A tariff that cannot price the session falls through to the flat price.
        let failed = TariffQuote {
            cost: Err(tariff::TariffError::NotValid("T1".into())),
            ..q.clone()
        };
        let p = bill_price(10_000, None, "EUR", Some(&failed), 250_000);
        assert_eq!(
            (p.source, p.price_micro_eur_per_kwh, p.currency.as_str()),
            (PriceSource::Flat, 250_000, "EUR")
        );
        let p = bill_price(10_000, None, "EUR", None, 250_000);
        assert_eq!(p.source, PriceSource::Flat);
    }

    #[test]
    fn effective_price_rounds_down_in_the_drivers_favour() {
        // 1.00 EUR for 3 kWh: 333 333 µEUR/kWh; the contract then charges 999 999 µEUR.
        assert_eq!(effective_price_per_kwh(1_000_000, 3_000), 333_333);
        assert_eq!(per_kwh(3_000, 333_333), 999_999);
        assert_eq!(effective_price_per_kwh(1_000_000, 0), 0);
        // The largest total over 1 Wh still fits.
        let most = *crate::domain::bounds::AMOUNT_MICRO_EUR.end();
        assert_eq!(effective_price_per_kwh(most, 1), most * 1_000);
    }

    #[test]
    fn another_currency_is_refused_with_the_reason() {
        let p = bill_price(10_000, Some((3_000_000, None)), "USD", None, 300_000);
        assert_eq!(p.source, PriceSource::CdrTotalCost);
        assert_eq!(
            p.refused.as_deref(),
            Some("CDR currency USD does not match the payment token (EUR)")
        );
        let q = quote("CHF", 3_500_000);
        let p = bill_price(10_000, None, "EUR", Some(&q), 300_000);
        assert_eq!(p.source, PriceSource::Tariff);
        assert_eq!(
            p.refused.as_deref(),
            Some("tariff T1 currency CHF does not match the payment token (EUR)")
        );
    }

    #[test]
    fn large_meter_discrepancy_is_flagged() {
        let f = bill_for_session(&BillInputs {
            meter_energy_wh: Some(18_000),
            ..inputs()
        });
        assert_eq!(f.energy_discrepancy_wh, 2_000);
        assert!(f.discrepancy_significant);
    }
}
