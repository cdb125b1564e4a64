//! Which ADE profile an ABM device should have, and why: plain functions over plain types.
//!
//! Precedence, first match wins:
//!
//! 1. **Device**: a profile assigned to the serial explicitly.
//! 2. **Group**: the groups the device belongs to (static members, or smart groups whose rule
//!    matches) that assign a profile, in group precedence order: the lowest `priority` number
//!    first, then the group name (alphabetical) to break ties. So a device in both
//!    `sales` (priority 10) and `all-iphones` (priority 100) gets the `sales` profile.
//! 3. **OS default**: the default profile of the device's OS. iPadOS falls back to the iOS
//!    default when it has none of its own.
//! 4. **Unassigned**, with the reason: "no explicit profile, not in a group with a profile,
//!    no default for tvOS".

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

pub use guardmdm_store::RuleRef;
use guardmdm_store::{AssignmentConfig, GroupId, ProfileId};

use crate::group_rule::{DeviceFacts, GroupRule};
use crate::os::OsKey;

/// A profile as the resolver names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileRef {
    /// Its name.
    pub name: String,
    /// Its current version.
    pub version: i64,
}

/// How a group selects its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// A list of serials (stored with the devices).
    Static,
    /// A rule over ABM attributes.
    Smart(GroupRule),
    /// A stored rule that no longer parses: the group matches nothing, and says so.
    Broken(String),
}

/// A group as the resolver sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDef {
    /// Id.
    pub id: GroupId,
    /// Name.
    pub name: String,
    /// Precedence (lowest wins).
    pub priority: i32,
    /// The profile it assigns.
    pub profile_id: Option<ProfileId>,
    /// Static or smart.
    pub membership: Membership,
}

/// The whole assignment configuration, ready to resolve many devices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolver {
    /// The assignment generation it was built from.
    pub generation: i64,
    profiles: HashMap<ProfileId, ProfileRef>,
    /// Groups in precedence order.
    groups: Vec<GroupDef>,
    defaults: HashMap<OsKey, ProfileId>,
}

/// What happened to one rule while resolving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    /// This rule gave the profile.
    Won,
    /// The rule applies, but one with higher precedence won already.
    Shadowed,
    /// The rule does not apply to this device.
    Skipped,
}

/// One line of the explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The rule, for example `group "sales" (priority 10)`.
    pub rule: String,
    /// Won, shadowed or skipped.
    pub outcome: StepOutcome,
    /// Why, in words.
    pub detail: String,
    /// The profile this rule would give, if any.
    pub profile: Option<String>,
}

/// The result for one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// The profile it should have.
    pub profile_id: Option<ProfileId>,
    /// Its name.
    pub profile: Option<String>,
    /// Its current version.
    pub profile_version: Option<i64>,
    /// Which rule gave it.
    pub rule: RuleRef,
    /// Every rule considered, in precedence order.
    pub steps: Vec<Step>,
    /// For an unassigned device, why (the skipped rules' reasons, joined).
    pub unassigned_reason: Option<String>,
}

impl Resolver {
    /// Builds the resolver from a stored configuration. A smart group whose stored rule does
    /// not parse matches nothing (and the explanation says so) rather than failing every
    /// device.
    pub fn new(config: &AssignmentConfig) -> Self {
        let profiles = config
            .profiles
            .iter()
            .map(|p| {
                (
                    p.id,
                    ProfileRef {
                        name: p.name.clone(),
                        version: p.version,
                    },
                )
            })
            .collect();
        let mut groups: Vec<GroupDef> = config
            .groups
            .iter()
            .map(|g| GroupDef {
                id: g.id,
                name: g.name.clone(),
                priority: g.priority,
                profile_id: g.profile_id,
                membership: match &g.rule {
                    None => Membership::Static,
                    Some(json) => match GroupRule::from_json(json) {
                        Ok(rule) => Membership::Smart(rule),
                        Err(e) => Membership::Broken(e.to_string()),
                    },
                },
            })
            .collect();
        groups.sort_by(|a, b| (a.priority, &a.name).cmp(&(b.priority, &b.name)));
        let defaults = config
            .os_defaults
            .iter()
            .map(|d| (d.os, d.profile_id))
            .collect();
        Self {
            generation: config.generation,
            profiles,
            groups,
            defaults,
        }
    }

