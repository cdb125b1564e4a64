//! The ADE profile form: every key of a [`ProfileSpec`] as an input (a tri-state select per
//! flag so "not set: GuardMDM's default" survives a round trip), the Setup Assistant panes
//! as checkbox groups per OS from [`guardmdm_service::skip_keys`], and the field errors of
//! [`guardmdm_service::profile_spec::validate`] next to their inputs.

use std::collections::HashMap;

use guardmdm_service::profile_spec::{
    EnrollmentType, FieldError, ProfileSpec, certs_from_text, certs_to_text, codes, defaults,
    initial_commands_from_text, initial_commands_to_text,
};
use guardmdm_service::skip_keys::{Platform, SKIP_KEYS, SkipKey};

use super::forms::{FieldMessage, FormData};

/// The form's minimum OS inputs (the profile's `minimum_os`).
const MINIMUM_OS_KEYS: &[(&str, &str)] = &[
    ("minimum_os_ios", "iOS"),
    ("minimum_os_ipados", "iPadOS"),
    ("minimum_os_macos", "macOS"),
    ("minimum_os_visionos", "visionOS"),
];

/// The text keys of a spec: (key, label, input type, help).
const TEXTS: &[(&str, &str, &str, &str)] = &[
    (
        "profile_name",
        "Name shown by Apple",
        "text",
        "What Apple Business Manager and Setup Assistant show; 1 to 125 characters. Empty: the GuardMDM name.",
    ),
    (
        "url",
        "Enrollment URL",
        "url",
        "Where devices fetch their enrollment profile (https). Empty: this server's ADE enrollment endpoint.",
    ),
    (
        "configuration_web_url",
        "Sign-in web page (configuration_web_url)",
        "url",
        "A web page the user signs in to before enrolling (https). Usually empty.",
    ),
    (
        "department",
        "Department",
        "text",
        "Shown in Setup Assistant; 1 to 125 characters.",
    ),
    (
        "support_phone_number",
        "Support phone number",
        "tel",
        "Shown in Setup Assistant; up to 50 characters.",
    ),
    (
        "support_email_address",
        "Support email address",
        "email",
        "Shown in Setup Assistant; up to 250 characters.",
    ),
    (
        "org_magic",
        "Org services identifier (org_magic)",
        "text",
        "Up to 256 characters. Usually empty.",
    ),
    (
        "language",
        "Setup language",
        "text",
        "An ISO 639 code in lower case, such as en or fr (tvOS, macOS 11 and later).",
    ),
    (
        "region",
        "Setup region",
        "text",
        "An ISO 3166-1 code in upper case, such as US; needs a language.",
    ),
    (
        "release_after",
        "Release from Setup Assistant after",
        "text",
        "GuardMDM's own, not sent to Apple: with \"Wait for DeviceConfigured\", GuardMDM releases a device still waiting after this long (45m, 2h, 1h 30m; 5 minutes to 7 days), cancelling the initial commands it has not answered. Empty: only by hand.",
    ),
];

/// The text key shown with the initial commands rather than with the other texts.
const RELEASE_AFTER: &str = "release_after";

/// The flags: (key, label, GuardMDM's default, help).
const FLAGS: &[(&str, &str, bool, &str)] = &[
    (
        "is_supervised",
        "Supervised",
        defaults::IS_SUPERVISED,
        "Supervision gives the MDM full control of the device.",
    ),
    (
        "is_mandatory",
        "Mandatory enrollment (is_mandatory)",
        defaults::IS_MANDATORY,
        "The user cannot skip remote management. Same as the enrollment type: set one of the two.",
    ),
    (
        "is_mdm_removable",
        "User may remove management",
        defaults::IS_MDM_REMOVABLE,
        "No is \"Lock MDM\"; it needs supervision.",
    ),
    (
        "await_device_configured",
        "Wait for DeviceConfigured",
        defaults::AWAIT_DEVICE_CONFIGURED,
        "Setup Assistant waits until the initial commands are answered.",
    ),
    (
        "auto_advance_setup",
        "Advance Setup Assistant automatically",
        defaults::AUTO_ADVANCE_SETUP,
        "tvOS and macOS 11 and later: go through setup without a user.",
    ),
    (
        "allow_pairing",
        "Allow pairing with a computer",
        defaults::ALLOW_PAIRING,
        "No blocks pairing except with the supervising hosts below.",
    ),
    (
        "is_multi_user",
        "Shared iPad (multi-user)",
        defaults::IS_MULTI_USER,
        "For Shared iPad deployments only.",
    ),
];

