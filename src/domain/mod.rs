//! The pure core of store-monitor: business hours, time zones, interpolation, uptime, a
//! report's result and life, incidents, and which addresses the server may call. Nothing here reads a file, a clock or a database; the
//! adapters around it do.

pub mod access;
pub mod destination;
pub mod history;
pub mod hours;
pub mod incident;
pub mod known_polls;
pub mod lifecycle;
pub mod load;
pub mod report;
pub mod status;
pub mod store_id;
pub mod time;
pub mod uptime;
pub mod webhook;
pub mod zone;

pub use hours::{HoursRow, LocalTime, Weekday};
pub use lifecycle::{ReportFilter, ReportRecord, ReportStatus};
pub use report::{Report, StoreReport};
pub use status::{Interpolation, Poll, Segment};
pub use time::{Interval, TickInterval, Ticks, Timestamp};
pub use uptime::{Engine, Split, Uptime, reads_from};
pub use zone::Zone;
