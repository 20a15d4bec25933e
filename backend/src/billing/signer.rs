//! The meter signer: the key that signs a CPO's bills, held by the CPO, outside evflex.
//!
//! EnergyBilling settles a bill only with the signature of the CPO's registered meter signer,
//! so whoever holds that key decides what the CPO's users may be charged. A CPO that sets its
//! settlement identity (`PUT /api/v1/cpo/settlement`: its EnergyBilling address and its
//! signer's URL) keeps the key: the chain writer sends each of its bills to the signer
//! (`POST {url}`, a [`SignRequest`]) just before settling, and a compromised evflex host can
//! no longer forge that CPO's bills. The signer is this module's [`router`], run as its own
//! process by `evflex meter-signer`; it signs only for the parties, CPO address, chain and
//! contract it was started with, and only below its price and energy ceilings. A CPO's own
//! signer would also check each bill against its CDRs; this one logs every bill it signs.
//!
//! The backend-held `--meter-key` remains only for the demo chain: it signs the bills of
//! parties that set no settlement identity there, and nowhere else.

use crate::outbound::Outbound;
use alloy::primitives::{Address, Bytes};
use alloy::signers::local::PrivateKeySigner;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use evflex_chain::wallet::eip712::{billing_domain, sign_bill};
use evflex_chain::work::SignedBill;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What evflex asks a meter signer to sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignRequest {
    /// The party codes (`NL*EXA`) of the CDR's CPO: a signer signs for its own parties only.
    pub party: String,
    /// The chain's id (part of the EIP-712 domain).
    pub chain_id: u64,
    /// The EnergyBilling contract (part of the EIP-712 domain).
    pub billing_contract: Address,
    /// The bill; its `signature` is ignored.
    pub bill: SignedBill,
}

/// A meter signer's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignResponse {
    /// The EIP-712 signature of the bill (`0x`-hex, 65 bytes).
    pub signature: String,
}

/// Asks the signer at `url` to sign; the signature, or why there is none (no secret in it).
pub async fn request_signature(
    http: &Outbound,
    url: &str,
    request: &SignRequest,
) -> Result<Bytes, String> {
    let what = format!("meter signer {url}");
    let call = http
        .request(reqwest::Method::POST, url)
        .map_err(|e| e.to_string())?
        .json(request);
    let (status, body) = http.send(&what, call).await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        let reason = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_default();
        return Err(format!("{what}: HTTP {status} {reason}")
            .trim_end()
            .to_owned());
    }
    let answer: SignResponse =
        serde_json::from_slice(&body).map_err(|e| format!("{what}: bad answer: {e}"))?;
    answer
        .signature
        .parse()
        .map_err(|_| format!("{what}: the signature is not hex"))
}

/// What a signer signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerPolicy {
    /// Party codes it signs for (`NL*EXA`, upper case).
    pub parties: Vec<String>,
    /// The CPO's EnergyBilling address: the `cpo` of every bill it signs.
    pub cpo: Address,
    /// The chain.
    pub chain_id: u64,
    /// The EnergyBilling contract.
    pub billing_contract: Address,
    /// Highest price it signs (micro-EUR per kWh).
    pub max_price_micro_eur_per_kwh: u64,
    /// Most energy one bill may carry (Wh).
    pub max_energy_wh: u64,
}

impl SignerPolicy {
    /// Why `request` may not be signed, if it may not.
    pub fn refusal(&self, request: &SignRequest) -> Option<String> {
        let bill = &request.bill;
        let cpo: Option<Address> = bill.cpo.parse().ok();
        if !self
            .parties
            .iter()
            .any(|p| p.eq_ignore_ascii_case(&request.party))
        {
            Some(format!(
                "party {} is not one this signer serves",
                request.party
            ))
        } else if cpo != Some(self.cpo) {
            Some(format!("cpo {} is not this signer's CPO", bill.cpo))
        } else if request.chain_id != self.chain_id
            || request.billing_contract != self.billing_contract
        {
            Some("another chain or contract than this signer's".to_owned())
        } else if bill.price_micro_eur_per_kwh > self.max_price_micro_eur_per_kwh {
            Some(format!(
                "price {} µEUR/kWh is above this signer's {}",
                bill.price_micro_eur_per_kwh, self.max_price_micro_eur_per_kwh
            ))
        } else if bill.energy_wh > self.max_energy_wh {
            Some(format!(
                "energy {} Wh is above this signer's {} Wh",
                bill.energy_wh, self.max_energy_wh
            ))
        } else {
            None
        }
    }
}

