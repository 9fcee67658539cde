//! Roles and what each may reach. A route declares the [`Access`] it needs
//! (see `crate::api::guard`); a role either has it or not.

use serde::{Deserialize, Serialize};

/// A user's or token's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including users and tokens.
    Admin,
    /// Submit and delete pipelines, silence alerts, run queries.
    Editor,
    /// Read: queries, pipelines, alerts, silences.
    Viewer,
    /// Only the ingest routes (events sent to `http` sources).
    Shipper,
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Anyone, without credentials (`/healthz`, `/readyz`, login).
    Open,
    /// `/metrics`: open from loopback or to any credential, per
    /// `[security] metrics`.
    Metrics,
    /// Any authenticated identity (its own session, logout).
    Authenticated,
    /// Sending events in.
    Ingest,
    /// Reading logs, pipelines, alerts.
    Read,
    /// Changing pipelines and silences.
    Write,
    /// Users and tokens.
    Admin,
}

impl Role {
    #[cfg(test)]
    pub const ALL: [Role; 4] = [Role::Admin, Role::Editor, Role::Viewer, Role::Shipper];

    /// Whether this role may use a route needing `access`.
    pub fn allows(self, access: Access) -> bool {
        match access {
            Access::Open | Access::Metrics | Access::Authenticated => true,
            Access::Ingest => matches!(self, Role::Admin | Role::Editor | Role::Shipper),
            Access::Read => matches!(self, Role::Admin | Role::Editor | Role::Viewer),
            Access::Write => matches!(self, Role::Admin | Role::Editor),
            Access::Admin => self == Role::Admin,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
            Role::Shipper => "shipper",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_reaches_what_the_docs_say() {
        let table = [
            (Access::Ingest, [true, true, false, true]),
            (Access::Read, [true, true, true, false]),
            (Access::Write, [true, true, false, false]),
            (Access::Admin, [true, false, false, false]),
            (Access::Open, [true, true, true, true]),
        ];
        for (access, want) in table {
            let got: Vec<bool> = Role::ALL.iter().map(|r| r.allows(access)).collect();
            assert_eq!(got, want, "{access:?}");
        }
    }
}
