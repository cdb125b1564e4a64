//! Device groups: static (a list of serials) or smart (a rule over ABM attributes), each
//! optionally assigning an ADE profile, ordered by priority (see [`crate::resolve`]).

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use guardmdm_store::{
    AssignmentConfigStore, DeviceGroup, GroupId, GroupUpdate, NewAuditEvent, NewDeviceGroup,
    ProfileId, Store, StoreError,
};

use crate::group_rule::GroupRule;
use crate::lookup::{profile_id_of, profile_names};
use crate::names::validate_name;
use crate::pass_requests::PassRequests;
use crate::serial_list::{self, CsvReport, SerialInput};
use crate::{Actor, ServiceError};

/// The priority of a group created without one.
pub const DEFAULT_PRIORITY: i32 = 100;

/// A group as admins see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupView {
    /// Name.
    pub name: String,
    /// `static` or `smart`.
    pub kind: String,
    /// The smart group's rule (JSON form).
    pub rule: Option<GroupRule>,
    /// The rule in the CLI's words (`os=ios and model~iPad`).
    pub rule_text: Option<String>,
    /// The profile it assigns.
    pub profile: Option<String>,
    /// Precedence among groups: the lowest number wins, ties by name.
    pub priority: i32,
    /// Static members.
    pub member_count: u64,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A new group.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    /// Name.
    pub name: String,
    /// A rule makes it a smart group; without one it is static.
    #[serde(default)]
    pub rule: Option<GroupRule>,
    /// The profile it assigns.
    #[serde(default)]
    pub profile: Option<String>,
    /// Precedence (default [`DEFAULT_PRIORITY`]).
    #[serde(default)]
    pub priority: Option<i32>,
}

/// A change to a group; absent fields stay.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupChange {
    /// A new rule (smart groups only).
    #[serde(default)]
    pub rule: Option<GroupRule>,
    /// `Some(None)` (JSON `null`) clears the profile.
    #[serde(default, with = "double_option")]
    pub profile: Option<Option<String>>,
    /// New precedence.
    #[serde(default)]
    pub priority: Option<i32>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

/// Device groups.
pub struct GroupService<S: ?Sized = dyn Store> {
    store: Arc<S>,
    passes: Arc<dyn PassRequests>,
}

impl<S: ?Sized> Clone for GroupService<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            passes: self.passes.clone(),
        }
    }
}

fn audit(actor: &Actor, action: &str, name: &str, details: serde_json::Value) -> NewAuditEvent {
    NewAuditEvent {
        at: guardmdm_store::now(),
        actor: actor.audit_name(),
        action: action.to_string(),
        target: format!("group:{name}"),
        details,
    }
}

fn check_priority(priority: i32) -> Result<i32, ServiceError> {
    if (0..=100_000).contains(&priority) {
        Ok(priority)
    } else {
        Err(ServiceError::Invalid(format!(
            "priority {priority} is out of range: use 0 to 100000 (the lowest number wins)"
        )))
    }
}

impl<S: ?Sized + AssignmentConfigStore> GroupService<S> {
    /// A service over `store`; changes ask `passes` for assignment passes.
    pub fn new(store: Arc<S>, passes: Arc<dyn PassRequests>) -> Self {
        Self { store, passes }
    }

    async fn load(&self, name: &str) -> Result<DeviceGroup, ServiceError> {
        self.store.get_group(name).await.map_err(|e| match e {
            StoreError::NotFound => {
                ServiceError::NotFound(format!("no device group named {name:?}"))
            }
            other => other.into(),
        })
    }

