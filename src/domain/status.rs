//! Polls, and the step function that extends them over time.

use std::str::FromStr;

use super::time::{TickInterval, Ticks, Timestamp};

/// One observation of a store: active or not at an instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Poll {
    pub at: Timestamp,
    pub active: bool,
}

/// How a store's status is read between its polls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Interpolation {
    /// Every instant takes the status of the nearest poll; the switch is halfway between
    /// two polls.
    #[default]
    Nearest,
    /// A poll's status holds until the next poll.
    ForwardFill,
}

impl Interpolation {
    /// The name the command line and messages use.
    pub fn name(self) -> &'static str {
        match self {
            Interpolation::Nearest => "nearest",
            Interpolation::ForwardFill => "forward-fill",
        }
    }
}

impl FromStr for Interpolation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "nearest" => Ok(Interpolation::Nearest),
            "forward-fill" | "forwardfill" => Ok(Interpolation::ForwardFill),
            _ => Err(format!(
                "unknown interpolation {s:?} (expected nearest or forward-fill)"
            )),
        }
    }
}

/// Sorts polls by time and keeps the first of polls at the same instant (the sort is
/// stable, so "first" is the order in which they were given).
pub fn normalize_polls(polls: &mut Vec<Poll>) {
    let kept = normalize_in_place(polls);
    polls.truncate(kept);
}

/// [`normalize_polls`] on a slice: the kept polls are moved to its front; returns how many.
pub fn normalize_in_place(polls: &mut [Poll]) -> usize {
    polls.sort_by_key(|p| p.at);
    let mut kept = 0;
    for i in 0..polls.len() {
        if kept == 0 || polls[kept - 1].at != polls[i].at {
            polls[kept] = polls[i];
            kept += 1;
        }
    }
    kept
}

/// Whether `polls[i]` (a store's polls in time order) is the first or last of a run of equal
/// statuses. Only those change a figure: the nearest poll to an instant inside a run is in
/// the run, and forward fill holds the run's first status; so the engine gives the same
/// figures and timeline from the edges alone as from every poll.
pub fn is_run_edge(polls: &[Poll], i: usize) -> bool {
    let differs = |j: Option<usize>| {
        j.and_then(|j| polls.get(j))
            .is_none_or(|p| p.active != polls[i].active)
    };
    differs(i.checked_sub(1)) || differs(Some(i + 1))
}

/// A piece of a store's timeline: open or not, active or not, throughout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub span: TickInterval,
    /// Inside business hours.
    pub open: bool,
    /// The interpolated status.
    pub active: bool,
}

/// A store's status as a step function of time, from its polls sorted by time with no
/// two at one instant.
pub struct StepFunction<'a> {
    polls: &'a [Poll],
    interpolation: Interpolation,
}

impl<'a> StepFunction<'a> {
    pub fn new(polls: &'a [Poll], interpolation: Interpolation) -> Self {
        debug_assert!(polls.windows(2).all(|w| w[0].at < w[1].at));
        StepFunction { polls, interpolation }
    }

    /// Where the status of poll `i` stops holding, in ticks; `i64::MAX` for the last poll.
    fn step_end(&self, i: usize) -> i64 {
        let Some(next) = self.polls.get(i + 1) else {
            return i64::MAX;
        };
        match self.interpolation {
            // The midpoint (a + b) / 2 in half-microseconds is a + b microseconds.
            Interpolation::Nearest => self.polls[i].at.0 + next.at.0,
            Interpolation::ForwardFill => Ticks::from_micros(next.at.0).0,
        }
    }

    /// `span` cut where the status or being open changes: each piece says whether it lies
    /// in one of the `open` intervals (sorted, disjoint) and the status that holds. The
    /// pieces cover `span` in order, without gaps or overlaps; none without polls.
    pub fn segments(&self, span: TickInterval, open: &[TickInterval]) -> Vec<Segment> {
        if self.polls.is_empty() || span.is_empty() {
            return Vec::new();
        }
        let inside = |t: i64| t > span.start && t < span.end;
        let mut cuts = vec![span.start, span.end];
        cuts.extend(open.iter().flat_map(|o| [o.start, o.end]).filter(|&t| inside(t)));
        cuts.extend(
            (0..self.polls.len() - 1)
                .map(|i| self.step_end(i))
                .filter(|&t| inside(t)),
        );
        cuts.sort_unstable();
        cuts.dedup();
        let (mut poll, mut interval) = (0, 0);
        let mut pieces: Vec<Segment> = Vec::new();
        for cut in cuts.windows(2) {
            let (start, end) = (cut[0], cut[1]);
            while self.step_end(poll) <= start {
                poll += 1;
            }
            while interval < open.len() && open[interval].end <= start {
                interval += 1;
            }
            let is_open = open.get(interval).is_some_and(|o| o.start <= start);
            let active = self.polls[poll].active;
            match pieces.last_mut() {
                Some(last) if last.open == is_open && last.active == active => last.span.end = end,
                _ => pieces.push(Segment {
                    span: TickInterval { start, end },
                    open: is_open,
                    active,
                }),
            }
        }
        pieces
    }

    /// Time spent active within `intervals` (sorted, disjoint, in ticks), and their total.
    pub fn active_within(&self, intervals: &[TickInterval]) -> (Ticks, Ticks) {
        let (mut active, mut total) = (0, 0);
        let Some(first) = intervals.first() else {
            return (Ticks(0), Ticks(0));
        };
        if self.polls.is_empty() {
            return (Ticks(0), Ticks(intervals.iter().map(|i| i.len().0).sum()));
        }
        // The first step reaches back to -∞ and the last one on to +∞; find the step
        // that holds at the first interval's start.
        let (mut i, mut last) = (0, self.polls.len() - 1);
        while i < last {
            let mid = i + (last - i) / 2;
            if self.step_end(mid) <= first.start {
                i = mid + 1;
            } else {
                last = mid;
            }
        }
        for interval in intervals {
            let mut from = interval.start;
            while from < interval.end {
                while self.step_end(i) <= from {
                    i += 1;
                }
                let to = interval.end.min(self.step_end(i));
                if self.polls[i].active {
                    active += to - from;
                }
                total += to - from;
                from = to;
            }
        }
        (Ticks(active), Ticks(total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_ends_of_runs_are_edges() {
        let polls: Vec<Poll> = [true, true, true, false, true, true]
            .into_iter()
            .enumerate()
            .map(|(i, active)| Poll {
                at: Timestamp(i as i64),
                active,
            })
            .collect();
        let edges: Vec<bool> = (0..polls.len()).map(|i| is_run_edge(&polls, i)).collect();
        assert_eq!(edges, [true, false, true, true, true, true]);
        assert!(is_run_edge(&polls[..1], 0), "a lone poll is both ends of its run");
    }
}
