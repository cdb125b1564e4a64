//! A [`ProfileSpec`] as the dashboard's form edits it: the whole spec as YAML (the "edit as
//! YAML" view), the `initial_commands` list as a YAML or JSON block, and certificate lists
//! as text with one certificate per paragraph.

use super::bounds::{MAX_SPEC_BYTES, MAX_SPEC_DEPTH, yaml_nesting};
use super::parse::too_deep_message;
use super::{FieldError, ProfileSpec, codes};
use crate::command_spec::CommandSpec;

impl ProfileSpec {
    /// The spec as YAML, keys in declaration order, keys that were not given left out:
    /// [`ProfileSpec::from_yaml`] reads it back to an equal spec.
    ///
    /// # Errors
    /// Only if the YAML writer fails, which a spec's plain strings, booleans and lists do
    /// not make it do.
    pub fn to_yaml(&self) -> Result<String, String> {
        serde_norway::to_string(self).map_err(|e| e.to_string())
    }
}

/// The `initial_commands` list from text: a YAML (or JSON) list of commands, each with a
/// `request_type` and its options. Blank text means "none" (`Ok(None)`).
///
/// # Errors
/// A [`FieldError`] on `initial_commands` (code `INITIAL_COMMAND_INVALID`) saying where the
/// text is wrong and what a list looks like.
pub fn initial_commands_from_text(text: &str) -> Result<Option<Vec<CommandSpec>>, FieldError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let refused = |message: String| FieldError {
        field: "initial_commands".to_string(),
        code: codes::INITIAL_COMMAND_INVALID.to_string(),
        message,
    };
    if text.len() > MAX_SPEC_BYTES {
        return Err(refused(format!(
            "the initial commands are {} KiB; a profile may be at most {} KiB",
            text.len().div_ceil(1024),
            MAX_SPEC_BYTES / 1024
        )));
    }
    let nesting = yaml_nesting(text, MAX_SPEC_DEPTH);
    if let Some(line) = nesting.over_at_line {
        return Err(refused(format!(
            "the initial commands cannot be read (line {line}): {}",
            too_deep_message(nesting.depth)
        )));
    }
    let de = serde_norway::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, Vec<CommandSpec>>(de)
        .map(Some)
        .map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let at = inner
                .location()
                .map(|l| format!(" (line {}, column {})", l.line(), l.column()))
                .unwrap_or_default();
            let place = if path == "." || path.is_empty() {
                String::new()
            } else {
                format!(" at `{path}`")
            };
            FieldError {
                field: "initial_commands".to_string(),
                code: codes::INITIAL_COMMAND_INVALID.to_string(),
                message: format!(
                    "the initial commands cannot be read{place}{at}: {inner}. Write a list, one `- request_type: …` item per command, for example `- request_type: DeviceInformation`"
                ),
            }
        })
}

/// The `initial_commands` list as YAML for the form; empty for none.
pub fn initial_commands_to_text(commands: Option<&[CommandSpec]>) -> String {
    match commands {
        Some(c) if !c.is_empty() => serde_norway::to_string(c).unwrap_or_default(),
        _ => String::new(),
    }
}

/// Certificates from text: paragraphs separated by blank lines, each one base64
/// certificate (line breaks inside a paragraph are kept; [`super::validate`] removes them).
/// Blank text means "none".
pub fn certs_from_text(text: &str) -> Option<Vec<String>> {
    let text = text.replace("\r\n", "\n");
    let certs: Vec<String> = text
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    (!certs.is_empty()).then_some(certs)
}

/// Certificates as text for the form: one paragraph each.
pub fn certs_to_text(certs: Option<&[String]>) -> String {
    certs.map(|c| c.join("\n\n")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile_spec::EnrollmentType;

    #[test]
    fn yaml_round_trips_and_leaves_out_what_was_not_given() {
        let spec = ProfileSpec {
            name: "corp".into(),
            enrollment_type: Some(EnrollmentType::UserInitiated),
            allow_pairing: Some(false),
            skip_setup_items: Some(vec!["Siri".into(), "AppleID".into()]),
            initial_commands: Some(vec![CommandSpec {
                request_type: "DeviceInformation".into(),
                queries: Some(vec!["UDID".into()]),
                ..CommandSpec::default()
            }]),
            ..ProfileSpec::default()
        };
        let yaml = spec.to_yaml().unwrap();
        assert!(yaml.starts_with("name: corp\n"), "{yaml}");
        assert!(!yaml.contains("is_supervised"), "{yaml}");
        assert_eq!(ProfileSpec::from_yaml(&yaml).unwrap(), spec);
    }

    #[test]
    fn initial_commands_read_yaml_and_json_and_name_the_problem() {
        assert_eq!(initial_commands_from_text("  \n").unwrap(), None);
        let yaml = "- request_type: DeviceInformation\n- request_type: RemoveProfile\n  identifier: com.example.wifi\n";
        let list = initial_commands_from_text(yaml).unwrap().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].identifier.as_deref(), Some("com.example.wifi"));
        assert_eq!(
            initial_commands_from_text(&initial_commands_to_text(Some(&list))).unwrap(),
            Some(list)
        );
        let json = r#"[{"request_type": "ProfileList"}]"#;
        assert_eq!(
            initial_commands_from_text(json).unwrap().unwrap()[0].request_type,
            "ProfileList"
        );
        let err =
            initial_commands_from_text("- request_type: ProfileList\n  colour: red\n").unwrap_err();
        assert_eq!(err.field, "initial_commands");
        assert_eq!(err.code, codes::INITIAL_COMMAND_INVALID);
        assert!(err.message.contains("colour"), "{}", err.message);
        let err = initial_commands_from_text("request_type: ProfileList").unwrap_err();
        assert!(err.message.contains("Write a list"), "{}", err.message);
        assert_eq!(initial_commands_to_text(None), "");
    }

    #[test]
    fn deeply_nested_initial_commands_are_refused_before_parsing() {
        let text = format!(
            "- request_type: {}{}\n",
            "[".repeat(50_000),
            "]".repeat(50_000)
        );
        let err = initial_commands_from_text(&text).unwrap_err();
        assert_eq!(err.code, codes::INITIAL_COMMAND_INVALID);
        assert!(
            err.message.contains("nested 50002 levels deep; at most 32"),
            "{}",
            err.message
        );
        let big = format!("- request_type: {}\n", "a".repeat(MAX_SPEC_BYTES));
        let err = initial_commands_from_text(&big).unwrap_err();
        assert!(err.message.contains("at most 1024 KiB"), "{}", err.message);
    }

    #[test]
    fn certificates_are_paragraphs() {
        assert_eq!(certs_from_text(" \r\n "), None);
        let text = "MIIB\nAAAA\r\n\r\nMIIC\n\n\n";
        assert_eq!(
            certs_from_text(text).unwrap(),
            vec!["MIIB\nAAAA".to_string(), "MIIC".to_string()]
        );
        let certs = vec!["A".to_string(), "B".to_string()];
        assert_eq!(certs_from_text(&certs_to_text(Some(&certs))), Some(certs));
        assert_eq!(certs_to_text(None), "");
    }
}