    /// A profile's name and current version.
    pub fn profile(&self, id: ProfileId) -> Option<&ProfileRef> {
        self.profiles.get(&id)
    }

    /// Groups in precedence order.
    pub fn groups(&self) -> &[GroupDef] {
        &self.groups
    }

    /// Resolves one device. `explicit` is its device-level profile, `static_groups` the
    /// static groups it is a member of.
    pub fn resolve(
        &self,
        device: &DeviceFacts<'_>,
        explicit: Option<ProfileId>,
        static_groups: &[GroupId],
    ) -> Resolution {
        let mut steps = Vec::new();
        let mut winner: Option<(ProfileId, RuleRef)> = None;
        let mut reasons = Vec::new();
        self.explicit_step(explicit, &mut steps, &mut winner, &mut reasons);
        self.group_steps(device, static_groups, &mut steps, &mut winner, &mut reasons);
        self.default_step(device, &mut steps, &mut winner, &mut reasons);

        let (profile_id, rule) = match winner {
            Some((id, rule)) => (Some(id), rule),
            None => (None, RuleRef::None),
        };
        let profile = profile_id.and_then(|id| self.profiles.get(&id));
        Resolution {
            profile_id,
            profile: profile.map(|p| p.name.clone()),
            profile_version: profile.map(|p| p.version),
            unassigned_reason: (rule == RuleRef::None).then(|| reasons.join(", ")),
            rule,
            steps,
        }
    }

    /// The device-level rule: the serial's explicit profile wins over everything.
    fn explicit_step(
        &self,
        explicit: Option<ProfileId>,
        steps: &mut Vec<Step>,
        winner: &mut Option<(ProfileId, RuleRef)>,
        reasons: &mut Vec<String>,
    ) {
        match explicit.and_then(|id| self.profiles.get(&id).map(|p| (id, p))) {
            Some((id, p)) => {
                steps.push(Step {
                    rule: RuleRef::Device.to_string(),
                    outcome: StepOutcome::Won,
                    detail: format!("the serial is assigned profile {:?} explicitly", p.name),
                    profile: Some(p.name.clone()),
                });
                *winner = Some((id, RuleRef::Device));
            }
            None => {
                steps.push(Step {
                    rule: RuleRef::Device.to_string(),
                    outcome: StepOutcome::Skipped,
                    detail: "no explicit profile".to_string(),
                    profile: None,
                });
                reasons.push("no explicit profile".to_string());
            }
        }
    }