/// The certificate lists: (key, label, help).
const CERTS: &[(&str, &str, &str)] = &[
    (
        "anchor_certs",
        "Trust anchors for the enrollment URLs (anchor_certs)",
        "Base64 DER certificates, one per paragraph (separate them with a blank line). Usually empty.",
    ),
    (
        "supervising_host_certs",
        "Supervising host certificates",
        "Base64 DER certificates of the computers allowed to pair when pairing is off, one per paragraph.",
    ),
];

/// The OS groups of the skip checkboxes: (id, legend, platform).
const SKIP_GROUPS: &[(&str, &str, Platform)] = &[
    ("ios", "iOS and iPadOS", Platform::Ios),
    ("macos", "macOS", Platform::Macos),
    ("tvos", "tvOS", Platform::Tvos),
    ("visionos", "visionOS", Platform::Visionos),
];

/// The form's values as text, from a stored spec or as posted.
pub(crate) struct ProfileValues {
    values: HashMap<&'static str, String>,
    skip: Vec<String>,
    /// The stored order of the skip list, so an unchanged list saves unchanged.
    skip_order: String,
}

fn bool_text(b: Option<bool>) -> String {
    b.map_or_else(String::new, |b| b.to_string())
}

fn flag_of(spec: &ProfileSpec, key: &str) -> Option<bool> {
    match key {
        "is_supervised" => spec.is_supervised,
        "is_mandatory" => spec.is_mandatory,
        "is_mdm_removable" => spec.is_mdm_removable,
        "await_device_configured" => spec.await_device_configured,
        "auto_advance_setup" => spec.auto_advance_setup,
        "allow_pairing" => spec.allow_pairing,
        "is_multi_user" => spec.is_multi_user,
        _ => None,
    }
}

fn text_of<'a>(spec: &'a ProfileSpec, key: &str) -> Option<&'a String> {
    match key {
        "profile_name" => spec.profile_name.as_ref(),
        "url" => spec.url.as_ref(),
        "configuration_web_url" => spec.configuration_web_url.as_ref(),
        "department" => spec.department.as_ref(),
        "support_phone_number" => spec.support_phone_number.as_ref(),
        "support_email_address" => spec.support_email_address.as_ref(),
        "org_magic" => spec.org_magic.as_ref(),
        "language" => spec.language.as_ref(),
        "region" => spec.region.as_ref(),
        "release_after" => spec.release_after.as_ref(),
        _ => None,
    }
}

fn is_catalogued(key: &str) -> bool {
    SKIP_KEYS.iter().any(|k| k.key == key)
}

/// How many checkboxes the form shows for a catalogued key (one per OS group it is in).
fn boxes_for(key: &str) -> usize {
    skip_groups(&[])
        .iter()
        .filter(|g| g.boxes.iter().any(|b| b.key == key))
        .count()
}

/// The skip list from the posted checkboxes. A pane several OSes share has a box in each
/// group: a key that was in the list (`stored`, space-separated, in its stored order) stays
/// only if every one of its boxes is still ticked, and a new key is added when any box is
/// ticked, so ticking or unticking it in any group does what it says without JavaScript.
/// Then new catalogue keys in catalogue order, then the `other` keys as typed; each once.
fn skip_list(ticked: &[&str], stored: &str, other: &str) -> Vec<String> {
    let stored: Vec<&str> = stored.split_whitespace().collect();
    let ticks = |k: &str| ticked.iter().filter(|t| **t == k).count();
    let others: Vec<&str> = other
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .collect();
    let keep = |k: &str| {
        if others.contains(&k) {
            return true;
        }
        let shown = boxes_for(k);
        if stored.contains(&k) {
            shown > 0 && ticks(k) >= shown
        } else {
            ticks(k) > 0
        }
    };
    let mut out: Vec<String> = Vec::new();
    let mut push = |k: &str| {
        if !out.iter().any(|o| o == k) {
            out.push(k.to_string());
        }
    };
    for k in stored.iter().copied().filter(|k| keep(k)) {
        push(k);
    }
    for k in SKIP_KEYS.iter().map(|k| k.key).filter(|k| keep(k)) {
        push(k);
    }
    for k in others {
        push(k);
    }
    out
}

