//! Why a compatibility data file was refused, and where in it.

use std::fmt;
use std::ops::Range;

/// A place in a data file, both counted from 1. Columns count characters,
/// not bytes, so they match what an editor shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `text`. An offset past the end, or
    /// inside a character, is clamped to the nearest character start before
    /// it, because a span from a parser must never turn into a panic here.
    pub fn of_offset(text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Position { line, column }
    }

    pub(crate) fn of_span(text: &str, span: &Range<usize>) -> Position {
        Position::of_offset(text, span.start)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// `line N, column M: ` or nothing, to put in front of a message.
fn at(position: &Option<Position>) -> String {
    position.map(|p| format!("{p}: ")).unwrap_or_default()
}

/// Everything that can go wrong loading compatibility data. `origin` is the
/// name the data was loaded under: a path, or "embedded compat.toml".
#[derive(Debug, thiserror::Error)]
pub enum CompatError {
    #[error("reading compatibility data {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, or TOML of the wrong shape (a missing key, a key this
    /// schema does not have, a string where a number belongs).
    #[error("{origin}: {}{message}", at(.position))]
    Syntax {
        origin: String,
        position: Option<Position>,
        message: String,
    },
    #[error(
        "{origin}: {}unsupported schema {found}: this build reads schema {supported}",
        at(.position)
    )]
    UnsupportedSchema {
        origin: String,
        position: Option<Position>,
        found: i64,
        supported: u32,
    },
    /// Well-formed TOML whose content is wrong: an unparseable version, an
    /// unknown name, rows that contradict each other.
    #[error("{origin}: {}{place}: {message}", at(.position))]
    Invalid {
        origin: String,
        position: Option<Position>,
        /// The table and key, e.g. `[[branch]] 550, key "cuda"`.
        place: String,
        message: String,
    },
    #[error("{origin}: {}duplicate {place} (first defined on line {first_line})", at(.position))]
    Duplicate {
        origin: String,
        position: Option<Position>,
        /// What is duplicated, e.g. `[[branch]] 550`.
        place: String,
        first_line: usize,
    },
}

impl CompatError {
    /// Stable short name, for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            CompatError::Read { .. } => "read",
            CompatError::Syntax { .. } => "syntax",
            CompatError::UnsupportedSchema { .. } => "unsupported_schema",
            CompatError::Invalid { .. } => "invalid",
            CompatError::Duplicate { .. } => "duplicate",
        }
    }

    /// Where in the file the problem is, when it is known.
    pub fn position(&self) -> Option<Position> {
        match self {
            CompatError::Read { .. } => None,
            CompatError::Syntax { position, .. }
            | CompatError::UnsupportedSchema { position, .. }
            | CompatError::Invalid { position, .. }
            | CompatError::Duplicate { position, .. } => *position,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters_from_one() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(
            Position::of_offset(text, 0),
            Position { line: 1, column: 1 }
        );
        assert_eq!(
            Position::of_offset(text, 6),
            Position { line: 2, column: 1 }
        );
        // "é" is two bytes but one column.
        let second_eq = text[6..].find('=').unwrap() + 6;
        assert_eq!(
            Position::of_offset(text, second_eq),
            Position { line: 2, column: 4 }
        );
        // Inside "é": clamped back to its start.
        assert_eq!(
            Position::of_offset(text, 8),
            Position { line: 2, column: 2 }
        );
        assert_eq!(
            Position::of_offset(text, 10_000),
            Position { line: 3, column: 1 }
        );
    }

    #[test]
    fn messages_put_the_position_first_when_known() {
        let err = CompatError::Invalid {
            origin: "compat.toml".into(),
            position: Some(Position { line: 4, column: 8 }),
            place: "[[branch]] 550, key \"cuda\"".into(),
            message: "bad".into(),
        };
        assert_eq!(
            err.to_string(),
            "compat.toml: line 4, column 8: [[branch]] 550, key \"cuda\": bad"
        );
        assert_eq!(err.kind(), "invalid");
        let err = CompatError::Syntax {
            origin: "x".into(),
            position: None,
            message: "broken".into(),
        };
        assert_eq!(err.to_string(), "x: broken");
        assert_eq!(err.position(), None);
    }
}
