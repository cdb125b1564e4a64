//! Route handlers, one module per resource.

pub(crate) mod abm;
pub(crate) mod admins;
pub(crate) mod api_tokens;
pub(crate) mod audit;
pub(crate) mod devices;
pub(crate) mod doctor;
pub(crate) mod groups;
pub(crate) mod health;
pub(crate) mod mdm;
pub(crate) mod mdm_admin;
pub(crate) mod minimum_os;
pub(crate) mod openapi;
pub(crate) mod profiles;
pub(crate) mod sync;

use axum::Router;
use axum::routing::{get, post, put};

use crate::AppState;

/// Every authenticated `/api/v1` route. Keep `openapi.json` in step: a test sends each
/// documented operation and checks that it is routed.
pub(crate) fn api_router() -> Router<AppState> {
    // ABM entries live at `/abm/entries`; `/abm/tokens`, their first name, stays an alias
    // for the scripts that use it.
    let router = ["/abm/entries", "/abm/tokens"]
        .into_iter()
        .fold(Router::new(), abm_entry_routes);
    router
        .route(
            "/api-tokens",
            get(api_tokens::list).post(api_tokens::create),
        )
        .route(
            "/api-tokens/{name}",
            axum::routing::delete(api_tokens::revoke),
        )
        .route("/admins", get(admins::list).post(admins::create))
        .route("/admins/{name}", axum::routing::delete(admins::delete))
        .route("/devices", get(devices::list))
        .route("/devices/{serial}", get(devices::show))
        .route("/profiles", get(profiles::list).post(profiles::create))
        .route(
            "/profiles/{name}",
            get(profiles::show)
                .put(profiles::update)
                .delete(profiles::delete),
        )
        .route("/profiles/{name}/versions", get(profiles::versions))
        .route("/profiles/{name}/assign", post(profiles::assign))
        .route(
            "/explicit-assignments/clear",
            post(profiles::clear_explicit),
        )
        .route("/os-defaults", get(profiles::defaults))
        .route("/os-defaults/{os}", put(profiles::set_default))
        .route("/minimum-os", get(minimum_os::list))
        .route("/minimum-os/{os}", put(minimum_os::set))
        .route("/groups", get(groups::list).post(groups::create))
        .route(
            "/groups/{name}",
            get(groups::show)
                .patch(groups::update)
                .delete(groups::delete),
        )
        .route(
            "/groups/{name}/members",
            get(groups::members).post(groups::add),
        )
        .route("/groups/{name}/members/remove", post(groups::remove))
        .route(
            "/apns",
            get(mdm_admin::show_push_certificate).put(mdm_admin::upload_push_certificate),
        )
        .route(
            "/apns/csr",
            get(mdm_admin::push_request).post(mdm_admin::create_push_request),
        )
        .route("/enrollments", get(mdm_admin::enrollments))
        .route("/enrollments/stuck", get(mdm_admin::stuck_enrollments))
        .route("/enrollments/release", post(mdm_admin::release_enrollments))
        .route("/enrollments/{udid}", get(mdm_admin::enrollment))
        .route(
            "/enrollments/{udid}/release",
            post(mdm_admin::release_enrollment),
        )
        .route(
            "/enrollments/{udid}/commands",
            get(mdm_admin::commands).post(mdm_admin::send_command),
        )
        .route("/commands/{uuid}", get(mdm_admin::command))
        .route("/audit", get(audit::list))
        .route("/doctor", get(doctor::run))
}

/// The routes of ABM entries, their server tokens and their syncs, under `base`.
fn abm_entry_routes(router: Router<AppState>, base: &str) -> Router<AppState> {
    router
        .route(base, get(abm::list).post(abm::create))
        .route(
            &format!("{base}/{{name}}"),
            get(abm::show).patch(abm::update).delete(abm::delete),
        )
        .route(&format!("{base}/{{name}}/public-key"), get(abm::public_key))
        .route(
            &format!("{base}/{{name}}/server-token"),
            put(abm::upload_server_token),
        )
        .route(
            &format!("{base}/{{name}}/syncs"),
            get(sync::list).post(sync::start),
        )
        .route(&format!("{base}/{{name}}/syncs/{{id}}"), get(sync::show))
}