impl ProfileValues {
    /// The values of a new, empty profile.
    pub(crate) fn empty() -> Self {
        Self::from_spec(&ProfileSpec::default())
    }

    /// The values of a stored spec.
    pub(crate) fn from_spec(spec: &ProfileSpec) -> Self {
        let mut values = HashMap::new();
        values.insert("name", spec.name.clone());
        for (key, ..) in TEXTS {
            values.insert(*key, text_of(spec, key).cloned().unwrap_or_default());
        }
        for (key, ..) in FLAGS {
            values.insert(*key, bool_text(flag_of(spec, key)));
        }
        values.insert(
            "enrollment_type",
            spec.enrollment_type
                .map_or_else(String::new, |t| t.as_str().to_string()),
        );
        values.insert("anchor_certs", certs_to_text(spec.anchor_certs.as_deref()));
        values.insert(
            "supervising_host_certs",
            certs_to_text(spec.supervising_host_certs.as_deref()),
        );
        values.insert(
            "initial_commands",
            initial_commands_to_text(spec.initial_commands.as_deref()),
        );
        let minimums = spec.minimum_os.clone().unwrap_or_default();
        for (key, value) in [
            ("minimum_os_ios", &minimums.ios),
            ("minimum_os_ipados", &minimums.ipados),
            ("minimum_os_macos", &minimums.macos),
            ("minimum_os_visionos", &minimums.visionos),
        ] {
            values.insert(key, value.clone().unwrap_or_default());
        }
        let skip = spec.skip_setup_items.clone().unwrap_or_default();
        values.insert(
            "skip_other",
            skip.iter()
                .filter(|k| !is_catalogued(k))
                .cloned()
                .collect::<Vec<_>>()
                .join(" "),
        );
        Self {
            values,
            skip_order: skip.join(" "),
            skip,
        }
    }

    /// The values as posted.
    pub(crate) fn from_form(form: &FormData) -> Self {
        let mut values = HashMap::new();
        let keys = TEXTS
            .iter()
            .map(|t| t.0)
            .chain(FLAGS.iter().map(|f| f.0))
            .chain(CERTS.iter().map(|c| c.0))
            .chain(["name", "enrollment_type", "initial_commands", "skip_other"])
            .chain(MINIMUM_OS_KEYS.iter().map(|m| m.0));
        for key in keys {
            values.insert(key, form.get(key).to_string());
        }
        let skip = skip_list(
            &form.all("skip_setup_items"),
            form.get("skip_order"),
            form.get("skip_other"),
        );
        Self {
            values,
            skip_order: skip.join(" "),
            skip,
        }
    }

    fn get(&self, key: &str) -> &str {
        self.values.get(key).map_or("", String::as_str)
    }

