//! Reading a [`ProfileSpec`] from JSON or YAML, with errors that point at the line, column
//! and key an admin has to fix.

use std::fmt;

use serde::Serialize;

use super::bounds::{self, MAX_SPEC_BYTES, MAX_SPEC_DEPTH, Nesting};
use super::{ProfileSpec, SPEC_FIELDS};
use crate::skip_keys::closest;

/// The text format of a spec file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpecFormat {
    /// JSON.
    Json,
    /// YAML (1.1, as libyaml reads it).
    Yaml,
}

impl SpecFormat {
    /// The format a file name, extension or media type names: `.json`, `json`,
    /// `application/json` → JSON; `.yaml`, `.yml`, `application/yaml`, `text/x-yaml` →
    /// YAML. Case-insensitive; `None` when the hint names neither.
    pub fn from_hint(hint: &str) -> Option<Self> {
        let hint = hint.trim().to_ascii_lowercase();
        let last = hint.rsplit(['.', '/', '+']).next().unwrap_or_default();
        match last.strip_prefix("x-").unwrap_or(last) {
            "json" => Some(Self::Json),
            "yaml" | "yml" => Some(Self::Yaml),
            _ => None,
        }
    }

    /// The format the content looks like: JSON when its first character other than a
    /// byte-order mark or white space is `{`, YAML otherwise.
    pub fn sniff(bytes: &[u8]) -> Self {
        let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Self::Json,
            _ => Self::Yaml,
        }
    }
}

impl fmt::Display for SpecFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Json => "JSON",
            Self::Yaml => "YAML",
        })
    }
}

/// Why a spec file could not be read. `line` and `column` are 1-based and `None` when the
/// problem has no position (an empty file); `field` is the key at fault when there is one
/// (`anchor_certs[1]` for an item of a list).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct SpecParseError {
    /// The format the file was read as.
    pub format: SpecFormat,
    /// The line of the problem.
    pub line: Option<usize>,
    /// The column of the problem.
    pub column: Option<usize>,
    /// The key at fault.
    pub field: Option<String>,
    /// What is wrong, in plain words.
    pub message: String,
}

impl fmt::Display for SpecParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.format)?;
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, " line {line}, column {column}")?,
            (Some(line), None) => write!(f, " line {line}")?,
            _ => {}
        }
        write!(f, ": {}", self.message)
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl ProfileSpec {
    /// Reads a spec from JSON.
    ///
    /// # Errors
    /// [`SpecParseError`] with the position and key of the first problem: bad syntax, an
    /// unknown key, a missing `name`, a value of the wrong type; also a text larger than
    /// [`MAX_SPEC_BYTES`] or nested deeper than [`MAX_SPEC_DEPTH`], refused before parsing.
    pub fn from_json(text: &str) -> Result<Self, SpecParseError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if text.trim().is_empty() {
            return Err(empty(SpecFormat::Json));
        }
        check_bounds(SpecFormat::Json, text)?;
        let mut de = serde_json::Deserializer::from_str(text);
        let spec: Self = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let field = field_of(e.path());
            let inner = e.into_inner();
            let line = (inner.line() > 0).then_some(inner.line());
            let column = (inner.column() > 0).then_some(inner.column());
            error(SpecFormat::Json, line, column, field, &inner.to_string())
        })?;
        de.end().map_err(|e| {
            let message = "unexpected text after the closing `}`: a file holds one profile";
            error(
                SpecFormat::Json,
                Some(e.line()),
                Some(e.column()),
                None,
                message,
            )
        })?;
        Ok(spec)
    }

    /// Reads a spec from YAML (one document).
    ///
    /// # Errors
    /// As [`Self::from_json`].
    pub fn from_yaml(text: &str) -> Result<Self, SpecParseError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if text.trim().is_empty() {
            return Err(empty(SpecFormat::Yaml));
        }
        check_bounds(SpecFormat::Yaml, text)?;
        let de = serde_norway::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let field = field_of(e.path());
            let inner = e.into_inner();
            let location = inner.location();
            error(
                SpecFormat::Yaml,
                location.as_ref().map(serde_norway::Location::line),
                location.as_ref().map(serde_norway::Location::column),
                field,
                &inner.to_string(),
            )
        })
    }

    /// Reads a spec from an uploaded file. `hint` is its name, extension or media type
    /// ([`SpecFormat::from_hint`]); without a usable hint the content decides
    /// ([`SpecFormat::sniff`]). A UTF-8 byte-order mark is ignored.
    ///
    /// # Errors
    /// As [`Self::from_json`]; also when the bytes are not UTF-8 text.
    pub fn parse(bytes: &[u8], hint: Option<&str>) -> Result<Self, SpecParseError> {
        let format = hint
            .and_then(SpecFormat::from_hint)
            .unwrap_or_else(|| SpecFormat::sniff(bytes));
        if bytes.len() > MAX_SPEC_BYTES {
            return Err(too_large(format, bytes.len()));
        }
        let text = std::str::from_utf8(bytes).map_err(|e| not_utf8(format, bytes, &e))?;
        match format {
            SpecFormat::Json => Self::from_json(text),
            SpecFormat::Yaml => Self::from_yaml(text),
        }
    }
}

