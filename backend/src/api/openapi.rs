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

/// The answers every operation of a kind can give, documented once here rather than on each
/// route: 401 on a secured operation (missing or unknown credentials), and 400 on one that
/// takes a body or a path parameter (malformed JSON, or a path segment that is no number;
/// `api::plain_rejections_as_json` makes axum's own rejections the same `ErrorBody`), and 404
/// on one that names an object in its path (it may not exist, or be another owner's).
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                    )
                    .build(),
            )
        };
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let path_params = op.parameters.iter().flatten().any(|p| match p {
                    RefOr::T(p) => p.parameter_in == ParameterIn::Path,
                    RefOr::Ref(_) => false,
                });
                let responses = &mut op.responses.responses;
                if secured {
                    responses
                        .entry("401".to_owned())
                        .or_insert_with(|| error("Missing or unknown credentials"));
                }
                if op.request_body.is_some() || path_params {
                    responses
                        .entry("400".to_owned())
                        .or_insert_with(|| error("Malformed request; the message names the field"));
                }
                if path_params {
                    responses
                        .entry("404".to_owned())
                        .or_insert_with(|| error("No such object, or not the caller's"));
                }
            }
        }
    }
}

/// The `/api/v1` OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "evflex API", description = "EV smart charging: wallet sign-in, users, charging requests, site topology, meter values, CPO cockpit, wallets and settlements, audit, and the admin API (onboarding CPOs). OCPI lives under /ocpi."),
    paths(
        super::users::register, super::users::me, super::users::set_smart_charging,
        super::users::status,
        super::requests::create, super::requests::get_one, super::requests::accept_offer,
        super::groups::list, super::groups::get_one, super::groups::put_group,
        super::groups::set_capacity, super::groups::add_capacity_change,
        super::groups::put_forecast, super::groups::put_topology,
        super::batteries::put_state, super::batteries::setpoints,
        super::meter::post_batch,
        super::cockpit::list, super::cockpit::group, super::cockpit::settlements,
        super::wallet::challenge, super::wallet::verify, super::wallet::wallet,
        super::wallet::top_up, super::wallet::export, super::wallet::settlements,
        super::wallet::set_spending_limit,
        super::settlement::get_settlement, super::settlement::put_settlement,
        super::audit::commits, super::audit::settlements, super::audit::timestep,
        super::audit::verify,
        super::audit::verify_commit,
        super::audit::transaction,
        super::events::events,
        super::admin::create_token_a, super::admin::list, super::admin::register,
        super::admin::revoke,
    ),
    modifiers(&Security, &CommonResponses)
)]
pub struct ApiDoc;

/// The OpenAPI route.
pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/openapi.json",
        get(|| async { Json(ApiDoc::openapi()) }),
    )
}