    /// The spec these values describe, and the errors of values that could not be read
    /// (the rest is checked by the service).
    pub(crate) fn to_spec(&self) -> (ProfileSpec, Vec<FieldError>) {
        let mut errors = Vec::new();
        let text = |key: &str| {
            let v = self.get(key).trim();
            (!v.is_empty()).then(|| v.to_string())
        };
        let flag = |key: &str| match self.get(key) {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        };
        let enrollment_type = match self.get("enrollment_type") {
            "automated" => Some(EnrollmentType::Automated),
            "user_initiated" => Some(EnrollmentType::UserInitiated),
            _ => None,
        };
        let initial_commands = match initial_commands_from_text(self.get("initial_commands")) {
            Ok(c) => c,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        let minimum_os = guardmdm_service::os_minimum::ProfileMinimums {
            ios: text("minimum_os_ios"),
            ipados: text("minimum_os_ipados"),
            macos: text("minimum_os_macos"),
            visionos: text("minimum_os_visionos"),
        };
        let skip = self.skip.clone();
        let spec = ProfileSpec {
            name: self.get("name").trim().to_string(),
            profile_name: text("profile_name"),
            enrollment_type,
            url: text("url"),
            configuration_web_url: text("configuration_web_url"),
            is_supervised: flag("is_supervised"),
            is_mandatory: flag("is_mandatory"),
            is_mdm_removable: flag("is_mdm_removable"),
            await_device_configured: flag("await_device_configured"),
            auto_advance_setup: flag("auto_advance_setup"),
            allow_pairing: flag("allow_pairing"),
            is_multi_user: flag("is_multi_user"),
            department: text("department"),
            support_phone_number: text("support_phone_number"),
            support_email_address: text("support_email_address"),
            org_magic: text("org_magic"),
            language: text("language"),
            region: text("region"),
            anchor_certs: certs_from_text(self.get("anchor_certs")),
            supervising_host_certs: certs_from_text(self.get("supervising_host_certs")),
            skip_setup_items: (!skip.is_empty()).then_some(skip),
            initial_commands,
            minimum_os: (!minimum_os.is_empty()).then_some(minimum_os),
            release_after: text("release_after"),
        };
        (spec, errors)
    }
}

/// An option of a select.
pub(crate) struct Choice {
    pub(crate) value: &'static str,
    pub(crate) label: String,
    pub(crate) selected: bool,
}

/// One input of the form.
pub(crate) struct Field {
    /// The form name, which is the spec key; the input's id is `f-{name}`.
    pub(crate) name: &'static str,
    pub(crate) label: &'static str,
    /// `text`, `url`, `email`, `tel`, `select` or `textarea`.
    pub(crate) kind: &'static str,
    pub(crate) value: String,
    pub(crate) choices: Vec<Choice>,
    pub(crate) help: String,
    pub(crate) errors: Vec<String>,
    pub(crate) autofocus: bool,
    pub(crate) readonly: bool,
    pub(crate) mono: bool,
}

/// A fieldset of inputs.
pub(crate) struct Section {
    pub(crate) id: &'static str,
    pub(crate) legend: &'static str,
    pub(crate) help: &'static str,
    pub(crate) fields: Vec<Field>,
}

/// One skip checkbox.
pub(crate) struct SkipBox {
    pub(crate) id: String,
    pub(crate) key: &'static str,
    pub(crate) note: String,
    pub(crate) checked: bool,
}

/// The checkboxes of one OS.
pub(crate) struct SkipGroup {
    pub(crate) id: &'static str,
    pub(crate) legend: &'static str,
    pub(crate) boxes: Vec<SkipBox>,
}

/// The whole form, ready for the template.
pub(crate) struct ProfileFormView {
    pub(crate) sections: Vec<Section>,
    pub(crate) skip_groups: Vec<SkipGroup>,
    /// The "other skip keys" input (a list of one, for the template's loop).
    pub(crate) skip_fields: Vec<Field>,
    pub(crate) skip_order: String,
    /// The initial commands textarea (a list of one).
    pub(crate) command_fields: Vec<Field>,
    /// Every error, in form order, for the summary at the top.
    pub(crate) errors: Vec<FieldMessage>,
    /// Errors for keys the form has no input for.
    pub(crate) other_errors: Vec<String>,
}

/// The form field a spec error belongs to (`anchor_certs[2]` → `anchor_certs`).
fn base_field(field: &str) -> &str {
    field.split(['[', '.']).next().unwrap_or(field)
}

fn since_text(k: &SkipKey, platform: Platform) -> String {
    let mut parts = Vec::new();
    if let Some(a) = k.applies.iter().find(|a| a.platform == platform) {
        if let Some(s) = a.since {
            parts.push(format!("since {s}"));
        }
        if let Some(d) = a.deprecated {
            parts.push(format!("deprecated in {d}"));
        }
        if let Some(r) = a.removed {
            parts.push(format!("removed in {r}"));
        }
    }
    if let Some(note) = k.note {
        parts.push(note.to_string());
    }
    parts.join("; ")
}

fn skip_groups(chosen: &[String]) -> Vec<SkipGroup> {
    let checked = |key: &str| chosen.iter().any(|c| c == key);
    let mut groups: Vec<SkipGroup> = SKIP_GROUPS
        .iter()
        .map(|(id, legend, platform)| SkipGroup {
            id,
            legend,
            boxes: SKIP_KEYS
                .iter()
                .filter(|k| k.applies.iter().any(|a| a.platform == *platform))
                .map(|k| SkipBox {
                    id: format!("skip-{id}-{}", k.key),
                    key: k.key,
                    note: since_text(k, *platform),
                    checked: checked(k.key),
                })
                .collect(),
        })
        .collect();
    let unconfirmed: Vec<SkipBox> = SKIP_KEYS
        .iter()
        .filter(|k| k.applies.is_empty())
        .map(|k| SkipBox {
            id: format!("skip-other-{}", k.key),
            key: k.key,
            note: k.note.unwrap_or("platforms not confirmed").to_string(),
            checked: checked(k.key),
        })
        .collect();
    if !unconfirmed.is_empty() {
        groups.push(SkipGroup {
            id: "unconfirmed",
            legend: "Not yet in Apple's published list",
            boxes: unconfirmed,
        });
    }
    groups
}

impl ProfileFormView {
    /// The form for `values`, with `errors` next to their inputs; `editing` makes the name
    /// read-only (profiles cannot be renamed).
    pub(crate) fn new(values: &ProfileValues, errors: &[FieldError], editing: bool) -> Self {
        let mut inputs = Inputs::new(values, errors);
        let mut general = inputs.name_and_enrollment_type(editing);
        let (apple, contacts) = inputs.texts();
        general.extend(apple);
        let flags = inputs.flags();
        let certs = inputs.certs();
        let mut skip_other = inputs.skip_other();
        let mut initial_commands = inputs.initial_commands();
        let mut release_after = inputs.release_after();
        let minimum_os_fields = inputs.minimum_os();
        let other_errors = inputs.unclaimed_errors();
        let mut sections = vec![
            Section {
                id: "general",
                legend: "Profile",
                help: "",
                fields: general,
            },
            Section {
                id: "contacts",
                legend: "Shown in Setup Assistant",
                help: "Leave a field empty to leave it out.",
                fields: contacts,
            },
            Section {
                id: "flags",
                legend: "Behaviour",
                help: "\"Not set\" uses GuardMDM's default, which is sent to Apple explicitly.",
                fields: flags,
            },
            Section {
                id: "certificates",
                legend: "Certificates",
                help: "",
                fields: certs,
            },
            Section {
                id: "minimum_os",
                legend: "Minimum OS at enrollment",
                help: "GuardMDM's own, not sent to Apple: a device of this profile below its OS's minimum is asked to update before it enrolls.",
                fields: minimum_os_fields,
            },
        ];
        let errors = error_summary(
            sections
                .iter_mut()
                .flat_map(|s| s.fields.iter_mut())
                .chain([&mut skip_other, &mut initial_commands, &mut release_after]),
        );
        Self {
            sections,
            skip_groups: skip_groups(&values.skip),
            skip_fields: vec![skip_other],
            skip_order: values.skip_order.clone(),
            command_fields: vec![initial_commands, release_after],
            errors,
            other_errors,
        }
    }
}

/// Every error in form order, for the summary at the top; the first invalid input gets the
/// focus.
fn error_summary<'f>(fields: impl Iterator<Item = &'f mut Field>) -> Vec<FieldMessage> {
    let mut all = Vec::new();
    let mut focused = false;
    for f in fields {
        for m in &f.errors {
            all.push(FieldMessage {
                field: f.name.to_string(),
                message: m.clone(),
            });
        }
        if !focused && !f.errors.is_empty() {
            f.autofocus = true;
            focused = true;
        }
    }
    all
}

