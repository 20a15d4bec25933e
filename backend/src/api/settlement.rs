//! A CPO's settlement identity (CPO credentials): the EnergyBilling address its users' bills
//! pay, and the URL of the meter signer that signs them with the CPO's own key
//! (`billing::signer`). evflex accepts it only with proof: the address is a CPO registered in
//! EnergyBilling, and the signer, asked to sign a probe bill for this party, signs it with the
//! meter key EnergyBilling has on record for that address. One address is one party's only.

use super::auth::AuthCpo;
use super::error::{ApiError, parse_body};
use crate::app::AppState;
use crate::billing::signer::{SignRequest, request_signature};
use crate::store::parties::{self, Settlement};
use alloy::primitives::{Address, B256, keccak256};
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use evflex_chain::Bill;
use evflex_chain::wallet::eip712::{bill_signing_hash, billing_domain};
use evflex_chain::work::SignedBill;
use serde::Deserialize;

/// Settlement routes.
pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/v1/cpo/settlement",
        get(get_settlement).put(put_settlement),
    )
}

/// A CPO's settlement identity.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettlementReq {
    /// The CPO's address in EnergyBilling (registered there by the operator).
    pub cpo_address: String,
    /// Where its meter signer (`evflex meter-signer`, or the CPO's own) takes `POST` sign
    /// requests.
    pub meter_signer_url: String,
}

/// The caller's settlement identity (404 when it set none).
#[utoipa::path(get, path = "/api/v1/cpo/settlement", tag = "cockpit", security(("ocpi_token" = [])),
    responses((status = 200, body = serde_json::Value), (status = 401, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody)))]
async fn get_settlement(
    State(state): State<AppState>,
    cpo: AuthCpo,
) -> Result<Json<Settlement>, ApiError> {
    let mut conn = state.db.conn().await?;
    parties::settlement_of(&mut conn, cpo.0.id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("no settlement identity set".to_owned()))
}

/// Sets where the caller is paid and who signs its bills, after checking both on chain and
/// with a probe signature.
#[utoipa::path(put, path = "/api/v1/cpo/settlement", tag = "cockpit", security(("ocpi_token" = [])),
    request_body = SettlementReq,
    responses((status = 200, body = serde_json::Value), (status = 400, body = super::error::ErrorBody),
        (status = 401, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody),
        (status = 503, description = "No chain configured, or the chain is unavailable", body = super::error::ErrorBody)))]
async fn put_settlement(
    State(state): State<AppState>,
    cpo: AuthCpo,
    body: Bytes,
) -> Result<Json<Settlement>, ApiError> {
    let ctx = state
        .engine
        .chain
        .clone()
        .ok_or_else(|| ApiError::Unavailable("this server runs without a chain".to_owned()))?;
    let req: SettlementReq = parse_body(&body)?;
    let address: Address = req
        .cpo_address
        .parse()
        .map_err(|_| ApiError::BadRequest("cpo_address: not an address".to_owned()))?;
    state
        .http
        .check(&req.meter_signer_url)
        .map_err(|e| ApiError::BadRequest(format!("meter_signer_url: {e}")))?;
    let meter_signer = ctx
        .operator
        .billing_meter_signer(address)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "chain call failed");
            ApiError::Unavailable("the chain is unavailable".to_owned())
        })?
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "cpo_address: {address} is no CPO registered in EnergyBilling"
            ))
        })?;
    // The probe: a zero bill for this party, which no contract would settle (no user).
    let party = format!("{}*{}", cpo.0.country_code, cpo.0.party_id);
    let now = state.clock.now();
    let probe = Bill {
        sessionId: keccak256(format!("evflex settlement probe {party} {now}")),
        user: Address::ZERO,
        cpo: address,
        energyWh: 0,
        priceMicroEurPerKwh: 0,
        creditWh: 0,
        flexibilityWh: 0,
        start: now.max(0) as u64,
        end: now.max(0) as u64,
    };
    let request = SignRequest {
        party,
        chain_id: ctx.deployment.chain_id,
        billing_contract: ctx.deployment.contracts.energy_billing,
        bill: SignedBill::new(&probe, &alloy::primitives::Bytes::new()),
    };
    let sig = request_signature(&state.http, &req.meter_signer_url, &request)
        .await
        .map_err(|why| ApiError::BadRequest(format!("meter_signer_url: {why}")))?;
    let domain = billing_domain(
        ctx.deployment.chain_id,
        ctx.deployment.contracts.energy_billing,
    );
    let digest: B256 = bill_signing_hash(&probe, &domain);
    let recovered = alloy::primitives::Signature::try_from(sig.as_ref())
        .ok()
        .and_then(|s| s.recover_address_from_prehash(&digest).ok());
    if recovered != Some(meter_signer) {
        return Err(ApiError::BadRequest(format!(
            "meter_signer_url: its signature is not from {meter_signer}, the meter signer \
             EnergyBilling has for {address}"
        )));
    }
    let settlement = Settlement {
        party_row: cpo.0.id,
        cpo_address: address.to_string().to_lowercase(),
        meter_signer: meter_signer.to_string().to_lowercase(),
        signer_url: req.meter_signer_url,
        updated_at: now,
    };
    let mut conn = state.db.conn().await?;
    if !parties::set_settlement(&mut conn, &settlement).await? {
        return Err(ApiError::Conflict(format!(
            "cpo_address: {address} is another party's settlement address"
        )));
    }
    Ok(Json(settlement))
}