/// Refuses a text over [`MAX_SPEC_BYTES`] or nested deeper than [`MAX_SPEC_DEPTH`], before
/// any parser sees it.
fn check_bounds(format: SpecFormat, text: &str) -> Result<(), SpecParseError> {
    if text.len() > MAX_SPEC_BYTES {
        return Err(too_large(format, text.len()));
    }
    let nesting = match format {
        SpecFormat::Json => bounds::json_nesting(text, MAX_SPEC_DEPTH),
        SpecFormat::Yaml => bounds::yaml_nesting(text, MAX_SPEC_DEPTH),
    };
    match nesting {
        Nesting {
            depth,
            over_at_line: Some(line),
        } => Err(SpecParseError {
            format,
            line: Some(line),
            column: None,
            field: None,
            message: too_deep_message(depth),
        }),
        Nesting { .. } => Ok(()),
    }
}

/// "nested 40 levels deep; at most 32", with what a profile needs.
pub(crate) fn too_deep_message(depth: usize) -> String {
    format!(
        "lists and maps are nested {depth} levels deep; at most {MAX_SPEC_DEPTH} are read (a profile needs 4: the profile, `initial_commands`, a command, its `queries`)"
    )
}

fn too_large(format: SpecFormat, len: usize) -> SpecParseError {
    SpecParseError {
        format,
        line: None,
        column: None,
        field: None,
        message: format!(
            "the file is {} KiB; a profile file may be at most {} KiB (certificates and initial commands included)",
            len.div_ceil(1024),
            MAX_SPEC_BYTES / 1024
        ),
    }
}

fn empty(format: SpecFormat) -> SpecParseError {
    SpecParseError {
        format,
        line: None,
        column: None,
        field: None,
        message: "the file is empty: a profile needs at least a `name`".into(),
    }
}

fn not_utf8(format: SpecFormat, bytes: &[u8], e: &std::str::Utf8Error) -> SpecParseError {
    let valid = &bytes[..e.valid_up_to()];
    let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&valid[line_start..])
        .chars()
        .count()
        + 1;
    SpecParseError {
        format,
        line: Some(line),
        column: Some(column),
        field: None,
        message: "the file is not UTF-8 text: save it as UTF-8 and upload it again".into(),
    }
}

/// The key a serde path points at, or `None` at the top level.
fn field_of(path: &serde_path_to_error::Path) -> Option<String> {
    let path = path.to_string();
    (path != "." && !path.is_empty()).then_some(path)
}

/// Builds the error, rewording serde's messages for admins (serde_norway starts its
/// messages with the key path, which `field` already holds).
fn error(
    format: SpecFormat,
    line: Option<usize>,
    column: Option<usize>,
    field: Option<String>,
    raw: &str,
) -> SpecParseError {
    let raw = strip_location(raw);
    let (field, message) = if let Some(key) = quoted_after(raw, "unknown field `") {
        let hint = match closest(key, SPEC_FIELDS.iter().copied()) {
            Some(fix) => format!("did you mean `{fix}`?"),
            None => format!(
                "the keys a profile may have are: {}",
                SPEC_FIELDS.join(", ")
            ),
        };
        (Some(key.to_owned()), format!("unknown key `{key}`: {hint}"))
    } else if let Some(key) = quoted_after(raw, "missing field `") {
        let message = format!("the key `{key}` is missing: every profile needs one");
        (Some(key.to_owned()), message)
    } else if let Some(key) = quoted_after(raw, "duplicate field `") {
        let message = format!("the key `{key}` appears twice: keep one");
        (Some(key.to_owned()), message)
    } else {
        let raw = field
            .as_ref()
            .and_then(|f| raw.strip_prefix(f.as_str())?.strip_prefix(": "))
            .unwrap_or(raw);
        let raw = raw.replace("struct ProfileSpec", "a profile (keys such as `name: ...`)");
        let message = match &field {
            Some(field) => format!("`{field}`: {raw}"),
            None => raw,
        };
        (field, message)
    };
    SpecParseError {
        format,
        line,
        column,
        field,
        message,
    }
}

/// The text between `prefix` and the next backquote, when `message` contains `prefix`.
fn quoted_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let start = message.find(prefix)? + prefix.len();
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

/// `message` without the " at line L column C" serde_json and libyaml append (the position
/// is kept in its own fields).
fn strip_location(message: &str) -> &str {
    let message = match message.rfind(" at line ") {
        Some(i) if message[i..].contains(" column ") => &message[..i],
        _ => message,
    };
    message.trim_end()
}
