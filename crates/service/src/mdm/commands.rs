//! The admin side of the command queue: send a command to an enrolled device (answered once
//! it is queued; the push runs in the background), list a device's commands and read their
//! results; the enrolled devices.

use guardmdm_mdm_protocol::{Command, CommandRequest, command_from_upload};
use guardmdm_store::{
    CommandStatus, EnrollmentQuery, EnrollmentStatus, MdmCommand, MdmStore, NewAuditEvent,
    NewCommand, StoredText,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{EnrollmentView, MdmError, MdmService};
use crate::{Actor, ServiceError};

/// A command an admin sends.
#[derive(Debug, Clone)]
pub enum NewCommandRequest {
    /// One of the common commands.
    Typed(CommandRequest),
    /// A raw command plist (`{Command: {RequestType, …}}` or a bare `{RequestType, …}`).
    Raw(Vec<u8>),
}

/// A command and its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandView {
    /// `CommandUUID`.
    pub uuid: String,
    /// The device.
    pub udid: String,
    /// `RequestType`.
    pub request_type: String,
    /// `queued`, `sent`, `not_now`, `acknowledged`, `error`, `command_format_error`.
    pub status: CommandStatus,
    /// Who sent it.
    pub created_by: String,
    /// When it was queued.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Its last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// When the device answered.
    #[serde(with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
    /// The device's answer, as an XML plist.
    pub result: Option<String>,
}

impl From<MdmCommand> for CommandView {
    fn from(c: MdmCommand) -> Self {
        let result = c.result.as_deref().map(|bytes| {
            plist::Value::from_reader(std::io::Cursor::new(bytes))
                .ok()
                .and_then(|v| {
                    let mut out = Vec::new();
                    v.to_writer_xml(&mut out).ok().map(|()| out)
                })
                .map_or_else(
                    || String::from_utf8_lossy(bytes).into_owned(),
                    |xml| String::from_utf8_lossy(&xml).into_owned(),
                )
        });
        Self {
            uuid: c.uuid,
            udid: c.udid,
            request_type: c.request_type,
            status: c.status,
            created_by: c.created_by,
            created_at: c.created_at,
            updated_at: c.updated_at,
            completed_at: c.completed_at,
            result,
        }
    }
}

impl<S: ?Sized + MdmStore + 'static> MdmService<S> {
    /// Queues a command (no push).
    pub(super) async fn queue(
        &self,
        udid: &str,
        request: CommandRequest,
        actor: &str,
        audit: Option<&NewAuditEvent>,
    ) -> Result<MdmCommand, MdmError> {
        self.queue_command(udid, Command::new(request), actor, audit)
            .await
    }

    async fn queue_command(
        &self,
        udid: &str,
        command: Command,
        actor: &str,
        audit: Option<&NewAuditEvent>,
    ) -> Result<MdmCommand, MdmError> {
        let payload = command.to_xml().map_err(MdmError::internal)?;
        Ok(self
            .store
            .enqueue_command(
                &NewCommand {
                    uuid: command.command_uuid.clone(),
                    udid: udid.to_string(),
                    request_type: command.request_type().to_string(),
                    payload,
                    created_by: actor.to_string(),
                    at: guardmdm_store::now(),
                },
                audit,
            )
            .await?)
    }

    /// Sends a command to an enrolled device: queued, and a push to the device is asked for
    /// (it runs in the background, coalesced with the device's other pushes).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an unknown device; [`ServiceError::Conflict`] for one
    /// that is not enrolled; [`ServiceError::Invalid`] for a malformed raw command.
    pub async fn send_command(
        &self,
        actor: &Actor,
        udid: &str,
        request: NewCommandRequest,
    ) -> Result<CommandView, ServiceError> {
        let enrollment = self.store.enrollment(udid).await?.ok_or_else(|| {
            ServiceError::NotFound(format!("no enrolled device with UDID {udid}"))
        })?;
        if enrollment.status != EnrollmentStatus::Enrolled {
            return Err(ServiceError::Conflict(format!(
                "device {udid} is {}, not enrolled: it cannot receive commands",
                enrollment.status
            )));
        }
        let command = match request {
            NewCommandRequest::Typed(r) => Command::new(r),
            NewCommandRequest::Raw(bytes) => command_from_upload(&bytes)
                .map_err(|e| ServiceError::Invalid(format!("the command is not valid: {e}")))?,
        };
        let audit = NewAuditEvent {
            at: guardmdm_store::now(),
            actor: actor.audit_name(),
            action: "command.send".to_string(),
            target: format!("device:{udid}"),
            details: serde_json::json!({
                "request_type": command.request_type(),
                "command_uuid": command.command_uuid,
            }),
        };
        let queued = self
            .queue_command(udid, command, &actor.audit_name(), Some(&audit))
            .await
            .map_err(|e| ServiceError::Internal(e.message))?;
        self.request_push(udid);
        Ok(queued.into())
    }

    /// A device's commands, newest first.
    ///
    /// # Errors
    /// Storage failures; [`ServiceError::Invalid`] for a limit outside 1–1000.
    pub async fn commands(&self, udid: &str, limit: u32) -> Result<Vec<CommandView>, ServiceError> {
        if !(1..=1000).contains(&limit) {
            return Err(ServiceError::Invalid(
                "limit must be between 1 and 1000".to_string(),
            ));
        }
        Ok(self
            .store
            .list_commands(udid, limit)
            .await?
            .into_iter()
            .map(CommandView::from)
            .collect())
    }

    /// One command.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`].
    pub async fn command(&self, uuid: &str) -> Result<CommandView, ServiceError> {
        self.store
            .command(uuid)
            .await?
            .map(CommandView::from)
            .ok_or_else(|| ServiceError::NotFound(format!("no command {uuid}")))
    }

    /// Enrolled devices by UDID.
    ///
    /// # Errors
    /// Storage failures; [`ServiceError::Invalid`] for a bad filter.
    pub async fn enrollments(
        &self,
        status: Option<String>,
        serial: Option<String>,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<EnrollmentView>, ServiceError> {
        if !(1..=1000).contains(&limit) {
            return Err(ServiceError::Invalid(
                "limit must be between 1 and 1000".to_string(),
            ));
        }
        let status = status
            .map(|s| {
                EnrollmentStatus::from_stored(&s).ok_or_else(|| {
                    ServiceError::Invalid(format!(
                        "status {s:?}: use one of {}",
                        EnrollmentStatus::ALL
                            .map(EnrollmentStatus::as_str)
                            .join(", ")
                    ))
                })
            })
            .transpose()?;
        Ok(self
            .store
            .list_enrollments(&EnrollmentQuery {
                status,
                serial_number: serial,
                after,
                limit,
            })
            .await?
            .into_iter()
            .map(|e| self.enrollment_view(e))
            .collect())
    }

    /// One enrolled device.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`].
    pub async fn enrollment(&self, udid: &str) -> Result<EnrollmentView, ServiceError> {
        self.store
            .enrollment(udid)
            .await?
            .map(|e| self.enrollment_view(e))
            .ok_or_else(|| ServiceError::NotFound(format!("no enrolled device with UDID {udid}")))
    }

    /// An enrolled device with this instance's push state.
    fn enrollment_view(&self, e: guardmdm_store::Enrollment) -> EnrollmentView {
        let push = self.push_status(&e.udid);
        EnrollmentView::from(e).with_push(push)
    }
}
