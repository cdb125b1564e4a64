//! Smart-group rules: which ABM devices belong to a group, decided from the attributes Apple
//! reports, at sync time (before anyone unboxes the device).
//!
//! A rule is a list of conditions that must all hold. Each condition compares one attribute
//! with one or more values, case-insensitively:
//!
//! | CLI form | JSON `op` | holds when the attribute… |
//! |---|---|---|
//! | `field=a\|b` | `eq` | equals one of the values |
//! | `field!=a\|b` | `ne` | equals none of them (a missing attribute counts as different) |
//! | `field~a\|b` | `contains` | contains one of them |
//! | `field^=a\|b` | `prefix` | starts with one of them |
//!
//! Fields: `os` (`ios`, `ipados`, `macos`, `tvos`, `visionos`, as [`OsKey::of_device`]
//! derives it, so `os=ipados` also matches iPads whose record says `iOS`), `family`
//! (`iPhone`, `iPad`, `Mac`, `AppleTV`, `Vision`), `model`, `description`, `color`,
//! `assigned_by` (who assigned the device to this server in ABM), `entry` (the ABM entry's
//! name) and `serial`.
//!
//! JSON form: `{"all": [{"field": "os", "op": "eq", "values": ["ios"]}, …]}`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ServiceError;
use crate::os::OsKey;

/// Most conditions in one rule.
pub const MAX_CONDITIONS: usize = 20;
/// Longest value.
pub const MAX_VALUE_LEN: usize = 200;

/// A smart group's rule: every condition must hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRule {
    /// The conditions.
    pub all: Vec<Condition>,
}

/// One condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The attribute.
    pub field: RuleField,
    /// The comparison.
    pub op: RuleOp,
    /// One or more values (any of them).
    pub values: Vec<String>,
}

/// An ABM attribute a rule can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleField {
    /// The OS key.
    Os,
    /// Apple's `device_family`.
    Family,
    /// Apple's `model`.
    Model,
    /// Apple's `description`.
    Description,
    /// Apple's `color`.
    Color,
    /// Apple's `device_assigned_by`.
    AssignedBy,
    /// The ABM entry's name.
    Entry,
    /// The serial number.
    Serial,
}

impl RuleField {
    /// The field's name in rules.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Os => "os",
            Self::Family => "family",
            Self::Model => "model",
            Self::Description => "description",
            Self::Color => "color",
            Self::AssignedBy => "assigned_by",
            Self::Entry => "entry",
            Self::Serial => "serial",
        }
    }

    fn parse(text: &str) -> Result<Self, ServiceError> {
        let key = text.trim().to_ascii_lowercase().replace('-', "_");
        Ok(match key.as_str() {
            "os" => Self::Os,
            "family" | "device_family" => Self::Family,
            "model" => Self::Model,
            "description" => Self::Description,
            "color" | "colour" => Self::Color,
            "assigned_by" | "device_assigned_by" => Self::AssignedBy,
            "entry" | "abm_entry" => Self::Entry,
            "serial" | "serial_number" => Self::Serial,
            _ => {
                return Err(ServiceError::Invalid(format!(
                    "unknown rule field {text:?}: use os, family, model, description, color, assigned_by, entry or serial"
                )));
            }
        })
    }
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleOp {
    /// Equals one of the values.
    Eq,
    /// Equals none of the values.
    Ne,
    /// Contains one of the values.
    Contains,
    /// Starts with one of the values.
    Prefix,
}

impl RuleOp {
    fn symbol(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "!=",
            Self::Contains => "~",
            Self::Prefix => "^=",
        }
    }
}

/// The attributes of one ABM device that rules can test.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeviceFacts<'a> {
    /// Serial number.
    pub serial: &'a str,
    /// Apple's `os`.
    pub os: Option<&'a str>,
    /// Apple's `device_family`.
    pub family: Option<&'a str>,
    /// Apple's `model`.
    pub model: Option<&'a str>,
    /// Apple's `description`.
    pub description: Option<&'a str>,
    /// Apple's `color`.
    pub color: Option<&'a str>,
    /// Apple's `device_assigned_by`.
    pub assigned_by: Option<&'a str>,
    /// The ABM entry's name.
    pub entry: &'a str,
}

