//! Who may do what: the roles of API tokens and the one table of what each may do. The
//! HTTP routes, the GraphQL operations and the WebSocket subscriptions all ask [`Role::may`].

use std::fmt;
use std::str::FromStr;

/// What a token may do; each role may do all that the ones before it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads: queries, subscriptions, report downloads.
    Viewer,
    /// Also triggers (and cancels) reports, and pushes polls.
    Operator,
    /// Also reloads the data, removes polls and manages tokens.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    /// How the command line, the logs and the database spell it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Whether a caller with this role may do `action`.
    pub fn may(self, action: Action) -> bool {
        action.needs().is_none_or(|needed| self >= needed)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("{s:?} is not a role: viewer, operator or admin"))
    }
}

/// Something a caller asks to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Read the schema (introspection): anyone, so that GraphiQL can show the docs before a
    /// token is pasted. The schema is public anyway (`schema.graphql`).
    Introspect,
    /// Read stores, incidents, reports and the dataset, follow them: a token scoped to store
    /// groups reads its groups' stores alone.
    Read,
    /// Queue a report (of the whole fleet: a scoped token reads its slice of it).
    TriggerReport,
    /// Stop a queued or running report.
    CancelReport,
    /// Push polls (`POST /polls`, `recordPolls`).
    PushPolls,
    /// Reload the input files.
    ReloadData,
    /// Remove polls.
    DeletePolls,
    /// List, create and revoke API tokens.
    ManageTokens,
    /// List, create, rotate and delete webhooks; read and redo their deliveries.
    ManageWebhooks,
    /// Set a store group's stores, rename and delete groups.
    ManageGroups,
}

impl Action {
    /// The least role that may do it; `None`: anyone, token or not.
    pub fn needs(self) -> Option<Role> {
        match self {
            Action::Introspect => None,
            Action::Read => Some(Role::Viewer),
            Action::TriggerReport | Action::CancelReport | Action::PushPolls => Some(Role::Operator),
            Action::ReloadData
            | Action::DeletePolls
            | Action::ManageTokens
            | Action::ManageWebhooks
            | Action::ManageGroups => Some(Role::Admin),
        }
    }

    /// How the audit log names it.
    pub fn name(self) -> &'static str {
        match self {
            Action::Introspect => "introspect",
            Action::Read => "read",
            Action::TriggerReport => "trigger report",
            Action::CancelReport => "cancel report",
            Action::PushPolls => "push polls",
            Action::ReloadData => "reload data",
            Action::DeletePolls => "delete polls",
            Action::ManageTokens => "manage tokens",
            Action::ManageWebhooks => "manage webhooks",
            Action::ManageGroups => "manage store groups",
        }
    }

    /// Whether it changes anything (the audit log records every one).
    pub fn changes(self) -> bool {
        !matches!(self, Action::Introspect | Action::Read)
    }

    /// Whether a token scoped to store groups may do it: what is cut to its groups (reads,
    /// pushing its stores' polls), and queueing a report (computed for the fleet; the token
    /// reads its slice). The rest would touch other groups' stores (cancelling the fleet's
    /// report, reloading, deleting polls), so it is refused, never half-done.
    pub fn open_to_scoped(self) -> bool {
        matches!(
            self,
            Action::Introspect | Action::Read | Action::TriggerReport | Action::PushPolls
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_may_what_the_ones_below_it_may() {
        use Action::*;
        // Every action a token is needed for, in the order of the roles that may.
        let actions = [
            Read,
            TriggerReport,
            CancelReport,
            PushPolls,
            ReloadData,
            DeletePolls,
            ManageTokens,
            ManageWebhooks,
            ManageGroups,
        ];
        let allowed = |role: Role| actions.into_iter().filter(|a| role.may(*a)).collect::<Vec<_>>();
        assert_eq!(allowed(Role::Viewer), actions[..1]);
        assert_eq!(allowed(Role::Operator), actions[..4]);
        assert_eq!(allowed(Role::Admin), actions);
        assert!(Role::ALL.iter().all(|r| r.may(Introspect)));
    }

    #[test]
    fn roles_read_back_as_written() {
        for role in Role::ALL {
            assert_eq!(role.name().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
