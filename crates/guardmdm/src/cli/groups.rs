//! `guardmdm groups …`: static and smart device groups.

use guardmdm_service::group_rule::GroupRule;
use guardmdm_service::groups::GroupView;
use reqwest::Method;

use super::profiles::SerialArgs;
use super::{ApiClient, table};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum GroupsCommand {
    /// Create a group: static (add serials with `groups add`) or, with `--rule`, smart.
    Create {
        /// The group's name.
        name: String,
        /// A smart-group condition on ABM attributes (repeat: all must hold), e.g.
        /// `os=ios|ipados`, `model~iPad Pro`, `assigned_by^=sales-`, `family!=AppleTV`.
        /// Fields: os, family, model, description, color, assigned_by, entry, serial.
        #[arg(long = "rule")]
        rules: Vec<String>,
        /// The ADE profile the group assigns.
        #[arg(long)]
        profile: Option<String>,
        /// Precedence among groups: the lowest number wins (default 100).
        #[arg(long)]
        priority: Option<i32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List groups in precedence order.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One group, and the first members of a static group.
    Show {
        /// The group's name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a group's rule or priority.
    Set {
        /// The group's name.
        name: String,
        /// Replace the smart rule (repeat for several conditions).
        #[arg(long = "rule")]
        rules: Vec<String>,
        /// New precedence.
        #[arg(long)]
        priority: Option<i32>,
    },
    /// Set or clear the ADE profile a group assigns.
    AssignProfile {
        /// The group's name.
        name: String,
        /// The profile.
        #[arg(required_unless_present = "clear")]
        profile: Option<String>,
        /// Stop assigning a profile through this group.
        #[arg(long, conflicts_with = "profile")]
        clear: bool,
    },
    /// Add serials to a static group, from flags or a CSV.
    Add {
        /// The group's name.
        name: String,
        #[command(flatten)]
        serials: SerialArgs,
    },
    /// Remove serials from a static group.
    Remove {
        /// The group's name.
        name: String,
        /// A serial number (repeat for several).
        #[arg(long = "serial", required = true)]
        serials: Vec<String>,
    },
    /// Delete a group.
    Delete {
        /// The group's name.
        name: String,
    },
}

fn print_groups(groups: &[GroupView]) {
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            vec![
                g.name.clone(),
                g.priority.to_string(),
                g.kind.clone(),
                g.rule_text
                    .clone()
                    .unwrap_or_else(|| format!("{} members", g.member_count)),
                g.profile.clone().unwrap_or_else(|| "(none)".to_string()),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(&["NAME", "PRIORITY", "KIND", "MEMBERS", "PROFILE"], &rows)
    );
}

pub(crate) async fn run(client: &ApiClient, command: GroupsCommand) -> anyhow::Result<()> {
    match command {
        GroupsCommand::Create {
            name,
            rules,
            profile,
            priority,
            json,
        } => create(client, &name, &rules, profile, priority, json).await?,
        GroupsCommand::List { json } => {
            let groups: Vec<GroupView> = client.get(&["groups"]).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&groups)?);
            } else {
                print_groups(&groups);
            }
        }
        GroupsCommand::Show { name, json } => show(client, &name, json).await?,
        GroupsCommand::Set {
            name,
            rules,
            priority,
        } => set(client, &name, &rules, priority).await?,
        GroupsCommand::AssignProfile {
            name,
            profile,
            clear,
        } => {
            let profile = if clear { None } else { profile };
            let view: GroupView = client
                .send_json(
                    Method::PATCH,
                    &["groups", &name],
                    &serde_json::json!({ "profile": profile }),
                )
                .await?;
            print_groups(&[view]);
        }
        GroupsCommand::Add { name, serials } => {
            serials.send(client, &["groups", &name, "members"]).await?;
        }
        GroupsCommand::Remove { name, serials } => remove(client, &name, &serials).await?,
        GroupsCommand::Delete { name } => {
            client.delete(&["groups", &name]).await?;
            println!("Deleted group {name:?}.");
        }
    }
    Ok(())
}

/// `groups create`: a smart group when `rules` are given, else a static one.
async fn create(
    client: &ApiClient,
    name: &str,
    rules: &[String],
    profile: Option<String>,
    priority: Option<i32>,
    json: bool,
) -> anyhow::Result<()> {
    let rule = if rules.is_empty() {
        None
    } else {
        Some(GroupRule::parse_cli(rules)?)
    };
    let view: GroupView = client
        .send_json(
            Method::POST,
            &["groups"],
            &serde_json::json!({
                "name": name,
                "rule": rule,
                "profile": profile,
                "priority": priority,
            }),
        )
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print_groups(&[view]);
    }
    Ok(())
}

/// `groups show`: the group and, for a static group, its first 100 members.
async fn show(client: &ApiClient, name: &str, json: bool) -> anyhow::Result<()> {
    let view: GroupView = client.get(&["groups", name]).await?;
    let members: Vec<String> = if view.kind == "static" {
        client
            .get_query(&["groups", name, "members"], &[("limit", "100")])
            .await?
    } else {
        Vec::new()
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "group": view, "members": members })
            )?
        );
        return Ok(());
    }
    print_groups(std::slice::from_ref(&view));
    if !members.is_empty() {
        println!();
        for m in &members {
            println!("{m}");
        }
        if view.member_count > members.len() as u64 {
            println!("… and {} more", view.member_count - members.len() as u64);
        }
    }
    Ok(())
}

/// `groups set`: changes only the rule or priority given; refuses when neither is.
async fn set(
    client: &ApiClient,
    name: &str,
    rules: &[String],
    priority: Option<i32>,
) -> anyhow::Result<()> {
    let mut change = serde_json::Map::new();
    if !rules.is_empty() {
        change.insert(
            "rule".into(),
            serde_json::to_value(GroupRule::parse_cli(rules)?)?,
        );
    }
    if let Some(p) = priority {
        change.insert("priority".into(), p.into());
    }
    if change.is_empty() {
        anyhow::bail!("nothing to change: give --rule or --priority");
    }
    let view: GroupView = client
        .send_json(Method::PATCH, &["groups", name], &change)
        .await?;
    print_groups(&[view]);
    Ok(())
}

/// `groups remove`: takes serials out of a static group and says how many were in it.
async fn remove(client: &ApiClient, name: &str, serials: &[String]) -> anyhow::Result<()> {
    let answer: serde_json::Value = client
        .send_json(
            Method::POST,
            &["groups", name, "members", "remove"],
            &serde_json::json!({ "serials": serials }),
        )
        .await?;
    println!(
        "Removed {} serials from {name:?}.",
        answer
            .get("removed")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    );
    Ok(())
}