    /// The groups in precedence order: the first the device is a member of (statically, or
    /// by matching its rule) that assigns a profile wins, unless a rule before them did.
    fn group_steps(
        &self,
        device: &DeviceFacts<'_>,
        static_groups: &[GroupId],
        steps: &mut Vec<Step>,
        winner: &mut Option<(ProfileId, RuleRef)>,
        reasons: &mut Vec<String>,
    ) {
        let statics: HashSet<&GroupId> = static_groups.iter().collect();
        let mut member_without_profile = false;
        let mut group_won = false;
        for g in &self.groups {
            let rule_label = format!("group {:?} (priority {})", g.name, g.priority);
            let member = match &g.membership {
                Membership::Static => statics.contains(&g.id),
                Membership::Smart(rule) => rule.matches(device),
                Membership::Broken(error) => {
                    steps.push(Step {
                        rule: rule_label,
                        outcome: StepOutcome::Skipped,
                        detail: format!("the group's rule is invalid and matches nothing: {error}"),
                        profile: None,
                    });
                    continue;
                }
            };
            if !member {
                continue;
            }
            let how = match g.membership {
                Membership::Smart(ref rule) => format!("matches the rule {rule}"),
                _ => "is a member".to_string(),
            };
            let profile = g
                .profile_id
                .and_then(|id| self.profiles.get(&id).map(|p| (id, p)));
            match (profile, &*winner) {
                (None, _) => {
                    member_without_profile = true;
                    steps.push(Step {
                        rule: rule_label,
                        outcome: StepOutcome::Skipped,
                        detail: format!("the device {how}, but the group assigns no profile"),
                        profile: None,
                    });
                }
                (Some((_, p)), Some((_, won_by))) => steps.push(Step {
                    rule: rule_label,
                    outcome: StepOutcome::Shadowed,
                    detail: format!("the device {how}, but the {won_by} takes precedence"),
                    profile: Some(p.name.clone()),
                }),
                (Some((id, p)), None) => {
                    steps.push(Step {
                        rule: rule_label,
                        outcome: StepOutcome::Won,
                        detail: format!("the device {how}; the group assigns {:?}", p.name),
                        profile: Some(p.name.clone()),
                    });
                    group_won = true;
                    *winner = Some((
                        id,
                        RuleRef::Group {
                            name: g.name.clone(),
                        },
                    ));
                }
            }
        }
        if !group_won && winner.is_none() {
            reasons.push(if member_without_profile {
                "in no group that assigns a profile".to_string()
            } else {
                "not in a group with a profile".to_string()
            });
        }
    }