    /// Creates a group.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a bad name, rule or priority; [`ServiceError::NotFound`]
    /// for an unknown profile; [`ServiceError::Conflict`] when the name is taken.
    pub async fn create(&self, actor: &Actor, group: NewGroup) -> Result<GroupView, ServiceError> {
        validate_name(&group.name, "group name")?;
        if let Some(rule) = &group.rule {
            rule.validate()?;
        }
        let priority = check_priority(group.priority.unwrap_or(DEFAULT_PRIORITY))?;
        let profile_id = profile_id_of(self.store.as_ref(), group.profile.as_deref()).await?;
        let created = self
            .store
            .create_group(
                &NewDeviceGroup {
                    id: GroupId::new_v4(),
                    name: group.name.clone(),
                    rule: group.rule.as_ref().map(GroupRule::to_json),
                    profile_id,
                    priority,
                },
                &audit(
                    actor,
                    "group.create",
                    &group.name,
                    serde_json::json!({
                        "rule": group.rule.as_ref().map(ToString::to_string),
                        "profile": group.profile,
                        "priority": priority,
                    }),
                ),
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => ServiceError::Conflict(format!(
                    "a device group named {:?} exists already",
                    group.name
                )),
                other => other.into(),
            })?;
        if profile_id.is_some() {
            self.passes.request_pass();
        }
        self.view(&created).await
    }

    /// Changes a group's rule, profile or priority.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; [`ServiceError::Invalid`] for a rule on a static group or
    /// a bad value.
    pub async fn update(
        &self,
        actor: &Actor,
        name: &str,
        change: GroupChange,
    ) -> Result<GroupView, ServiceError> {
        let group = self.load(name).await?;
        if let Some(rule) = &change.rule {
            if group.rule.is_none() {
                return Err(ServiceError::Invalid(format!(
                    "{name:?} is a static group: it has members, not a rule; create a smart group instead"
                )));
            }
            rule.validate()?;
        }
        let priority = change.priority.map(check_priority).transpose()?;
        let profile_id = match &change.profile {
            Some(Some(p)) => Some(profile_id_of(self.store.as_ref(), Some(p)).await?),
            Some(None) => Some(None),
            None => None,
        };
        let updated = self
            .store
            .update_group(
                group.id,
                &GroupUpdate {
                    rule: change.rule.as_ref().map(GroupRule::to_json),
                    profile_id,
                    priority,
                },
                &audit(
                    actor,
                    "group.update",
                    name,
                    serde_json::json!({
                        "rule": change.rule.as_ref().map(ToString::to_string),
                        "profile": change.profile,
                        "priority": priority,
                    }),
                ),
            )
            .await?;
        self.passes.request_pass();
        self.view(&updated).await
    }

    /// One group.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`].
    pub async fn get(&self, name: &str) -> Result<GroupView, ServiceError> {
        let group = self.load(name).await?;
        self.view(&group).await
    }

    /// Every group, in precedence order (lowest priority number first, then by name).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list(&self) -> Result<Vec<GroupView>, ServiceError> {
        let names = profile_names(self.store.as_ref()).await?;
        let mut groups: Vec<GroupView> = self
            .store
            .list_groups()
            .await?
            .iter()
            .map(|g| to_view(g, &names))
            .collect();
        groups.sort_by(|a, b| (a.priority, &a.name).cmp(&(b.priority, &b.name)));
        Ok(groups)
    }

    /// Deletes a group (its devices resolve again without it).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`].
    pub async fn delete(&self, actor: &Actor, name: &str) -> Result<(), ServiceError> {
        let group = self.load(name).await?;
        self.store
            .delete_group(
                group.id,
                &audit(
                    actor,
                    "group.delete",
                    name,
                    serde_json::json!({ "members": group.member_count }),
                ),
            )
            .await?;
        self.passes.request_pass();
        Ok(())
    }

    /// A static group's members, by serial.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; [`ServiceError::Invalid`] for a limit outside 1–1000.
    pub async fn members(
        &self,
        name: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, ServiceError> {
        if !(1..=1000).contains(&limit) {
            return Err(ServiceError::Invalid(
                "limit must be between 1 and 1000".to_string(),
            ));
        }
        let group = self.load(name).await?;
        Ok(self.store.group_members(group.id, after, limit).await?)
    }

    /// Adds serials to a static group, from a list or a CSV; serials unknown to ABM or that
    /// left it are reported and not added. With `dry_run` nothing changes.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; [`ServiceError::Invalid`] for a smart group or an
    /// unreadable CSV.
    pub async fn add(
        &self,
        actor: &Actor,
        name: &str,
        input: SerialInput,
        dry_run: bool,
    ) -> Result<CsvReport, ServiceError> {
        let group = self.static_group(name).await?;
        let (report, serials) = serial_list::check(self.store.as_ref(), input, dry_run).await?;
        if !dry_run && !serials.is_empty() {
            self.store
                .add_group_members(
                    group.id,
                    &serials,
                    &audit(
                        actor,
                        "group.members.add",
                        name,
                        serde_json::json!({ "serials": serials.len() }),
                    ),
                )
                .await?;
            if group.profile_id.is_some() {
                self.passes.request_pass();
            }
        }
        Ok(report)
    }

    /// Removes serials from a static group; returns how many were members.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; [`ServiceError::Invalid`] for a smart group or a malformed
    /// serial.
    pub async fn remove(
        &self,
        actor: &Actor,
        name: &str,
        serials: &[String],
    ) -> Result<u64, ServiceError> {
        let group = self.static_group(name).await?;
        let serials = serial_list::normalize_all(serials)?;
        let removed = self
            .store
            .remove_group_members(
                group.id,
                &serials,
                &audit(
                    actor,
                    "group.members.remove",
                    name,
                    serde_json::json!({ "serials": serials.len() }),
                ),
            )
            .await?;
        if removed > 0 && group.profile_id.is_some() {
            self.passes.request_pass();
        }
        Ok(removed)
    }

    async fn static_group(&self, name: &str) -> Result<DeviceGroup, ServiceError> {
        let group = self.load(name).await?;
        if group.rule.is_some() {
            return Err(ServiceError::Invalid(format!(
                "{name:?} is a smart group: its members come from its rule; change the rule instead"
            )));
        }
        Ok(group)
    }

    async fn view(&self, group: &DeviceGroup) -> Result<GroupView, ServiceError> {
        let names = profile_names(self.store.as_ref()).await?;
        Ok(to_view(group, &names))
    }
}

fn to_view(group: &DeviceGroup, profiles: &HashMap<ProfileId, String>) -> GroupView {
    let rule = group
        .rule
        .as_ref()
        .and_then(|r| GroupRule::from_json(r).ok());
    GroupView {
        name: group.name.clone(),
        kind: if group.rule.is_some() {
            "smart"
        } else {
            "static"
        }
        .to_string(),
        rule_text: rule.as_ref().map(ToString::to_string),
        rule,
        profile: group.profile_id.and_then(|id| profiles.get(&id).cloned()),
        priority: group.priority,
        member_count: group.member_count,
        created_at: group.created_at,
        updated_at: group.updated_at,
    }
}
