//! The text each enum is stored as, read back strictly: a value this build does not know
//! is an error, never a guess.
//!
//! The stored spellings are the tables' (their `CHECK` constraints list them). Only a
//! report's status is stored as the name clients see; the others do not follow any flag or
//! GraphQL name: renaming those must not change what is on disk.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};

use crate::domain::access::Role;
use crate::domain::load::Outcome;
use crate::domain::{Interpolation, ReportStatus};
use crate::input::FileKind;

/// An enum with one stored text per value.
pub(crate) trait Stored: Copy + 'static {
    /// What the value is, for the error on an unknown one.
    const WHAT: &'static str;
    const ALL: &'static [Self];
    fn stored(self) -> &'static str;
}

/// A [`Stored`] value as a `text` column or parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Code<T>(pub T);

impl<T: Stored> Type<Postgres> for Code<T> {
    fn type_info() -> PgTypeInfo {
        <&str as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <&str as Type<Postgres>>::compatible(ty)
    }
}

impl<'r, T: Stored> Decode<'r, Postgres> for Code<T> {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<Postgres>>::decode(value)?;
        T::ALL
            .iter()
            .find(|v| v.stored() == text)
            .map(|&v| Code(v))
            .ok_or_else(|| format!("the database holds an unknown {} {text:?}", T::WHAT).into())
    }
}

impl<T: Stored> Encode<'_, Postgres> for Code<T> {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&str as Encode<Postgres>>::encode(self.0.stored(), buf)
    }
}

/// Lets `#[sqlx(try_from = "Code<T>")]` read a [`Stored`] field of a `FromRow` struct.
macro_rules! from_code {
    ($($t:ty),*) => {$(
        impl From<Code<$t>> for $t {
            fn from(code: Code<$t>) -> $t {
                code.0
            }
        }
    )*};
}

from_code!(ReportStatus, Interpolation, FileKind, Outcome, Role);

impl Stored for ReportStatus {
    const WHAT: &'static str = "report status";
    const ALL: &'static [Self] = &ReportStatus::ALL;
    /// The one place a report status is spelled is its name (`ReportStatus::name`): the
    /// stored text, the GraphQL enum's and the REST answers' are the same words, which the
    /// `reports` table's `CHECK` and the statements of `db::reports` spell as well.
    fn stored(self) -> &'static str {
        self.name()
    }
}

impl Stored for Interpolation {
    const WHAT: &'static str = "interpolation";
    const ALL: &'static [Self] = &[Interpolation::Nearest, Interpolation::ForwardFill];
    fn stored(self) -> &'static str {
        match self {
            Interpolation::Nearest => "NEAREST",
            Interpolation::ForwardFill => "FORWARD_FILL",
        }
    }
}

impl Stored for FileKind {
    const WHAT: &'static str = "file kind";
    const ALL: &'static [Self] = &FileKind::ALL;
    fn stored(self) -> &'static str {
        match self {
            FileKind::Status => "status",
            FileKind::Hours => "hours",
            FileKind::Timezones => "timezones",
            FileKind::Groups => "groups",
        }
    }
}

impl Stored for Outcome {
    const WHAT: &'static str = "load outcome";
    const ALL: &'static [Self] = &[Outcome::Loaded, Outcome::Unchanged, Outcome::Failed];
    fn stored(self) -> &'static str {
        match self {
            Outcome::Loaded => "loaded",
            Outcome::Unchanged => "unchanged",
            Outcome::Failed => "failed",
        }
    }
}

impl Stored for Role {
    const WHAT: &'static str = "token role";
    const ALL: &'static [Self] = &Role::ALL;
    fn stored(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distinct<T: Stored>() -> bool {
        let mut names: Vec<&str> = T::ALL.iter().map(|v| v.stored()).collect();
        names.sort_unstable();
        names.dedup();
        names.len() == T::ALL.len()
    }

    #[test]
    fn every_value_has_its_own_stored_text() {
        assert!(distinct::<ReportStatus>());
        assert!(distinct::<Interpolation>());
        assert!(distinct::<FileKind>());
        assert!(distinct::<Outcome>());
        assert!(distinct::<Role>());
    }
}
