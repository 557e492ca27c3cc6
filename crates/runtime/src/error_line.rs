//! An error and its causes on one line, as the command-line contract asks
//! of every refusal.

use std::error::Error;

/// `e` and its causes joined with `: ` on one line. The libraries' errors
/// show their cause in their own message and carry it as their source too
/// (so a caller can tell one cause from another): a cause whose text the
/// line already shows is not repeated.
pub fn error_line(e: &(dyn Error + 'static)) -> String {
    let mut line = String::new();
    let mut cause = Some(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.contains(text.as_str()) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        cause = c.source();
    }
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::error_line;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read model.twin")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn joins_the_causes_and_repeats_none() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        assert_eq!(
            error_line(&Outer(io)),
            "cannot read model.twin: no such file"
        );
        // A library error that shows its source in its message.
        let path = std::env::temp_dir().join("no/such/dir/x");
        let written = twinshield_atrest::write_atomic(&path, b"x", 0o600).unwrap_err();
        let line = error_line(&written);
        assert!(line.starts_with("cannot write "), "{line}");
        assert_eq!(line.matches("No such file").count(), 1, "{line}");
        let multi = std::io::Error::other("two\nlines");
        assert_eq!(error_line(&multi), "two lines");
    }
}
