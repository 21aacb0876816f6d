//! Colour for the terminal: only when the stream is a terminal and `NO_COLOR` is not set
//! (<https://no-color.org>: any non-empty value turns colour off).

use std::io::IsTerminal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    Green,
    Red,
    Yellow,
}

/// Whether to colour one output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    colour: bool,
}

impl Style {
    pub fn for_stdout() -> Style {
        Style::new(std::io::stdout().is_terminal())
    }

    pub fn for_stderr() -> Style {
        Style::new(std::io::stderr().is_terminal())
    }

    fn new(is_terminal: bool) -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            colour: is_terminal && !no_color,
        }
    }

    /// Never coloured.
    pub fn plain() -> Style {
        Style { colour: false }
    }

    pub fn paint(&self, colour: Colour, text: &str) -> String {
        if !self.colour {
            return text.to_string();
        }
        let code = match colour {
            Colour::Green => 32,
            Colour::Red => 31,
            Colour::Yellow => 33,
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paints_only_when_colour_is_on() {
        assert_eq!(Style::plain().paint(Colour::Red, "✗"), "✗");
        let on = Style { colour: true };
        assert_eq!(on.paint(Colour::Green, "✓"), "\x1b[32m✓\x1b[0m");
        assert_eq!(Style::new(false), Style::plain());
    }
}
