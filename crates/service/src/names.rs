//! Names of ABM entries and API keys: they appear in URLs, file names and shell commands.

use crate::ServiceError;

/// Longest accepted name.
pub const MAX_NAME_LEN: usize = 64;

/// Checks a name: 1 to 64 characters, ASCII letters, digits, `.`, `_` and `-`, starting
/// with a letter or digit. `what` names the kind of thing in the error ("ABM entry name").
///
/// # Errors
/// [`ServiceError::Invalid`] saying what is wrong.
pub fn validate_name(name: &str, what: &str) -> Result<(), ServiceError> {
    if name.is_empty() {
        return Err(ServiceError::Invalid(format!("the {what} is empty")));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(ServiceError::Invalid(format!(
            "the {what} is {} characters long; at most {MAX_NAME_LEN} are allowed",
            name.len()
        )));
    }
    let first_ok = name.starts_with(|c: char| c.is_ascii_alphanumeric());
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !first_ok || !rest_ok {
        return Err(ServiceError::Invalid(format!(
            "the {what} {name:?} may only contain letters, digits, '.', '_' and '-', and must start with a letter or digit"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_refuses_names() {
        for ok in [
            "main",
            "ABM-Europe_2",
            "a",
            "org.example.mdm",
            &"x".repeat(64),
        ] {
            validate_name(ok, "name").unwrap();
        }
        for bad in [
            "",
            "-lead",
            "has space",
            "slash/y",
            "ümlaut",
            &"x".repeat(65),
        ] {
            let err = validate_name(bad, "ABM entry name").unwrap_err();
            assert!(err.to_string().contains("ABM entry name"), "{err}");
        }
    }
}
