//! The joining part of the grammar: `sequence [by ...] [with maxspan=...]`, its stages with
//! their join keys and `with runs=N`, and `until`; `sample [by ...]` and its filters.

use super::super::ast::{Expr, Maxspan, Sample, Sequence, Stage};
use super::super::error::ParseError;
use super::super::lexer::Tok;
use super::{MAX_RUNS, MAX_SAMPLE_FILTERS, Parser};

impl Parser {
    /// `by k, ...` (after `by` has been seen or not: empty when absent).
    pub(super) fn join_keys(&mut self) -> Result<Vec<Expr>, ParseError> {
        let mut keys = Vec::new();
        if self.is_word("by") {
            self.pos += 1;
            keys.push(self.expr()?);
            while self.eat(&Tok::Comma) {
                keys.push(self.expr()?);
            }
        }
        Ok(keys)
    }

    pub(super) fn maxspan(&mut self) -> Result<Option<Maxspan>, ParseError> {
        if !self.is_word("with") {
            return Ok(None);
        }
        self.pos += 1;
        if !self.is_word("maxspan") {
            return Err(self.unexpected("\"maxspan\""));
        }
        self.pos += 1;
        self.expect(&Tok::Assign, "\"=\"")?;
        match self.peek().clone() {
            Tok::Duration(amount, unit) if amount > 0 => {
                self.pos += 1;
                Ok(Some(Maxspan { amount, unit }))
            }
            _ => Err(self.unexpected("a time span such as 30s (units ms, s, m, h, d)")),
        }
    }

    pub(super) fn stage(&mut self) -> Result<Stage, ParseError> {
        let missing = self.eat(&Tok::Bang);
        self.expect(&Tok::LBracket, "\"[\"")?;
        let query = self.query()?;
        self.expect(&Tok::RBracket, "\"]\"")?;
        let by = self.join_keys()?;
        // On a missing event too, `with runs=N` is N consecutive stages, as Elasticsearch
        // expands it.
        let runs = self.runs()?;
        Ok(Stage {
            query,
            by,
            runs,
            missing,
        })
    }

    /// `with runs=N` after a stage: 1 to [`MAX_RUNS`], as Elasticsearch allows.
    pub(super) fn runs(&mut self) -> Result<u32, ParseError> {
        if !self.is_word("with") {
            return Ok(1);
        }
        self.pos += 1;
        if !self.is_word("runs") {
            return Err(self.unexpected("\"runs\""));
        }
        self.pos += 1;
        self.expect(&Tok::Assign, "\"=\"")?;
        match self.peek().clone() {
            Tok::Int(n) if (1..=i64::from(MAX_RUNS)).contains(&n) => {
                self.pos += 1;
                Ok(n as u32)
            }
            _ => Err(self.unexpected(&format!("a number of runs from 1 to {MAX_RUNS}"))),
        }
    }

    pub(super) fn sequence(&mut self) -> Result<Sequence, ParseError> {
        // `by` and `with maxspan` come in either order, as in Elasticsearch's grammar.
        let mut by = self.join_keys()?;
        let maxspan = self.maxspan()?;
        if by.is_empty() {
            by = self.join_keys()?;
        }
        let mut stages = Vec::new();
        let mut key_counts = Vec::new();
        let start = self.at();
        while matches!(self.peek(), Tok::LBracket | Tok::Bang) {
            key_counts.push(self.at());
            stages.push(self.stage()?);
        }
        if stages.iter().map(|s| s.runs).sum::<u32>() < 2 {
            return Err(self.unexpected("\"[\" (a sequence needs at least two stages)"));
        }
        if stages.iter().any(|s| s.missing) {
            if stages.iter().all(|s| s.missing) {
                return Err(ParseError::new(
                    start,
                    "a sequence needs at least one stage that is not a missing event `![...]`",
                ));
            }
            if maxspan.is_none() {
                return Err(ParseError::new(
                    start,
                    "a sequence with a missing event `![...]` needs `with maxspan=...`",
                ));
            }
        }
        let until = if self.is_word("until") {
            self.pos += 1;
            key_counts.push(self.at());
            let at = self.at();
            let stage = self.stage()?;
            if stage.runs != 1 {
                return Err(ParseError::new(at, "an `until` stage takes no `runs`"));
            }
            if stage.missing {
                return Err(ParseError::new(
                    at,
                    "an `until` stage cannot be a missing event",
                ));
            }
            Some(stage)
        } else {
            None
        };
        let keys = stages.iter().chain(&until).map(|s| s.by.len());
        for (count, at) in keys.zip(key_counts) {
            if count != stages[0].by.len() {
                return Err(ParseError::new(
                    at,
                    "every stage of a sequence needs the same number of join keys",
                ));
            }
        }
        Ok(Sequence {
            by,
            maxspan,
            stages,
            until,
        })
    }
}

impl Parser {
    /// After `sample`: `[by k, ...]`, then two or more `[filter] [by k, ...]`. The keys are
    /// fields (Elasticsearch groups them with a composite aggregation), at least one in all.
    pub(super) fn sample(&mut self) -> Result<Sample, ParseError> {
        let start = self.at();
        let by = self.join_keys()?;
        let mut stages = Vec::new();
        let mut starts = Vec::new();
        while matches!(self.peek(), Tok::LBracket | Tok::Bang) {
            let at = self.at();
            let stage = self.stage()?;
            if stage.missing {
                return Err(ParseError::new(
                    at,
                    "a sample has no missing events `![...]`",
                ));
            }
            if stage.runs != 1 {
                return Err(ParseError::new(
                    at,
                    "a sample's filter takes no `with` (no `runs`, no `maxspan`)",
                ));
            }
            starts.push(at);
            stages.push(stage);
        }
        if stages.len() < 2 {
            return Err(self.unexpected("\"[\" (a sample needs at least two filters)"));
        }
        if stages.len() > MAX_SAMPLE_FILTERS {
            return Err(ParseError::new(
                starts[MAX_SAMPLE_FILTERS],
                format!("a sample takes at most {MAX_SAMPLE_FILTERS} filters in rule-runner"),
            ));
        }
        for (stage, at) in stages.iter().zip(&starts) {
            if stage.by.len() != stages[0].by.len() {
                return Err(ParseError::new(
                    *at,
                    "every filter of a sample needs the same number of join keys",
                ));
            }
        }
        if by.is_empty() && stages[0].by.is_empty() {
            return Err(ParseError::new(
                start,
                "a sample needs join keys: `sample by field [...] [...]` or `[...] by field`",
            ));
        }
        if let Some(key) = by
            .iter()
            .chain(stages.iter().flat_map(|s| &s.by))
            .find(|key| !matches!(key, Expr::Field(_)))
        {
            return Err(ParseError::new(
                start,
                format!("a sample's join keys are fields, not `{key}`"),
            ));
        }
        Ok(Sample { by, stages })
    }
}
