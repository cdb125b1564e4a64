//! Reading a posted form that is either urlencoded (a plain `<form>`, which works without
//! JavaScript) or `multipart/form-data` (a form with a file input, sent by htmx with the CSRF
//! token in its header, see the module doc of [`super`]).

use std::collections::HashMap;

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;

/// The fields of a posted form. A file input left empty counts as absent.
#[derive(Debug, Default)]
pub(crate) struct FormData {
    fields: HashMap<String, String>,
    files: HashMap<String, Vec<u8>>,
}

impl FormData {
    /// A text field, trimmed; `None` when absent or blank.
    pub(crate) fn text(&self, name: &str) -> Option<&str> {
        self.fields
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// A text field as given (not trimmed); `None` when absent or blank.
    pub(crate) fn raw(&self, name: &str) -> Option<&str> {
        self.fields
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// Whether a checkbox was ticked.
    pub(crate) fn checked(&self, name: &str) -> bool {
        self.fields.contains_key(name)
    }

    /// An uploaded file's bytes; `None` when no file was chosen.
    pub(crate) fn file(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(Vec::as_slice)
    }

    /// Reads a request body of at most `limit` bytes, urlencoded or multipart.
    ///
    /// # Errors
    /// A message for the admin: the body is too large, malformed, or of another type.
    pub(crate) async fn read(req: Request, limit: usize) -> Result<Self, String> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if content_type.starts_with("multipart/form-data") {
            let multipart = Multipart::from_request(req, &())
                .await
                .map_err(|e| format!("the form could not be read: {}", e.body_text()))?;
            Self::from_multipart(multipart, limit).await
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            let bytes = axum::body::to_bytes(req.into_body(), limit)
                .await
                .map_err(|_| too_large(limit))?;
            let fields = form_urlencoded::parse(&bytes).into_owned().collect();
            Ok(Self {
                fields,
                files: HashMap::new(),
            })
        } else {
            Err("send the form from its page (urlencoded or multipart form data)".to_string())
        }
    }

    async fn from_multipart(mut multipart: Multipart, limit: usize) -> Result<Self, String> {
        let mut form = Self::default();
        let mut total = 0usize;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| format!("the form could not be read: {}", e.body_text()))?
        {
            let name = field.name().unwrap_or_default().to_string();
            let is_file = field.file_name().is_some();
            let bytes = field
                .bytes()
                .await
                .map_err(|e| format!("the form could not be read: {}", e.body_text()))?;
            total += bytes.len();
            if total > limit {
                return Err(too_large(limit));
            }
            if is_file {
                if !bytes.is_empty() {
                    form.files.insert(name, bytes.to_vec());
                }
            } else {
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| format!("the form field {name:?} is not UTF-8 text"))?;
                form.fields.insert(name, text);
            }
        }
        Ok(form)
    }
}

fn too_large(limit: usize) -> String {
    format!("the form is larger than {} KiB", limit / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn request(content_type: &str, body: &'static str) -> Request {
        Request::builder()
            .method("POST")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap()
    }

    #[tokio::test]
    async fn reads_urlencoded_fields() {
        let form = FormData::read(
            request(
                "application/x-www-form-urlencoded",
                "name=+main+&empty=&confirm=on",
            ),
            1024,
        )
        .await
        .unwrap();
        assert_eq!(form.text("name"), Some("main"));
        assert_eq!(form.raw("name"), Some(" main "));
        assert_eq!(form.text("empty"), None);
        assert!(form.checked("confirm"));
        assert!(!form.checked("other"));
    }

    #[tokio::test]
    async fn reads_multipart_fields_and_files_and_skips_empty_files() {
        let body = "--X\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nInstallProfile\r\n\
                    --X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mobileconfig\"\r\n\
                    Content-Type: application/octet-stream\r\n\r\n<plist/>\r\n\
                    --X\r\nContent-Disposition: form-data; name=\"none\"; filename=\"\"\r\n\r\n\r\n--X--\r\n";
        let form = FormData::read(request("multipart/form-data; boundary=X", body), 1024)
            .await
            .unwrap();
        assert_eq!(form.text("kind"), Some("InstallProfile"));
        assert_eq!(form.file("file"), Some(&b"<plist/>"[..]));
        assert_eq!(form.file("none"), None);
    }

    #[tokio::test]
    async fn refuses_large_and_unknown_bodies() {
        let err = FormData::read(
            request("application/x-www-form-urlencoded", "a=0123456789"),
            4,
        )
        .await
        .unwrap_err();
        assert!(err.contains("larger than"), "{err}");
        let err = FormData::read(request("application/json", "{}"), 1024)
            .await
            .unwrap_err();
        assert!(err.contains("urlencoded or multipart"), "{err}");
    }
}