/// Makes the form's inputs, each with its value and the errors that belong to it; the
/// errors no input claims are left for [`Inputs::unclaimed_errors`].
struct Inputs<'a> {
    values: &'a ProfileValues,
    /// The error messages per form field, removed as their inputs are made.
    errors: HashMap<&'a str, Vec<String>>,
}

impl<'a> Inputs<'a> {
    fn new(values: &'a ProfileValues, errors: &'a [FieldError]) -> Self {
        let mut by_field: HashMap<&str, Vec<String>> = HashMap::new();
        for e in errors {
            // Skip-list errors show at the "other keys" input, the list's only text input.
            let field = match base_field(&e.field) {
                "skip_setup_items" => "skip_other",
                other => other,
            };
            by_field.entry(field).or_default().push(e.message.clone());
        }
        Self {
            values,
            errors: by_field,
        }
    }

    /// The input `name`, with its value and errors.
    fn field(
        &mut self,
        name: &'static str,
        label: &'static str,
        kind: &'static str,
        help: String,
    ) -> Field {
        Field {
            name,
            label,
            kind,
            value: self.values.get(name).to_string(),
            choices: Vec::new(),
            help,
            errors: self.errors.remove(name).unwrap_or_default(),
            autofocus: false,
            readonly: false,
            mono: false,
        }
    }

