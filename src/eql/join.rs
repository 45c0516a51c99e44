//! The statements that join events, sequences and samples, behind one matcher: events go in
//! (in timestamp order), joined results come out.

use serde_json::Value as Json;

use super::ast::Body;
use super::eval::MatchOptions;
use super::sample::SampleMatcher;
use super::sequence::{SequenceHit, SequenceMatcher};

/// A sequence's or a sample's matcher.
#[derive(Debug, Clone)]
pub enum JoinMatcher {
    // Boxed: a sequence's state is several times a sample's.
    Sequence(Box<SequenceMatcher>),
    Sample(SampleMatcher),
}

impl JoinMatcher {
    /// The matcher of `body`; `None` for an event query, which joins nothing.
    /// `max_samples_per_key` as [`SampleMatcher::new`] takes it.
    pub fn new(
        body: &Body,
        options: &MatchOptions,
        max_samples_per_key: usize,
    ) -> Option<Result<JoinMatcher, regex::Error>> {
        match body {
            Body::Event(_) => None,
            Body::Sequence(sequence) => Some(
                SequenceMatcher::new(sequence, options).map(|m| JoinMatcher::Sequence(Box::new(m))),
            ),
            Body::Sample(sample) => Some(
                SampleMatcher::new(sample, options, max_samples_per_key).map(JoinMatcher::Sample),
            ),
        }
    }

    /// Feed the event `id` at `nanos`: the sequences it completes (samples come out only at
    /// [`JoinMatcher::finish`]).
    pub fn push(&mut self, id: usize, nanos: i128, doc: &Json) -> Vec<SequenceHit> {
        match self {
            JoinMatcher::Sequence(matcher) => matcher.push(id, nanos, doc),
            JoinMatcher::Sample(matcher) => {
                matcher.push(id, doc);
                Vec::new()
            }
        }
    }

    /// The end of the input: what is still held.
    pub fn finish(self) -> Vec<SequenceHit> {
        match self {
            JoinMatcher::Sequence(mut matcher) => matcher.finish(),
            JoinMatcher::Sample(matcher) => matcher.finish(),
        }
    }
}
