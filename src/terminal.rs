//! Messages that fit the screen: wrapped at words to the terminal's width, or to 100 columns
//! without a terminal (a log file or a pipe).

use std::io::IsTerminal;

/// The width without a terminal.
pub const DEFAULT_WIDTH: usize = 100;

/// The width of standard error's terminal, else [`DEFAULT_WIDTH`].
pub fn width() -> usize {
    if !std::io::stderr().is_terminal() {
        return DEFAULT_WIDTH;
    }
    terminal_size::terminal_size_of(std::io::stderr())
        .map(|(w, _)| w.0 as usize)
        .filter(|w| *w >= 20)
        .unwrap_or(DEFAULT_WIDTH)
}

/// Wraps `text` at words to `width` columns. Each line of `text` is wrapped on its own; the
/// continuation lines of a line keep its indentation, plus `hang` more columns. A word longer
/// than a line (a path, a URL) stays whole on its own line.
pub fn wrap_with(text: &str, width: usize, hang: usize) -> String {
    let mut out = Vec::new();
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let first_prefix = &line[..indent];
        let next_prefix = " ".repeat(indent + hang);
        let mut current = first_prefix.to_string();
        let mut empty = true;
        for word in line.split_whitespace() {
            let columns = current.chars().count();
            if !empty && columns + 1 + word.chars().count() > width {
                out.push(std::mem::replace(&mut current, next_prefix.clone()));
                empty = true;
            }
            if !empty {
                current.push(' ');
            }
            current.push_str(word);
            empty = false;
        }
        out.push(current.trim_end().to_string());
    }
    out.join("\n")
}

/// [`wrap_with`] at the terminal's width, continuation lines indented by 2.
pub fn wrap(text: &str) -> String {
    wrap_with(text, width(), 2)
}

/// `prefix` as it is (a table's columns, a device ID), then `text` wrapped at words into the
/// columns left of `width`; continuation lines start under the text (or 4 columns in, when the
/// prefix takes half the width or more).
pub fn hang(prefix: &str, text: &str, width: usize) -> String {
    let columns = prefix.chars().count();
    let indent = if columns * 2 < width { columns } else { 4 };
    let mut out = prefix.to_string();
    let mut used = columns;
    let mut empty = true;
    for word in text.split_whitespace() {
        let length = word.chars().count();
        let first_on_prefix = empty && used == columns && columns > indent;
        if (!empty || first_on_prefix) && used + usize::from(!empty) + length > width {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            used = indent;
            empty = true;
        }
        if !empty {
            out.push(' ');
            used += 1;
        }
        out.push_str(word);
        used += length;
        empty = false;
    }
    out
}

/// `text` as shell comment lines (`# `), wrapped at the terminal's width; a wrapped line goes
/// on as `#   `. For the plans of dry runs, which stay a runnable script.
pub fn comment(text: &str) -> String {
    wrap_with(text, width().saturating_sub(2), 2)
        .lines()
        .map(|line| format!("# {line}").trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Prints to standard error, wrapped.
pub fn eprint_wrapped(text: &str) {
    eprintln!("{}", wrap(text));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_words_and_keeps_long_words_whole() {
        let text = "error: the source login does not work: see https://example.com/a/very/long/path/that/is/long";
        let wrapped = wrap_with(text, 30, 2);
        for line in wrapped.lines() {
            assert!(
                line.chars().count() <= 30 || !line.trim().contains(' '),
                "{line:?}"
            );
        }
        assert_eq!(
            wrapped.split_whitespace().collect::<Vec<_>>(),
            text.split_whitespace().collect::<Vec<_>>()
        );
        assert!(wrapped.lines().nth(1).unwrap().starts_with("  "));
    }

    #[test]
    fn a_hanging_cell_keeps_its_prefix_and_wraps_under_its_text() {
        let prefix = "  dev-3  ";
        let text = "heard only through Packet Broker: a gateway of another network, which keeps routing this DevAddr to the source";
        let cell = hang(prefix, text, 60);
        let lines: Vec<&str> = cell.lines().collect();
        assert!(lines.len() > 1, "{cell}");
        assert!(lines[0].starts_with("  dev-3  heard only"), "{cell}");
        for line in &lines {
            assert!(line.chars().count() <= 60, "{line:?}");
        }
        for line in &lines[1..] {
            assert!(line.starts_with(&" ".repeat(prefix.len())), "{line:?}");
            assert!(!line[prefix.len()..].starts_with(' '), "{line:?}");
        }
        assert_eq!(hang("  a  ", "short", 60), "  a  short");
        // A prefix of over half the width: the text goes on 4 columns in.
        let wide = format!("{:50}", "columns");
        assert_eq!(
            hang(&wide, "registered, not connected", 62),
            format!("{wide}registered,\n    not connected")
        );
    }

    #[test]
    fn keeps_line_breaks_and_indentation() {
        let text = "Not migrated:\n  dev-1: could not import the device into the target";
        assert_eq!(
            wrap_with(text, 30, 2),
            "Not migrated:\n  dev-1: could not import the\n    device into the target"
        );
        assert_eq!(wrap_with("short", 30, 2), "short");
    }
}