    /// The name (read-only when `editing`) and the enrollment type, a select whose empty
    /// choice leaves it to GuardMDM's default.
    fn name_and_enrollment_type(&mut self, editing: bool) -> Vec<Field> {
        let mut name = self.field(
            "name",
            "GuardMDM name",
            "text",
            if editing {
                "Profiles cannot be renamed: create a new profile instead.".to_string()
            } else {
                "Letters, digits, '.', '_' and '-'; used in commands and URLs.".to_string()
            },
        );
        name.readonly = editing;
        let mut kind = self.field(
            "enrollment_type",
            "Enrollment type",
            "select",
            "Automated: the user cannot skip remote management. User-initiated: the user may skip it and enroll later (iOS and iPadOS 13+ ignore this).".to_string(),
        );
        kind.choices = [
            ("", "Not set (default: automated)"),
            ("automated", "Automated"),
            ("user_initiated", "User-initiated"),
        ]
        .into_iter()
        .map(|(value, label)| Choice {
            value,
            label: label.to_string(),
            selected: self.values.get("enrollment_type") == value,
        })
        .collect();
        vec![name, kind]
    }

    /// The text inputs: those about the profile itself (Apple's name for it, the enrollment
    /// and sign-in URLs), then those shown in Setup Assistant.
    fn texts(&mut self) -> (Vec<Field>, Vec<Field>) {
        let mut general = Vec::new();
        let mut contacts = Vec::new();
        for (key, label, input, help) in TEXTS {
            if *key == RELEASE_AFTER {
                continue; // with the initial commands it concerns: `release_after`
            }
            let f = self.field(key, label, input, (*help).to_string());
            if matches!(*key, "profile_name" | "url" | "configuration_web_url") {
                general.push(f);
            } else {
                contacts.push(f);
            }
        }
        (general, contacts)
    }

    /// When GuardMDM releases a device still in Setup Assistant: GuardMDM's own, shown with
    /// the initial commands it concerns.
    fn release_after(&mut self) -> Field {
        let (key, label, input, help) = TEXTS
            .iter()
            .find(|t| t.0 == RELEASE_AFTER)
            .copied()
            .unwrap_or((RELEASE_AFTER, "Release after", "text", ""));
        self.field(key, label, input, help.to_string())
    }

    /// A tri-state select per flag: not set (which names GuardMDM's default), yes, no.
    fn flags(&mut self) -> Vec<Field> {
        FLAGS
            .iter()
            .map(|(key, label, default, help)| {
                let mut f = self.field(key, label, "select", (*help).to_string());
                let yes_no = |b: bool| if b { "yes" } else { "no" };
                f.choices = [
                    ("", format!("Not set (default: {})", yes_no(*default))),
                    ("true", "Yes".to_string()),
                    ("false", "No".to_string()),
                ]
                .into_iter()
                .map(|(value, label)| Choice {
                    value,
                    label,
                    selected: self.values.get(key) == value,
                })
                .collect();
                f
            })
            .collect()
    }

    /// The certificate textareas, in a monospace font.
    fn certs(&mut self) -> Vec<Field> {
        CERTS
            .iter()
            .map(|(key, label, help)| {
                let mut f = self.field(key, label, "textarea", (*help).to_string());
                f.mono = true;
                f
            })
            .collect()
    }