struct Signer {
    policy: SignerPolicy,
    key: PrivateKeySigner,
}

/// The signer's HTTP interface: `POST /sign` with a [`SignRequest`]; 200 with a
/// [`SignResponse`], 403 naming the rule a refused bill breaks, 400 for a malformed one.
pub fn router(policy: SignerPolicy, key: PrivateKeySigner) -> Router {
    Router::new()
        .route("/sign", post(sign))
        .with_state(Arc::new(Signer { policy, key }))
}

async fn sign(
    State(signer): State<Arc<Signer>>,
    Json(request): Json<SignRequest>,
) -> Result<Json<SignResponse>, (StatusCode, Json<serde_json::Value>)> {
    let refuse = |status: StatusCode, why: String| {
        tracing::warn!(party = %request.party, session = %request.bill.session_id, reason = %why, "bill refused");
        (status, Json(serde_json::json!({ "error": why })))
    };
    if let Some(why) = signer.policy.refusal(&request) {
        return Err(refuse(StatusCode::FORBIDDEN, why));
    }
    let (bill, _) = request
        .bill
        .to_bill()
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, e.to_string()))?;
    let domain = billing_domain(request.chain_id, request.billing_contract);
    let signature = sign_bill(&signer.key, &bill, &domain)
        .map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    tracing::info!(
        party = %request.party,
        session = %request.bill.session_id,
        energy_wh = bill.energyWh,
        price = bill.priceMicroEurPerKwh,
        "bill signed"
    );
    Ok(Json(SignResponse {
        signature: signature.to_string(),
    }))
}

/// `evflex meter-signer`: a CPO's meter signer as its own process.
#[derive(Debug, Clone, clap::Args)]
pub struct SignerArgs {
    /// Address to listen on.
    #[arg(long, env = "EVFLEX_SIGNER_LISTEN", default_value = "127.0.0.1:9100")]
    pub listen: String,
    /// The meter private key (hex): keep it in the environment, not on the command line.
    #[arg(long, env = "EVFLEX_SIGNER_KEY", hide_env_values = true)]
    pub key: crate::config::Secret,
    /// Party codes it signs for (`NL*EXA`), comma-separated.
    #[arg(
        long = "parties",
        env = "EVFLEX_SIGNER_PARTIES",
        value_delimiter = ',',
        required = true
    )]
    pub parties: Vec<String>,
    /// The CPO's EnergyBilling address.
    #[arg(long, env = "EVFLEX_SIGNER_CPO")]
    pub cpo: Address,
    /// The chain id.
    #[arg(long, env = "EVFLEX_SIGNER_CHAIN_ID")]
    pub chain_id: u64,
    /// The EnergyBilling contract.
    #[arg(long, env = "EVFLEX_SIGNER_BILLING_CONTRACT")]
    pub billing_contract: Address,
    /// Highest price it signs (EUR per kWh).
    #[arg(long, default_value_t = 1.0)]
    pub max_price_eur_per_kwh: f64,
    /// Most energy one bill may carry (kWh).
    #[arg(long, default_value_t = 500.0)]
    pub max_energy_kwh: f64,
}

impl SignerArgs {
    /// The policy and key these arguments describe.
    pub fn policy_and_key(&self) -> anyhow::Result<(SignerPolicy, PrivateKeySigner)> {
        let key: PrivateKeySigner = self
            .key
            .expose()
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("--key: not a private key (hex)"))?;
        let micro = |v: f64, what: &str| {
            (v.is_finite() && v >= 0.0)
                .then(|| (v * 1e6).round() as u64)
                .ok_or_else(|| anyhow::anyhow!("{what}: a non-negative number"))
        };
        let policy = SignerPolicy {
            parties: self
                .parties
                .iter()
                .map(|p| p.trim().to_ascii_uppercase())
                .collect(),
            cpo: self.cpo,
            chain_id: self.chain_id,
            billing_contract: self.billing_contract,
            max_price_micro_eur_per_kwh: micro(
                self.max_price_eur_per_kwh,
                "--max-price-eur-per-kwh",
            )?,
            max_energy_wh: micro(self.max_energy_kwh, "--max-energy-kwh")? / 1_000,
        };
        Ok((policy, key))
    }
}

/// Runs the meter signer until Ctrl-C.
pub async fn run(args: SignerArgs) -> anyhow::Result<()> {
    let (policy, key) = args.policy_and_key()?;
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    tracing::info!(listen = %listener.local_addr()?, signer = %key.address(), cpo = %policy.cpo,
        "meter signer ready");
    axum::serve(listener, router(policy, key))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
