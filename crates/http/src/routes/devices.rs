//! `/api/v1/devices`: the ABM device list (the dashboard's, with its statuses and filters)
//! and one device explained.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderValue;
use axum::http::header::LINK;
use axum::response::{IntoResponse, Response};
use guardmdm_service::devices::DeviceDetail;
use guardmdm_service::{DeviceListRequest, ServiceError};
use serde::Deserialize;

use crate::extract::ApiQuery;
use crate::{ApiError, AppState};

/// Rows per page when the request does not say.
const DEFAULT_LIMIT: u32 = 100;

/// The list's query string. Every field is also what the next page's `Link` repeats.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DevicesQuery {
    /// The ABM entry's name (`entry`, or `token` as before).
    #[serde(alias = "token")]
    entry: Option<String>,
    os: Option<String>,
    status: Option<String>,
    abm_status: Option<String>,
    assignment: Option<String>,
    group: Option<String>,
    serial: Option<String>,
    sort: Option<String>,
    dir: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

impl DevicesQuery {
    fn request(&self) -> Result<DeviceListRequest, ServiceError> {
        let descending = match self.dir.as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(ServiceError::Invalid(format!(
                    "dir {other:?}: use asc or desc"
                )));
            }
        };
        Ok(DeviceListRequest {
            status: self.status.clone(),
            abm_status: self.abm_status.clone(),
            assignment: self.assignment.clone(),
            os: self.os.clone(),
            entry: self.entry.clone(),
            group: self.group.clone(),
            serial: self.serial.clone(),
            sort: self.sort.clone(),
            descending,
            after: self.after.clone().filter(|a| !a.trim().is_empty()),
            limit: Some(self.limit.unwrap_or(DEFAULT_LIMIT)),
        })
    }

    /// The `Link` header of the page after this one, which starts after `next`.
    fn next_link(&self, next: &str) -> Option<HeaderValue> {
        let limit = self.limit.map(|l| l.to_string());
        let pairs = [
            ("entry", self.entry.as_deref()),
            ("os", self.os.as_deref()),
            ("status", self.status.as_deref()),
            ("abm_status", self.abm_status.as_deref()),
            ("assignment", self.assignment.as_deref()),
            ("group", self.group.as_deref()),
            ("serial", self.serial.as_deref()),
            ("sort", self.sort.as_deref()),
            ("dir", self.dir.as_deref()),
            ("after", Some(next)),
            ("limit", limit.as_deref()),
        ];
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in pairs {
            if let Some(value) = value {
                query.append_pair(key, value);
            }
        }
        HeaderValue::from_str(&format!(
            "</api/v1/devices?{}>; rel=\"next\"",
            query.finish()
        ))
        .ok()
    }
}

/// One page of ABM devices, with each device's status as the dashboard shows it. The array
/// is the page; a `Link: <…>; rel="next"` header gives the next one while there may be one.
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<DevicesQuery>,
) -> Result<Response, ApiError> {
    let page = state.services.device_list.page(query.request()?).await?;
    let link = page.next.as_deref().and_then(|n| query.next_link(n));
    let mut response = Json(page.rows).into_response();
    if let Some(link) = link {
        response.headers_mut().insert(LINK, link);
    }
    Ok(response)
}

/// One serial, explained: Apple's record, the profile it resolves to and why, and where
/// assigning it stands (one element per ABM entry that has the serial).
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(serial): Path<String>,
) -> Result<Json<Vec<DeviceDetail>>, ApiError> {
    Ok(Json(state.services.devices.show(&serial).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_link_repeats_the_filters_with_the_new_cursor() {
        let query = DevicesQuery {
            entry: Some("main office".into()),
            status: Some("enrolled".into()),
            after: Some("OLD".into()),
            limit: Some(10),
            ..DevicesQuery::default()
        };
        let link = query.next_link("eyJhIjoxfQ").unwrap();
        assert_eq!(
            link.to_str().unwrap(),
            "</api/v1/devices?entry=main+office&status=enrolled&after=eyJhIjoxfQ&limit=10>; \
             rel=\"next\""
        );
    }

    #[test]
    fn a_bad_direction_is_named() {
        let query = DevicesQuery {
            dir: Some("up".into()),
            ..DevicesQuery::default()
        };
        let err = query.request().unwrap_err();
        assert!(err.to_string().contains("asc or desc"), "{err}");
    }
}