impl<'a> DeviceFacts<'a> {
    /// The facts of an ABM record in the entry named `entry`.
    pub fn new(device: &'a guardmdm_store::AbmDevice, entry: &'a str) -> Self {
        Self {
            serial: &device.serial_number,
            os: device.os.as_deref(),
            family: device.device_family.as_deref(),
            model: Some(device.model.as_str()),
            description: device.description.as_deref(),
            color: device.color.as_deref(),
            assigned_by: device.device_assigned_by.as_deref(),
            entry,
        }
    }

    /// The device's OS key.
    pub fn os_key(&self) -> Option<OsKey> {
        OsKey::of_device(self.os, self.family)
    }
}

impl GroupRule {
    /// Parses the CLI form: one condition per string (`os=ios`, `model~iPhone 15`,
    /// `assigned_by^=it-`, `family!=AppleTV`), checked with [`Self::validate`].
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] saying which condition is wrong and how to write it.
    pub fn parse_cli<S: AsRef<str>>(conditions: &[S]) -> Result<Self, ServiceError> {
        let all = conditions
            .iter()
            .map(|c| parse_condition(c.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let rule = Self { all };
        rule.validate()?;
        Ok(rule)
    }

    /// Parses the dashboard's form: one condition per line, in the CLI form (blank lines
    /// are skipped), checked with [`Self::validate`]. A line may also join conditions with
    /// ` and `, as [`GroupRule`]'s `Display` writes them, when every part is a condition.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] naming the line that is wrong.
    pub fn parse_lines(text: &str) -> Result<Self, ServiceError> {
        let mut all = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let parts: Vec<&str> = line.split(" and ").map(str::trim).collect();
            let joined = parts.len() > 1 && parts.iter().all(|p| parse_condition(p).is_ok());
            let conditions = if joined { parts } else { vec![line] };
            for c in conditions {
                all.push(
                    parse_condition(c)
                        .map_err(|e| ServiceError::Invalid(format!("rule line {}: {e}", n + 1)))?,
                );
            }
        }
        let rule = Self { all };
        rule.validate()?;
        Ok(rule)
    }

    /// The rule as [`Self::parse_lines`] reads it: one condition per line.
    pub fn to_lines(&self) -> String {
        self.all
            .iter()
            .map(|c| {
                format!(
                    "{}{}{}",
                    c.field.as_str(),
                    c.op.symbol(),
                    c.values.join("|")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Reads the JSON form, checked with [`Self::validate`].
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for malformed JSON or an invalid rule.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, ServiceError> {
        let rule: Self = serde_json::from_value(value.clone())
            .map_err(|e| ServiceError::Invalid(format!("the group rule is malformed: {e}")))?;
        rule.validate()?;
        Ok(rule)
    }

    /// The JSON form.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Checks the limits: 1 to [`MAX_CONDITIONS`] conditions, each with at least one
    /// non-empty value of at most [`MAX_VALUE_LEN`] characters, and `os` values that name an
    /// OS.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] saying what is wrong.
    pub fn validate(&self) -> Result<(), ServiceError> {
        if self.all.is_empty() {
            return Err(ServiceError::Invalid(
                "a smart group needs at least one condition, such as os=ios".to_string(),
            ));
        }
        if self.all.len() > MAX_CONDITIONS {
            return Err(ServiceError::Invalid(format!(
                "a rule has at most {MAX_CONDITIONS} conditions; this one has {}",
                self.all.len()
            )));
        }
        for c in &self.all {
            if c.values.is_empty() {
                return Err(ServiceError::Invalid(format!(
                    "the condition on {} has no value",
                    c.field.as_str()
                )));
            }
            for v in &c.values {
                if v.trim().is_empty() {
                    return Err(ServiceError::Invalid(format!(
                        "the condition on {} has an empty value",
                        c.field.as_str()
                    )));
                }
                if v.chars().count() > MAX_VALUE_LEN {
                    return Err(ServiceError::Invalid(format!(
                        "a value of the condition on {} is longer than {MAX_VALUE_LEN} characters",
                        c.field.as_str()
                    )));
                }
                if c.field == RuleField::Os && matches!(c.op, RuleOp::Eq | RuleOp::Ne) {
                    OsKey::parse(v)?;
                }
            }
        }
        Ok(())
    }

    /// Whether a device satisfies every condition.
    pub fn matches(&self, device: &DeviceFacts<'_>) -> bool {
        self.all.iter().all(|c| c.matches(device))
    }
}

impl Condition {
    fn matches(&self, device: &DeviceFacts<'_>) -> bool {
        let os_key = device.os_key().map(OsKey::as_str);
        let attribute = match self.field {
            RuleField::Os => os_key,
            RuleField::Family => device.family,
            RuleField::Model => device.model,
            RuleField::Description => device.description,
            RuleField::Color => device.color,
            RuleField::AssignedBy => device.assigned_by,
            RuleField::Entry => Some(device.entry),
            RuleField::Serial => Some(device.serial),
        };
        let Some(attribute) = attribute.map(|a| a.trim().to_lowercase()) else {
            return self.op == RuleOp::Ne;
        };
        let wanted = self.values.iter().map(|v| {
            let v = v.trim();
            if self.field == RuleField::Os {
                OsKey::parse(v).map_or_else(|_| v.to_lowercase(), |k| k.as_str().to_string())
            } else {
                v.to_lowercase()
            }
        });
        let mut wanted = wanted;
        match self.op {
            RuleOp::Eq => wanted.any(|v| attribute == v),
            RuleOp::Ne => wanted.all(|v| attribute != v),
            RuleOp::Contains => wanted.any(|v| attribute.contains(&v)),
            RuleOp::Prefix => wanted.any(|v| attribute.starts_with(&v)),
        }
    }
}

fn parse_condition(text: &str) -> Result<Condition, ServiceError> {
    // The first operator in the text decides; `!=` and `^=` are checked before `=`.
    let found = ["!=", "^=", "~", "="]
        .iter()
        .filter_map(|sym| text.find(sym).map(|at| (at, *sym)))
        .min_by_key(|(at, sym)| (*at, std::cmp::Reverse(sym.len())));
    let Some((at, sym)) = found else {
        return Err(ServiceError::Invalid(format!(
            "the condition {text:?} has no operator: write field=value, field!=value, field~text or field^=prefix (values separated by |)"
        )));
    };
    let op = match sym {
        "!=" => RuleOp::Ne,
        "^=" => RuleOp::Prefix,
        "~" => RuleOp::Contains,
        _ => RuleOp::Eq,
    };
    let field = RuleField::parse(&text[..at])?;
    let values = text[at + sym.len()..]
        .split('|')
        .map(|v| v.trim().to_string())
        .collect();
    Ok(Condition { field, op, values })
}

impl fmt::Display for GroupRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.all.iter().enumerate() {
            if i > 0 {
                f.write_str(" and ")?;
            }
            write!(
                f,
                "{}{}{}",
                c.field.as_str(),
                c.op.symbol(),
                c.values.join("|")
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iphone() -> DeviceFacts<'static> {
        DeviceFacts {
            serial: "F2LX0001ABCD",
            os: Some("iOS"),
            family: Some("iPhone"),
            model: Some("iPhone 15 Pro"),
            description: Some("IPHONE 15 PRO BLACK 256GB"),
            color: Some("Black"),
            assigned_by: Some("it-admin@example.com"),
            entry: "main",
        }
    }

    #[test]
    fn lines_are_conditions() {
        let rule = GroupRule::parse_lines("os=ios|ipados\r\n\n  model~iPhone 15 and color=Black\n")
            .unwrap();
        assert_eq!(rule.all.len(), 3);
        assert_eq!(
            rule.to_string(),
            "os=ios|ipados and model~iPhone 15 and color=Black"
        );
        assert_eq!(GroupRule::parse_lines(&rule.to_lines()).unwrap(), rule);
        // " and " inside a value stays in the value when the rest is not a condition.
        let rule = GroupRule::parse_lines("description~black and white").unwrap();
        assert_eq!(rule.all[0].values, ["black and white"]);
        let err = GroupRule::parse_lines("os=ios\nwhatever")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("rule line 2:"), "{err}");
        assert!(
            GroupRule::parse_lines(" \n")
                .unwrap_err()
                .to_string()
                .contains("at least one condition")
        );
    }

    #[test]
    fn parses_every_operator_and_alias() {
        let rule = GroupRule::parse_cli(&[
            "os=ios|ipados",
            "model~iPhone 15",
            "device-family!=AppleTV",
            "assigned_by^=it-",
        ])
        .unwrap();
        assert_eq!(rule.all[0].op, RuleOp::Eq);
        assert_eq!(rule.all[0].values, ["ios", "ipados"]);
        assert_eq!(rule.all[1].op, RuleOp::Contains);
        assert_eq!(rule.all[1].values, ["iPhone 15"]);
        assert_eq!(rule.all[2].field, RuleField::Family);
        assert_eq!(rule.all[2].op, RuleOp::Ne);
        assert_eq!(rule.all[3].op, RuleOp::Prefix);
        assert_eq!(
            rule.to_string(),
            "os=ios|ipados and model~iPhone 15 and family!=AppleTV and assigned_by^=it-"
        );
        assert!(rule.matches(&iphone()));
    }

    #[test]
    fn a_value_may_contain_an_equals_sign() {
        let rule = GroupRule::parse_cli(&["description=a=b"]).unwrap();
        assert_eq!(rule.all[0].field, RuleField::Description);
        assert_eq!(rule.all[0].values, ["a=b"]);
    }

    #[test]
    fn json_round_trips_and_rejects_unknown_keys() {
        let rule = GroupRule::parse_cli(&["os=macos", "color=silver"]).unwrap();
        assert_eq!(GroupRule::from_json(&rule.to_json()).unwrap(), rule);
        let bad =
            serde_json::json!({"all": [{"field": "os", "op": "eq", "values": ["ios"], "x": 1}]});
        assert!(GroupRule::from_json(&bad).is_err());
        let bad_field =
            serde_json::json!({"all": [{"field": "imei", "op": "eq", "values": ["1"]}]});
        assert!(GroupRule::from_json(&bad_field).is_err());
    }

    #[test]
    fn rejects_bad_rules_with_clear_messages() {
        let no_op = GroupRule::parse_cli(&["os ios"]).unwrap_err().to_string();
        assert!(no_op.contains("no operator"), "{no_op}");
        let field = GroupRule::parse_cli(&["imei=1"]).unwrap_err().to_string();
        assert!(field.contains("unknown rule field"), "{field}");
        let empty = GroupRule::parse_cli(&["model="]).unwrap_err().to_string();
        assert!(empty.contains("empty value"), "{empty}");
        let os = GroupRule::parse_cli(&["os=android"])
            .unwrap_err()
            .to_string();
        assert!(os.contains("unknown OS"), "{os}");
        let none = GroupRule::parse_cli::<&str>(&[]).unwrap_err().to_string();
        assert!(none.contains("at least one condition"), "{none}");
        let many: Vec<String> = (0..21).map(|i| format!("model=m{i}")).collect();
        assert!(GroupRule::parse_cli(&many).is_err());
        let long = format!("model={}", "x".repeat(201));
        assert!(GroupRule::parse_cli(&[long]).is_err());
    }

    #[test]
    fn matching_is_case_insensitive_and_os_uses_the_family() {
        let d = iphone();
        assert!(GroupRule::parse_cli(&["os=IOS"]).unwrap().matches(&d));
        assert!(GroupRule::parse_cli(&["color=black"]).unwrap().matches(&d));
        assert!(!GroupRule::parse_cli(&["os=ipados"]).unwrap().matches(&d));
        let ipad_saying_ios = DeviceFacts {
            family: Some("iPad"),
            ..iphone()
        };
        assert!(
            GroupRule::parse_cli(&["os=ipados"])
                .unwrap()
                .matches(&ipad_saying_ios)
        );
        assert!(GroupRule::parse_cli(&["entry=MAIN"]).unwrap().matches(&d));
        assert!(GroupRule::parse_cli(&["serial^=f2lx"]).unwrap().matches(&d));
    }

    #[test]
    fn every_condition_must_hold_and_missing_attributes_only_satisfy_ne() {
        let d = DeviceFacts {
            color: None,
            ..iphone()
        };
        assert!(!GroupRule::parse_cli(&["color=black"]).unwrap().matches(&d));
        assert!(GroupRule::parse_cli(&["color!=black"]).unwrap().matches(&d));
        assert!(!GroupRule::parse_cli(&["color~bl"]).unwrap().matches(&d));
        assert!(
            !GroupRule::parse_cli(&["os=ios", "model~iPad"])
                .unwrap()
                .matches(&iphone())
        );
        assert!(
            !GroupRule::parse_cli(&["family!=iphone|ipad"])
                .unwrap()
                .matches(&iphone())
        );
    }
}