    /// The skip keys the checkboxes do not offer, as typed.
    fn skip_other(&mut self) -> Field {
        let mut skip_other = self.field(
            "skip_other",
            "Other skip keys",
            "text",
            "Keys not in the lists above, separated by spaces (Apple ignores keys a device does not know).".to_string(),
        );
        skip_other.mono = true;
        skip_other
    }

    /// The initial commands, as a YAML or JSON list, with an example in the help.
    fn initial_commands(&mut self) -> Field {
        let mut initial_commands = self.field(
            "initial_commands",
            "Initial commands (YAML or JSON list)",
            "textarea",
            format!(
                "Sent right after enrollment, in order; with \"Wait for DeviceConfigured\" Setup Assistant waits for their answers. One item per command, with request_type ({}) and its options: queries (DeviceInformation), payload_base64 (InstallProfile), identifier (RemoveProfile). Example:\n- request_type: DeviceInformation\n- request_type: RemoveProfile\n  identifier: com.example.wifi",
                [
                    "DeviceInformation",
                    "ProfileList",
                    "InstallProfile",
                    "RemoveProfile"
                ]
                .join(", ")
            ),
        );
        initial_commands.mono = true;
        initial_commands
    }

    /// The profile's minimum OS per OS (`minimum_os`).
    fn minimum_os(&mut self) -> Vec<Field> {
        MINIMUM_OS_KEYS
            .iter()
            .map(|(key, label)| {
                self.field(
                    key,
                    label,
                    "text",
                    "A version such as 17.5; empty: the global minimum.".to_string(),
                )
            })
            .collect()
    }

    /// The errors of keys the form has no input for, as `key: message`.
    fn unclaimed_errors(self) -> Vec<String> {
        self.errors
            .into_iter()
            .flat_map(|(k, msgs)| msgs.into_iter().map(move |m| format!("{k}: {m}")))
            .collect()
    }
}