    fn default_step(
        &self,
        device: &DeviceFacts<'_>,
        steps: &mut Vec<Step>,
        winner: &mut Option<(ProfileId, RuleRef)>,
        reasons: &mut Vec<String>,
    ) {
        let Some(os) = device.os_key() else {
            let detail = format!(
                "the device's OS is not known (Apple reports os {:?}, device family {:?})",
                device.os.unwrap_or(""),
                device.family.unwrap_or("")
            );
            steps.push(Step {
                rule: "OS default".to_string(),
                outcome: StepOutcome::Skipped,
                detail: detail.clone(),
                profile: None,
            });
            if winner.is_none() {
                reasons.push(detail);
            }
            return;
        };
        let own = self.defaults.get(&os).map(|id| (*id, os));
        let found = own.or_else(|| {
            os.fallback()
                .and_then(|f| self.defaults.get(&f).map(|id| (*id, f)))
        });
        let found = found.and_then(|(id, from)| self.profiles.get(&id).map(|p| (id, from, p)));
        let rule_label = format!("{} default", os.label());
        match (found, winner.as_ref()) {
            (None, _) => {
                let detail = match os.fallback() {
                    Some(f) => format!("no default for {} or {}", os.label(), f.label()),
                    None => format!("no default for {}", os.label()),
                };
                steps.push(Step {
                    rule: rule_label,
                    outcome: StepOutcome::Skipped,
                    detail: detail.clone(),
                    profile: None,
                });
                if winner.is_none() {
                    reasons.push(detail);
                }
            }
            (Some((_, from, p)), Some((_, won_by))) => steps.push(Step {
                rule: rule_label,
                outcome: StepOutcome::Shadowed,
                detail: format!(
                    "the {} default is {:?}, but the {won_by} takes precedence",
                    from.label(),
                    p.name
                ),
                profile: Some(p.name.clone()),
            }),
            (Some((id, from, p)), None) => {
                let detail = if from == os {
                    format!("the {} default is {:?}", os.label(), p.name)
                } else {
                    format!(
                        "no {} default, so the {} default {:?} applies",
                        os.label(),
                        from.label(),
                        p.name
                    )
                };
                steps.push(Step {
                    rule: rule_label,
                    outcome: StepOutcome::Won,
                    detail,
                    profile: Some(p.name.clone()),
                });
                *winner = Some((id, RuleRef::Default { os: from }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guardmdm_store::{AdeProfile, DeviceGroup, OsDefault};

    fn profile(name: &str, version: i64) -> AdeProfile {
        AdeProfile {
            id: ProfileId::new_v4(),
            name: name.to_string(),
            version,
            spec: serde_json::json!({}),
            created_at: guardmdm_store::now(),
            updated_at: guardmdm_store::now(),
        }
    }

    fn group(
        name: &str,
        priority: i32,
        profile: Option<&AdeProfile>,
        rule: Option<&[&str]>,
    ) -> DeviceGroup {
        DeviceGroup {
            id: GroupId::new_v4(),
            name: name.to_string(),
            rule: rule.map(|r| GroupRule::parse_cli(r).unwrap().to_json()),
            profile_id: profile.map(|p| p.id),
            priority,
            member_count: 0,
            created_at: guardmdm_store::now(),
            updated_at: guardmdm_store::now(),
        }
    }

    fn default(os: OsKey, p: &AdeProfile) -> OsDefault {
        OsDefault {
            os,
            profile_id: p.id,
            updated_at: guardmdm_store::now(),
        }
    }

    fn device(family: &str, os: &str) -> DeviceFacts<'static> {
        let family: &'static str = Box::leak(family.to_string().into_boxed_str());
        let os: &'static str = Box::leak(os.to_string().into_boxed_str());
        DeviceFacts {
            serial: "SERIAL0001",
            os: Some(os),
            family: Some(family),
            model: Some("Model"),
            entry: "main",
            ..DeviceFacts::default()
        }
    }

    struct World {
        exec: AdeProfile,
        sales: AdeProfile,
        phones: AdeProfile,
        ios: AdeProfile,
        mac: AdeProfile,
        sales_group: DeviceGroup,
        resolver: Resolver,
    }

    fn world() -> World {
        let exec = profile("exec", 1);
        let sales = profile("sales", 3);
        let phones = profile("phones", 1);
        let ios = profile("ios-default", 2);
        let mac = profile("mac-default", 1);
        let sales_group = group("sales", 10, Some(&sales), None);
        let config = AssignmentConfig {
            generation: 7,
            profiles: vec![
                exec.clone(),
                sales.clone(),
                phones.clone(),
                ios.clone(),
                mac.clone(),
            ],
            groups: vec![
                group("all-phones", 100, Some(&phones), Some(&["family=iPhone"])),
                sales_group.clone(),
                group("no-profile", 1, None, Some(&["os=ios"])),
            ],
            os_defaults: vec![default(OsKey::Ios, &ios), default(OsKey::Macos, &mac)],
        };
        World {
            resolver: Resolver::new(&config),
            exec,
            sales,
            phones,
            ios,
            mac,
            sales_group,
        }
    }

    #[test]
    fn explicit_beats_groups_and_defaults() {
        let w = world();
        let r = w.resolver.resolve(
            &device("iPhone", "iOS"),
            Some(w.exec.id),
            &[w.sales_group.id],
        );
        assert_eq!(r.profile_id, Some(w.exec.id));
        assert_eq!(r.rule, RuleRef::Device);
        assert_eq!(r.profile.as_deref(), Some("exec"));
        assert_eq!(r.profile_version, Some(1));
        let outcomes: Vec<_> = r.steps.iter().map(|s| s.outcome).collect();
        assert_eq!(
            outcomes,
            [
                StepOutcome::Won,
                StepOutcome::Skipped,  // no-profile group
                StepOutcome::Shadowed, // sales
                StepOutcome::Shadowed, // all-phones
                StepOutcome::Shadowed, // iOS default
            ]
        );
        assert!(r.unassigned_reason.is_none());
    }

    #[test]
    fn the_lowest_priority_number_wins_among_groups() {
        let w = world();
        let r = w
            .resolver
            .resolve(&device("iPhone", "iOS"), None, &[w.sales_group.id]);
        assert_eq!(r.profile_id, Some(w.sales.id));
        assert_eq!(
            r.rule,
            RuleRef::Group {
                name: "sales".to_string()
            }
        );
        assert_eq!(r.rule.as_text(), "group:sales");
        let all_phones = r
            .steps
            .iter()
            .find(|s| s.rule.contains("all-phones"))
            .unwrap();
        assert_eq!(all_phones.outcome, StepOutcome::Shadowed);
        assert!(
            all_phones.detail.contains("group \"sales\""),
            "{all_phones:?}"
        );
        // Without the static membership, the smart group wins.
        let r = w.resolver.resolve(&device("iPhone", "iOS"), None, &[]);
        assert_eq!(r.profile_id, Some(w.phones.id));
    }

    #[test]
    fn ties_are_broken_by_group_name() {
        let a = profile("a", 1);
        let b = profile("b", 1);
        let config = AssignmentConfig {
            generation: 1,
            profiles: vec![a.clone(), b.clone()],
            groups: vec![
                group("zeta", 5, Some(&b), Some(&["os=macos"])),
                group("alpha", 5, Some(&a), Some(&["os=macos"])),
            ],
            os_defaults: vec![],
        };
        let r = Resolver::new(&config).resolve(&device("Mac", "OSX"), None, &[]);
        assert_eq!(r.profile_id, Some(a.id));
    }

    #[test]
    fn os_defaults_apply_and_ipads_fall_back_to_ios() {
        let w = world();
        let mac = w.resolver.resolve(&device("Mac", "OSX"), None, &[]);
        assert_eq!(mac.profile_id, Some(w.mac.id));
        assert_eq!(mac.rule.as_text(), "default:macos");
        let ipad = w.resolver.resolve(&device("iPad", "iPadOS"), None, &[]);
        assert_eq!(ipad.profile_id, Some(w.ios.id));
        assert_eq!(ipad.rule, RuleRef::Default { os: OsKey::Ios });
        let won = ipad.steps.last().unwrap();
        assert!(won.detail.contains("no iPadOS default"), "{won:?}");
    }

    #[test]
    fn unassigned_devices_say_why() {
        let w = world();
        let tv = w.resolver.resolve(&device("AppleTV", "tvOS"), None, &[]);
        assert_eq!(tv.profile_id, None);
        assert_eq!(tv.rule, RuleRef::None);
        assert_eq!(
            tv.unassigned_reason.as_deref(),
            Some("no explicit profile, not in a group with a profile, no default for tvOS")
        );
        let unknown = w.resolver.resolve(&device("Watch", "watchOS"), None, &[]);
        let reason = unknown.unassigned_reason.unwrap();
        assert!(reason.contains("OS is not known"), "{reason}");
        // An iPhone in a group without a profile, with no defaults at all.
        let config = AssignmentConfig {
            groups: vec![group("empty", 1, None, Some(&["os=ios"]))],
            ..AssignmentConfig::default()
        };
        let r = Resolver::new(&config).resolve(&device("iPhone", "iOS"), None, &[]);
        assert_eq!(
            r.unassigned_reason.as_deref(),
            Some("no explicit profile, in no group that assigns a profile, no default for iOS")
        );
    }

    #[test]
    fn a_broken_stored_rule_matches_nothing_and_is_explained() {
        let p = profile("p", 1);
        let mut g = group("broken", 1, Some(&p), Some(&["os=ios"]));
        g.rule = Some(serde_json::json!({"all": "nonsense"}));
        let config = AssignmentConfig {
            profiles: vec![p],
            groups: vec![g],
            ..AssignmentConfig::default()
        };
        let r = Resolver::new(&config).resolve(&device("iPhone", "iOS"), None, &[]);
        assert_eq!(r.profile_id, None);
        assert!(
            r.steps.iter().any(|s| s.detail.contains("invalid")),
            "{r:?}"
        );
    }

    #[test]
    fn an_explicit_profile_that_no_longer_exists_is_skipped() {
        let w = world();
        let r = w
            .resolver
            .resolve(&device("Mac", "OSX"), Some(ProfileId::new_v4()), &[]);
        assert_eq!(r.profile_id, Some(w.mac.id));
    }
}
