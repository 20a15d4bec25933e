//! The OpenAPI document of `/api/v1`, served at `/api/openapi.json`.

use crate::app::AppState;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "ocpi_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "OCPI credentials: `Token <base64 token C>`",
            ))),
        );
    }
}

/// The `/api/v1` OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "evflex API", description = "EV smart charging: wallet sign-in, users, charging requests, site topology, meter values, CPO cockpit, wallets and settlements, audit. OCPI 2.2.1 lives under /ocpi."),
    paths(
        super::users::register, super::users::me, super::users::set_smart_charging,
        super::users::status,
        super::requests::create, super::requests::get_one, super::requests::accept_offer,
        super::groups::list, super::groups::get_one, super::groups::put_group,
        super::groups::set_capacity, super::groups::add_capacity_change,
        super::groups::put_forecast, super::groups::put_topology,
        super::meter::post_batch,
        super::cockpit::list, super::cockpit::group, super::cockpit::settlements,
        super::wallet::challenge, super::wallet::verify, super::wallet::wallet,
        super::wallet::top_up, super::wallet::export, super::wallet::settlements,
        super::wallet::set_spending_limit,
        super::audit::commits, super::audit::settlements, super::audit::timestep,
        super::audit::verify,
        super::audit::verify_commit,
        super::audit::transaction,
        super::events::events,
    ),
    modifiers(&Security)
)]
pub struct ApiDoc;

/// The OpenAPI route.
pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/openapi.json",
        get(|| async { Json(ApiDoc::openapi()) }),
    )
}