/// The field errors of a failed create or update: a validation's fields, or one error for
/// the whole form (a name conflict goes to `name`).
pub(crate) fn errors_of(err: &guardmdm_service::ServiceError) -> Option<Vec<FieldError>> {
    use guardmdm_service::ServiceError;
    match err {
        ServiceError::Validation { errors, .. } => Some(errors.clone()),
        ServiceError::Conflict(m) if m.contains("exists already") => Some(vec![FieldError {
            field: "name".to_string(),
            code: codes::NAME_INVALID.to_string(),
            message: m.clone(),
        }]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guardmdm_service::command_spec::CommandSpec;

    fn full_spec() -> ProfileSpec {
        ProfileSpec {
            name: "corp".into(),
            profile_name: Some("Corporate".into()),
            enrollment_type: Some(EnrollmentType::Automated),
            url: Some("https://mdm.example.com/mdm/enroll".into()),
            configuration_web_url: Some("https://sso.example.com/".into()),
            is_supervised: Some(true),
            is_mandatory: Some(true),
            is_mdm_removable: Some(false),
            await_device_configured: Some(true),
            auto_advance_setup: Some(false),
            allow_pairing: Some(false),
            is_multi_user: Some(false),
            department: Some("IT".into()),
            support_phone_number: Some("+1 555 0100".into()),
            support_email_address: Some("it@example.com".into()),
            org_magic: Some("magic".into()),
            language: Some("en".into()),
            region: Some("US".into()),
            anchor_certs: Some(vec!["MAMCAQU=".into()]),
            supervising_host_certs: Some(vec!["MAMCAQU=".into(), "MAMCAQY=".into()]),
            skip_setup_items: Some(vec!["Siri".into(), "AppleID".into(), "Futuristic".into()]),
            initial_commands: Some(vec![CommandSpec {
                request_type: "DeviceInformation".into(),
                ..CommandSpec::default()
            }]),
            minimum_os: Some(guardmdm_service::os_minimum::ProfileMinimums {
                ios: Some("17.5".into()),
                macos: Some("14.4".into()),
                ..Default::default()
            }),
            release_after: Some("45m".into()),
        }
    }

    /// What a browser posts for the form rendered from `values`.
    fn posted(values: &ProfileValues) -> FormData {
        let mut pairs: Vec<(String, String)> = values
            .values
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect();
        let view = ProfileFormView::new(values, &[], true);
        for g in &view.skip_groups {
            for b in g.boxes.iter().filter(|b| b.checked) {
                pairs.push(("skip_setup_items".into(), b.key.to_string()));
            }
        }
        pairs.push(("skip_order".into(), view.skip_order));
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        FormData::from_pairs(&refs)
    }

    #[test]
    fn every_key_round_trips_through_the_form() {
        assert_eq!(
            guardmdm_service::profile_spec::SPEC_FIELDS.len(),
            24,
            "a new spec key needs an input here"
        );
        for spec in [
            full_spec(),
            ProfileSpec {
                name: "bare".into(),
                ..ProfileSpec::default()
            },
        ] {
            let values = ProfileValues::from_spec(&spec);
            let (back, errors) = ProfileValues::from_form(&posted(&values)).to_spec();
            assert!(errors.is_empty(), "{errors:?}");
            assert_eq!(back, spec);
        }
    }

    #[test]
    fn new_skip_keys_follow_the_stored_order_and_duplicates_go() {
        // AppleID and Biometric are iOS-only boxes; Siri has a box in every OS group.
        let siri = boxes_for("Siri");
        assert!(siri > 1);
        let mut ticked = vec!["AppleID", "Biometric"];
        ticked.extend(std::iter::repeat_n("Siri", siri));
        assert_eq!(
            skip_list(&ticked, "Siri AppleID", "Custom, AppleID"),
            ["Siri", "AppleID", "Biometric", "Custom"]
        );
        // Unticking a shared pane in one group removes a stored key; ticking it in one
        // group adds a new one.
        assert_eq!(skip_list(&["Siri"], "Siri", ""), Vec::<String>::new());
        assert_eq!(skip_list(&["Siri"], "", ""), ["Siri"]);
        // A key the catalogue does not know stays only through the text input.
        assert_eq!(skip_list(&[], "Futuristic", "Futuristic"), ["Futuristic"]);
    }

    #[test]
    fn errors_sit_next_to_their_fields_and_the_first_gets_the_focus() {
        let errors = vec![
            FieldError {
                field: "region".into(),
                code: "LOCALE_INVALID".into(),
                message: "bad region".into(),
            },
            FieldError {
                field: "anchor_certs[1]".into(),
                code: "CERT_INVALID".into(),
                message: "bad cert".into(),
            },
            FieldError {
                field: "profile_name".into(),
                code: "CONFIG_NAME_INVALID".into(),
                message: "too long".into(),
            },
        ];
        let view = ProfileFormView::new(&ProfileValues::empty(), &errors, false);
        let fields: Vec<&Field> = view.sections.iter().flat_map(|s| &s.fields).collect();
        let by = |n: &str| fields.iter().find(|f| f.name == n).unwrap();
        assert_eq!(by("region").errors, ["bad region"]);
        assert_eq!(by("anchor_certs").errors, ["bad cert"]);
        assert!(by("profile_name").autofocus, "first in form order");
        assert!(!by("region").autofocus);
        assert_eq!(view.errors.len(), 3);
        assert_eq!(view.errors[0].field, "profile_name");
        assert!(view.other_errors.is_empty());
    }

    #[test]
    fn an_unreadable_command_list_is_a_field_error() {
        let form = FormData::from_pairs(&[("name", "p"), ("initial_commands", "nope: [")]);
        let (spec, errors) = ProfileValues::from_form(&form).to_spec();
        assert_eq!(spec.initial_commands, None);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "initial_commands");
    }

    #[test]
    fn every_os_group_lists_its_keys() {
        let groups = skip_groups(&["Siri".to_string()]);
        let ios = groups.iter().find(|g| g.id == "ios").unwrap();
        assert!(ios.boxes.iter().any(|b| b.key == "Siri" && b.checked));
        let mac = groups.iter().find(|g| g.id == "macos").unwrap();
        assert!(mac.boxes.iter().any(|b| b.key == "FileVault"));
        assert!(!ios.boxes.iter().any(|b| b.key == "FileVault"));
    }
}
